/* Unit tests for chat_proto: every request op, every error code, refs
 * echoed and kept on error, HTTP's implied op, field ranges, and the exact
 * bytes of every encoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat_proto.h"

static struct chat_request req;
static const char *why;

static enum chat_err parse_as(const char *json, enum chat_op want, size_t max_text)
{
    enum chat_err e;

    chat_request_free(&req);
    why = NULL;
    e = chat_request_parse(&req, json, strlen(json), want, max_text, NULL, &why);
    assert_non_null(why);
    return e;
}

static enum chat_err parse(const char *json)
{
    return parse_as(json, CHAT_OP_NONE, 4096);
}

static int teardown(void **state)
{
    (void)state;
    chat_request_free(&req);
    return 0;
}

static void assert_str(struct chat_str s, const char *want)
{
    assert_non_null(s.p);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.p, want, s.len);
}

/* Checks an encoder's result: exact text, reported length, valid JSON. */
static void expect_text(char *got, const size_t *len, const char *want)
{
    json_t *j;

    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(*len, strlen(want));
    j = json_loads(got, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(j);
    assert_true(json_is_object(j));
    json_decref(j);
    free(got);
}

/* ---- parsing ---------------------------------------------------------- */

static void test_parse_join_leave(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"op\":\"join\",\"room\":\"lobby\",\"since\":12}"), CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_JOIN);
    assert_str(req.room, "lobby");
    assert_int_equal(req.since, 12);
    assert_null(req.ref);

    assert_int_equal(parse("{\"op\":\"join\",\"room\":\"lobby\"}"), CHAT_OK);
    assert_int_equal(req.since, -1); /* omitted: the last 50 */
    assert_int_equal(parse("{\"op\":\"join\",\"room\":\"lobby\",\"since\":0}"), CHAT_OK);
    assert_int_equal(req.since, 0);
    assert_int_equal(parse("{\"op\":\"join\",\"room\":\"a\",\"since\":9223372036854775807}"),
                     CHAT_OK);
    assert_int_equal(req.since, INT64_MAX);

    assert_int_equal(parse("{\"room\":\"dev-2\",\"op\":\"leave\"}"), CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_LEAVE);
    assert_str(req.room, "dev-2");
}

static void test_parse_send(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"op\":\"send\",\"room\":\"lobby\",\"text\":\"hi\",\"cid\":\"k3j4\"}"),
                     CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_SEND);
    assert_str(req.room, "lobby");
    assert_str(req.text, "hi");
    assert_str(req.cid, "k3j4");
    assert_null(req.name.p);

    assert_int_equal(
        parse("{\"op\":\"send\",\"room\":\"r\",\"text\":\"caf\\u00e9\\n\\t\\ud83d\\ude00\","
              "\"name\":\"bob\"}"),
        CHAT_OK);
    assert_str(req.text, "caf\xc3\xa9\n\t\xf0\x9f\x98\x80");
    assert_null(req.cid.p);
    assert_str(req.name, "bob");
    /* name is passed on unvalidated; chat_policy_identity() judges it. */
    assert_int_equal(parse("{\"op\":\"send\",\"room\":\"r\",\"text\":\"x\",\"name\":\"~ b\"}"),
                     CHAT_OK);
    assert_str(req.name, "~ b");
}

static void test_parse_history_and_others(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"lobby\",\"before\":457,\"limit\":20}"),
                     CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_HISTORY);
    assert_int_equal(req.before, 457);
    assert_int_equal(req.limit, 20);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"lobby\"}"), CHAT_OK);
    assert_int_equal(req.before, 0); /* latest */
    assert_int_equal(req.limit, 50);

    assert_int_equal(parse("{\"op\":\"typing\",\"room\":\"lobby\"}"), CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_TYPING);
    assert_str(req.room, "lobby");
    assert_int_equal(parse("{\"op\":\"members\",\"room\":\"lobby\"}"), CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_MEMBERS);
    assert_str(req.room, "lobby");
    assert_int_equal(parse("{\"op\":\"ping\"}"), CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_PING);
    assert_null(req.room.p);
    /* Unknown fields are ignored. */
    assert_int_equal(parse("{\"op\":\"ping\",\"x\":{\"y\":[1,null]},\"room\":7}"), CHAT_OK);
}

