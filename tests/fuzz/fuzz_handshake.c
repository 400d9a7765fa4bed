/* libFuzzer target for ws_handshake. The input is a request head (and
 * whatever follows it). It is parsed whole and as growing prefixes cut at
 * random points, each in an exact-size copy so that any read past len is
 * caught: a prefix shorter than a complete head must be incomplete, a bad
 * head must stay bad once seen. Then every helper runs on what was parsed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse_copy(const uint8_t *data, size_t len, struct ws_request *req)
{
    char *buf = malloc(len ? len : 1);
    if (buf == NULL)
        abort();
    memcpy(buf, data, len);
    int n = ws_handshake_parse(buf, len, req);
    free(buf);
    return n;
}

static void use_request(const char *buf, size_t n, const struct ws_request *req)
{
    struct ws_hs_result res;
    const char *allowed = NULL;
    size_t allowed_len = 0;
    char out[1024];

    if (req->num_headers > WS_HEADERS_MAX || req->target + req->target_len > buf + n)
        abort();
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct ws_header *h = &req->headers[i];
        if (h->name_len == 0 || h->value + h->value_len > buf + n)
            abort();
    }
    ws_header_get(req, "X-Chat-Origins", &allowed, &allowed_len);
    int v = ws_handshake_check(req, allowed, allowed_len, &res);
    if (v == WS_HS_UPGRADE) {
        if (res.key_len != WS_KEY_LEN)
            abort();
        if (ws_handshake_accept(out, sizeof(out), res.key, res.key_len) <= 0)
            abort();
    } else if (v == WS_HS_REJECT) {
        if (res.status != 400 && res.status != 403 && res.status != 426)
            abort();
        if (ws_http_response(out, sizeof(out), res.status, NULL, res.extra_header, NULL, res.reason,
                             strlen(res.reason)) <= 0)
            abort();
    } else if (v != WS_HS_NOT_UPGRADE) {
        abort();
    }
    char small[8];
    int q = ws_query_param(req->target, req->target_len, "name", out, sizeof(out));
    if (q < -2 || (q >= 0 && (size_t)q != strlen(out)))
        abort();
    q = ws_query_param(req->target, req->target_len, "name", small, sizeof(small));
    if (q >= (int)sizeof(small))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_request req;
    int whole = parse_copy(data, size, &req);

    if (whole > 0 && ((size_t)whole > size || whole > WS_HANDSHAKE_MAX))
        abort();
    if (whole != WS_HS_BAD && req.too_large)
        abort();

    /* prefixes at pseudo-random cuts, growing like a socket buffer */
    uint32_t s = size > 0 ? data[size - 1] + 1u : 1u;
    size_t have = 0;
    int seen_bad = 0;
    while (have < size) {
        s = s * 1103515245u + 12345u;
        have += (s >> 8) % 64 + 1;
        if (have > size)
            have = size;
        int n = parse_copy(data, have, &req);
        if (whole > 0 && have < (size_t)whole && n != WS_HS_INCOMPLETE)
            abort();
        if (whole > 0 && have >= (size_t)whole && n != whole)
            abort();
        if (seen_bad && n != WS_HS_BAD)
            abort();
        if (n == WS_HS_BAD)
            seen_bad = 1;
        if (whole == WS_HS_INCOMPLETE && n != WS_HS_INCOMPLETE)
            abort();
    }
    if (whole > 0) {
        char *buf = malloc(size);
        if (buf == NULL)
            abort();
        memcpy(buf, data, size);
        if (ws_handshake_parse(buf, size, &req) != whole)
            abort();
        use_request(buf, (size_t)whole, &req);
        free(buf);
    }
    return 0;
}
