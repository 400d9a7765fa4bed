/* Unit tests for chat_bans: addresses (v4, v6, v4 in v6 clothes, networks),
 * matching by user or address with expiry, the list from a result, and
 * chat_admin lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chat_bans.h"

static PGresult *bans_result(const char *rows[][7], int n)
{
    PGresAttDesc att[7] = {{0}};
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);

    for (int k = 0; k < 7; k++) {
        att[k].name = (char *)"c";
        att[k].typlen = -1;
        att[k].atttypmod = -1;
    }
    assert_non_null(res);
    assert_true(PQsetResultAttrs(res, 7, att));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 7; k++)
            assert_true(PQsetvalue(res, i, k, (char *)rows[i][k], (int)strlen(rows[i][k])));
    return res;
}

static void test_addr_parse(void **state)
{
    unsigned char net[16];
    int family, bits;

    (void)state;
    assert_int_equal(chat_addr_parse("192.0.2.7", &family, net, &bits), 0);
    assert_int_equal(family, 4);
    assert_int_equal(bits, 32);
    assert_int_equal(net[0], 192);
    assert_int_equal(chat_addr_parse("::ffff:192.0.2.7", &family, net, &bits), 0);
    assert_int_equal(family, 4);
    assert_int_equal(net[3], 7);
    assert_int_equal(chat_addr_parse("2001:db8::/32", &family, net, &bits), 0);
    assert_int_equal(family, 6);
    assert_int_equal(bits, 32);
    assert_int_equal(chat_addr_parse("10.0.0.0/8", &family, net, &bits), 0);
    assert_int_equal(bits, 8);
    assert_int_equal(chat_addr_parse("10.0.0.0/33", &family, net, &bits), -1);
    assert_int_equal(chat_addr_parse("10.0.0/8", &family, net, &bits), -1);
    assert_int_equal(chat_addr_parse("", &family, net, &bits), -1);
    assert_int_equal(chat_addr_parse("unix:", &family, net, &bits), -1);
    assert_int_equal(chat_addr_parse("1.2.3.4/", &family, net, &bits), -1);
}

static void test_match(void **state)
{
    const char *rows[][7] = {
        {"1", "~spammer", "", "0", "", "links", "*"},
        {"2", "", "198.51.100.0/24", "0", "", "net", "*"},
        {"3", "alice", "", "1000", "1970-01-01T00:00:01.000Z", "expired at 1 s", "*"},
        {"4", "", "2001:db8::/32", "0", "", "v6", "*"},
        {"5", "bob", "192.0.2.7/32", "5000", "1970-01-01T00:00:05.000Z", "both", "*"},
    };
    struct chat_bans b = {0};
    PGresult *res = bans_result(rows, 5);
    const struct chat_ban *ban;

    (void)state;
    assert_int_equal(chat_bans_load(&b, res), 0);
    PQclear(res);
    assert_int_equal(b.n, 5);
    ban = chat_bans_match(&b, "~spammer", "203.0.113.1", NULL, 2000);
    assert_non_null(ban);
    assert_string_equal(ban->reason, "links");
    assert_null(chat_bans_match(&b, "spammer", NULL, NULL, 2000)); /* not the guest ~spammer */
    ban = chat_bans_match(&b, "carol", "198.51.100.200", NULL, 2000);
    assert_non_null(ban);
    assert_int_equal(ban->id, 2);
    assert_non_null(chat_bans_match(&b, "", "::ffff:198.51.100.9", NULL, 2000));
    assert_null(chat_bans_match(&b, "carol", "198.51.101.1", NULL, 2000));
    assert_non_null(chat_bans_match(&b, NULL, "2001:db8:1::5", NULL, 2000));
    assert_null(chat_bans_match(&b, NULL, "2001:db9::5", NULL, 2000));
    assert_non_null(chat_bans_match(&b, "alice", NULL, NULL, 999));
    assert_null(chat_bans_match(&b, "alice", NULL, NULL, 1000)); /* expired */
    ban = chat_bans_match(&b, "dave", "192.0.2.7", NULL, 2000);  /* user or address */
    assert_non_null(ban);
    assert_string_equal(ban->until, "1970-01-01T00:00:05.000Z");
    assert_non_null(chat_bans_match(&b, "bob", "10.1.1.1", NULL, 2000));
    assert_null(chat_bans_match(&b, "dave", "garbage", NULL, 2000));
    assert_int_equal(chat_bans_load(&b, NULL), -1);
    assert_int_equal(b.n, 5); /* kept */
    chat_bans_free(&b);
    assert_null(chat_bans_match(&b, "~spammer", NULL, NULL, 0));
}

/* A moderator's ban stops users of its namespace only; chatctl's ("*")
 * every namespace's (sql/006). */
static void test_match_ns(void **state)
{
    const char *rows[][7] = {
        {"1", "~bob", "", "0", "", "shared site's moderator", ""},
        {"2", "~eve", "", "0", "", "site-a's moderator", "site-a"},
        {"3", "", "192.0.2.0/24", "0", "", "the admin", "*"},
    };
    struct chat_bans b = {0};
    PGresult *res = bans_result(rows, 3);

    (void)state;
    assert_int_equal(chat_bans_load(&b, res), 0);
    PQclear(res);
    assert_non_null(chat_bans_match(&b, "~bob", NULL, NULL, 0));
    assert_non_null(chat_bans_match(&b, "~bob", NULL, "", 0));
    assert_null(chat_bans_match(&b, "~bob", NULL, "site-a", 0)); /* another site's ~bob */
    assert_non_null(chat_bans_match(&b, "~eve", NULL, "site-a", 0));
    assert_null(chat_bans_match(&b, "~eve", NULL, "", 0));
    assert_null(chat_bans_match(&b, "~eve", NULL, "site-b", 0));
    assert_non_null(chat_bans_match(&b, NULL, "192.0.2.9", "site-b", 0));
    assert_non_null(chat_bans_match(&b, NULL, "192.0.2.9", NULL, 0));
    chat_bans_free(&b);
}

static void test_admin_lines(void **state)
{
    char user[CHAT_SENDER_MAX + 1];
    const char *ban = "{\"op\":\"ban\",\"id\":3,\"user\":\"x\",\"addr\":null,\"until\":null}";
    const char *kick = "{\"op\":\"kick\",\"user\":\"~bob\",\"by\":\"mod\"}";

    (void)state;
    assert_int_equal(chat_admin_parse(ban, strlen(ban), user), CHAT_ADMIN_BAN);
    assert_int_equal(chat_admin_parse("{\"op\":\"unban\",\"id\":3}", 21, user), CHAT_ADMIN_UNBAN);
    assert_int_equal(chat_admin_parse(kick, strlen(kick), user), CHAT_ADMIN_KICK);
    assert_string_equal(user, "~bob");
    assert_int_equal(chat_admin_parse("{\"op\":\"kick\",\"user\":\"a b\"}", 26, user),
                     CHAT_ADMIN_BAD);
    assert_int_equal(chat_admin_parse("{\"op\":\"kick\"}", 13, user), CHAT_ADMIN_BAD);
    assert_int_equal(chat_admin_parse("[1]", 3, user), CHAT_ADMIN_BAD);
    assert_int_equal(chat_admin_parse("{\"op\":", 6, user), CHAT_ADMIN_BAD);
    assert_int_equal(chat_admin_parse("{\"op\":\"msg\"}", 12, user), CHAT_ADMIN_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_match_ns),
        cmocka_unit_test(test_admin_lines),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