static void test_ranges(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"op\":\"join\",\"room\":\"a\",\"since\":-1}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"join\",\"room\":\"a\",\"since\":1.0}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"join\",\"room\":\"a\",\"since\":\"12\"}"),
                     CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"join\",\"room\":\"a\",\"since\":null}"), CHAT_E_BAD_REQUEST);

    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"limit\":1}"), CHAT_OK);
    assert_int_equal(req.limit, 1);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"limit\":200}"), CHAT_OK);
    assert_int_equal(req.limit, 200);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"limit\":0}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"limit\":201}"),
                     CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"limit\":-5}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"limit\":\"10\"}"),
                     CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"limit\":4294967297}"),
                     CHAT_E_BAD_REQUEST);

    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"before\":1}"), CHAT_OK);
    assert_int_equal(req.before, 1);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"before\":0}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"before\":-2}"),
                     CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"before\":4.5}"),
                     CHAT_E_BAD_REQUEST);
}

static void test_bad_json(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "{",
        "[{\"op\":\"ping\"}]",
        "\"ping\"",
        "42",
        "null",
        "{\"op\":\"ping\"} {}",
        "{\"op\":\"ping\",\"op\":\"ping\"}",                       /* duplicate key */
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"\xff\"}",      /* invalid UTF-8 */
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"a\\u0000b\"}", /* NUL in a string */
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"\\ud800\"}",   /* lone surrogate escape */
        "{\"op\":\"join\",\"room\":\"a\",\"since\":99999999999999999999}",
        "{'op':'ping'}",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i]), CHAT_E_BAD_JSON);
        assert_null(req.ref);
    }
    chat_request_free(&req);
    assert_int_equal(chat_request_parse(&req, NULL, 0, CHAT_OP_NONE, 4096, NULL, &why),
                     CHAT_E_BAD_JSON);
    /* Only len bytes are parsed: the rest of the buffer is not looked at. */
    chat_request_free(&req);
    assert_int_equal(
        chat_request_parse(&req, "{\"op\":\"ping\"}garbage", 13, CHAT_OP_NONE, 4096, NULL, &why),
        CHAT_OK);
}

static void test_bad_request(void **state)
{
    static const char *const bad[] = {
        "{}",
        "{\"room\":\"lobby\"}",
        "{\"op\":42}",
        "{\"op\":null}",
        "{\"op\":\"join\"}",
        "{\"op\":\"join\",\"room\":\"Lobby\"}",
        "{\"op\":\"join\",\"room\":\"\"}",
        "{\"op\":\"join\",\"room\":7}",
        "{\"op\":\"leave\",\"room\":\"a b\"}",
        "{\"op\":\"typing\"}",
        "{\"op\":\"members\",\"room\":[\"lobby\"]}",
        "{\"op\":\"history\",\"room\":\"-x\"}",
        "{\"op\":\"send\",\"room\":\"a\"}",
        "{\"op\":\"send\",\"room\":\"a\",\"text\":5}",
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"\"}",
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"bell\\u0007\"}",
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"cr\\r\\n\"}",
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"c1\\u0085\"}",
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"del\\u007f\"}",
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"x\",\"cid\":\"\"}",
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"x\",\"cid\":12}",
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"x\",\"cid\":\"caf\\u00e9\"}",
        ("{\"op\":\"send\",\"room\":\"a\",\"text\":\"x\",\"cid\":"
         "\"01234567890123456789012345678901234567890123456789012345678901234\"}"),
        "{\"op\":\"send\",\"room\":\"a\",\"text\":\"x\",\"name\":false}",
        "{\"op\":\"ping\",\"ref\":null}",
        "{\"op\":\"ping\",\"ref\":true}",
        "{\"op\":\"ping\",\"ref\":[1]}",
        "{\"op\":\"ping\",\"ref\":{}}",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i]) != CHAT_E_BAD_REQUEST)
            fail_msg("not bad_request: %s", bad[i]);
    }
    assert_int_equal(parse("{\"op\":\"send\",\"room\":\"a\",\"text\":\"x\",\"cid\":"
                           "\"0123456789012345678901234567890123456789012345678901234567890123\"}"),
                     CHAT_OK);
    assert_int_equal(req.cid.len, 64);
}

