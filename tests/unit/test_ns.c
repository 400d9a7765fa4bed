/* Unit tests for chat_ns: room keys of namespaces, how a namespaced line on
 * the bus parses (chat_notify), and that what clients get names the room
 * as they know it (chat_proto's encoders and request keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat_notify.h"
#include "chat_ns.h"
#include "chat_policy.h"
#include "chat_proto.h"

#define LIT(s) s, sizeof(s) - 1

static void test_valid_ns(void **state)
{
    char buf[CHAT_NS_MAX + 2];
    (void)state;

    assert_true(chat_valid_ns(LIT("site-b")));
    assert_true(chat_valid_ns(LIT("0")));
    assert_false(chat_valid_ns(LIT("")));
    assert_false(chat_valid_ns(LIT("Site")));
    assert_false(chat_valid_ns(LIT("-a")));
    assert_false(chat_valid_ns(LIT("a:b")));
    assert_false(chat_valid_ns(LIT("a\tb")));
    memset(buf, 'n', CHAT_NS_MAX);
    assert_true(chat_valid_ns(buf, CHAT_NS_MAX));
    memset(buf, 'n', CHAT_NS_MAX + 1);
    assert_false(chat_valid_ns(buf, CHAT_NS_MAX + 1));
}

static void test_key(void **state)
{
    char out[CHAT_ROOM_KEY_MAX + 1], room[CHAT_ROOM_MAX + 1], ns[CHAT_NS_MAX + 1];
    (void)state;

    assert_int_equal(chat_room_key("site-b", LIT("lobby"), out), 12);
    assert_string_equal(out, "site-b:lobby");
    assert_string_equal(chat_room_local(out), "lobby");
    assert_int_equal(chat_room_ns_len(out), 6);
    assert_int_equal(chat_room_key("", LIT("lobby"), out), 5);
    assert_string_equal(out, "lobby");
    assert_int_equal(chat_room_key(NULL, LIT("lobby"), out), 5);
    assert_int_equal(chat_room_ns_len(out), 0);
    assert_string_equal(chat_room_local(out), "lobby");
    /* a room that is not one, or a namespace that is not one: no key */
    assert_int_equal(chat_room_key("site-b", LIT("a:b"), out), 0);
    assert_string_equal(out, "");
    assert_int_equal(chat_room_key("Site", LIT("lobby"), out), 0);
    /* the longest of both fits */
    memset(room, 'r', CHAT_ROOM_MAX);
    room[CHAT_ROOM_MAX] = '\0';
    memset(ns, 'n', CHAT_NS_MAX);
    ns[CHAT_NS_MAX] = '\0';
    assert_int_equal(chat_room_key(ns, room, CHAT_ROOM_MAX, out), CHAT_ROOM_KEY_MAX);
    assert_true(chat_valid_room_key(out, strlen(out)));
    assert_string_equal(chat_room_local(out), room);
    assert_true(chat_valid_room_key(LIT("lobby")));
    assert_false(chat_valid_room_key(LIT("a:b:c")));
    assert_false(chat_valid_room_key(LIT(":lobby")));
    assert_false(chat_valid_room_key(LIT("site:")));
}

static void test_line(void **state)
{
    struct chat_line l;
    static const char msg[] =
        "site-b\t{\"op\":\"msg\",\"room\":\"lobby\",\"seq\":3,\"user\":\"a\"}";
    (void)state;

    assert_int_equal(chat_line_parse(LIT(msg), &l), 0);
    assert_int_equal(l.op, CHAT_LINE_MSG);
    assert_string_equal(l.room, "site-b:lobby");
    assert_int_equal(l.seq, 3);
    /* what a client gets: the event after the prefix */
    assert_ptr_equal(l.raw, msg + 7);
    assert_int_equal(l.len, sizeof(msg) - 1 - 7);
    /* the shared namespace: no prefix, the room is the key */
    assert_int_equal(chat_line_parse(LIT("{\"op\":\"hint\",\"room\":\"lobby\",\"seq\":3}"), &l), 0);
    assert_string_equal(l.room, "lobby");
    /* a hint may name the whole key (no client sees it) */
    assert_int_equal(
        chat_line_parse(LIT("{\"op\":\"hint\",\"room\":\"site-b:lobby\",\"seq\":3}"), &l), 0);
    assert_string_equal(l.room, "site-b:lobby");
    /* an event clients see may not: it would show them the namespace */
    assert_int_equal(
        chat_line_parse(LIT("{\"op\":\"msg\",\"room\":\"site-b:lobby\",\"seq\":3,\"user\":\"a\"}"),
                        &l),
        CHAT_LINE_BAD);
    assert_int_equal(
        chat_line_parse(LIT("x\t{\"op\":\"hint\",\"room\":\"y:lobby\",\"seq\":3}"), &l),
        CHAT_LINE_BAD);
    /* a bad prefix */
    assert_int_equal(
        chat_line_parse(LIT("Site\t{\"op\":\"hint\",\"room\":\"lobby\",\"seq\":3}"), &l),
        CHAT_LINE_BAD);
    assert_int_equal(chat_line_parse(LIT("\t{\"op\":\"hint\",\"room\":\"lobby\",\"seq\":3}"), &l),
                     CHAT_LINE_BAD);
    assert_int_equal(
        chat_line_parse(LIT("site-b{\"op\":\"hint\",\"room\":\"lobby\",\"seq\":3}"), &l),
        CHAT_LINE_BAD);
    assert_int_equal(chat_line_parse(LIT("site-b\t"), &l), CHAT_LINE_BAD);
    /* typing, as a daemon puts it on the bus, and back */
    size_t len;
    char *t = chat_encode_typing("site-b:lobby", "~bo", &len);
    assert_non_null(t);
    assert_string_equal(t, "site-b\t{\"op\":\"typing\",\"room\":\"lobby\",\"user\":\"~bo\"}");
    assert_int_equal(chat_line_parse(t, len, &l), 0);
    assert_string_equal(l.room, "site-b:lobby");
    assert_string_equal(l.user, "~bo");
    free(t);
    t = chat_encode_typing("lobby", "~bo", &len);
    assert_string_equal(t, "{\"op\":\"typing\",\"room\":\"lobby\",\"user\":\"~bo\"}");
    free(t);
}

