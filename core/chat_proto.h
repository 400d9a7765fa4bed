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

#include "chat_policy.h"

#define CHAT_REF_MAX 128 /* bytes of a string ref */
#define CHAT_HISTORY_DEFAULT 50
#define CHAT_HISTORY_MAX 200
#define CHAT_SEARCH_MAX 100   /* messages per search page (chat_search's own cap) */
#define CHAT_SEARCH_Q_MAX 256 /* bytes of a search query */

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
    CHAT_E_NOT_FOUND,    /* 404 "not_found": no such message (or not changeable) */
    CHAT_E_TOO_LATE,     /* 403 "too_late": the author's edit window has passed */
    CHAT_E_BANNED,       /* 403 "banned": with until and reason (chat_encode_banned) */
    CHAT_E_NERR
};

const char *chat_err_name(enum chat_err e); /* "bad_json", ...; "ok" for 0 */
int chat_err_http_status(enum chat_err e);  /* 400, 401, 403, 404, 413, 429, 503; 200 for 0 */

enum chat_op {
    CHAT_OP_NONE = 0,
    CHAT_OP_JOIN,
    CHAT_OP_LEAVE,
    CHAT_OP_SEND,
    CHAT_OP_HISTORY,
    CHAT_OP_TYPING,
    CHAT_OP_MEMBERS,
    CHAT_OP_PING,
    CHAT_OP_EDIT,   /* room, seq, text, cid (optional) */
    CHAT_OP_DELETE, /* room, seq, cid (optional) */
    CHAT_OP_BAN,    /* moderators: user and/or addr, for (s, optional), reason */
    CHAT_OP_UNBAN,  /* moderators: id */
    CHAT_OP_BANS,   /* moderators: the active bans */
    CHAT_OP_SEARCH, /* room, q, before, limit (1..CHAT_SEARCH_MAX) */
};

/* A borrowed string: points into the request's JSON tree; p == NULL when
 * the field is absent. Valid until chat_request_free(). */
struct chat_str {
    const char *p;
    size_t len;
};

struct chat_request {
    enum chat_op op;
    json_t *root;                    /* owned */
    json_t *ref;                     /* borrowed from root; NULL when absent */
    struct chat_str room;            /* join leave send history typing members: valid room */
    char key[CHAT_ROOM_KEY_MAX + 1]; /* with room: its key in the location's namespace */
    struct chat_str text;            /* send edit: checked against max_text */
    struct chat_str cid;             /* send edit delete: optional, valid cid */
    struct chat_str name;            /* send: optional guest name (HTTP); not validated here */
    int64_t since;                   /* join: -1 when absent ("the last 50") */
    int64_t before;                  /* history: 0 when absent ("latest") */
    int64_t seq;            /* edit delete: the message changed, >= 1; unban: the ban's id */
    struct chat_str user;   /* ban: "alice" or "~guest"; optional when addr */
    struct chat_str addr;   /* ban: "192.0.2.7", "198.51.100.0/24", "2001:db8::/32" */
    struct chat_str reason; /* ban: up to 1000 bytes, may be empty */
    int64_t ban_for;        /* ban: seconds, 0 = until lifted */
    struct chat_str q;      /* search: 1..CHAT_SEARCH_Q_MAX bytes of text */
    int limit;              /* history: 1..CHAT_HISTORY_MAX, default 50 */
};

/* Parses and validates one request. want_op: CHAT_OP_NONE for WebSocket
 * (the "op" field decides), or the op an HTTP endpoint implies (then "op"
 * may be absent; if present it must match). max_text: the policy's limit.
 * Returns CHAT_OK, or an error with *why set to a static human-readable
 * message; on error r->ref is still set when the request had a valid ref,
 * so the error reply can echo it. Always call chat_request_free(). */
enum chat_err chat_request_parse(struct chat_request *r, const char *buf, size_t len,
                                 enum chat_op want_op, size_t max_text, const char *ns,
                                 const char **why);
void chat_request_free(struct chat_request *r);

/* Encoders. Each returns a new malloc'd, NUL-terminated compact JSON text
 * and its length in *len, or NULL when out of memory. ref may be NULL
 * (then no "ref" key). Names are NUL-terminated and already valid. A room
 * is given as its key (chat_ns.h); the text has the room as clients know
 * it. */
