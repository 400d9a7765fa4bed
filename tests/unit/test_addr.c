/* Unit tests for chat_addr_group: the one key of every per-address bound.
 * An IPv4 address is its own group, an IPv4-mapped IPv6 address is its
 * IPv4, every address of one IPv6 /64 (however it is spelled) is one
 * group and the next /64 another; what is no address stays as given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chat_addr.h"

static void expect_group(const char *addr, const char *want)
{
    char out[CHAT_ADDR_MAX + 1];

    chat_addr_group(addr, out);
    assert_string_equal(out, want);
}

static void test_ipv4_whole(void **state)
{
    (void)state;
    expect_group("192.0.2.7", "192.0.2.7");
    expect_group("192.0.2.8", "192.0.2.8");
    expect_group("255.255.255.255", "255.255.255.255");
}

static void test_mapped_is_ipv4(void **state)
{
    (void)state;
    expect_group("::ffff:192.0.2.7", "192.0.2.7");
    expect_group("::FFFF:c000:0207", "192.0.2.7");
    expect_group("0:0:0:0:0:ffff:192.0.2.7", "192.0.2.7");
}

static void test_ipv6_by_64(void **state)
{
    (void)state;
    expect_group("2001:db8:0:1::1", "2001:db8:0:1::/64");
    expect_group("2001:db8:0:1:aaaa:bbbb:cccc:dddd", "2001:db8:0:1::/64");
    /* other spellings of the same /64 */
    expect_group("2001:0DB8:0000:0001:0:0:0:ffff", "2001:db8:0:1::/64");
    expect_group("2001:db8::1:0:0:0:5", "2001:db8:0:1::/64");
    /* the neighbouring /64s are groups of their own */
    expect_group("2001:db8:0:2::1", "2001:db8:0:2::/64");
    expect_group("2001:db8:0:0:ffff::1", "2001:db8::/64");
    expect_group("::1", "::/64");
    expect_group("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::/64");
}

static void test_not_an_address(void **state)
{
    char long_text[200];

    (void)state;
    expect_group("", "");
    expect_group(NULL, "");
    expect_group("unix:", "unix:");
    expect_group("2001:db8::/32", "2001:db8::/32"); /* a network is no client */
    memset(long_text, 'a', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    char out[CHAT_ADDR_MAX + 1];
    chat_addr_group(long_text, out);
    assert_int_equal(strlen(out), CHAT_ADDR_MAX);
}

static void test_groups_fit(void **state)
{
    char out[CHAT_ADDR_MAX + 1];

    (void)state;
    /* the longest group of an address fits a stored client address */
    chat_addr_group("1111:2222:3333:4444:5555:6666:7777:8888", out);
    assert_string_equal(out, "1111:2222:3333:4444::/64");
    assert_true(strlen(out) < CHAT_ADDR_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_whole), cmocka_unit_test(test_mapped_is_ipv4),
        cmocka_unit_test(test_ipv6_by_64), cmocka_unit_test(test_not_an_address),
        cmocka_unit_test(test_groups_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
