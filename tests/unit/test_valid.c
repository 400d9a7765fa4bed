/* Unit tests for chat_valid: the user, room, cid and text rules of
 * docs/protocol.md, including their length limits exactly at the edge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chat_valid.h"

#define LIT(s) s, sizeof(s) - 1

static void fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

static void test_user(void **state)
{
    char buf[CHAT_USER_MAX + 2];

    (void)state;
    assert_true(chat_valid_user(LIT("alice")));
    assert_true(chat_valid_user(LIT("a")));
    assert_true(chat_valid_user(LIT("A.b_C-9")));
    assert_true(chat_valid_user(LIT("...")));
    fill(buf, 'x', CHAT_USER_MAX);
    assert_true(chat_valid_user(buf, CHAT_USER_MAX));
    fill(buf, 'x', CHAT_USER_MAX + 1);
    assert_false(chat_valid_user(buf, CHAT_USER_MAX + 1));
    assert_false(chat_valid_user(LIT("")));
    assert_false(chat_valid_user(NULL, 0));
    assert_false(chat_valid_user(LIT("~bob"))); /* guests cannot impersonate */
    assert_false(chat_valid_user(LIT("a b")));
    assert_false(chat_valid_user(LIT("a/b")));
    assert_false(chat_valid_user(LIT("a@b")));
    assert_false(chat_valid_user(LIT("caf\xc3\xa9"))); /* letters are ASCII only */
    assert_false(chat_valid_user(LIT("ab\0c")));       /* embedded NUL */
    /* Only len bytes are looked at. */
    assert_true(chat_valid_user("bob!!!", 3));
}

static void test_room(void **state)
{
    char buf[CHAT_ROOM_MAX + 2];

    (void)state;
    assert_true(chat_valid_room(LIT("lobby")));
    assert_true(chat_valid_room(LIT("0")));
    assert_true(chat_valid_room(LIT("a-b_c")));
    assert_true(chat_valid_room(LIT("9lives")));
    fill(buf, 'r', CHAT_ROOM_MAX);
    assert_true(chat_valid_room(buf, CHAT_ROOM_MAX));
    fill(buf, 'r', CHAT_ROOM_MAX + 1);
    assert_false(chat_valid_room(buf, CHAT_ROOM_MAX + 1));
    assert_false(chat_valid_room(LIT("")));
    assert_false(chat_valid_room(NULL, 0));
    assert_false(chat_valid_room(LIT("Lobby")));
    assert_false(chat_valid_room(LIT("-x")));
    assert_false(chat_valid_room(LIT("_x")));
    assert_false(chat_valid_room(LIT("a.b")));
    assert_false(chat_valid_room(LIT("a b")));
    assert_false(chat_valid_room(LIT("a*")));
    assert_false(chat_valid_room(LIT("lobby\0")));
}

static void test_cid(void **state)
{
    char buf[CHAT_CID_MAX + 2];

    (void)state;
    assert_true(chat_valid_cid(LIT("k3j4")));
    assert_true(chat_valid_cid(LIT(" ")));
    assert_true(chat_valid_cid(LIT("~!\"#{}")));
    fill(buf, 'c', CHAT_CID_MAX);
    assert_true(chat_valid_cid(buf, CHAT_CID_MAX));
    fill(buf, 'c', CHAT_CID_MAX + 1);
    assert_false(chat_valid_cid(buf, CHAT_CID_MAX + 1));
    assert_false(chat_valid_cid(LIT("")));
    assert_false(chat_valid_cid(NULL, 0));
    assert_false(chat_valid_cid(LIT("a\x7f")));
    assert_false(chat_valid_cid(LIT("a\x1f")));
    assert_false(chat_valid_cid(LIT("a\n")));
    assert_false(chat_valid_cid(LIT("\xc3\xa9")));
}

static void test_text(void **state)
{
    (void)state;
    assert_int_equal(chat_valid_text(LIT("hi"), 4096), CHAT_TEXT_OK);
    assert_int_equal(chat_valid_text(LIT("line 1\nline 2\tcol"), 4096), CHAT_TEXT_OK);
    assert_int_equal(chat_valid_text(LIT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), 4096),
                     CHAT_TEXT_OK);
    assert_int_equal(chat_valid_text(LIT("nb\xc2\xa0sp"), 4096), CHAT_TEXT_OK); /* U+00A0 */
    assert_int_equal(chat_valid_text(LIT(""), 4096), CHAT_TEXT_EMPTY);
    /* The limit counts bytes, not characters. */
    assert_int_equal(chat_valid_text(LIT("12345"), 5), CHAT_TEXT_OK);
    assert_int_equal(chat_valid_text(LIT("123456"), 5), CHAT_TEXT_TOO_LARGE);
    assert_int_equal(chat_valid_text(LIT("\xe2\x82\xac\xe2\x82\xac"), 6), CHAT_TEXT_OK);
    assert_int_equal(chat_valid_text(LIT("\xe2\x82\xac\xe2\x82\xac"), 5), CHAT_TEXT_TOO_LARGE);
    assert_int_equal(chat_valid_text(LIT("bad \xff"), 4096), CHAT_TEXT_BAD_UTF8);
    assert_int_equal(chat_valid_text(LIT("cut \xe2\x82"), 4096), CHAT_TEXT_BAD_UTF8);
    assert_int_equal(chat_valid_text(LIT("sur \xed\xa0\x80"), 4096), CHAT_TEXT_BAD_UTF8);
    assert_int_equal(chat_valid_text(LIT("over \xc0\xaf"), 4096), CHAT_TEXT_BAD_UTF8);
}

static void test_text_control(void **state)
{
    static const char *const bad[] = {"a\x01",  "\x1b[31mred", "cr\r\n",      "del\x7f",
                                      "nul\0x", "c1 \xc2\x80", "c1 \xc2\x9f", "\x1f"};
    static const size_t bad_len[] = {2, 9, 4, 4, 5, 5, 5, 1};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(chat_valid_text(bad[i], bad_len[i], 4096), CHAT_TEXT_CONTROL);
    /* Neighbours of the C1 range are ordinary characters. */
    assert_int_equal(chat_valid_text(LIT("\xc2\xa0\xc3\x80\xc4\x80"), 4096), CHAT_TEXT_OK);
    assert_int_equal(chat_valid_text(LIT("\xe2\x80\xa8"), 4096), CHAT_TEXT_OK); /* U+2028 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user),         cmocka_unit_test(test_room),
        cmocka_unit_test(test_cid),          cmocka_unit_test(test_text),
        cmocka_unit_test(test_text_control),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