char *chat_encode_hello(const char *user, int heartbeat, size_t *len);
/* hello with "role":"moderator" when moderator (the page shows its controls;
 * the daemon, not the page, decides what a moderator may do). */
char *chat_encode_hello_role(const char *user, int heartbeat, bool moderator, size_t *len);
/* The location's policy as the client needs it to follow it (docs/protocol.md,
 * "What the client is told"): {"max_text":N,"readonly":B,"rooms":"…",
 * "first_room":"…"}. Appended to hello, to the long-poll answers and to the
 * event stream's ready event, so every transport tells the same. */
char *chat_encode_policy(const struct chat_policy *p, size_t *len);
/* hello with the role and "policy" of p: what chat-ws says first. */
char *chat_encode_hello_policy(const char *user, int heartbeat, const struct chat_policy *p,
                               size_t *len);
char *chat_encode_joined(const char *room, int64_t seq, const char *const *members, size_t n,
                         size_t count, const json_t *ref, size_t *len);
/* joined with "horizon":H before "ref" (H <= 0: as chat_encode_joined):
 * the client's since was below the room's horizon, older messages were
 * removed by retention (docs/moderation.md). */
char *chat_encode_joined_h(const char *room, int64_t seq, const char *const *members, size_t n,
                           size_t count, int64_t horizon, const json_t *ref, size_t *len);
char *chat_encode_left(const char *room, const json_t *ref, size_t *len);
char *chat_encode_ack(const char *room, const char *cid, int64_t seq, const char *ts,
                      const json_t *ref, size_t *len); /* cid NULL: no "cid" */
/* msgs: n message event texts (as rendered by chat_row_json), ascending. */
char *chat_encode_history(const char *room, const struct chat_str *msgs, size_t n,
                          const json_t *ref, size_t *len);
/* {"op":op,"room":…,"messages":[…],"horizon":H,"ref":…}: op "history" or
 * "search"; horizon < 0: no "horizon" key. */
char *chat_encode_page(const char *op, const char *room, const struct chat_str *msgs, size_t n,
                       int64_t horizon, const json_t *ref, size_t *len);
/* The long-poll answer: {"events":[events],"cursor":"room:N,...",
 * "members":members}. events: event objects joined by ","; cursor: one
 * room:seq per room polled, in the poll's order; members: a JSON object
 * (NULL: left out). */
char *chat_encode_poll(const char *events, size_t events_len, const char *const *rooms,
                       const int64_t *cursors, size_t n, const char *members, size_t *len);
/* As chat_encode_poll, with "horizon":{"room":H,...} for the rooms whose
 * horizons[i] > 0 (horizons NULL or all 0: no key). */
char *chat_encode_poll_h(const char *events, size_t events_len, const char *const *rooms,
                         const int64_t *cursors, const int64_t *horizons, size_t n,
                         const char *members, size_t *len);
/* As chat_encode_poll_h, followed by "user":user (NULL: left out) and
 * "policy":{…} of chat_encode_policy (NULL: left out): who the poller is
 * and what the location allows, in every answer that has them. */
char *chat_encode_poll_p(const char *events, size_t events_len, const char *const *rooms,
                         const int64_t *cursors, const int64_t *horizons, size_t n,
                         const char *members, const char *user, const struct chat_policy *p,
                         size_t *len);
/* The typing line for the bus (channel 'chat'): "ns\t" first when the
 * room's key has a namespace (chat_notify.h). */
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
/* {"op":"error","code":"banned","message":…,"until":…,"reason":…,"ref":…}:
 * until "" or NULL: until lifted (then no "until" key). */
char *chat_encode_banned(const char *until, const char *reason, const json_t *ref, size_t *len);
/* {"op":"ban","id":N}, {"op":"unban","id":N,"lifted":true|false},
 * {"op":"bans","bans":list} (list: a JSON array, spliced verbatim). */
char *chat_encode_ban(const char *op, int64_t id, int lifted, const json_t *ref, size_t *len);
char *chat_encode_bans(const char *list, size_t list_len, const json_t *ref, size_t *len);
/* message: human-readable; NULL uses a default for the code. */
char *chat_encode_error(enum chat_err code, const char *message, const json_t *ref, size_t *len);

#endif
