/* lp_query: query-string and cursor-list parsing (see lp_query.h). Pure
 * functions over (ptr, len); the only state is the caller's buffers. */
#include "lp_query.h"

#include <stdbool.h>
#include <string.h>

static int parse_entry(const char *e, size_t len, struct lp_cursor *c)
{
    const char *colon = memchr(e, ':', len);
    size_t rlen = colon ? (size_t)(colon - e) : len;

    if (!chat_valid_room(e, rlen))
        return -1;
    memcpy(c->room, e, rlen);
    c->room[rlen] = '\0';
    c->seq = -1;
    if (colon)
        return chat_query_int(colon + 1, len - rlen - 1, 0, INT64_MAX, &c->seq);
    return 0;
}

int lp_cursor_parse(const char *s, size_t len, struct lp_cursor *out, size_t max)
{
    size_t pos = 0, n = 0;

    if (len == 0)
        return CHAT_QUERY_BAD;
    for (;;) {
        const char *e = s + pos;
        const char *comma = memchr(e, ',', len - pos);
        size_t elen = comma ? (size_t)(comma - e) : len - pos;

        if (n == max)
            return LP_CURSOR_TOO_MANY;
        if (parse_entry(e, elen, &out[n]) < 0)
            return CHAT_QUERY_BAD;
        for (size_t k = 0; k < n; k++)
            if (strcmp(out[k].room, out[n].room) == 0)
                return CHAT_QUERY_BAD;
        n++;
        if (!comma)
            break;
        pos += elen + 1;
    }
    return (int)n;
}

static bool cookie_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != ',' && c != ';' && c != '\\';
}

int lp_cookie_get(const char *s, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name), pos = 0;

    while (pos < len) {
        while (pos < len && (s[pos] == ' ' || s[pos] == '\t'))
            pos++;
        const char *e = s + pos;
        const char *semi = memchr(e, ';', len - pos);
        size_t elen = semi ? (size_t)(semi - e) : len - pos;
        pos += elen + 1;
        if (elen <= nlen || memcmp(e, name, nlen) != 0 || e[nlen] != '=')
            continue;
        size_t vlen = elen - nlen - 1;
        while (vlen > 0 && (e[nlen + 1 + vlen - 1] == ' ' || e[nlen + 1 + vlen - 1] == '\t'))
            vlen--;
        if (vlen >= cap)
            return CHAT_QUERY_BAD;
        for (size_t k = 0; k < vlen; k++)
            if (!cookie_char((unsigned char)e[nlen + 1 + k]))
                return CHAT_QUERY_BAD;
        memcpy(out, e + nlen + 1, vlen);
        out[vlen] = '\0';
        return (int)vlen;
    }
    return CHAT_QUERY_ABSENT;
}
