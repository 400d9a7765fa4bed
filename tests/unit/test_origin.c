/* Unit tests for chat_origin: the site itself (scheme, host, port with
 * defaults), the listed origins, and what never passes (another scheme,
 * host or port, "null", junk, a port too big). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chat_origin.h"

static bool ok(const char *o, const char *scheme, const char *host, const char *allowed)
{
    return chat_origin_allowed(o, strlen(o), scheme, host, allowed);
}

static void test_same_site(void **state)
{
    (void)state;
    assert_true(ok("https://chat.example.org", "https", "chat.example.org", ""));
    assert_true(ok("https://chat.example.org", "https", "chat.example.org:443", NULL));
    assert_true(ok("https://Chat.Example.org:443", "https", "chat.example.org", NULL));
    assert_true(ok("http://127.0.0.1:8080", "http", "127.0.0.1:8080", NULL));
    assert_true(ok("http://[::1]:8080", "http", "[::1]:8080", NULL));
    /* another scheme, host or port */
    assert_false(ok("http://chat.example.org", "https", "chat.example.org", NULL));
    assert_false(ok("foo://chat.example.org", "https", "chat.example.org", NULL));
    assert_false(ok("https://evil.example", "https", "chat.example.org", NULL));
    assert_false(ok("https://chat.example.org:8443", "https", "chat.example.org", NULL));
    assert_false(ok("http://127.0.0.1:8081", "http", "127.0.0.1:8080", NULL));
    assert_false(ok("https://chat.example.org.evil.example", "https", "chat.example.org", NULL));
}

static void test_listed_and_junk(void **state)
{
    (void)state;
    assert_true(ok("https://app.example", "https", "chat.example.org",
                   "https://a.example https://app.example"));
    assert_false(
        ok("https://app.example.evil", "https", "chat.example.org", "https://app.example"));
    assert_false(ok("null", "https", "chat.example.org", "null"));
    assert_false(ok("", "https", "chat.example.org", NULL));
    assert_false(ok("chat.example.org", "https", "chat.example.org", NULL));
    assert_false(ok("https://chat.example.org:99999", "https", "chat.example.org:99999", NULL));
    assert_false(ok("https://:443", "https", ":443", NULL));
    assert_false(ok("https://chat.example.org", "https", "", NULL));
    assert_false(ok("https://chat.example.org", "https", NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_site),
        cmocka_unit_test(test_listed_and_junk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
