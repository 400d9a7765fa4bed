/* Unit tests for chat_notify: the lines SQL and chat_proto render parse to
 * their op, room, seq and user; every proper prefix of each (a truncated
 * payload) and every line that is not exactly ours is CHAT_LINE_BAD; the
 * splitter returns every line of a payload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat_notify.h"
#include "chat_proto.h"

#define LIT(s) s, sizeof(s) - 1

static const char MSG[] = "{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":42,\"user\":\"~bob\","
                          "\"text\":\"a } and a \\\" and { [\",\"ts\":\"2024-01-01T00:00:00.000Z\","
                          "\"cid\":\"c1\"}";
static const char HINT[] = "{\"op\":\"hint\",\"room\":\"dev-2\",\"seq\":9223372036854775807}";
static const char PRES[] = "{\"op\":\"presence\",\"room\":\"lobby\",\"online\":[\"alice\"],"
                           "\"offline\":[],\"count\":1}";
static const char TYPING[] = "{\"op\":\"typing\",\"room\":\"lobby\",\"user\":\"~eve\"}";

static void test_whole_lines(void **state)
{
    struct chat_line l;

    (void)state;
    assert_int_equal(chat_line_parse(LIT(MSG), &l), 0);
    assert_int_equal(l.op, CHAT_LINE_MSG);
    assert_string_equal(l.room, "lobby");
    assert_int_equal(l.seq, 42);
    assert_string_equal(l.user, "");
    assert_ptr_equal(l.raw, MSG);
    assert_int_equal(l.len, sizeof(MSG) - 1);

    assert_int_equal(chat_line_parse(LIT(HINT), &l), 0);
    assert_int_equal(l.op, CHAT_LINE_HINT);
    assert_string_equal(l.room, "dev-2");
    assert_true(l.seq == INT64_MAX);

    assert_int_equal(chat_line_parse(LIT(PRES), &l), 0);
    assert_int_equal(l.op, CHAT_LINE_PRESENCE);
    assert_string_equal(l.room, "lobby");
    assert_int_equal(l.seq, 0);

    assert_int_equal(chat_line_parse(LIT(TYPING), &l), 0);
    assert_int_equal(l.op, CHAT_LINE_TYPING);
    assert_string_equal(l.user, "~eve");
}

/* The typing line as the daemons render it parses back to what went in. */
static void test_typing_roundtrip(void **state)
{
    struct chat_line l;
    size_t len;
    char *ev = chat_encode_typing("dev", "alice", &len);

    (void)state;
    assert_non_null(ev);
    assert_int_equal(chat_line_parse(ev, len, &l), 0);
    assert_int_equal(l.op, CHAT_LINE_TYPING);
    assert_string_equal(l.room, "dev");
    assert_string_equal(l.user, "alice");
    free(ev);
}

/* A truncated line is never taken for a whole one: every proper prefix,
 * copied to a buffer of its exact size (ASan sees any read past it). */
static void every_prefix_bad(const char *line, size_t len)
{
    struct chat_line l;

    for (size_t n = 0; n < len; n++) {
        char *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, line, n);
        if (chat_line_parse(p, n, &l) != CHAT_LINE_BAD)
            fail_msg("prefix of %zu bytes of %s parsed", n, line);
        free(p);
    }
    char *p = malloc(len);
    memcpy(p, line, len);
    assert_int_equal(chat_line_parse(p, len, &l), 0);
    free(p);
}

static void test_every_prefix(void **state)
{
    (void)state;
    every_prefix_bad(LIT(MSG));
    every_prefix_bad(LIT(HINT));
    every_prefix_bad(LIT(PRES));
    every_prefix_bad(LIT(TYPING));
}

static void test_not_ours(void **state)
{
    static const char *bad[] = {
        "",
        "{}",
        "null",
        "{\"op\":\"msg\"}",
        "{\"op\":\"hint\",\"room\":\"lobby\",\"seq\":0}",                   /* seq starts at 1 */
        "{\"op\":\"hint\",\"room\":\"lobby\",\"seq\":-1}",                  /* no sign */
        "{\"op\":\"hint\",\"room\":\"lobby\",\"seq\":007}",                 /* no leading zero */
        "{\"op\":\"hint\",\"room\":\"lobby\",\"seq\":9223372036854775808}", /* overflow */
        "{\"op\":\"hint\",\"room\":\"lobby\",\"seq\":1,\"x\":1}", /* a hint has nothing else */
        "{\"op\":\"hint\",\"room\":\"lobby\",\"seq\":1} ",        /* nothing after the object */
        "{\"op\":\"hint\",\"room\":\"Lobby\",\"seq\":1}",         /* not a room name */
        "{\"op\":\"hint\",\"room\":\"\",\"seq\":1}",
        "{\"op\":\"hint\",\"room\":\"a\\\"b\",\"seq\":1}",
        "{\"op\": \"hint\",\"room\":\"lobby\",\"seq\":1}", /* not our spacing */
        "{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":1}",   /* a msg has a body */
        "{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":1,\"text\":\"a}",
        "{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":1,\"text\":\"a\\\"}",
        "{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":1,\"text\":\"a\"}}",
        "{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":1,\"text\":\"a\nb\"}",
        "{\"op\":\"typing\",\"room\":\"lobby\",\"user\":\"a b\"}",
        "{\"op\":\"typing\",\"room\":\"lobby\",\"user\":\"~\"}",
        "{\"op\":\"typing\",\"room\":\"lobby\",\"user\":\"bob\",\"x\":1}",
        "{\"op\":\"presence\",\"room\":\"lobby\"x}",
        "{\"op\":\"hint\",\"room\":\"b\",\"seq\":2]", /* found by fuzz_notify */
        "{\"op\":\"presence\",\"room\":\"lobby\",\"x\":[}]}",
        "{\"op\":\"joined\",\"room\":\"lobby\",\"seq\":1}",
        "{\"op\":\"msgs\",\"room\":\"lobby\",\"seq\":1}",
    };
    struct chat_line l;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (chat_line_parse(bad[i], strlen(bad[i]), &l) != CHAT_LINE_BAD)
            fail_msg("parsed: %s", bad[i]);
    /* a NUL inside is not the end of anything */
    assert_int_equal(chat_line_parse(LIT("{\"op\":\"hint\",\"room\":\"lob\0by\",\"seq\":1}"), &l),
                     CHAT_LINE_BAD);
}

static void test_splitter(void **state)
{
    const char payload[] = "a\n\nbc\nd";
    const char *p = payload, *end = payload + sizeof(payload) - 1, *line;
    size_t n;
    const char *want[] = {"a", "", "bc", "d"};

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        assert_true(chat_next_line(&p, end, &line, &n));
        assert_int_equal(n, strlen(want[i]));
        assert_memory_equal(line, want[i], n);
    }
    assert_false(chat_next_line(&p, end, &line, &n));
    p = payload;
    end = payload;
    assert_false(chat_next_line(&p, end, &line, &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_lines),  cmocka_unit_test(test_typing_roundtrip),
        cmocka_unit_test(test_every_prefix), cmocka_unit_test(test_not_ours),
        cmocka_unit_test(test_splitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
