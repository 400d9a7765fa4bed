/* Unit tests for chat_typing: one event per (room, sender) per interval;
 * guests also bounded per (room, address) whatever names they give; a
 * signed-in user is not keyed by address; rooms and addresses apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "chat_typing.h"

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct chat_typing));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static void test_one_per_sender(void **state)
{
    struct chat_typing *t = *state;

    assert_true(chat_typing_due(t, "lobby", "alice", "192.0.2.1", 1000));
    assert_false(chat_typing_due(t, "lobby", "alice", "192.0.2.1", 1500));
    assert_false(chat_typing_due(t, "lobby", "alice", "192.0.2.1", 1999));
    assert_true(chat_typing_due(t, "lobby", "alice", "192.0.2.1", 2000));
    /* another room, another sender: slots of their own */
    assert_true(chat_typing_due(t, "dev", "alice", "192.0.2.1", 2000));
    assert_true(chat_typing_due(t, "lobby", "bob", "192.0.2.1", 2000));
}

static void test_guest_names_share_the_address(void **state)
{
    struct chat_typing *t = *state;
    char name[40];
    int sent = 0;

    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "~g%d", i);
        sent += chat_typing_due(t, "lobby", name, "192.0.2.7", 5000 + i / 10);
    }
    assert_int_equal(sent, CHAT_TYPING_PER_ADDR);
    /* a guest at another address, and a signed-in user at the same one */
    assert_true(chat_typing_due(t, "lobby", "~victim", "198.51.100.3", 5050));
    assert_true(chat_typing_due(t, "lobby", "carol", "192.0.2.7", 5050));
    /* the same address in another room is another slot */
    assert_true(chat_typing_due(t, "dev", "~g1", "192.0.2.7", 5050));
    /* next interval: again CHAT_TYPING_PER_ADDR */
    sent = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "~h%d", i);
        sent += chat_typing_due(t, "lobby", name, "192.0.2.7", 6100);
    }
    assert_int_equal(sent, CHAT_TYPING_PER_ADDR);
}

static void test_signed_in_users_not_by_address(void **state)
{
    struct chat_typing *t = *state;
    char name[40];

    /* many users behind one NAT each get their own event */
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        assert_true(chat_typing_due(t, "lobby", name, "192.0.2.9", 1000));
    }
    /* no address known (chat-ws without X-Chat-Addr): by name alone */
    assert_true(chat_typing_due(t, "lobby", "~x", "", 1000));
    assert_true(chat_typing_due(t, "lobby", "~y", NULL, 1000));
}

static void test_refused_guest_takes_no_slot(void **state)
{
    struct chat_typing *t = *state;

    assert_true(chat_typing_due(t, "r", "~a", "192.0.2.1", 100));
    assert_true(chat_typing_due(t, "r", "~b", "192.0.2.1", 100));
    assert_false(chat_typing_due(t, "r", "~c", "192.0.2.1", 100));
    /* ~c was refused by its address: its own slot is free next interval */
    assert_true(chat_typing_due(t, "r", "~c", "192.0.2.1", 1100));
}

static void test_ipv6_guests_share_their_64(void **state)
{
    struct chat_typing *t = *state;
    char name[40], addr[64];
    int sent = 0;

    /* a new name and a new address of the same /64 on every request */
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof(name), "~v%d", i);
        snprintf(addr, sizeof(addr), "2001:db8:0:1::%x", i + 1);
        sent += chat_typing_due(t, "lobby", name, addr, 3000);
    }
    assert_int_equal(sent, CHAT_TYPING_PER_ADDR);
    /* an IPv4-mapped spelling is the IPv4 address */
    assert_true(chat_typing_due(t, "lobby", "~m1", "192.0.2.50", 3000));
    assert_true(chat_typing_due(t, "lobby", "~m2", "::ffff:192.0.2.50", 3000));
    assert_false(chat_typing_due(t, "lobby", "~m3", "::ffff:192.0.2.50", 3000));
    /* a guest of the next /64 is served */
    assert_true(chat_typing_due(t, "lobby", "~victim", "2001:db8:0:2::1", 3000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_per_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_names_share_the_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_in_users_not_by_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_guest_takes_no_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_guests_share_their_64, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
