/* Unit tests of ws_handshake: the request-head parser on every prefix and
 * byte at a time, the upgrade and Origin checks, query parameters, the
 * accept key (RFC 6455 section 1.3) and the responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws_handshake.h"
#include "chat_http.h"

static const char browser_req[] =
    "GET /chat/ws?name=bob HTTP/1.1\r\n"
    "Host: chat.example.com\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: https://chat.example.com\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

/* Parses a NUL-terminated request, expecting it to be complete. */
static void parse_ok(const char *s, struct ws_request *req)
{
    int n = ws_handshake_parse(s, strlen(s), req);
    assert_int_equal(n, (int)strlen(s));
}

/* Parses and checks s, returning the verdict. */
static int check(const char *s, const char *allowed, struct ws_hs_result *res)
{
    struct ws_request req;

    parse_ok(s, &req);
    return ws_handshake_check(&req, allowed, allowed ? strlen(allowed) : 0, res);
}

/* A valid upgrade whose header lines are given (each with CRLF). */
static char *upgrade_with(const char *lines)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "GET /chat/ws HTTP/1.1\r\n%s\r\n", lines);
    return buf;
}

#define STD_LINES                                                                                  \
    "Host: chat.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"                      \
    "Sec-WebSocket-Version: 13\r\n"
#define STD_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

static void test_parse_browser(void **state)
{
    (void)state;
    struct ws_request req;
    parse_ok(browser_req, &req);
    assert_int_equal(req.method_len, 3);
    assert_memory_equal(req.method, "GET", 3);
    assert_int_equal(req.target_len, strlen("/chat/ws?name=bob"));
    assert_memory_equal(req.target, "/chat/ws?name=bob", req.target_len);
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.num_headers, 12);
    assert_int_equal(req.headers[0].name_len, 4);
    assert_memory_equal(req.headers[0].name, "Host", 4);
    assert_int_equal(req.headers[0].value_len, strlen("chat.example.com"));
    assert_false(req.too_large);
}

static void test_every_prefix_incomplete(void **state)
{
    (void)state;
    struct ws_request req;
    size_t len = strlen(browser_req);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(ws_handshake_parse(browser_req, i, &req), WS_HS_INCOMPLETE);
    assert_int_equal(ws_handshake_parse(browser_req, len, &req), (int)len);
}

/* Feed one byte at a time into a growing buffer, as a socket might, with
 * the first frame's bytes already behind the head. */
static void test_byte_at_a_time(void **state)
{
    (void)state;
    char buf[2048];
    size_t head = strlen(browser_req);
    size_t total = head + 6;
    memcpy(buf, browser_req, head);
    memcpy(buf + head, "\x81\x80\x01\x02\x03\x04", 6);
    struct ws_request req;
    int n = WS_HS_INCOMPLETE;
    size_t have = 0;
    while (n == WS_HS_INCOMPLETE && have < total) {
        have++;
        n = ws_handshake_parse(buf, have, &req);
    }
    assert_int_equal(n, (int)head);
    assert_int_equal(have, head);
    /* and with everything there, the frame bytes are not consumed */
    assert_int_equal(ws_handshake_parse(buf, total, &req), (int)head);
}

static void test_parse_whitespace(void **state)
{
    (void)state;
    struct ws_request req;
    parse_ok("GET / HTTP/1.0\r\nX-A:   v  \t\r\nX-B:\r\nX-C: a b\r\n\r\n", &req);
    assert_int_equal(req.minor_version, 0);
    assert_int_equal(req.num_headers, 3);
    assert_int_equal(req.headers[0].value_len, 1);
    assert_memory_equal(req.headers[0].value, "v", 1);
    assert_int_equal(req.headers[1].value_len, 0);
    assert_int_equal(req.headers[2].value_len, 3);
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const char *bad[] = {
        "GET  / HTTP/1.1\r\n\r\n", /* two spaces */
        "GET / HTTP/2.0\r\n\r\n",  /* not HTTP/1.x */
        "GET / HTTP/1.x\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET / HTTP/1.1\n\r\n", /* bare LF */
        "GET / HTTP/1.1\r\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n", /* not a token */
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET /\x7f HTTP/1.1\r\n\r\n",
        "GET /\x80 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n", /* space before colon */
        "GET / HTTP/1.1\r\nHost x\r\n\r\n",
        "GET / HTTP/1.1\r\n: x\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", /* obs-fold */
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",   /* control character */
        "GET / HTTP/1.1\r\nA: b\nB: c\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n\n",
    };
    struct ws_request req;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = ws_handshake_parse(bad[i], strlen(bad[i]), &req);
        if (n != WS_HS_BAD)
            fail_msg("case %zu: %d", i, n);
        assert_false(req.too_large);
    }
    /* a NUL byte in a value */
    static const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
    assert_int_equal(ws_handshake_parse(nul, sizeof(nul) - 1, &req), WS_HS_BAD);
    /* obs-text in a value is fine */
    parse_ok("GET / HTTP/1.1\r\nA: caf\xc3\xa9\r\n\r\n", &req);
}

