/* chat_origin: the Origin rule of both daemons (see chat_origin.h). */
#include "chat_origin.h"

#include <string.h>
#include <strings.h>

static bool eq_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static long scheme_port(const char *s, size_t n)
{
    if (eq_nocase(s, n, "http", 4) || eq_nocase(s, n, "ws", 2))
        return 80;
    if (eq_nocase(s, n, "https", 5) || eq_nocase(s, n, "wss", 3))
        return 443;
    return -1;
}

/* host[:port], host a reg-name, IPv4 or [IPv6]; *port is -1 when absent.
 * false when it is not of that shape (userinfo, a path, port 0 or over
 * 65535 included). */
static bool split_authority(const char *s, size_t n, const char **host, size_t *host_len,
                            long *port)
{
    size_t i;

    if (n == 0)
        return false;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (rb == NULL)
            return false;
        i = (size_t)(rb - s) + 1;
    } else {
        for (i = 0; i < n && s[i] != ':'; i++)
            if (s[i] == '/' || s[i] == '?' || s[i] == '#' || s[i] == '@' || s[i] == '[')
                return false;
    }
    if (i == 0 || (s[0] == '[' && i == 2))
        return false;
    *host = s;
    *host_len = i;
    *port = -1;
    if (i == n)
        return true;
    if (s[i] != ':' || i + 1 == n || n - i - 1 > 5)
        return false;
    long v = 0;
    for (size_t j = i + 1; j < n; j++) {
        if (s[j] < '0' || s[j] > '9')
            return false;
        v = v * 10 + (s[j] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *port = v;
    return true;
}

/* An origin "scheme://authority" split; false when it is not of that shape. */
static bool origin_split(const char *o, size_t olen, const char **scheme, size_t *scheme_len,
                         const char **host, size_t *host_len, long *port)
{
    const char *sep = NULL;

    for (size_t i = 0; i + 3 <= olen && sep == NULL; i++)
        if (memcmp(o + i, "://", 3) == 0)
            sep = o + i;
    if (sep == NULL || sep == o)
        return false;
    *scheme = o;
    *scheme_len = (size_t)(sep - o);
    return split_authority(sep + 3, olen - *scheme_len - 3, host, host_len, port);
}

/* Is h[0..n) a name of this server ($server_name, wildcards included) or
 * its own address ([brackets] around IPv6)? */
static bool host_is_site(const char *h, size_t n, const struct chat_site *s)
{
    const char *name = s->server_name;
    size_t nl = s->server_name_len;

    if (name && nl > 0) {
        if (eq_nocase(h, n, name, nl))
            return true;
        size_t skip = name[0] == '.' ? 0 : nl > 2 && memcmp(name, "*.", 2) == 0 ? 1 : nl;
        if (skip < nl) { /* ".example.org": it and below; "*.example.org": below */
            const char *suf = name + skip;
            size_t sl = nl - skip;
            if (n > sl && eq_nocase(h + n - sl, sl, suf, sl))
                return true;
            if (skip == 0 && eq_nocase(h, n, suf + 1, sl - 1))
                return true;
        }
    }
    if (s->server_addr && s->server_addr_len > 0) {
        if (n >= 2 && h[0] == '[') {
            h++;
            n -= 2;
        }
        if (eq_nocase(h, n, s->server_addr, s->server_addr_len))
            return true;
    }
    return false;
}

static bool origin_is_site(const char *o, size_t olen, const struct chat_site *s)
{
    const char *sc, *oh, *hh;
    size_t scl, ohl, hhl;
    long op, hp;

    if (s->host == NULL || !origin_split(o, olen, &sc, &scl, &oh, &ohl, &op) ||
        !split_authority(s->host, s->host_len, &hh, &hhl, &hp))
        return false;
    long dflt = scheme_port(sc, scl);
    if ((op < 0 ? dflt : op) != (hp < 0 ? dflt : hp) || !eq_nocase(oh, ohl, hh, hhl))
        return false;
    if (s->scheme == NULL)
        return true;
    return eq_nocase(sc, scl, s->scheme, s->scheme_len) && host_is_site(hh, hhl, s);
}

/* Is o one of the space-separated entries of the list? */
static bool origin_listed(const char *o, size_t olen, const char *list, size_t llen)
{
    size_t i = 0;

    while (list && i < llen) {
        while (i < llen && (list[i] == ' ' || list[i] == '\t'))
            i++;
        size_t start = i;
        while (i < llen && list[i] != ' ' && list[i] != '\t')
            i++;
        if (i > start && eq_nocase(list + start, i - start, o, olen))
            return true;
    }
    return false;
}

bool chat_origin_allowed(const char *origin, size_t olen, const struct chat_site *site)
{
    if (olen == 0 || eq_nocase(origin, olen, "null", 4))
        return false;
    return origin_listed(origin, olen, site->allowed, site->allowed_len) ||
           origin_is_site(origin, olen, site);
}
