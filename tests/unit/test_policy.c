/* Unit tests for chat_policy: header and param names, every setting's
 * accepted and rejected values, room patterns and who is speaking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chat_policy.h"

#define LIT(s) s, sizeof(s) - 1

static int set(struct chat_policy *p, enum chat_policy_key key, const char *v)
{
    const char *why = NULL;
    int r = chat_policy_set(p, key, v, strlen(v), &why);

    if (r < 0)
        assert_non_null(why);
    return r;
}

static void test_defaults(void **state)
{
    struct chat_policy p;

    (void)state;
    memset(&p, 0x5a, sizeof(p));
    chat_policy_init(&p);
    assert_string_equal(p.user, "");
    assert_true(p.guests);
    assert_false(p.readonly);
    assert_int_equal(p.max_text, 4096);
    assert_int_equal(p.poll_timeout, 25);
    assert_string_equal(p.rooms, "*");
    assert_true(chat_policy_room_allowed(&p, LIT("lobby")));
}

static void test_key_names(void **state)
{
    (void)state;
    assert_int_equal(chat_policy_key_from_header(LIT("X-Chat-User")), CHAT_POLICY_USER);
    assert_int_equal(chat_policy_key_from_header(LIT("x-chat-user")), CHAT_POLICY_USER);
    assert_int_equal(chat_policy_key_from_header(LIT("X-CHAT-GUESTS")), CHAT_POLICY_GUESTS);
    assert_int_equal(chat_policy_key_from_header(LIT("X-Chat-Rooms")), CHAT_POLICY_ROOMS);
    assert_int_equal(chat_policy_key_from_header(LIT("X-Chat-Readonly")), CHAT_POLICY_READONLY);
    assert_int_equal(chat_policy_key_from_header(LIT("X-Chat-Max-Text")), CHAT_POLICY_MAX_TEXT);
    assert_int_equal(chat_policy_key_from_header("X-Chat-Userx", 11), CHAT_POLICY_USER);
    assert_int_equal(chat_policy_key_from_header(LIT("X-Chat-Use")), -1);
    assert_int_equal(chat_policy_key_from_header(LIT("X-Chat-Users")), -1);
    assert_int_equal(chat_policy_key_from_header(LIT("X-Chat-Poll-Timeout")), -1);
    assert_int_equal(chat_policy_key_from_header(LIT("CHAT_USER")), -1);
    assert_int_equal(chat_policy_key_from_header(LIT("Host")), -1);

    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_USER")), CHAT_POLICY_USER);
    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_GUESTS")), CHAT_POLICY_GUESTS);
    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_ROOMS")), CHAT_POLICY_ROOMS);
    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_READONLY")), CHAT_POLICY_READONLY);
    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_MAX_TEXT")), CHAT_POLICY_MAX_TEXT);
    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_POLL_TIMEOUT")),
                     CHAT_POLICY_POLL_TIMEOUT);
    assert_int_equal(chat_policy_key_from_param(LIT("chat_user")), -1);
    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_USE")), -1);
    assert_int_equal(chat_policy_key_from_param(LIT("X-Chat-User")), -1);
    assert_int_equal(chat_policy_key_from_param(LIT("REMOTE_USER")), -1);
}

static void test_user_and_flags(void **state)
{
    struct chat_policy p;

    (void)state;
    chat_policy_init(&p);
    assert_int_equal(set(&p, CHAT_POLICY_USER, "alice"), 0);
    assert_string_equal(p.user, "alice");
    assert_int_equal(set(&p, CHAT_POLICY_USER, "~mallory"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_USER, "a b"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_USER, "012345678901234567890123456789012"), -1);
    assert_string_equal(p.user, "alice"); /* a rejected value changes nothing */
    assert_int_equal(set(&p, CHAT_POLICY_USER, ""), 0);
    assert_string_equal(p.user, "");

    assert_int_equal(set(&p, CHAT_POLICY_GUESTS, "off"), 0);
    assert_false(p.guests);
    assert_int_equal(set(&p, CHAT_POLICY_GUESTS, "on"), 0);
    assert_true(p.guests);
    assert_int_equal(set(&p, CHAT_POLICY_GUESTS, "yes"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_GUESTS, "of"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_GUESTS, "onn"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_GUESTS, ""), 0); /* empty: default kept */
    assert_true(p.guests);

    assert_int_equal(set(&p, CHAT_POLICY_READONLY, "on"), 0);
    assert_true(p.readonly);
    assert_int_equal(set(&p, CHAT_POLICY_READONLY, "1"), -1);
    assert_true(p.readonly);
    assert_int_equal(set(&p, CHAT_POLICY_READONLY, "off"), 0);
    assert_false(p.readonly);
}

