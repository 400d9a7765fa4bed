/* ws_handshake: the HTTP/1.x side of RFC 6455. Parses a request head
 * (picohttpparser-shaped: (buf, len) in, bytes consumed / incomplete / bad
 * out, no allocation), decides whether it is a valid WebSocket upgrade
 * under our Origin policy, and writes the 101 or a small error response.
 * No socket I/O: the connection code owns the bytes. */
#ifndef WS_HANDSHAKE_H
#define WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes of a request head, final CRLFCRLF included: what nginx lets
 * through with its default large_client_header_buffers (4 x 8k, the whole
 * head of the client) plus 16 KiB for the headers nginx adds (X-Chat-*),
 * so that nothing nginx passes is refused here (docs/nginx.md). */
#define WS_HANDSHAKE_MAX (48 * 1024)
#define WS_HEADERS_MAX 64 /* header fields kept per request (see ws_handshake_parse) */
#define WS_ACCEPT_LEN 28  /* base64 of a SHA-1 digest */
#define WS_KEY_LEN 24     /* base64 of 16 bytes */

enum {
    WS_HS_BAD = -1,        /* malformed, or over a limit (see too_large) */
    WS_HS_INCOMPLETE = -2, /* valid so far; call again with more bytes */
};

/* A header field: pointers into the parsed buffer, not NUL-terminated.
 * The value has leading and trailing spaces and tabs removed. */
struct ws_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Every pointer is borrowed from the buffer given to ws_handshake_parse and
 * is valid as long as that buffer is unchanged. */
struct ws_request {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as sent: path and query */
    size_t target_len;
    int minor_version; /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    bool too_large;    /* set with WS_HS_BAD when the head does not end within
                          WS_HANDSHAKE_MAX bytes or has more than
                          WS_HEADERS_MAX fields the daemon reads: answer
                          431, else 400 */
    size_t num_headers;
    struct ws_header headers[WS_HEADERS_MAX];
};

/* Parses the request head at the start of buf[0..len). Returns the number
 * of bytes of the head (through the empty line) when it is complete,
 * WS_HS_INCOMPLETE when every byte so far is valid but the head has not
 * ended, or WS_HS_BAD. Each call parses from the start; req is filled only
 * as far as parsing got. Lines must end with CRLF; obsolete line folding is
 * refused; only HTTP/1.x. A head of exactly WS_HANDSHAKE_MAX bytes is
 * accepted. The first WS_HEADERS_MAX fields are kept in headers[]; past
 * them a field the daemon reads (Host, Upgrade, Connection, Origin,
 * Sec-WebSocket-*, X-Chat-*) takes the place of the first other one, and
 * other fields are checked and dropped: only more than WS_HEADERS_MAX
 * fields the daemon reads is too_large. */
int ws_handshake_parse(const char *buf, size_t len, struct ws_request *req);

/* Case-insensitive lookup of header name (NUL-terminated). Returns how many
 * fields have that name (0: absent) and, when at least one, the first one's
 * value in *value / *value_len (either may be NULL). Borrowed from req. */
size_t ws_header_get(const struct ws_request *req, const char *name, const char **value,
                     size_t *value_len);

/* Case-insensitive: does the comma-separated list val[0..len) contain
 * token (NUL-terminated) as one of its elements? */
bool ws_token_list_has(const char *val, size_t len, const char *token);

enum ws_hs_verdict {
    WS_HS_UPGRADE = 0,     /* valid WebSocket upgrade: answer with
                              ws_handshake_accept(res->key, res->key_len) */
    WS_HS_NOT_UPGRADE = 1, /* a plain HTTP request (no "Upgrade: websocket"),
                              e.g. GET /health: the caller answers it */
    WS_HS_REJECT = 2,      /* refused: answer res->status, res->reason,
                              res->extra_header (may be NULL) and close */
};

struct ws_hs_result {
    int status;               /* WS_HS_REJECT: 400, 403 or 426 */
    const char *reason;       /* WS_HS_REJECT: static English text for the log
                                 and the response body */
    const char *extra_header; /* WS_HS_REJECT: static "Name: value" line
                                 without CRLF, or NULL */
    const char *key;          /* WS_HS_UPGRADE: Sec-WebSocket-Key, borrowed
                                 from the request buffer */
    size_t key_len;
};

/* Decides what req is. A valid upgrade is: GET, HTTP/1.1 or later, one
 * Host, an Upgrade list with "websocket", a Connection list with "upgrade"
 * (both case-insensitive), "Sec-WebSocket-Version: 13" (else 426 with
 * "Sec-WebSocket-Version: 13"), and one Sec-WebSocket-Key that is base64 of
 * exactly 16 bytes (else 400). Origin: absent is accepted; present, it is
 * accepted when the whole origin string is one of the space-separated
 * entries of allowed[0..allowed_len) (the X-Chat-Origins value nginx sets;
 * NULL for none), or when it is the site: its host and port equal the Host
 * header's (default ports by the origin's scheme) and, when nginx sent
 * X-Chat-Scheme, its scheme is that one and the Host's host is nginx's
 * X-Chat-Server-Name (or a "*.x"/".x" wildcard of it) or X-Chat-Server-Addr
 * (DNS rebinding brings a Host nobody configured). "null" is accepted only
 * when listed.
 * Otherwise 403. Sec-WebSocket-Extensions is ignored (no extension is
 * supported). Returns one of enum ws_hs_verdict and fills *res. */
int ws_handshake_check(const struct ws_request *req, const char *allowed, size_t allowed_len,
                       struct ws_hs_result *res);

/* Finds query parameter name (NUL-terminated, compared as sent) in the
 * request-target and percent-decodes its value ('+' is a space) into
 * out[0..out_size), NUL-terminated. Returns the decoded length, -1 when an
 * escape is malformed, decodes to NUL, or the value does not fit, or -2
 * when the parameter is absent. The first occurrence wins. */
int ws_query_param(const char *target, size_t target_len, const char *name, char *out,
                   size_t out_size);

/* out = base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")),
 * WS_ACCEPT_LEN characters and a NUL. */
void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* Writes the 101 Switching Protocols response for key into out. Returns
 * its length, or -1 when out_size is too small (160 bytes always do). */
int ws_handshake_accept(char *out, size_t out_size, const char *key, size_t key_len);

/* Writes a complete small HTTP/1.1 response with "Connection: close":
 * status line (reason NULL = the standard reason phrase), extra_header
 * ("Name: value" without CRLF, or NULL), Content-Type (NULL =
 * "text/plain; charset=utf-8"), Content-Length, Cache-Control: no-store,
 * and body[0..body_len). Returns its length, or -1 when it does not fit. */
int ws_http_response(char *out, size_t out_size, int status, const char *reason,
                     const char *extra_header, const char *content_type, const char *body,
                     size_t body_len);

#endif