/* A head of exactly n bytes: request line, one padding header, end. */
static char *head_of_size(size_t n)
{
    static const char start[] = "GET / HTTP/1.1\r\nX-Pad: ";
    size_t fixed = strlen(start) + 4;
    char *s = malloc(n + 1);
    assert_non_null(s);
    assert_true(n > fixed);
    memcpy(s, start, strlen(start));
    memset(s + strlen(start), 'a', n - fixed);
    memcpy(s + n - 4, "\r\n\r\n", 4);
    s[n] = '\0';
    return s;
}

static void test_too_large(void **state)
{
    (void)state;
    struct ws_request req;
    char *s = head_of_size(WS_HANDSHAKE_MAX);
    assert_int_equal(ws_handshake_parse(s, WS_HANDSHAKE_MAX, &req), WS_HANDSHAKE_MAX);
    assert_int_equal(ws_handshake_parse(s, WS_HANDSHAKE_MAX - 1, &req), WS_HS_INCOMPLETE);
    free(s);

    s = head_of_size(WS_HANDSHAKE_MAX + 1);
    assert_int_equal(ws_handshake_parse(s, WS_HANDSHAKE_MAX - 1, &req), WS_HS_INCOMPLETE);
    assert_int_equal(ws_handshake_parse(s, WS_HANDSHAKE_MAX, &req), WS_HS_BAD);
    assert_true(req.too_large);
    assert_int_equal(ws_handshake_parse(s, WS_HANDSHAKE_MAX + 1, &req), WS_HS_BAD);
    assert_true(req.too_large);
    free(s);
}

static void test_too_many_headers(void **state)
{
    (void)state;
    struct ws_request req;
    char buf[2048];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < WS_HEADERS_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-Chat-H%d: v\r\n", i);
    memcpy(buf + n, "\r\n", 3);
    assert_int_equal(ws_handshake_parse(buf, n + 2, &req), (int)(n + 2));
    assert_int_equal(req.num_headers, WS_HEADERS_MAX);
    /* one more field the daemon reads: too many */
    memcpy(buf + n, "Origin: y\r\n\r\n", 14);
    assert_int_equal(ws_handshake_parse(buf, n + 13, &req), WS_HS_BAD);
    assert_true(req.too_large);
    /* one the daemon does not read: checked and dropped */
    memcpy(buf + n, "X: y\r\n\r\n", 9);
    assert_int_equal(ws_handshake_parse(buf, n + 8, &req), (int)(n + 8));
    assert_int_equal(req.num_headers, WS_HEADERS_MAX);
}

/* A browser's many headers pass as they pass nginx: the ones the daemon
 * reads are kept whatever comes before them, in their order. */
static void test_many_other_headers(void **state)
{
    (void)state;
    struct ws_request req;
    static char buf[16384];
    const char *v;
    size_t vl;
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 3 * WS_HEADERS_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "Cookie-%d: v\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                          "Origin: http://a\r\nX-Chat-User: u1\r\nbad header\r\n\r\n");
    assert_int_equal(ws_handshake_parse(buf, n, &req), WS_HS_BAD); /* still checked */
    assert_false(req.too_large);
    n -= strlen("bad header\r\n\r\n");
    memcpy(buf + n, "x-chat-user: u2\r\n\r\n", strlen("x-chat-user: u2\r\n\r\n") + 1);
    n += strlen("x-chat-user: u2\r\n\r\n");
    assert_int_equal(ws_handshake_parse(buf, n, &req), (int)n);
    assert_int_equal(req.num_headers, WS_HEADERS_MAX);
    assert_int_equal(ws_header_get(&req, "Host", &v, &vl), 1);
    assert_int_equal(ws_header_get(&req, "Origin", &v, &vl), 1);
    assert_memory_equal(v, "http://a", vl);
    assert_int_equal(ws_header_get(&req, "X-Chat-User", &v, &vl), 2);
    assert_memory_equal(v, "u1", vl);
}