static void test_numbers(void **state)
{
    struct chat_policy p;

    (void)state;
    chat_policy_init(&p);
    assert_int_equal(set(&p, CHAT_POLICY_MAX_TEXT, "1"), 0);
    assert_int_equal(p.max_text, 1);
    assert_int_equal(set(&p, CHAT_POLICY_MAX_TEXT, "65536"), 0);
    assert_int_equal(p.max_text, 65536);
    assert_int_equal(set(&p, CHAT_POLICY_MAX_TEXT, "65537"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_MAX_TEXT, "0"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_MAX_TEXT, "-1"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_MAX_TEXT, "12k"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_MAX_TEXT, " 12"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_MAX_TEXT, "99999999999999999999999999"), -1);
    assert_int_equal(p.max_text, 65536);
    assert_int_equal(set(&p, CHAT_POLICY_MAX_TEXT, "0100"), 0);
    assert_int_equal(p.max_text, 100);

    assert_int_equal(set(&p, CHAT_POLICY_POLL_TIMEOUT, "1"), 0);
    assert_int_equal(p.poll_timeout, 1);
    assert_int_equal(set(&p, CHAT_POLICY_POLL_TIMEOUT, "300"), 0);
    assert_int_equal(p.poll_timeout, 300);
    assert_int_equal(set(&p, CHAT_POLICY_POLL_TIMEOUT, "301"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_POLL_TIMEOUT, "0"), -1);
    assert_int_equal(p.poll_timeout, 300);
    assert_int_equal(set(&p, CHAT_POLICY_POLL_TIMEOUT, ""), 0);
    assert_int_equal(p.poll_timeout, 300);
}

/* $chat_role and $chat_edit_window: user|moderator, 0..a year. */
static void test_role_and_window(void **state)
{
    struct chat_policy p;

    (void)state;
    chat_policy_init(&p);
    assert_false(p.moderator);
    assert_int_equal(p.edit_window, 900);
    assert_int_equal(chat_policy_key_from_header(LIT("X-Chat-Role")), CHAT_POLICY_ROLE);
    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_ROLE")), CHAT_POLICY_ROLE);
    assert_int_equal(chat_policy_key_from_header(LIT("x-chat-edit-window")),
                     CHAT_POLICY_EDIT_WINDOW);
    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_EDIT_WINDOW")), CHAT_POLICY_EDIT_WINDOW);
    assert_int_equal(chat_policy_key_from_param(LIT("HTTP_X_CHAT_ROLE")), -1);

    assert_int_equal(set(&p, CHAT_POLICY_ROLE, "moderator"), 0);
    assert_true(p.moderator);
    assert_int_equal(set(&p, CHAT_POLICY_ROLE, ""), 0); /* empty: the default stays */
    assert_true(p.moderator);
    assert_int_equal(set(&p, CHAT_POLICY_ROLE, "user"), 0);
    assert_false(p.moderator);
    assert_int_equal(set(&p, CHAT_POLICY_ROLE, "Moderator"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_ROLE, "admin"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_ROLE, "moderators"), -1);
    assert_false(p.moderator);

    assert_int_equal(set(&p, CHAT_POLICY_EDIT_WINDOW, "0"), 0);
    assert_int_equal(p.edit_window, 0);
    assert_int_equal(set(&p, CHAT_POLICY_EDIT_WINDOW, "31536000"), 0);
    assert_int_equal(p.edit_window, 31536000);
    assert_int_equal(set(&p, CHAT_POLICY_EDIT_WINDOW, "31536001"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_EDIT_WINDOW, "15m"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_EDIT_WINDOW, "-1"), -1);
    assert_int_equal(p.edit_window, 31536000);
}