static void test_unknown_op(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"op\":\"nope\"}"), CHAT_E_UNKNOWN_OP);
    assert_int_equal(parse("{\"op\":\"JOIN\",\"room\":\"a\"}"), CHAT_E_UNKNOWN_OP);
    assert_int_equal(parse("{\"op\":\"\"}"), CHAT_E_UNKNOWN_OP);
    assert_int_equal(parse("{\"op\":\"msg\",\"room\":\"a\"}"), CHAT_E_UNKNOWN_OP);
    assert_int_equal(parse("{\"op\":\"joined\",\"room\":\"a\"}"), CHAT_E_UNKNOWN_OP);
}

static void test_too_large(void **state)
{
    char *body;
    size_t i;

    (void)state;
    assert_int_equal(
        parse_as("{\"op\":\"send\",\"room\":\"a\",\"text\":\"12345\"}", CHAT_OP_NONE, 5), CHAT_OK);
    assert_int_equal(
        parse_as("{\"op\":\"send\",\"room\":\"a\",\"text\":\"123456\"}", CHAT_OP_NONE, 5),
        CHAT_E_TOO_LARGE);
    /* Bytes, not characters: two euro signs are 6 bytes. */
    assert_int_equal(
        parse_as("{\"op\":\"send\",\"room\":\"a\",\"text\":\"\\u20ac\\u20ac\"}", CHAT_OP_NONE, 5),
        CHAT_E_TOO_LARGE);
    assert_int_equal(
        parse_as("{\"op\":\"send\",\"room\":\"a\",\"text\":\"\\u20ac\\u20ac\"}", CHAT_OP_NONE, 6),
        CHAT_OK);
    /* Default limit: 4096 passes, 4097 is too large. */
    body = malloc(4200);
    assert_non_null(body);
    for (i = 4096; i <= 4097; i++) {
        int n =
            snprintf(body, 4200, "{\"op\":\"send\",\"room\":\"a\",\"text\":\"%0*d\"}", (int)i, 0);

        assert_true(n > 0 && n < 4200);
        assert_int_equal(parse(body), i == 4096 ? CHAT_OK : CHAT_E_TOO_LARGE);
    }
    free(body);
}

static void test_want_op(void **state)
{
    (void)state;
    assert_int_equal(
        parse_as("{\"room\":\"lobby\",\"text\":\"hi\",\"cid\":\"k3j4\",\"name\":\"bob\"}",
                 CHAT_OP_SEND, 4096),
        CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_SEND);
    assert_str(req.text, "hi");
    assert_str(req.name, "bob");
    assert_int_equal(
        parse_as("{\"op\":\"send\",\"room\":\"lobby\",\"text\":\"hi\"}", CHAT_OP_SEND, 4096),
        CHAT_OK);
    assert_int_equal(
        parse_as("{\"op\":\"join\",\"room\":\"lobby\",\"text\":\"hi\"}", CHAT_OP_SEND, 4096),
        CHAT_E_BAD_REQUEST);
    assert_int_equal(parse_as("{\"op\":\"bogus\",\"room\":\"lobby\"}", CHAT_OP_TYPING, 4096),
                     CHAT_E_UNKNOWN_OP);
    assert_int_equal(parse_as("{\"room\":\"lobby\"}", CHAT_OP_TYPING, 4096), CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_TYPING);
    assert_int_equal(parse_as("{\"room\":\"lobby\",\"limit\":10}", CHAT_OP_HISTORY, 4096), CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_HISTORY);
    assert_int_equal(req.limit, 10);
    assert_int_equal(parse_as("{}", CHAT_OP_SEND, 4096), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse_as("[]", CHAT_OP_SEND, 4096), CHAT_E_BAD_JSON);
}