static void test_header_get(void **state)
{
    (void)state;
    struct ws_request req;
    const char *v = NULL;
    size_t vl = 0;
    parse_ok("GET / HTTP/1.1\r\nhOsT: a\r\nX-Y: 1\r\nx-y: 2\r\n\r\n", &req);
    assert_int_equal(ws_header_get(&req, "Host", &v, &vl), 1);
    assert_int_equal(vl, 1);
    assert_memory_equal(v, "a", 1);
    assert_int_equal(ws_header_get(&req, "X-Y", &v, &vl), 2);
    assert_memory_equal(v, "1", 1);
    assert_int_equal(ws_header_get(&req, "Origin", NULL, NULL), 0);
    assert_int_equal(ws_header_get(&req, "X-", NULL, NULL), 0);
}

static void test_token_list(void **state)
{
    (void)state;
    const char *l = "keep-alive, Upgrade";
    assert_true(ws_token_list_has(l, strlen(l), "upgrade"));
    assert_true(ws_token_list_has(l, strlen(l), "KEEP-ALIVE"));
    assert_false(ws_token_list_has(l, strlen(l), "keep"));
    l = " ,websocket ,, h2c\t";
    assert_true(ws_token_list_has(l, strlen(l), "websocket"));
    assert_true(ws_token_list_has(l, strlen(l), "h2c"));
    l = "websockets, upgrade-x";
    assert_false(ws_token_list_has(l, strlen(l), "websocket"));
    assert_false(ws_token_list_has(l, strlen(l), "upgrade"));
    assert_false(ws_token_list_has("", 0, "upgrade"));
}

