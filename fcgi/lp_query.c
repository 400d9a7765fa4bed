/* lp_query: query-string and cursor-list parsing (see lp_query.h). Pure
 * functions over (ptr, len); the only state is the caller's buffers. */
#include "lp_query.h"

#include <string.h>

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int lp_query_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t i = 0, n = 0;

    if (cap == 0)
        return LP_QUERY_BAD;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                return LP_QUERY_BAD;
            hi = hex_value((unsigned char)in[i + 1]);
            lo = hex_value((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return LP_QUERY_BAD;
            c = (unsigned char)(hi << 4 | lo);
            i += 3;
        } else {
            if (c == '+')
                c = ' ';
            i++;
        }
        if (c == '\0' || n + 1 >= cap)
            return LP_QUERY_BAD;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return (int)n;
}

int lp_query_get(const char *qs, size_t len, const char *name, char *out, size_t cap)
{
    size_t pos = 0, want = strlen(name);
    char key[64];

    while (pos < len) {
        const char *pair = qs + pos;
        const char *amp = memchr(pair, '&', len - pos);
        size_t plen = amp ? (size_t)(amp - pair) : len - pos;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;

        pos += plen + (amp ? 1 : 0);
        if (klen == 0)
            continue;
        if (klen < want || klen > 3 * want || want >= sizeof(key))
            continue; /* cannot decode to name: skipped unparsed */
        int k = lp_query_decode(pair, klen, key, sizeof(key));
        if (k == LP_QUERY_BAD)
            return LP_QUERY_BAD;
        if ((size_t)k != want || memcmp(key, name, want) != 0)
            continue;
        if (!eq) {
            if (cap == 0)
                return LP_QUERY_BAD;
            out[0] = '\0';
            return 0;
        }
        return lp_query_decode(eq + 1, plen - klen - 1, out, cap);
    }
    return LP_QUERY_ABSENT;
}

int lp_query_int(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t v = 0;

    if (len > 0 && s[0] == '-' && min < 0) {
        neg = 1;
        i = 1;
    }
    if (i == len || len - i > 19)
        return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    int64_t x = neg ? -(int64_t)v : (int64_t)v;
    if (x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

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
        return lp_query_int(colon + 1, len - rlen - 1, 0, INT64_MAX, &c->seq);
    return 0;
}

int lp_cursor_parse(const char *s, size_t len, struct lp_cursor *out, size_t max)
{
    size_t pos = 0, n = 0;

    if (len == 0)
        return LP_QUERY_BAD;
    for (;;) {
        const char *e = s + pos;
        const char *comma = memchr(e, ',', len - pos);
        size_t elen = comma ? (size_t)(comma - e) : len - pos;

        if (n == max)
            return LP_CURSOR_TOO_MANY;
        if (parse_entry(e, elen, &out[n]) < 0)
            return LP_QUERY_BAD;
        for (size_t k = 0; k < n; k++)
            if (strcmp(out[k].room, out[n].room) == 0)
                return LP_QUERY_BAD;
        n++;
        if (!comma)
            break;
        pos += elen + 1;
    }
    return (int)n;
}