static void test_ref_echo(void **state)
{
    size_t len;
    char ref129[200];

    (void)state;
    assert_int_equal(parse("{\"op\":\"ping\",\"ref\":\"abc\"}"), CHAT_OK);
    assert_true(json_is_string(req.ref));
    expect_text(chat_encode_pong(req.ref, &len), &len, "{\"op\":\"pong\",\"ref\":\"abc\"}");

    assert_int_equal(parse("{\"ref\":17,\"op\":\"ping\"}"), CHAT_OK);
    expect_text(chat_encode_pong(req.ref, &len), &len, "{\"op\":\"pong\",\"ref\":17}");
    assert_int_equal(parse("{\"ref\":-9007199254740993,\"op\":\"ping\"}"), CHAT_OK);
    expect_text(chat_encode_pong(req.ref, &len), &len,
                "{\"op\":\"pong\",\"ref\":-9007199254740993}");
    assert_int_equal(parse("{\"ref\":1.5,\"op\":\"ping\"}"), CHAT_OK);
    expect_text(chat_encode_pong(req.ref, &len), &len, "{\"op\":\"pong\",\"ref\":1.5}");
    assert_int_equal(parse("{\"ref\":\"q\\\"\\\\\\u00e9\",\"op\":\"ping\"}"), CHAT_OK);
    expect_text(chat_encode_pong(req.ref, &len), &len,
                "{\"op\":\"pong\",\"ref\":\"q\\\"\\\\\xc3\xa9\"}");

    /* A ref may be up to CHAT_REF_MAX bytes. */
    snprintf(ref129, sizeof(ref129), "{\"op\":\"ping\",\"ref\":\"%0128d\"}", 0);
    assert_int_equal(parse(ref129), CHAT_OK);
    snprintf(ref129, sizeof(ref129), "{\"op\":\"ping\",\"ref\":\"%0129d\"}", 0);
    assert_int_equal(parse(ref129), CHAT_E_BAD_REQUEST);
    assert_null(req.ref);
}

