/* Unit tests for lp_query: percent-decoding, finding a parameter, numbers
 * and the cursor list of /poll, at their limits and on every prefix.
 * Self-contained: it compiles fcgi/lp_query.c in (no extra link input). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../fcgi/lp_query.c"

#define LIT(s) s, sizeof(s) - 1

static void test_decode(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(chat_query_decode(LIT("abc"), out, sizeof(out)), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(chat_query_decode(LIT("a+b%20c"), out, sizeof(out)), 5);
    assert_string_equal(out, "a b c");
    assert_int_equal(chat_query_decode(LIT("%6c%4F%3a"), out, sizeof(out)), 3);
    assert_string_equal(out, "lO:");
    assert_int_equal(chat_query_decode(LIT(""), out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(chat_query_decode(LIT("%"), out, sizeof(out)), CHAT_QUERY_BAD);
    assert_int_equal(chat_query_decode(LIT("%4"), out, sizeof(out)), CHAT_QUERY_BAD);
    assert_int_equal(chat_query_decode(LIT("%4g"), out, sizeof(out)), CHAT_QUERY_BAD);
    assert_int_equal(chat_query_decode(LIT("a%00b"), out, sizeof(out)), CHAT_QUERY_BAD);
    assert_int_equal(chat_query_decode("a\0b", 3, out, sizeof(out)), CHAT_QUERY_BAD);
    /* the buffer: cap - 1 bytes fit, one more does not */
    assert_int_equal(chat_query_decode(LIT("123456789012345"), out, sizeof(out)), 15);
    assert_int_equal(chat_query_decode(LIT("1234567890123456"), out, sizeof(out)), CHAT_QUERY_BAD);
    assert_int_equal(chat_query_decode(LIT("a"), out, 0), CHAT_QUERY_BAD);
    assert_int_equal(chat_query_decode(LIT(""), out, 1), 0);
}

static void test_get(void **state)
{
    char out[64];
    const char qs[] = "rooms=lobby%3A12%2Cdev&name=bob&flag&empty=&na%6De=second";

    (void)state;
    assert_int_equal(chat_query_get(LIT(qs), "rooms", out, sizeof(out)), 12);
    assert_string_equal(out, "lobby:12,dev");
    assert_int_equal(chat_query_get(LIT(qs), "name", out, sizeof(out)), 3);
    assert_string_equal(out, "bob"); /* the first wins */
    assert_int_equal(chat_query_get(LIT(qs), "flag", out, sizeof(out)), 0);
    assert_int_equal(chat_query_get(LIT(qs), "empty", out, sizeof(out)), 0);
    assert_int_equal(chat_query_get(LIT(qs), "timeout", out, sizeof(out)), CHAT_QUERY_ABSENT);
    assert_int_equal(chat_query_get(LIT(qs), "room", out, sizeof(out)), CHAT_QUERY_ABSENT);
    assert_int_equal(chat_query_get(LIT("na%6De=x"), "name", out, sizeof(out)), 1);
    assert_int_equal(chat_query_get(LIT(""), "name", out, sizeof(out)), CHAT_QUERY_ABSENT);
    assert_int_equal(chat_query_get(LIT("&&=&name"), "name", out, sizeof(out)), 0);
    assert_int_equal(chat_query_get(LIT("name=%zz"), "name", out, sizeof(out)), CHAT_QUERY_BAD);
    assert_int_equal(chat_query_get(LIT("na%zz=1"), "name", out, sizeof(out)), CHAT_QUERY_BAD);
    assert_int_equal(chat_query_get(LIT("x=%zz&name=ok"), "name", out, sizeof(out)), 2);
    assert_int_equal(chat_query_get(LIT("name=a=b"), "name", out, sizeof(out)), 3);
    assert_string_equal(out, "a=b");
    assert_int_equal(chat_query_get(LIT("name=toolong"), "name", out, 4), CHAT_QUERY_BAD);
}

