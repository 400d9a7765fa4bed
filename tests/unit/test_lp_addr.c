/* Unit tests for chat-fcgi's per-address counts (fcgi/lp_addr.c): every
 * take within the bound is counted (never let through uncounted, however
 * many IPv6 /64s hold something: an attacker with a /48 has 65,536 of
 * them), a give undoes exactly one take of the same address group, and
 * the addresses of one /64 are one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lp.h"

atomic_int lp_parked; /* (lp_state.c's, which this test does not link) */

static struct lp_config cfg;

static int setup(void **state)
{
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_parked = 100;
    cfg.rate_table = LP_RATE_TABLE_DEFAULT; /* (what the old fixed table was sized by) */
    cfg.max_parked_per_addr = 2;
    cfg.max_presence_per_addr = 1;
    return lp_addr_init(&cfg);
}

static int teardown(void **state)
{
    (void)state;
    lp_addr_free();
    return 0;
}

/* An address of the /64 number i of 2001:db8::/32 (host part h). */
static const char *v6(char *buf, unsigned i, unsigned h)
{
    snprintf(buf, 64, "2001:db8:%x:%x::%x", i >> 16, i & 0xffff, h + 1);
    return buf;
}

static void test_a_full_table_never_fails_open(void **state)
{
    char a[64];
    unsigned n = LP_PRESENCE_PAIRS_MAX; /* as many /64s as presence can hold */

    (void)state;
    for (unsigned i = 0; i < n; i++)
        assert_true(lp_addr_take(v6(a, i, 0), LP_ADDR_PRESENCE));
    /* every one of them is counted: its second entry is refused */
    unsigned passed = 0;
    for (unsigned i = 0; i < n; i += 97)
        passed += lp_addr_take(v6(a, i, 7), LP_ADDR_PRESENCE);
    assert_int_equal(passed, 0);
    /* a victim elsewhere still takes its own */
    assert_true(lp_addr_take("192.0.2.1", LP_ADDR_PRESENCE));
    assert_true(lp_addr_take("192.0.2.1", LP_ADDR_PARKED));
    for (unsigned i = 0; i < n; i++)
        lp_addr_give(v6(a, i, 0), LP_ADDR_PRESENCE);
    /* all given back: each /64 may take one again */
    assert_true(lp_addr_take(v6(a, 12345, 3), LP_ADDR_PRESENCE));
}

static void test_give_undoes_one_take_of_its_own(void **state)
{
    (void)state;
    assert_true(lp_addr_take("198.51.100.1", LP_ADDR_PARKED));
    assert_true(lp_addr_take("198.51.100.1", LP_ADDR_PARKED));
    assert_false(lp_addr_take("198.51.100.1", LP_ADDR_PARKED));
    /* another address's give (never taken) changes nothing here */
    lp_addr_give("198.51.100.2", LP_ADDR_PARKED);
    lp_addr_give("198.51.100.2", LP_ADDR_PARKED);
    assert_false(lp_addr_take("198.51.100.1", LP_ADDR_PARKED));
    /* and does not leave 198.51.100.2 a credit */
    assert_true(lp_addr_take("198.51.100.2", LP_ADDR_PARKED));
    assert_true(lp_addr_take("198.51.100.2", LP_ADDR_PARKED));
    assert_false(lp_addr_take("198.51.100.2", LP_ADDR_PARKED));
    lp_addr_give("198.51.100.1", LP_ADDR_PARKED);
    assert_true(lp_addr_take("198.51.100.1", LP_ADDR_PARKED));
    /* kinds apart */
    assert_true(lp_addr_take("198.51.100.1", LP_ADDR_PRESENCE));
}

static void test_one_64_is_one_address(void **state)
{
    (void)state;
    assert_true(lp_addr_take("2001:db8:1:2::1", LP_ADDR_PARKED));
    assert_true(lp_addr_take("2001:db8:1:2:ffff:ffff:ffff:fffe", LP_ADDR_PARKED));
    assert_false(lp_addr_take("2001:db8:1:2:abcd::9", LP_ADDR_PARKED));
    assert_true(lp_addr_take("2001:db8:1:3::1", LP_ADDR_PARKED));
    /* given back by another address of the /64 */
    lp_addr_give("2001:db8:1:2::77", LP_ADDR_PARKED);
    assert_true(lp_addr_take("2001:db8:1:2::78", LP_ADDR_PARKED));
    /* an IPv4-mapped address is its IPv4 */
    assert_true(lp_addr_take("192.0.2.9", LP_ADDR_PRESENCE));
    assert_false(lp_addr_take("::ffff:192.0.2.9", LP_ADDR_PRESENCE));
}

static void test_parked_bound(void **state)
{
    (void)state;
    atomic_store(&lp_parked, 0);
    assert_int_equal(lp_park_take("203.0.113.1"), 0);
    assert_int_equal(lp_park_take("203.0.113.1"), 0);
    assert_int_equal(lp_park_take("203.0.113.1"), -2);
    assert_int_equal(atomic_load(&lp_parked), 2);
    atomic_store(&lp_parked, cfg.max_parked);
    assert_int_equal(lp_park_take("203.0.113.2"), -1);
    atomic_store(&lp_parked, 2);
    lp_park_give("203.0.113.1");
    assert_int_equal(lp_park_take("203.0.113.1"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_full_table_never_fails_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_give_undoes_one_take_of_its_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_64_is_one_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parked_bound, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