static void test_ref_kept_on_error(void **state)
{
    size_t len;

    (void)state;
    assert_int_equal(parse("{\"op\":\"nope\",\"ref\":5}"), CHAT_E_UNKNOWN_OP);
    assert_non_null(req.ref);
    expect_text(chat_encode_error(CHAT_E_UNKNOWN_OP, NULL, req.ref, &len), &len,
                "{\"op\":\"error\",\"code\":\"unknown_op\",\"message\":\"unknown op\",\"ref\":5}");
    assert_int_equal(parse("{\"ref\":\"j1\",\"op\":\"join\"}"), CHAT_E_BAD_REQUEST);
    assert_string_equal(json_string_value(req.ref), "j1");
    assert_int_equal(parse("{\"op\":\"send\",\"room\":\"a\",\"text\":\"toolong\",\"ref\":\"s\"}"),
                     CHAT_OK);
    assert_int_equal(parse_as("{\"op\":\"send\",\"room\":\"a\",\"text\":\"toolong\",\"ref\":\"s\"}",
                              CHAT_OP_NONE, 3),
                     CHAT_E_TOO_LARGE);
    assert_string_equal(json_string_value(req.ref), "s");
    assert_int_equal(parse("{\"op\":7,\"ref\":8}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(json_integer_value(req.ref), 8);
    assert_int_equal(parse("{\"op\":\"history\",\"room\":\"a\",\"limit\":999,\"ref\":[]}"),
                     CHAT_E_BAD_REQUEST);
    assert_null(req.ref); /* an invalid ref is never echoed */
}

static void test_free_is_idempotent(void **state)
{
    struct chat_request r;

    (void)state;
    assert_int_equal(chat_request_parse(&r, "{\"op\":\"ping\"}", 13, CHAT_OP_NONE, 10, NULL, NULL),
                     CHAT_OK);
    chat_request_free(&r);
    assert_null(r.root);
    chat_request_free(&r);
    chat_request_free(NULL);
}

/* edit and delete: a seq >= 1, edit's text checked like send's, no text
 * on a delete, an optional cid. */
static void test_parse_edit_delete(void **state)
{
    (void)state;
    assert_int_equal(
        parse("{\"op\":\"edit\",\"room\":\"r\",\"seq\":12,\"text\":\"fixed\",\"cid\":\"e1\"}"),
        CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_EDIT);
    assert_int_equal(req.seq, 12);
    assert_str(req.text, "fixed");
    assert_str(req.cid, "e1");
    assert_int_equal(parse("{\"op\":\"delete\",\"room\":\"r\",\"seq\":1}"), CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_DELETE);
    assert_int_equal(req.seq, 1);
    assert_null(req.text.p);
    assert_null(req.cid.p);

    assert_int_equal(parse("{\"op\":\"delete\",\"room\":\"r\"}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"delete\",\"room\":\"r\",\"seq\":0}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"delete\",\"room\":\"r\",\"seq\":\"3\"}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"delete\",\"room\":\"r\",\"seq\":3,\"text\":\"x\"}"),
                     CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"edit\",\"room\":\"r\",\"seq\":3}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"edit\",\"room\":\"r\",\"seq\":3,\"text\":\"\"}"),
                     CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"edit\",\"room\":\"r\",\"seq\":3,\"text\":\"a\\u0001\"}"),
                     CHAT_E_BAD_REQUEST);
    assert_int_equal(parse_as("{\"room\":\"r\",\"seq\":3,\"text\":\"abcdef\"}", CHAT_OP_EDIT, 5),
                     CHAT_E_TOO_LARGE);
    assert_int_equal(
        parse("{\"op\":\"edit\",\"room\":\"r\",\"seq\":3,\"text\":\"x\",\"cid\":\"\"}"),
        CHAT_E_BAD_REQUEST);
}

/* ban, unban, bans: no room; a ban names a user (or ~guest), an address
 * or both; for in seconds; the reason is text. */
static void test_parse_bans(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"op\":\"ban\",\"user\":\"~bob\",\"addr\":\"198.51.100.0/24\","
                           "\"for\":60,\"reason\":\"spam\"}"),
                     CHAT_OK);
    assert_int_equal(req.op, CHAT_OP_BAN);
    assert_str(req.user, "~bob");
    assert_str(req.addr, "198.51.100.0/24");
    assert_int_equal(req.ban_for, 60);
    assert_str(req.reason, "spam");
    assert_int_equal(parse("{\"op\":\"ban\",\"addr\":\"2001:db8::1\"}"), CHAT_OK);
    assert_int_equal(req.ban_for, 0);
    assert_int_equal(parse("{\"op\":\"bans\"}"), CHAT_OK);
    assert_int_equal(parse("{\"op\":\"unban\",\"id\":7}"), CHAT_OK);
    assert_int_equal(req.seq, 7);

    assert_int_equal(parse("{\"op\":\"ban\"}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"ban\",\"user\":\"a b\"}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"ban\",\"user\":\"~\"}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"ban\",\"addr\":\"1.2.3.4/40\"}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"ban\",\"addr\":\"1.2.3.4\\u0000x\"}"), CHAT_E_BAD_JSON);
    assert_int_equal(parse("{\"op\":\"ban\",\"user\":\"x\",\"for\":0}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"ban\",\"user\":\"x\",\"reason\":\"a\\u0001\"}"),
                     CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"unban\"}"), CHAT_E_BAD_REQUEST);
    assert_int_equal(parse("{\"op\":\"unban\",\"id\":\"7\"}"), CHAT_E_BAD_REQUEST);
}

