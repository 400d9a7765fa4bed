/* chat_proto: the events of docs/protocol.md as bytes. Decodes client requests
 * (a WebSocket text message or an HTTP body) with jansson, validating every
 * field, and encodes every server event as compact JSON with a fixed key
 * order ("op" first, "ref" last). Message events ("op":"msg") are not
 * encoded here: PostgreSQL renders them once (sql/, chat_msg_json and chat_row_json) and the
 * daemons pass those bytes through. */
#ifndef CHAT_PROTO_H
#define CHAT_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAT_REF_MAX 128 /* bytes of a string ref */
#define CHAT_HISTORY_DEFAULT 50
#define CHAT_HISTORY_MAX 200

enum chat_err {
    CHAT_OK = 0,
    CHAT_E_BAD_JSON,     /* 400 "bad_json": not JSON, or not an object */
    CHAT_E_BAD_REQUEST,  /* 400 "bad_request": missing/invalid field */
    CHAT_E_UNKNOWN_OP,   /* 400 "unknown_op" */
    CHAT_E_UNAUTHORIZED, /* 401 "unauthorized": guests off and no user */
    CHAT_E_FORBIDDEN,    /* 403 "forbidden" */
    CHAT_E_TOO_LARGE,    /* 413 "too_large" */
    CHAT_E_RATE_LIMITED, /* 429 "rate_limited" */
    CHAT_E_UNAVAILABLE,  /* 503 "unavailable": database down, nothing stored */
    CHAT_E_NERR
};

const char *chat_err_name(enum chat_err e); /* "bad_json", ...; "ok" for 0 */
int chat_err_http_status(enum chat_err e);  /* 400, 401, 403, 413, 429, 503; 200 for 0 */

enum chat_op {
    CHAT_OP_NONE = 0,
    CHAT_OP_JOIN,
    CHAT_OP_LEAVE,
    CHAT_OP_SEND,
    CHAT_OP_HISTORY,
    CHAT_OP_TYPING,
    CHAT_OP_MEMBERS,
    CHAT_OP_PING,
};

/* A borrowed string: points into the request's JSON tree; p == NULL when
 * the field is absent. Valid until chat_request_free(). */
struct chat_str {
    const char *p;
    size_t len;
};

struct chat_request {
    enum chat_op op;
    json_t *root;         /* owned */
    json_t *ref;          /* borrowed from root; NULL when absent */
    struct chat_str room; /* join leave send history typing members: valid room */
    struct chat_str text; /* send: checked against max_text */
    struct chat_str cid;  /* send: optional, valid cid */
    struct chat_str name; /* send: optional guest name (HTTP); not validated here */
    int64_t since;        /* join: -1 when absent ("the last 50") */
    int64_t before;       /* history: 0 when absent ("latest") */
    int limit;            /* history: 1..CHAT_HISTORY_MAX, default 50 */
};

/* Parses and validates one request. want_op: CHAT_OP_NONE for WebSocket
 * (the "op" field decides), or the op an HTTP endpoint implies (then "op"
 * may be absent; if present it must match). max_text: the policy's limit.
 * Returns CHAT_OK, or an error with *why set to a static human-readable
 * message; on error r->ref is still set when the request had a valid ref,
 * so the error reply can echo it. Always call chat_request_free(). */
enum chat_err chat_request_parse(struct chat_request *r, const char *buf, size_t len,
                                 enum chat_op want_op, size_t max_text, const char **why);
void chat_request_free(struct chat_request *r);

/* Encoders. Each returns a new malloc'd, NUL-terminated compact JSON text
 * and its length in *len, or NULL when out of memory. ref may be NULL
 * (then no "ref" key). Names are NUL-terminated and already valid. */
char *chat_encode_hello(const char *user, int heartbeat, size_t *len);
char *chat_encode_joined(const char *room, int64_t seq, const char *const *members, size_t n,
                         size_t count, const json_t *ref, size_t *len);
char *chat_encode_left(const char *room, const json_t *ref, size_t *len);
char *chat_encode_ack(const char *room, const char *cid, int64_t seq, const char *ts,
                      const json_t *ref, size_t *len); /* cid NULL: no "cid" */
/* msgs: n message event texts (as rendered by chat_row_json), ascending. */
char *chat_encode_history(const char *room, const struct chat_str *msgs, size_t n,
                          const json_t *ref, size_t *len);
/* The long-poll answer: {"events":[events],"cursor":"room:N,...",
 * "members":members}. events: event objects joined by ","; cursor: one
 * room:seq per room polled, in the poll's order; members: a JSON object
 * (NULL: left out). */
char *chat_encode_poll(const char *events, size_t events_len, const char *const *rooms,
                       const int64_t *cursors, size_t n, const char *members, size_t *len);
char *chat_encode_typing(const char *room, const char *user, size_t *len);
/* {"op":"reset","room":R,"seq":N}: the room's history past N is not what
 * was delivered (the database went back in time): drop what is shown past
 * N and continue from N (docs/protocol.md). */
char *chat_encode_reset(const char *room, int64_t seq, size_t *len);
char *chat_encode_members(const char *room, const char *const *members, size_t n, size_t count,
                          const json_t *ref, size_t *len);
char *chat_encode_pong(const json_t *ref, size_t *len);
/* online/offline NULL: the key is left out (more than 50 changes). */
char *chat_encode_presence(const char *room, const char *const *online, size_t n_on,
                           const char *const *offline, size_t n_off, size_t count, size_t *len);
/* message: human-readable; NULL uses a default for the code. */
char *chat_encode_error(enum chat_err code, const char *message, const json_t *ref, size_t *len);

#endif
