/* chat_origin: the Origin rule of the long-poll endpoints (see
 * chat_origin.h). */
#include "chat_origin.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool eq_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static long default_port(const char *s, size_t len)
{
    if (eq_nocase(s, len, "http", 4))
        return 80;
    if (eq_nocase(s, len, "https", 5))
        return 443;
    return -1;
}

/* "host[:port]" or "[v6]:port": host part and port (-1: none). false when
 * malformed. */
static bool split_authority(const char *a, size_t len, const char **h, size_t *hl, long *port)
{
    size_t end = len;

    *port = -1;
    if (len == 0)
        return false;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (close == NULL)
            return false;
        end = (size_t)(close - a) + 1;
        if (end < len && a[end] != ':')
            return false;
    } else {
        const char *colon = memchr(a, ':', len);
        if (colon)
            end = (size_t)(colon - a);
    }
    *h = a;
    *hl = end;
    if (end == len)
        return end > 0;
    if (end + 1 >= len || len - end - 1 > 5)
        return false;
    long v = 0;
    for (size_t i = end + 1; i < len; i++) {
        if (a[i] < '0' || a[i] > '9')
            return false;
        v = v * 10 + (a[i] - '0');
    }
    *port = v;
    return end > 0 && v > 0 && v < 65536;
}

static bool listed(const char *o, size_t olen, const char *list)
{
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, " \t");
        if (n > 0 && eq_nocase(p, n, o, olen))
            return true;
        p += n;
    }
    return false;
}

static bool same_site(const char *o, size_t olen, const char *scheme, const char *host)
{
    const char *sep = NULL;

    for (size_t i = 0; i + 3 <= olen && sep == NULL; i++)
        if (memcmp(o + i, "://", 3) == 0)
            sep = o + i;
    if (sep == NULL || host == NULL || host[0] == '\0')
        return false;
    size_t slen = (size_t)(sep - o);
    if (scheme && scheme[0] && !eq_nocase(o, slen, scheme, strlen(scheme)))
        return false;
    long dflt = default_port(o, slen), op, hp;
    const char *oh, *hh;
    size_t ohl, hhl;
    if (!split_authority(sep + 3, olen - slen - 3, &oh, &ohl, &op) ||
        !split_authority(host, strlen(host), &hh, &hhl, &hp))
        return false;
    return (op < 0 ? dflt : op) == (hp < 0 ? dflt : hp) && eq_nocase(oh, ohl, hh, hhl);
}

bool chat_origin_allowed(const char *origin, size_t olen, const char *scheme, const char *host,
                         const char *allowed)
{
    if (olen == 0 || eq_nocase(origin, olen, "null", 4))
        return false;
    return listed(origin, olen, allowed) || same_site(origin, olen, scheme, host);
}