static void test_rooms(void **state)
{
    struct chat_policy p;
    char big[CHAT_ROOMS_SPEC_MAX + 2];

    (void)state;
    chat_policy_init(&p);
    assert_int_equal(set(&p, CHAT_POLICY_ROOMS, "lobby dev-*"), 0);
    assert_true(chat_policy_room_allowed(&p, LIT("lobby")));
    assert_true(chat_policy_room_allowed(&p, LIT("dev-")));
    assert_true(chat_policy_room_allowed(&p, LIT("dev-team")));
    assert_false(chat_policy_room_allowed(&p, LIT("dev")));
    assert_false(chat_policy_room_allowed(&p, LIT("lobby2")));
    assert_false(chat_policy_room_allowed(&p, LIT("lobb")));
    assert_false(chat_policy_room_allowed(&p, LIT("random")));

    assert_int_equal(set(&p, CHAT_POLICY_ROOMS, "  a   b  "), 0);
    assert_true(chat_policy_room_allowed(&p, LIT("a")));
    assert_true(chat_policy_room_allowed(&p, LIT("b")));
    assert_false(chat_policy_room_allowed(&p, LIT("ab")));

    assert_int_equal(set(&p, CHAT_POLICY_ROOMS, "Lobby"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_ROOMS, "lobby *dev"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_ROOMS, "a**"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_ROOMS, "-x*"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_ROOMS, "   "), -1);
    memset(big, 'a', CHAT_ROOMS_SPEC_MAX + 1);
    big[CHAT_ROOMS_SPEC_MAX + 1] = '\0';
    assert_int_equal(set(&p, CHAT_POLICY_ROOMS, big), -1);
    assert_string_equal(p.rooms, "  a   b  "); /* rejected values change nothing */

    assert_int_equal(set(&p, CHAT_POLICY_ROOMS, "*"), 0);
    assert_true(chat_policy_room_allowed(&p, LIT("anything-at-all")));
    /* Invalid room names are never allowed, whatever the patterns. */
    assert_false(chat_policy_room_allowed(&p, LIT("Lobby")));
    assert_false(chat_policy_room_allowed(&p, LIT("")));
    assert_false(chat_policy_room_allowed(&p, LIT("../etc")));
}

/* The room a client opens first: $chat_first_room when allowed, else lobby
 * when allowed, else the first name, else the first prefix + "lobby". */
static void first_is(const char *rooms, const char *first, const char *want)
{
    struct chat_policy p;
    char out[CHAT_ROOM_MAX + 1];

    chat_policy_init(&p);
    assert_int_equal(set(&p, CHAT_POLICY_ROOMS, rooms), 0);
    if (first)
        assert_int_equal(set(&p, CHAT_POLICY_FIRST_ROOM, first), 0);
    memset(out, 0x5a, sizeof(out));
    chat_policy_first_room(&p, out);
    assert_string_equal(out, want);
}

