/* ws_handshake: HTTP/1.x request-head parser, the RFC 6455 section 4.2
 * opening-handshake checks with our Origin policy, and the few responses
 * the WebSocket daemon writes itself (101, errors, /health). Everything
 * works on (ptr, len) in caller-owned buffers; nothing allocates. */
#include "ws_handshake.h"

#include "chat_http.h"
#include "chat_origin.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Internal results of the parse steps. */
enum { P_OK = 0, P_NEED = 1, P_BAD = 2 };

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field-value octets: VCHAR, obs-text, SP, HTAB. */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool eq_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* Expects buf[pos] == CR, buf[pos + 1] == LF. */
static int parse_crlf(const char *buf, size_t lim, size_t *pos)
{
    if (*pos == lim)
        return P_NEED;
    if (buf[*pos] != '\r')
        return P_BAD;
    if (*pos + 1 == lim)
        return P_NEED;
    if (buf[*pos + 1] != '\n')
        return P_BAD;
    *pos += 2;
    return P_OK;
}

/* method SP request-target SP "HTTP/1." DIGIT CRLF */
static int parse_request_line(const char *buf, size_t lim, size_t *pos, struct ws_request *req)
{
    static const char proto[] = "HTTP/1.";
    size_t p = *pos;
    size_t start = p;

    while (p < lim && is_tchar((unsigned char)buf[p]))
        p++;
    if (p == lim)
        return P_NEED;
    if (p == start || buf[p] != ' ')
        return P_BAD;
    req->method = buf + start;
    req->method_len = p - start;
    start = ++p;
    while (p < lim && (unsigned char)buf[p] > 0x20 && (unsigned char)buf[p] < 0x7f)
        p++;
    if (p == lim)
        return P_NEED;
    if (p == start || buf[p] != ' ')
        return P_BAD;
    req->target = buf + start;
    req->target_len = p - start;
    p++;
    for (size_t i = 0; i < sizeof(proto) - 1; i++, p++) {
        if (p == lim)
            return P_NEED;
        if (buf[p] != proto[i])
            return P_BAD;
    }
    if (p == lim)
        return P_NEED;
    if (buf[p] < '0' || buf[p] > '9')
        return P_BAD;
    req->minor_version = buf[p] - '0';
    p++;
    int rc = parse_crlf(buf, lim, &p);
    if (rc == P_OK)
        *pos = p;
    return rc;
}

/* One "name: value" CRLF line. */
static int parse_header(const char *buf, size_t lim, size_t *pos, struct ws_header *h)
{
    size_t p = *pos;
    size_t start = p;

    while (p < lim && is_tchar((unsigned char)buf[p]))
        p++;
    if (p == lim)
        return P_NEED;
    if (p == start || buf[p] != ':') /* also refuses obs-fold: no name */
        return P_BAD;
    h->name = buf + start;
    h->name_len = p - start;
    p++;
    while (p < lim && (buf[p] == ' ' || buf[p] == '\t'))
        p++;
    start = p;
    while (p < lim && is_value_char((unsigned char)buf[p]))
        p++;
    size_t end = p;
    while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t'))
        end--;
    h->value = buf + start;
    h->value_len = end - start;
    int rc = parse_crlf(buf, lim, &p);
    if (rc == P_OK)
        *pos = p;
    return rc;
}

/* A field the daemon reads: the upgrade's own and nginx's X-Chat-*. */
static bool header_used(const struct ws_header *h)
{
    static const char *const used[] = {
        "Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Origin", "Sec-WebSocket-Version"};

    if (h->name_len >= 7 && eq_nocase(h->name, 7, "X-Chat-", 7))
        return true;
    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++)
        if (eq_nocase(h->name, h->name_len, used[i], strlen(used[i])))
            return true;
    return false;
}

/* Keeps h: in a free slot, else in place of a field nobody reads (the
 * fields kept stay in their order). false when every slot holds a used
 * field. */
