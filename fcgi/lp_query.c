/* lp_query: query-string and cursor-list parsing (see lp_query.h). Pure
 * functions over (ptr, len); the only state is the caller's buffers. */
#include "lp_query.h"

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
