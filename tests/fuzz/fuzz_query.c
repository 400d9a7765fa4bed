/* libFuzzer target for lp_query: any bytes as a query string. Every
 * parameter the worker reads is looked up, decoded and parsed the way
 * /poll and /history do; results must respect the buffers and the rules
 * (a decoded value has no NUL and fits; a cursor entry is a valid room with
 * a seq >= -1; no room twice). Any violation aborts. Self-contained: it
 * compiles fcgi/lp_query.c in. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fcgi/lp_query.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_cursors(const char *s, size_t len)
{
    struct lp_cursor c[20];
    int n = lp_cursor_parse(s, len, c, 20);

    if (n == CHAT_QUERY_BAD || n == LP_CURSOR_TOO_MANY)
        return;
    if (n < 1 || n > 20)
        abort();
    for (int i = 0; i < n; i++) {
        if (!chat_valid_room(c[i].room, strlen(c[i].room)) || c[i].seq < -1)
            abort();
        for (int k = 0; k < i; k++)
            if (strcmp(c[i].room, c[k].room) == 0)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"rooms", "name", "timeout", "room", "before", "limit"};
    const char *qs = (const char *)data;
    char *out = malloc(4097);

    if (out == NULL)
        return 0;
    /* the same bytes as a Cookie header (the basic HTML mode) */
    for (size_t cap = 1; cap <= 65; cap += 32) {
        int n = lp_cookie_get(qs, size, "chat_csrf", out, cap);
        if (n != CHAT_QUERY_ABSENT && n != CHAT_QUERY_BAD &&
            (n < 0 || (size_t)n >= cap || out[n] != '\0' || memchr(out, ';', (size_t)n)))
            abort();
    }
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        size_t cap = k == 0 ? 4097 : 34;
        int n = chat_query_get(qs, size, names[k], out, cap);
        if (n == CHAT_QUERY_ABSENT || n == CHAT_QUERY_BAD)
            continue;
        if (n < 0 || (size_t)n >= cap || out[n] != '\0' || memchr(out, '\0', (size_t)n))
            abort();
        if (k == 0) {
            check_cursors(out, (size_t)n);
        } else {
            int64_t v;
            if (chat_query_int(out, (size_t)n, 0, INT64_MAX, &v) == 0 && v < 0)
                abort();
        }
    }
    check_cursors(qs, size); /* the raw bytes as a list too */
    free(out);
    return 0;
}
