/* Unit tests for chat_origin, the one Origin rule of both daemons: the
 * site itself (scheme, host, port with defaults, a Host that is a server
 * name or address), the listed origins, and what never passes (another
 * scheme, host or port; a Host nobody configured, as DNS rebinding
 * brings; "null"; junk). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chat_origin.h"

/* scheme NULL: not through nginx (host and port alone) */
static bool ok4(const char *o, const char *scheme, const char *host, const char *name,
                const char *addr, const char *allowed)
{
    struct chat_site s;
    s.scheme = scheme, s.scheme_len = scheme ? strlen(scheme) : 0;
    s.host = host, s.host_len = host ? strlen(host) : 0;
    s.server_name = name, s.server_name_len = name ? strlen(name) : 0;
    s.server_addr = addr, s.server_addr_len = addr ? strlen(addr) : 0;
    s.allowed = allowed, s.allowed_len = allowed ? strlen(allowed) : 0;
    return chat_origin_allowed(o, strlen(o), &s);
}

/* a site named chat.example.org on 192.0.2.1 */
static bool ok(const char *o, const char *scheme, const char *host, const char *allowed)
{
    return ok4(o, scheme, host, "chat.example.org", "192.0.2.1", allowed);
}

static void test_same_site(void **state)
{
    (void)state;
    assert_true(ok("https://chat.example.org", "https", "chat.example.org", ""));
    assert_true(ok("https://chat.example.org", "https", "chat.example.org:443", NULL));
    assert_true(ok("https://Chat.Example.org:443", "https", "chat.example.org", NULL));
    assert_true(ok("http://192.0.2.1:8080", "http", "192.0.2.1:8080", NULL));
    assert_true(ok4("http://[::1]:8080", "http", "[::1]:8080", "_", "::1", NULL));
    /* another scheme, host or port */
    assert_false(ok("http://chat.example.org", "https", "chat.example.org", NULL));
    assert_false(ok("foo://chat.example.org", "https", "chat.example.org", NULL));
    assert_false(ok("https://evil.example", "https", "chat.example.org", NULL));
    assert_false(ok("https://chat.example.org:8443", "https", "chat.example.org", NULL));
    assert_false(ok("http://192.0.2.1:8081", "http", "192.0.2.1:8080", NULL));
    assert_false(ok("https://chat.example.org.evil.example", "https", "chat.example.org", NULL));
}

static void test_rebinding(void **state)
{
    (void)state;
    /* Origin and Host agree, but the name is nobody's: DNS rebinding */
    assert_false(ok("http://evil.example", "http", "evil.example", NULL));
    assert_false(ok4("http://evil.example", "http", "evil.example", "_", "192.0.2.1", NULL));
    /* the same by the server's address, or with $chat_origins */
    assert_true(ok4("http://192.0.2.1", "http", "192.0.2.1", "_", "192.0.2.1", NULL));
    assert_true(ok("http://evil.example", "http", "evil.example", "http://evil.example"));
    /* wildcards of server_name */
    assert_true(ok4("https://a.example.org", "https", "a.example.org", "*.example.org", "", NULL));
    assert_false(ok4("https://example.org", "https", "example.org", "*.example.org", "", NULL));
    assert_true(ok4("https://example.org", "https", "example.org", ".example.org", "", NULL));
    assert_false(
        ok4("https://badexample.org", "https", "badexample.org", ".example.org", "", NULL));
    /* not through nginx (no scheme): host and port alone */
    assert_true(ok4("http://evil.example", NULL, "evil.example", NULL, NULL, NULL));
    assert_false(ok4("http://evil.example:81", NULL, "evil.example", NULL, NULL, NULL));
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
    assert_false(ok("https://chat.example.org:0", "https", "chat.example.org:0", NULL));
    assert_false(ok("https://:443", "https", ":443", NULL));
    assert_false(ok("https://user@chat.example.org", "https", "chat.example.org", NULL));
    assert_false(ok("https://chat.example.org", "https", "", NULL));
    assert_false(ok("https://chat.example.org", "https", NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_site),
        cmocka_unit_test(test_rebinding),
        cmocka_unit_test(test_listed_and_junk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