static void test_int(void **state)
{
    int64_t v = 7;

    (void)state;
    assert_int_equal(chat_query_int(LIT("0"), 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(chat_query_int(LIT("10"), 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(chat_query_int(LIT("11"), 0, 10, &v), -1);
    assert_int_equal(chat_query_int(LIT("9223372036854775807"), 0, INT64_MAX, &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(chat_query_int(LIT("9223372036854775808"), 0, INT64_MAX, &v), -1);
    assert_int_equal(chat_query_int(LIT("99999999999999999999"), 0, INT64_MAX, &v), -1);
    assert_int_equal(chat_query_int(LIT("-1"), 0, 10, &v), -1);
    assert_int_equal(chat_query_int(LIT("-1"), -5, 10, &v), 0);
    assert_true(v == -1);
    assert_int_equal(chat_query_int(LIT(""), 0, 10, &v), -1);
    assert_int_equal(chat_query_int(LIT("-"), -5, 10, &v), -1);
    assert_int_equal(chat_query_int(LIT("1x"), 0, 10, &v), -1);
    assert_int_equal(chat_query_int(LIT("+1"), 0, 10, &v), -1);
    assert_int_equal(chat_query_int(LIT(" 1"), 0, 10, &v), -1);
}

static void test_cursor(void **state)
{
    struct lp_cursor c[3];

    (void)state;
    assert_int_equal(lp_cursor_parse(LIT("lobby:12,dev:0,general"), c, 3), 3);
    assert_string_equal(c[0].room, "lobby");
    assert_true(c[0].seq == 12);
    assert_string_equal(c[1].room, "dev");
    assert_true(c[1].seq == 0);
    assert_string_equal(c[2].room, "general");
    assert_true(c[2].seq == -1);
    assert_int_equal(lp_cursor_parse(LIT("a,b,c,d"), c, 3), LP_CURSOR_TOO_MANY);
    assert_int_equal(lp_cursor_parse(LIT(""), c, 3), CHAT_QUERY_BAD);
    assert_int_equal(lp_cursor_parse(LIT(","), c, 3), CHAT_QUERY_BAD);
    assert_int_equal(lp_cursor_parse(LIT("a,"), c, 3), CHAT_QUERY_BAD);
    assert_int_equal(lp_cursor_parse(LIT("a:"), c, 3), CHAT_QUERY_BAD);
    assert_int_equal(lp_cursor_parse(LIT(":1"), c, 3), CHAT_QUERY_BAD);
    assert_int_equal(lp_cursor_parse(LIT("a:1:2"), c, 3), CHAT_QUERY_BAD);
    assert_int_equal(lp_cursor_parse(LIT("a:-1"), c, 3), CHAT_QUERY_BAD);
    assert_int_equal(lp_cursor_parse(LIT("Lobby"), c, 3), CHAT_QUERY_BAD);
    assert_int_equal(lp_cursor_parse(LIT("-lobby"), c, 3), CHAT_QUERY_BAD);
    assert_int_equal(lp_cursor_parse(LIT("a:1,a:2"), c, 3), CHAT_QUERY_BAD);
    assert_int_equal(lp_cursor_parse(LIT("a, b"), c, 3), CHAT_QUERY_BAD);
}

static void test_cursor_room_limit(void **state)
{
    char list[CHAT_ROOM_MAX + 8];
    struct lp_cursor c[1];

    (void)state;
    memset(list, 'r', CHAT_ROOM_MAX);
    memcpy(list + CHAT_ROOM_MAX, ":5", 2);
    assert_int_equal(lp_cursor_parse(list, CHAT_ROOM_MAX + 2, c, 1), 1);
    assert_int_equal(strlen(c[0].room), CHAT_ROOM_MAX);
    memset(list, 'r', CHAT_ROOM_MAX + 1);
    assert_int_equal(lp_cursor_parse(list, CHAT_ROOM_MAX + 1, c, 1), CHAT_QUERY_BAD);
}

/* Every prefix of a valid list is either a valid list or bad, never a
 * crash, and reads nothing past its length (ASan checks the heap copy). */
static void test_prefixes(void **state)
{
    const char full[] = "lobby:12,dev:0,general,x-y_z:9999";
    struct lp_cursor c[8];

    (void)state;
    for (size_t n = 0; n <= sizeof(full) - 1; n++) {
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, full, n);
        int r = lp_cursor_parse(copy, n, c, 8);
        assert_true(r == CHAT_QUERY_BAD || (r >= 1 && r <= 4));
        char out[64];
        int d = chat_query_decode(copy, n, out, sizeof(out));
        assert_int_equal(d, (int)n);
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_cursor_room_limit),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