static void test_accept_key(void **state)
{
    (void)state;
    char out[WS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    ws_accept_key(key, strlen(key), out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_accept_response(void **state)
{
    (void)state;
    char out[256];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    int n = ws_handshake_accept(out, sizeof(out), key, strlen(key));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    assert_string_equal(out, "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                             "\r\n");
    assert_null(strstr(out, "Extensions"));
    assert_int_equal(ws_handshake_accept(out, (size_t)n, key, strlen(key)), -1);
    assert_int_equal(ws_handshake_accept(out, (size_t)n + 1, key, strlen(key)), n);
}

static void test_http_response(void **state)
{
    (void)state;
    char out[512];
    int n = ws_http_response(out, sizeof(out), 426, NULL, "Sec-WebSocket-Version: 13", NULL,
                             "bad version\n", 12);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "HTTP/1.1 426 Upgrade Required\r\n"
                             "Sec-WebSocket-Version: 13\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Length: 12\r\n"
                             "Cache-Control: no-store\r\n"
                             "Connection: close\r\n"
                             "\r\n"
                             "bad version\n");
    n = ws_http_response(out, sizeof(out), 200, "OK", NULL, "application/json", "{}", 2);
    out[n] = '\0';
    assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(out, "\r\n\r\n{}"));
    /* exactly fitting (no NUL needed after the body) and one byte short */
    int full = n;
    assert_int_equal(
        ws_http_response(out, (size_t)full, 200, "OK", NULL, "application/json", "{}", 2), full);
    assert_int_equal(
        ws_http_response(out, (size_t)full - 1, 200, "OK", NULL, "application/json", "{}", 2), -1);
    assert_string_equal(chat_http_reason(403), "Forbidden");
    assert_string_equal(chat_http_reason(431), "Request Header Fields Too Large");
}

static void test_check_browser(void **state)
{
    (void)state;
    struct ws_hs_result res;
    assert_int_equal(check(browser_req, NULL, &res), WS_HS_UPGRADE);
    assert_int_equal(res.key_len, 24);
    assert_memory_equal(res.key, "dGhlIHNhbXBsZSBub25jZQ==", 24);
}

static void test_check_not_upgrade(void **state)
{
    (void)state;
    struct ws_hs_result res;
    assert_int_equal(check("GET /health HTTP/1.1\r\nHost: x\r\n\r\n", NULL, &res),
                     WS_HS_NOT_UPGRADE);
    assert_int_equal(check("GET /health HTTP/1.0\r\n\r\n", NULL, &res), WS_HS_NOT_UPGRADE);
    assert_int_equal(check("POST /x HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", NULL, &res),
                     WS_HS_NOT_UPGRADE);
}

static void expect_reject(const char *req, const char *allowed, int status)
{
    struct ws_hs_result res;
    int v = check(req, allowed, &res);
    if (v != WS_HS_REJECT || res.status != status)
        fail_msg("want %d, got verdict %d status %d for:\n%s", status, v, res.status, req);
    assert_non_null(res.reason);
}

static void expect_upgrade(const char *req, const char *allowed)
{
    struct ws_hs_result res;
    int v = check(req, allowed, &res);
    if (v != WS_HS_UPGRADE)
        fail_msg("want upgrade, got verdict %d status %d (%s) for:\n%s", v, res.status,
                 res.reason ? res.reason : "", req);
}

static void test_check_400(void **state)
{
    (void)state;
    expect_reject("POST /chat/ws HTTP/1.1\r\n" STD_LINES STD_KEY "\r\n", NULL, 400);
    expect_reject("get /chat/ws HTTP/1.1\r\n" STD_LINES STD_KEY "\r\n", NULL, 400);
    expect_reject("GET /chat/ws HTTP/1.0\r\n" STD_LINES STD_KEY "\r\n", NULL, 400);
    /* Connection without upgrade */
    expect_reject(upgrade_with("Host: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
                               "Sec-WebSocket-Version: 13\r\n" STD_KEY),
                  NULL, 400);
    expect_reject(upgrade_with("Host: h\r\nUpgrade: websocket\r\n"
                               "Sec-WebSocket-Version: 13\r\n" STD_KEY),
                  NULL, 400);
    /* Host missing or twice */
    expect_reject(upgrade_with("Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Version: 13\r\n" STD_KEY),
                  NULL, 400);
    expect_reject(upgrade_with("Host: a\r\n" STD_LINES STD_KEY), NULL, 400);
    /* keys */
    static const char *keys[] = {
        "",
        "Sec-WebSocket-Key: \r\n",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n", /* no padding */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg=\r\n", /* 17 bytes */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j\r\n",     /* 15 bytes */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ*==\r\n",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZ SBub25jZQ==\r\n",
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" STD_KEY), /* twice */
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char lines[512];
        snprintf(lines, sizeof(lines), STD_LINES "%s", keys[i]);
        expect_reject(upgrade_with(lines), NULL, 400);
    }
}

static void test_check_426(void **state)
{
    (void)state;
    static const char *versions[] = {
        "",
        "Sec-WebSocket-Version: 8\r\n",
        "Sec-WebSocket-Version: 13, 8\r\n",
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n",
        "Sec-WebSocket-Version: 130\r\n",
    };
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        char lines[512];
        struct ws_hs_result res;
        snprintf(lines, sizeof(lines),
                 "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s" STD_KEY, versions[i]);
        assert_int_equal(check(upgrade_with(lines), NULL, &res), WS_HS_REJECT);
        assert_int_equal(res.status, 426);
        assert_string_equal(res.extra_header, "Sec-WebSocket-Version: 13");
    }
}

static void test_check_case_and_lists(void **state)
{
    (void)state;
    expect_upgrade(
        upgrade_with("host: h\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
                     "sec-websocket-version: 13\r\n"
                     "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
        NULL);
    /* a second Connection field carries the token */
    expect_upgrade(upgrade_with("Host: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
                                "Connection: upgrade\r\nSec-WebSocket-Version: 13\r\n" STD_KEY),
                   NULL);
    /* extensions offered are ignored, not refused */
    expect_upgrade(
        upgrade_with(STD_LINES STD_KEY "Sec-WebSocket-Extensions: permessage-deflate\r\n"), NULL);
}

static void test_check_origin(void **state)
{
    (void)state;
    const char *list = "https://app.example.org  http://localhost:8080";
    /* no Origin: not a browser, accepted */
    expect_upgrade(upgrade_with(STD_LINES STD_KEY), NULL);
    /* same origin, with default ports either way */
    expect_upgrade(upgrade_with(STD_LINES STD_KEY "Origin: https://chat.example.com\r\n"), NULL);
    expect_upgrade(upgrade_with(STD_LINES STD_KEY "Origin: http://Chat.Example.com\r\n"), NULL);
    expect_upgrade(upgrade_with(STD_LINES STD_KEY "Origin: https://chat.example.com:443\r\n"),
                   NULL);
    expect_upgrade(upgrade_with("Host: chat.example.com:8443\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" STD_KEY
                                "Origin: https://chat.example.com:8443\r\n"),
                   NULL);
    expect_upgrade(upgrade_with("Host: chat.example.com:443\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" STD_KEY
                                "Origin: https://chat.example.com\r\n"),
                   NULL);
    expect_upgrade(upgrade_with("Host: [::1]:8080\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" STD_KEY
                                "Origin: http://[::1]:8080\r\n"),
                   NULL);
    /* cross origin */
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: https://evil.example.net\r\n"), NULL,
                  403);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: https://chat.example.com:8443\r\n"), NULL,
                  403);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: http://chat.example.com:443\r\n"), NULL,
                  403);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: https://chat.example.com.evil\r\n"), NULL,
                  403);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: chat.example.com\r\n"), NULL, 403);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: https://x@chat.example.com\r\n"), NULL,
                  403);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: https://chat.example.com\r\n"
                                                 "Origin: https://chat.example.com\r\n"),
                  NULL, 403);
    /* allowed by the list: whole entries (scheme and host without case) */
    expect_upgrade(upgrade_with(STD_LINES STD_KEY "Origin: https://app.example.org\r\n"), list);
    expect_upgrade(upgrade_with(STD_LINES STD_KEY "Origin: http://localhost:8080\r\n"), list);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: https://app.example\r\n"), list, 403);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: http://localhost\r\n"), list, 403);
    expect_upgrade(upgrade_with(STD_LINES STD_KEY "Origin: https://APP.example.org\r\n"), list);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: https://evil.example.net\r\n"), list,
                  403);
    /* "null" never: any sandboxed frame of any site sends it */
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: null\r\n"), NULL, 403);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: null\r\n"), list, 403);
    expect_reject(upgrade_with(STD_LINES STD_KEY "Origin: null\r\n"), "https://a.b null", 403);
    expect_reject(upgrade_with("Host: null\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Version: 13\r\n" STD_KEY "Origin: null\r\n"),
                  NULL, 403);
}