static void test_encoders_and_requests(void **state)
{
    static const char *const rooms[] = {"site-b:lobby", "site-b:help"};
    static const int64_t cursors[] = {4, 7}, horizons[] = {2, 0};
    struct chat_request r;
    const char *why;
    size_t len;
    char *s;
    (void)state;

    s = chat_encode_ack("site-b:lobby", "c1", 9, "2026-01-01T00:00:00.000Z", NULL, &len);
    assert_non_null(strstr(s, "\"room\":\"lobby\""));
    assert_null(strstr(s, "site-b"));
    free(s);
    s = chat_encode_reset("site-b:lobby", 0, &len);
    assert_string_equal(s, "{\"op\":\"reset\",\"room\":\"lobby\",\"seq\":0}");
    free(s);
    s = chat_encode_poll_h("", 0, rooms, cursors, horizons, 2, NULL, &len);
    assert_string_equal(s,
                        "{\"events\":[],\"cursor\":\"lobby:4,help:7\",\"horizon\":{\"lobby\":2}}");
    free(s);
    s = chat_encode_joined("site-b:lobby", 3, NULL, 0, 0, NULL, &len);
    assert_null(strstr(s, "site-b"));
    free(s);

    assert_int_equal(chat_request_parse(&r, LIT("{\"op\":\"join\",\"room\":\"lobby\"}"),
                                        CHAT_OP_NONE, 4096, "site-b", &why),
                     CHAT_OK);
    assert_string_equal(r.key, "site-b:lobby");
    chat_request_free(&r);
    assert_int_equal(chat_request_parse(&r, LIT("{\"op\":\"join\",\"room\":\"lobby\"}"),
                                        CHAT_OP_NONE, 4096, "", &why),
                     CHAT_OK);
    assert_string_equal(r.key, "lobby");
    chat_request_free(&r);
    /* a client cannot name another namespace's room */
    assert_int_equal(chat_request_parse(&r, LIT("{\"op\":\"join\",\"room\":\"site-a:lobby\"}"),
                                        CHAT_OP_NONE, 4096, "site-b", &why),
                     CHAT_E_BAD_REQUEST);
    chat_request_free(&r);
}

static void test_policy(void **state)
{
    struct chat_policy p;
    const char *why;
    (void)state;

    chat_policy_init(&p);
    assert_string_equal(p.ns, "");
    assert_int_equal(chat_policy_key_from_header(LIT("X-Chat-Namespace")), CHAT_POLICY_NAMESPACE);
    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_NAMESPACE")), CHAT_POLICY_NAMESPACE);
    assert_int_equal(chat_policy_set(&p, CHAT_POLICY_NAMESPACE, LIT("site-b"), &why), 0);
    assert_string_equal(p.ns, "site-b");
    assert_int_equal(chat_policy_set(&p, CHAT_POLICY_NAMESPACE, LIT("Site:b"), &why), -1);
    assert_string_equal(p.ns, "site-b");
    /* empty: the default stays */
    chat_policy_init(&p);
    assert_int_equal(chat_policy_set(&p, CHAT_POLICY_NAMESPACE, "", 0, &why), 0);
    assert_string_equal(p.ns, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_ns), cmocka_unit_test(test_key),
        cmocka_unit_test(test_line),     cmocka_unit_test(test_encoders_and_requests),
        cmocka_unit_test(test_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