static bool keep_header(struct ws_request *req, const struct ws_header *h)
{
    if (req->num_headers < WS_HEADERS_MAX) {
        req->headers[req->num_headers++] = *h;
        return true;
    }
    if (!header_used(h))
        return true; /* parsed and checked, not kept */
    for (size_t i = 0; i < req->num_headers; i++) {
        if (!header_used(&req->headers[i])) {
            memmove(&req->headers[i], &req->headers[i + 1],
                    (req->num_headers - i - 1) * sizeof(req->headers[0]));
            req->headers[req->num_headers - 1] = *h;
            return true;
        }
    }
    return false;
}

/* Every field is parsed and checked; past WS_HEADERS_MAX fields only the
 * ones the daemon reads are kept (a browser's many cookies and headers
 * pass, as they pass nginx). */
static int parse_headers(const char *buf, size_t lim, size_t *pos, struct ws_request *req)
{
    for (;;) {
        struct ws_header h;
        if (*pos == lim)
            return P_NEED;
        if (buf[*pos] == '\r')
            return parse_crlf(buf, lim, pos);
        int rc = parse_header(buf, lim, pos, &h);
        if (rc != P_OK)
            return rc;
        if (!keep_header(req, &h)) {
            req->too_large = true;
            return P_BAD;
        }
    }
}

int ws_handshake_parse(const char *buf, size_t len, struct ws_request *req)
{
    size_t lim = len < WS_HANDSHAKE_MAX ? len : WS_HANDSHAKE_MAX;
    size_t pos = 0;

    req->method = req->target = NULL;
    req->method_len = req->target_len = 0;
    req->minor_version = 0;
    req->too_large = false;
    req->num_headers = 0;

    int rc = parse_request_line(buf, lim, &pos, req);
    if (rc == P_OK)
        rc = parse_headers(buf, lim, &pos, req);
    if (rc == P_BAD)
        return WS_HS_BAD;
    if (rc == P_NEED) {
        if (len >= WS_HANDSHAKE_MAX) {
            req->too_large = true;
            return WS_HS_BAD;
        }
        return WS_HS_INCOMPLETE;
    }
    return (int)pos;
}

size_t ws_header_get(const struct ws_request *req, const char *name, const char **value,
                     size_t *value_len)
{
    size_t nlen = strlen(name);
    size_t count = 0;

    for (size_t i = 0; i < req->num_headers; i++) {
        const struct ws_header *h = &req->headers[i];
        if (!eq_nocase(h->name, h->name_len, name, nlen))
            continue;
        if (count++ == 0) {
            if (value)
                *value = h->value;
            if (value_len)
                *value_len = h->value_len;
        }
    }
    return count;
}

bool ws_token_list_has(const char *val, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;

    while (i < len) {
        while (i < len && (val[i] == ' ' || val[i] == '\t' || val[i] == ','))
            i++;
        size_t start = i;
        while (i < len && val[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (val[end - 1] == ' ' || val[end - 1] == '\t'))
            end--;
        if (end > start && eq_nocase(val + start, end - start, token, tlen))
            return true;
    }
    return false;
}

/* Does any field called name list token? */
static bool header_has_token(const struct ws_request *req, const char *name, const char *token)
{
    size_t nlen = strlen(name);

    for (size_t i = 0; i < req->num_headers; i++) {
        const struct ws_header *h = &req->headers[i];
        if (eq_nocase(h->name, h->name_len, name, nlen) &&
            ws_token_list_has(h->value, h->value_len, token))
            return true;
    }
    return false;
}

static bool is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* base64 of exactly 16 bytes: 22 alphabet characters and "==". */
static bool key_valid(const char *k, size_t n)
{
    if (n != WS_KEY_LEN)
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64((unsigned char)k[i]))
            return false;
    return k[22] == '=' && k[23] == '=';
}

static int reject(struct ws_hs_result *res, int status, const char *reason)
{
    res->status = status;
    res->reason = reason;
    return WS_HS_REJECT;
}

int ws_handshake_check(const struct ws_request *req, const char *allowed, size_t allowed_len,
                       struct ws_hs_result *res)
{
    const char *host, *ver, *key, *origin;
    size_t host_len, ver_len, key_len, origin_len;