static void test_err_names(void **state)
{
    static const struct {
        enum chat_err e;
        const char *name;
        int status;
    } want[] = {
        {CHAT_OK, "ok", 200},
        {CHAT_E_BAD_JSON, "bad_json", 400},
        {CHAT_E_BAD_REQUEST, "bad_request", 400},
        {CHAT_E_UNKNOWN_OP, "unknown_op", 400},
        {CHAT_E_UNAUTHORIZED, "unauthorized", 401},
        {CHAT_E_FORBIDDEN, "forbidden", 403},
        {CHAT_E_TOO_LARGE, "too_large", 413},
        {CHAT_E_RATE_LIMITED, "rate_limited", 429},
        {CHAT_E_UNAVAILABLE, "unavailable", 503},
        {CHAT_E_NOT_FOUND, "not_found", 404},
        {CHAT_E_TOO_LATE, "too_late", 403},
        {CHAT_E_BANNED, "banned", 403},
    };
    size_t i;

    (void)state;
    assert_int_equal(sizeof(want) / sizeof(want[0]), CHAT_E_NERR);
    for (i = 0; i < CHAT_E_NERR; i++) {
        assert_string_equal(chat_err_name(want[i].e), want[i].name);
        assert_int_equal(chat_err_http_status(want[i].e), want[i].status);
    }
}

/* ---- encoders --------------------------------------------------------- */

static void test_encode_simple(void **state)
{
    const char *members[] = {"alice", "~bob"};
    json_t *ref = json_string("r1");
    size_t len;

    (void)state;
    assert_non_null(ref);
    expect_text(chat_encode_hello("alice", 30, &len), &len,
                "{\"op\":\"hello\",\"user\":\"alice\",\"heartbeat\":30}");
    struct chat_policy pol;
    chat_policy_init(&pol);
    expect_text(
        chat_encode_hello_policy("~bob", 30, &pol, &len), &len,
        "{\"op\":\"hello\",\"user\":\"~bob\",\"heartbeat\":30,\"policy\":{\"max_text\":4096,"
        "\"readonly\":false,\"rooms\":\"*\",\"first_room\":\"lobby\"}}");
    assert_int_equal(chat_policy_set(&pol, CHAT_POLICY_ROOMS, "team-* help", 11, NULL), 0);
    assert_int_equal(chat_policy_set(&pol, CHAT_POLICY_MAX_TEXT, "8000", 4, NULL), 0);
    assert_int_equal(chat_policy_set(&pol, CHAT_POLICY_READONLY, "on", 2, NULL), 0);
    assert_int_equal(chat_policy_set(&pol, CHAT_POLICY_ROLE, "moderator", 9, NULL), 0);
    expect_text(chat_encode_hello_policy("mod", 15, &pol, &len), &len,
                "{\"op\":\"hello\",\"user\":\"mod\",\"heartbeat\":15,\"role\":\"moderator\","
                "\"policy\":{\"max_text\":8000,\"readonly\":true,\"rooms\":\"team-* help\","
                "\"first_room\":\"help\"}}");
    expect_text(chat_encode_policy(&pol, &len), &len,
                "{\"max_text\":8000,\"readonly\":true,\"rooms\":\"team-* help\",\"first_room\":"
                "\"help\"}");
    {
        const char *rooms[] = {"help"};
        int64_t cur[] = {3};
        expect_text(chat_encode_poll_p("", 0, rooms, cur, NULL, 1, NULL, "~bob", &pol, &len), &len,
                    "{\"events\":[],\"cursor\":\"help:3\",\"user\":\"~bob\",\"policy\":{"
                    "\"max_text\":8000,\"readonly\":true,\"rooms\":\"team-* help\",\"first_room\":"
                    "\"help\"}}");
        /* no rooms (GET poll without rooms): who and what only */
        expect_text(chat_encode_poll_p("", 0, NULL, NULL, NULL, 0, NULL, "alice", NULL, &len), &len,
                    "{\"events\":[],\"cursor\":\"\",\"user\":\"alice\"}");
    }
    expect_text(chat_encode_joined("lobby", 457, members, 2, 2, NULL, &len), &len,
                "{\"op\":\"joined\",\"room\":\"lobby\",\"seq\":457,"
                "\"members\":[\"alice\",\"~bob\"],\"count\":2}");
    expect_text(chat_encode_joined("lobby", 0, NULL, 0, 1500, ref, &len), &len,
                "{\"op\":\"joined\",\"room\":\"lobby\",\"seq\":0,\"members\":[],\"count\":1500,"
                "\"ref\":\"r1\"}");
    expect_text(chat_encode_left("lobby", ref, &len), &len,
                "{\"op\":\"left\",\"room\":\"lobby\",\"ref\":\"r1\"}");
    expect_text(chat_encode_left("lobby", NULL, &len), &len,
                "{\"op\":\"left\",\"room\":\"lobby\"}");
    expect_text(chat_encode_reset("lobby", 6, &len), &len,
                "{\"op\":\"reset\",\"room\":\"lobby\",\"seq\":6}");
    expect_text(chat_encode_typing("lobby", "~bob", &len), &len,
                "{\"op\":\"typing\",\"room\":\"lobby\",\"user\":\"~bob\"}");
    expect_text(chat_encode_members("lobby", members, 2, 42, ref, &len), &len,
                "{\"op\":\"members\",\"room\":\"lobby\",\"members\":[\"alice\",\"~bob\"],"
                "\"count\":42,\"ref\":\"r1\"}");
    expect_text(chat_encode_pong(NULL, &len), &len, "{\"op\":\"pong\"}");
    json_decref(ref);
}