static void test_query_param(void **state)
{
    (void)state;
    char out[16];
    const char *t = "/chat/ws?x=1&name=b%C3%B6b+j&empty=&flag&name=second";
    size_t tl = strlen(t);
    assert_int_equal(ws_query_param(t, tl, "name", out, sizeof(out)), 6);
    assert_string_equal(out, "b\xc3\xb6"
                             "b j");
    assert_int_equal(ws_query_param(t, tl, "x", out, sizeof(out)), 1);
    assert_string_equal(out, "1");
    assert_int_equal(ws_query_param(t, tl, "empty", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(ws_query_param(t, tl, "flag", out, sizeof(out)), 0);
    assert_int_equal(ws_query_param(t, tl, "nam", out, sizeof(out)), -2);
    assert_int_equal(ws_query_param(t, tl, "missing", out, sizeof(out)), -2);
    assert_int_equal(ws_query_param("/chat/ws", 8, "name", out, sizeof(out)), -2);
    /* the name is not looked for in the path */
    assert_int_equal(ws_query_param("/name=x", 7, "name", out, sizeof(out)), -2);
    /* bad escapes */
    static const char *bad[] = {"/?name=%", "/?name=a%4", "/?name=%zz", "/?name=%4g",
                                "/?name=a%00b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ws_query_param(bad[i], strlen(bad[i]), "name", out, sizeof(out)), -1);
    /* only the wanted parameter is decoded */
    assert_int_equal(ws_query_param("/?a=%&name=ok", 13, "name", out, sizeof(out)), 2);
    /* fits exactly / one too long */
    assert_int_equal(ws_query_param("/?n=123456789012345", 19, "n", out, sizeof(out)), 15);
    assert_int_equal(ws_query_param("/?n=1234567890123456", 20, "n", out, sizeof(out)), -1);
    assert_int_equal(ws_query_param("/?n=%41", 7, "n", out, sizeof(out)), 1);
    assert_string_equal(out, "A");
    /* a length-bounded target: bytes after target_len are not looked at */
    assert_int_equal(ws_query_param("/?n=abcdef", 6, "n", out, sizeof(out)), 2);
    assert_string_equal(out, "ab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_browser),      cmocka_unit_test(test_every_prefix_incomplete),
        cmocka_unit_test(test_byte_at_a_time),     cmocka_unit_test(test_parse_whitespace),
        cmocka_unit_test(test_parse_bad),          cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_many_other_headers), cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_header_get),         cmocka_unit_test(test_token_list),
        cmocka_unit_test(test_accept_key),         cmocka_unit_test(test_accept_response),
        cmocka_unit_test(test_http_response),      cmocka_unit_test(test_check_browser),
        cmocka_unit_test(test_check_not_upgrade),  cmocka_unit_test(test_check_400),
        cmocka_unit_test(test_check_426),          cmocka_unit_test(test_check_case_and_lists),
        cmocka_unit_test(test_check_origin),       cmocka_unit_test(test_query_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