    memset(res, 0, sizeof(*res));
    if (!header_has_token(req, "Upgrade", "websocket"))
        return WS_HS_NOT_UPGRADE;
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
        return reject(res, 400, "WebSocket upgrade must be a GET");
    if (req->minor_version < 1)
        return reject(res, 400, "WebSocket upgrade needs HTTP/1.1");
    if (ws_header_get(req, "Host", &host, &host_len) != 1)
        return reject(res, 400, "missing or repeated Host");
    if (!header_has_token(req, "Connection", "upgrade"))
        return reject(res, 400, "Connection does not list upgrade");
    if (ws_header_get(req, "Sec-WebSocket-Version", &ver, &ver_len) != 1 || ver_len != 2 ||
        memcmp(ver, "13", 2) != 0) {
        res->extra_header = "Sec-WebSocket-Version: 13";
        return reject(res, 426, "unsupported Sec-WebSocket-Version");
    }
    if (ws_header_get(req, "Sec-WebSocket-Key", &key, &key_len) != 1 || !key_valid(key, key_len))
        return reject(res, 400, "missing or bad Sec-WebSocket-Key");

    /* what nginx says the site is (chat-proxy.conf); the scheme only
     * through nginx, so a daemon reached without it checks host and port */
    struct chat_site site = {
        .host = host, .host_len = host_len, .allowed = allowed, .allowed_len = allowed_len};
    if (ws_header_get(req, "X-Chat-Scheme", &site.scheme, &site.scheme_len) != 1)
        site.scheme = NULL;
    if (ws_header_get(req, "X-Chat-Server-Name", &site.server_name, &site.server_name_len) != 1)
        site.server_name = NULL;
    if (ws_header_get(req, "X-Chat-Server-Addr", &site.server_addr, &site.server_addr_len) != 1)
        site.server_addr = NULL;
    size_t norigin = ws_header_get(req, "Origin", &origin, &origin_len);
    if (norigin > 1)
        return reject(res, 403, "repeated Origin");
    if (norigin == 1 && !chat_origin_allowed(origin, origin_len, &site))
        return reject(res, 403, "cross-origin request not allowed");
    res->key = key;
    res->key_len = key_len;
    return WS_HS_UPGRADE;
}

int ws_query_param(const char *target, size_t target_len, const char *name, char *out,
                   size_t out_size)
{
    const char *q = memchr(target, '?', target_len);

    if (q == NULL)
        return -2;
    const char *end = target + target_len;
    const char *hash = memchr(q, '#', (size_t)(end - q));
    if (hash)
        end = hash;
    int n = chat_query_get(q + 1, (size_t)(end - q - 1), name, out, out_size);
    return n == CHAT_QUERY_ABSENT ? -2 : n == CHAT_QUERY_BAD ? -1 : n;
}

void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    struct sha1_ctx ctx;
    uint8_t digest[SHA1_DIGEST_SIZE];

    sha1_init(&ctx);
    sha1_update(&ctx, key_len, (const uint8_t *)key);
    sha1_update(&ctx, sizeof(WS_GUID) - 1, (const uint8_t *)WS_GUID);
    sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
    base64_encode_raw(out, SHA1_DIGEST_SIZE, digest);
    out[WS_ACCEPT_LEN] = '\0';
}

int ws_handshake_accept(char *out, size_t out_size, const char *key, size_t key_len)
{
    char accept[WS_ACCEPT_LEN + 1];

    ws_accept_key(key, key_len, accept);
    int n = snprintf(out, out_size,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "\r\n",
                     accept);
    if (n < 0 || (size_t)n >= out_size)
        return -1;
    return n;
}

int ws_http_response(char *out, size_t out_size, int status, const char *reason,
                     const char *extra_header, const char *content_type, const char *body,
                     size_t body_len)
{
    if (status < 100 || status > 999 || out_size > INT_MAX)
        return -1;
    int n = snprintf(out, out_size,
                     "HTTP/1.1 %d %s\r\n"
                     "%s%s"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "Connection: close\r\n"
                     "\r\n",
                     status, reason ? reason : chat_http_reason(status),
                     extra_header ? extra_header : "", extra_header ? "\r\n" : "",
                     content_type ? content_type : "text/plain; charset=utf-8", body_len);
    if (n < 0 || (size_t)n >= out_size || body_len > out_size - (size_t)n)
        return -1;
    if (body_len > 0)
        memcpy(out + n, body, body_len);
    return n + (int)body_len;
}