static void test_encode_ack(void **state)
{
    json_t *ref = json_integer(3);
    size_t len;

    (void)state;
    assert_non_null(ref);
    expect_text(chat_encode_ack("lobby", "k3j4", 457, "2026-11-28T06:14:16.123Z", ref, &len), &len,
                "{\"op\":\"ack\",\"room\":\"lobby\",\"cid\":\"k3j4\",\"seq\":457,"
                "\"ts\":\"2026-11-28T06:14:16.123Z\",\"ref\":3}");
    expect_text(chat_encode_ack("lobby", NULL, 9007199254740993, "t", NULL, &len), &len,
                "{\"op\":\"ack\",\"room\":\"lobby\",\"seq\":9007199254740993,\"ts\":\"t\"}");
    /* cids are printable ASCII, quotes and backslashes included. */
    expect_text(chat_encode_ack("a", "x\"y\\z/", 1, "t", NULL, &len), &len,
                "{\"op\":\"ack\",\"room\":\"a\",\"cid\":\"x\\\"y\\\\z/\",\"seq\":1,\"ts\":\"t\"}");
    json_decref(ref);
}

static void test_encode_history(void **state)
{
#define M1 "{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":1,\"text\":\"a\"}"
#define M2 "{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":2,\"text\":\"b\"}"
    const struct chat_str msgs[] = {{M1, sizeof(M1) - 1}, {M2 "trailing bytes", sizeof(M2) - 1}};
    json_t *ref = json_integer(-1);
    size_t len;

    (void)state;
    assert_non_null(ref);
    expect_text(chat_encode_history("lobby", msgs, 2, ref, &len), &len,
                "{\"op\":\"history\",\"room\":\"lobby\",\"messages\":["
                "{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":1,\"text\":\"a\"},"
                "{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":2,\"text\":\"b\"}],\"ref\":-1}");
    expect_text(chat_encode_history("lobby", NULL, 0, NULL, &len), &len,
                "{\"op\":\"history\",\"room\":\"lobby\",\"messages\":[]}");
    json_decref(ref);
}