static void test_first_room(void **state)
{
    struct chat_policy p;
    char out[CHAT_ROOM_MAX + 1];

    (void)state;
    assert_int_equal(chat_policy_key_from_header(LIT("X-Chat-First-Room")), CHAT_POLICY_FIRST_ROOM);
    assert_int_equal(chat_policy_key_from_param(LIT("CHAT_FIRST_ROOM")), CHAT_POLICY_FIRST_ROOM);
    chat_policy_init(&p);
    assert_string_equal(p.first_room, "");
    chat_policy_first_room(&p, out);
    assert_string_equal(out, "lobby");
    assert_int_equal(set(&p, CHAT_POLICY_FIRST_ROOM, "Bad Room"), -1);
    assert_int_equal(set(&p, CHAT_POLICY_FIRST_ROOM, "-x"), -1);
    assert_string_equal(p.first_room, "");
    assert_int_equal(set(&p, CHAT_POLICY_FIRST_ROOM, ""), 0); /* empty: derived */

    first_is("*", NULL, "lobby");
    first_is("*", "news", "news");
    first_is("public-* lobby", NULL, "lobby");
    first_is("team-* help", NULL, "help");
    first_is("team-* help", "team-general", "team-general");
    first_is("team-* help", "news", "help"); /* not allowed here: the default */
    first_is("team-*", NULL, "team-lobby");
    first_is("a", NULL, "a");
    first_is("x* y*", NULL, "xlobby");
    /* a prefix that leaves no room for "lobby": the prefix itself */
    first_is("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa*", NULL,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
}

/* Two locations that differ in any one value do not share a policy (chat-ws
 * keeps one copy per distinct policy: a field left out of the comparison
 * gave a namespaced site the shared namespace's policy). */
static void test_same(void **state)
{
    static const struct {
        enum chat_policy_key key;
        const char *v;
    } one[] = {
        {CHAT_POLICY_USER, "alice"},      {CHAT_POLICY_GUESTS, "off"},
        {CHAT_POLICY_ROOMS, "help"},      {CHAT_POLICY_READONLY, "on"},
        {CHAT_POLICY_MAX_TEXT, "10"},     {CHAT_POLICY_POLL_TIMEOUT, "5"},
        {CHAT_POLICY_ROLE, "moderator"},  {CHAT_POLICY_EDIT_WINDOW, "1"},
        {CHAT_POLICY_FIRST_ROOM, "help"}, {CHAT_POLICY_NAMESPACE, "site-b"},
    };
    struct chat_policy a, b;
    const char *why;
    (void)state;

    assert_int_equal(sizeof(one) / sizeof(one[0]), CHAT_POLICY_NKEYS);
    chat_policy_init(&a);
    chat_policy_init(&b);
    assert_true(chat_policy_same(&a, &b));
    for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
        chat_policy_init(&b);
        assert_int_equal(chat_policy_set(&b, one[i].key, one[i].v, strlen(one[i].v), &why), 0);
        assert_false(chat_policy_same(&a, &b));
        assert_false(chat_policy_same(&b, &a));
    }
}

static void test_identity(void **state)
{
    struct chat_policy p;
    char out[CHAT_SENDER_MAX + 1];
    const char *n32 = "abcdefghijklmnopqrstuvwxyz012345";

    (void)state;
    chat_policy_init(&p);
    assert_int_equal(chat_policy_identity(&p, LIT("bob"), out), 0);
    assert_string_equal(out, "~bob");
    assert_int_equal(chat_policy_identity(&p, n32, strlen(n32), out), 0);
    assert_int_equal(strlen(out), CHAT_SENDER_MAX);
    assert_int_equal(out[0], '~');
    assert_int_equal(chat_policy_identity(&p, NULL, 0, out), -2);
    assert_int_equal(chat_policy_identity(&p, LIT(""), out), -2);
    assert_int_equal(chat_policy_identity(&p, LIT("~alice"), out), -2);
    assert_int_equal(chat_policy_identity(&p, LIT("b o b"), out), -2);

    assert_int_equal(set(&p, CHAT_POLICY_USER, "alice"), 0);
    assert_int_equal(chat_policy_identity(&p, LIT("bob"), out), 0);
    assert_string_equal(out, "alice"); /* the nginx user cannot be overridden */
    assert_int_equal(chat_policy_identity(&p, NULL, 0, out), 0);
    assert_string_equal(out, "alice");

    assert_int_equal(set(&p, CHAT_POLICY_GUESTS, "off"), 0);
    assert_int_equal(chat_policy_identity(&p, NULL, 0, out), 0);
    assert_string_equal(out, "alice");
    assert_int_equal(set(&p, CHAT_POLICY_USER, ""), 0);
    assert_int_equal(chat_policy_identity(&p, LIT("bob"), out), -1);
    assert_int_equal(chat_policy_identity(&p, NULL, 0, out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),       cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_user_and_flags), cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_rooms),          cmocka_unit_test(test_identity),
        cmocka_unit_test(test_same),           cmocka_unit_test(test_role_and_window),
        cmocka_unit_test(test_first_room),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