static void test_encode_presence(void **state)
{
    const char *on[] = {"~bob"};
    const char *off[] = {"alice", "carol"};
    size_t len;

    (void)state;
    expect_text(chat_encode_presence("lobby", on, 1, off, 2, 42, &len), &len,
                "{\"op\":\"presence\",\"room\":\"lobby\",\"online\":[\"~bob\"],"
                "\"offline\":[\"alice\",\"carol\"],\"count\":42}");
    expect_text(chat_encode_presence("lobby", NULL, 0, NULL, 0, 4242, &len), &len,
                "{\"op\":\"presence\",\"room\":\"lobby\",\"count\":4242}");
    expect_text(chat_encode_presence("lobby", on, 0, off, 1, 1, &len), &len,
                "{\"op\":\"presence\",\"room\":\"lobby\",\"online\":[],"
                "\"offline\":[\"alice\"],\"count\":1}");
}

static void test_encode_error(void **state)
{
    static const char *const codes[] = {"bad_json",  "bad_request", "unknown_op",   "unauthorized",
                                        "forbidden", "too_large",   "rate_limited", "unavailable",
                                        "not_found", "too_late",    "banned"};
    json_t *ref = json_real(2.25);
    char want[256];
    size_t len;
    int e;

    (void)state;
    assert_non_null(ref);
    for (e = CHAT_E_BAD_JSON; e < CHAT_E_NERR; e++) {
        char *got = chat_encode_error((enum chat_err)e, "m", ref, &len);

        snprintf(want, sizeof(want),
                 "{\"op\":\"error\",\"code\":\"%s\",\"message\":\"m\",\"ref\":2.25}", codes[e - 1]);
        expect_text(got, &len, want);
    }
    /* A default message for every code, and escapes in messages. */
    for (e = CHAT_E_BAD_JSON; e < CHAT_E_NERR; e++) {
        char *got = chat_encode_error((enum chat_err)e, NULL, NULL, &len);
        json_t *j;

        assert_non_null(got);
        j = json_loads(got, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "code")), codes[e - 1]);
        assert_true(json_string_length(json_object_get(j, "message")) > 0);
        json_decref(j);
        free(got);
    }
    expect_text(
        chat_encode_error(CHAT_E_FORBIDDEN, "no \"x\"\n\x01\\", NULL, &len), &len,
        "{\"op\":\"error\",\"code\":\"forbidden\",\"message\":\"no \\\"x\\\"\\n\\u0001\\\\\"}");
    json_decref(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_parse_join_leave, teardown),
        cmocka_unit_test_teardown(test_parse_send, teardown),
        cmocka_unit_test_teardown(test_parse_edit_delete, teardown),
        cmocka_unit_test_teardown(test_parse_bans, teardown),
        cmocka_unit_test_teardown(test_parse_history_and_others, teardown),
        cmocka_unit_test_teardown(test_ranges, teardown),
        cmocka_unit_test_teardown(test_bad_json, teardown),
        cmocka_unit_test_teardown(test_bad_request, teardown),
        cmocka_unit_test_teardown(test_unknown_op, teardown),
        cmocka_unit_test_teardown(test_too_large, teardown),
        cmocka_unit_test_teardown(test_want_op, teardown),
        cmocka_unit_test_teardown(test_ref_echo, teardown),
        cmocka_unit_test_teardown(test_ref_kept_on_error, teardown),
        cmocka_unit_test(test_free_is_idempotent),
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_encode_simple),
        cmocka_unit_test(test_encode_ack),
        cmocka_unit_test(test_encode_history),
        cmocka_unit_test(test_encode_presence),
        cmocka_unit_test(test_encode_error),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
