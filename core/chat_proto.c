/* chat_proto: client requests in (jansson tree, validated field by field)
 * and server events out. Encoders write the JSON text by hand through a
 * small growable buffer with a sticky out-of-memory flag, so the key order
 * is exactly docs/protocol.md's and message texts from PostgreSQL can be
 * spliced into "history" verbatim. */
#include "chat_proto.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_bans.h"
#include "chat_ns.h"
#include "chat_valid.h"

/* ---- errors ---------------------------------------------------------- */

static const struct {
    const char *name;
    int status;
    const char *message;
} err_info[CHAT_E_NERR] = {
    [CHAT_OK] = {"ok", 200, "ok"},
    [CHAT_E_BAD_JSON] = {"bad_json", 400, "request is not a JSON object"},
    [CHAT_E_BAD_REQUEST] = {"bad_request", 400, "missing or invalid field"},
    [CHAT_E_UNKNOWN_OP] = {"unknown_op", 400, "unknown op"},
    [CHAT_E_UNAUTHORIZED] = {"unauthorized", 401, "guests are not allowed here"},
    [CHAT_E_FORBIDDEN] = {"forbidden", 403, "not allowed"},
    [CHAT_E_TOO_LARGE] = {"too_large", 413, "too large"},
    [CHAT_E_RATE_LIMITED] = {"rate_limited", 429, "too many requests, slow down"},
    [CHAT_E_UNAVAILABLE] = {"unavailable", 503, "service unavailable, retry later"},
    [CHAT_E_NOT_FOUND] = {"not_found", 404, "no such message"},
    [CHAT_E_TOO_LATE] = {"too_late", 403, "the time to change this message has passed"},
    [CHAT_E_BANNED] = {"banned", 403, "you are banned from this chat"},
};

const char *chat_err_name(enum chat_err e)
{
    return (unsigned)e < CHAT_E_NERR ? err_info[e].name : "unknown";
}

int chat_err_http_status(enum chat_err e)
{
    return (unsigned)e < CHAT_E_NERR ? err_info[e].status : 500;
}

/* ---- request parsing -------------------------------------------------- */

static const char *const op_names[] = {
    [CHAT_OP_NONE] = NULL,         [CHAT_OP_JOIN] = "join",       [CHAT_OP_LEAVE] = "leave",
    [CHAT_OP_SEND] = "send",       [CHAT_OP_HISTORY] = "history", [CHAT_OP_TYPING] = "typing",
    [CHAT_OP_MEMBERS] = "members", [CHAT_OP_PING] = "ping",       [CHAT_OP_EDIT] = "edit",
    [CHAT_OP_DELETE] = "delete",   [CHAT_OP_BAN] = "ban",         [CHAT_OP_UNBAN] = "unban",
    [CHAT_OP_BANS] = "bans",       [CHAT_OP_SEARCH] = "search",
};
#define N_OPS (sizeof(op_names) / sizeof(op_names[0]))

static enum chat_op op_from_name(const char *s, size_t len)
{
    size_t i;

    for (i = 1; i < N_OPS; i++) {
        if (strlen(op_names[i]) == len && memcmp(s, op_names[i], len) == 0)
            return (enum chat_op)i;
    }
    return CHAT_OP_NONE;
}

/* Optional string field: absent -> 0 with out->p NULL; not a string -> -1. */
static int get_str(json_t *root, const char *key, struct chat_str *out)
{
    json_t *v = json_object_get(root, key);

    out->p = NULL;
    out->len = 0;
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return -1;
    out->p = json_string_value(v);
    out->len = json_string_length(v);
    return 0;
}

/* Optional integer field in [min, max]: absent -> 0 leaving *out; present
 * and not an integer in range -> -1. */
static int get_int(json_t *root, const char *key, int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(root, key);
    json_int_t n;

    if (v == NULL)
        return 0;
    if (!json_is_integer(v))
        return -1;
    n = json_integer_value(v);
    if (n < min || n > max)
        return -1;
    *out = (int64_t)n;
    return 0;
}

static enum chat_err fail(enum chat_err e, const char *msg, const char **why)
{
    *why = msg;
    return e;
}

static enum chat_err parse_ref(struct chat_request *r, const char **why)
{
    json_t *v = json_object_get(r->root, "ref");

    if (v == NULL)
        return CHAT_OK;
    if (json_is_string(v) && json_string_length(v) > CHAT_REF_MAX)
        return fail(CHAT_E_BAD_REQUEST, "ref too long", why);
    if (!json_is_string(v) && !json_is_number(v))
        return fail(CHAT_E_BAD_REQUEST, "ref must be a string or a number", why);
    r->ref = v;
    return CHAT_OK;
}

static enum chat_err parse_op(struct chat_request *r, enum chat_op want_op, const char **why)
{
    json_t *v = json_object_get(r->root, "op");
    enum chat_op op;

    if (v == NULL) {
        if (want_op == CHAT_OP_NONE)
            return fail(CHAT_E_BAD_REQUEST, "missing op", why);
        r->op = want_op;
        return CHAT_OK;
    }
    if (!json_is_string(v))
        return fail(CHAT_E_BAD_REQUEST, "op must be a string", why);
    op = op_from_name(json_string_value(v), json_string_length(v));
    if (op == CHAT_OP_NONE)
        return fail(CHAT_E_UNKNOWN_OP, "unknown op", why);
    if (want_op != CHAT_OP_NONE && op != want_op)
        return fail(CHAT_E_BAD_REQUEST, "op does not match the endpoint", why);
    r->op = op;
    return CHAT_OK;
}

static enum chat_err parse_send(struct chat_request *r, size_t max_text, const char **why)
{
    if (r->op == CHAT_OP_EDIT || r->op == CHAT_OP_DELETE) {
        if (get_int(r->root, "seq", 1, INT64_MAX, &r->seq) < 0 || r->seq == 0)
            return fail(CHAT_E_BAD_REQUEST, "seq must be an integer >= 1", why);
    }
    if (r->op == CHAT_OP_DELETE) {
        if (json_object_get(r->root, "text") != NULL)
            return fail(CHAT_E_BAD_REQUEST, "a delete has no text", why);
        goto cid;
    }
    if (get_str(r->root, "text", &r->text) < 0 || r->text.p == NULL)
        return fail(CHAT_E_BAD_REQUEST, "missing or invalid text", why);
    switch (chat_valid_text(r->text.p, r->text.len, max_text)) {
    case CHAT_TEXT_OK:
        break;
    case CHAT_TEXT_EMPTY:
        return fail(CHAT_E_BAD_REQUEST, "text is empty", why);
    case CHAT_TEXT_TOO_LARGE:
        return fail(CHAT_E_TOO_LARGE, "text too large", why);
    case CHAT_TEXT_BAD_UTF8:
        return fail(CHAT_E_BAD_REQUEST, "text is not valid UTF-8", why);
    case CHAT_TEXT_CONTROL:
        return fail(CHAT_E_BAD_REQUEST, "text contains control characters", why);
    }
cid:
    if (get_str(r->root, "cid", &r->cid) < 0 ||
        (r->cid.p != NULL && !chat_valid_cid(r->cid.p, r->cid.len)))
        return fail(CHAT_E_BAD_REQUEST, "invalid cid", why);
    if (get_str(r->root, "name", &r->name) < 0)
        return fail(CHAT_E_BAD_REQUEST, "invalid name", why);
    return CHAT_OK;
}

#define CHAT_BAN_FOR_MAX 315360000 /* ten years, in seconds */

static enum chat_err parse_ban(struct chat_request *r, const char **why)
{
    unsigned char net[16];
    int family, bits;

    if (r->op == CHAT_OP_BANS)
        return CHAT_OK;
    if (r->op == CHAT_OP_UNBAN) {
        if (get_int(r->root, "id", 1, INT64_MAX, &r->seq) < 0 || r->seq == 0)
            return fail(CHAT_E_BAD_REQUEST, "id must be an integer >= 1", why);
        return CHAT_OK;
    }
    if (get_str(r->root, "user", &r->user) < 0 ||
        (r->user.p && !(chat_valid_user(r->user.p, r->user.len) ||
                        (r->user.len > 1 && r->user.p[0] == '~' &&
                         chat_valid_user(r->user.p + 1, r->user.len - 1)))))
        return fail(CHAT_E_BAD_REQUEST, "user must be a user name or ~guest", why);
    if (get_str(r->root, "addr", &r->addr) < 0 ||
        (r->addr.p && (r->addr.len > CHAT_ADDR_MAX || strlen(r->addr.p) != r->addr.len ||
                       chat_addr_parse(r->addr.p, &family, net, &bits) < 0)))
        return fail(CHAT_E_BAD_REQUEST, "addr must be an address or a network", why);
    if (r->user.p == NULL && r->addr.p == NULL)
        return fail(CHAT_E_BAD_REQUEST, "a ban names a user, an addr or both", why);
    if (get_int(r->root, "for", 1, CHAT_BAN_FOR_MAX, &r->ban_for) < 0)
        return fail(CHAT_E_BAD_REQUEST, "for must be seconds, 1..315360000 (absent: until lifted)",
                    why);
    if (get_str(r->root, "reason", &r->reason) < 0)
        return fail(CHAT_E_BAD_REQUEST, "reason must be a string", why);
    if (r->reason.p && r->reason.len > 0 &&
        chat_valid_text(r->reason.p, r->reason.len, CHAT_BAN_REASON_MAX) != CHAT_TEXT_OK)
        return fail(CHAT_E_BAD_REQUEST, "reason: up to 1000 bytes of text", why);
    return CHAT_OK;
}

static enum chat_err parse_fields(struct chat_request *r, size_t max_text, const char **why)
{
    int64_t limit = CHAT_HISTORY_DEFAULT;

    if (r->op == CHAT_OP_PING)
        return CHAT_OK;
    if (r->op == CHAT_OP_BAN || r->op == CHAT_OP_UNBAN || r->op == CHAT_OP_BANS)
        return parse_ban(r, why);
    if (get_str(r->root, "room", &r->room) < 0 || r->room.p == NULL ||
        !chat_valid_room(r->room.p, r->room.len))
        return fail(CHAT_E_BAD_REQUEST, "missing or invalid room", why);
    switch (r->op) {
    case CHAT_OP_JOIN:
        if (get_int(r->root, "since", 0, INT64_MAX, &r->since) < 0)
            return fail(CHAT_E_BAD_REQUEST, "since must be an integer >= 0", why);
        return CHAT_OK;
    case CHAT_OP_SEND:
    case CHAT_OP_EDIT:
    case CHAT_OP_DELETE:
        return parse_send(r, max_text, why);
    case CHAT_OP_SEARCH:
        if (get_str(r->root, "q", &r->q) < 0 || r->q.p == NULL ||
            chat_valid_text(r->q.p, r->q.len, CHAT_SEARCH_Q_MAX) != CHAT_TEXT_OK)
            return fail(CHAT_E_BAD_REQUEST, "q must be 1..256 bytes of text", why);
        if (get_int(r->root, "before", 1, INT64_MAX, &r->before) < 0)
            return fail(CHAT_E_BAD_REQUEST, "before must be an integer >= 1", why);
        if (get_int(r->root, "limit", 1, CHAT_SEARCH_MAX, &limit) < 0)
            return fail(CHAT_E_BAD_REQUEST, "limit must be an integer in 1..100", why);
        r->limit = (int)limit;
        return CHAT_OK;
    case CHAT_OP_HISTORY:
        if (get_int(r->root, "before", 1, INT64_MAX, &r->before) < 0)
            return fail(CHAT_E_BAD_REQUEST, "before must be an integer >= 1", why);
        if (get_int(r->root, "limit", 1, CHAT_HISTORY_MAX, &limit) < 0)
            return fail(CHAT_E_BAD_REQUEST, "limit must be an integer in 1..200", why);
        r->limit = (int)limit;
        return CHAT_OK;
    default:
        return CHAT_OK;
    }
}

enum chat_err chat_request_parse(struct chat_request *r, const char *buf, size_t len,
                                 enum chat_op want_op, size_t max_text, const char *ns,
                                 const char **why)
{
    const char *dummy;
    json_error_t jerr;
    enum chat_err e;

    if (why == NULL)
        why = &dummy;
    memset(r, 0, sizeof(*r));
    r->since = -1;
    r->limit = CHAT_HISTORY_DEFAULT;
    if (max_text > CHAT_TEXT_HARD_MAX)
        max_text = CHAT_TEXT_HARD_MAX;
    if (buf == NULL)
        return fail(CHAT_E_BAD_JSON, "empty request", why);
    r->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (r->root == NULL)
        return fail(CHAT_E_BAD_JSON, "request is not valid JSON", why);
    if (!json_is_object(r->root))
        return fail(CHAT_E_BAD_JSON, "request is not a JSON object", why);
    e = parse_ref(r, why);
    if (e == CHAT_OK)
        e = parse_op(r, want_op, why);
    if (e == CHAT_OK)
        e = parse_fields(r, max_text, why);
    if (e == CHAT_OK && r->room.p && chat_room_key(ns, r->room.p, r->room.len, r->key) == 0)
        e = fail(CHAT_E_BAD_REQUEST, "missing or invalid room", why);
    if (e == CHAT_OK)
        *why = "ok";
    return e;
}

void chat_request_free(struct chat_request *r)
{
    if (r == NULL)
        return;
    json_decref(r->root);
    memset(r, 0, sizeof(*r));
    r->since = -1;
    r->limit = CHAT_HISTORY_DEFAULT;
}

/* ---- encoding --------------------------------------------------------- */

struct out {
    char *p;
    size_t len, cap;
    bool oom; /* sticky: checked once in out_finish() */
};

static void out_reserve(struct out *o, size_t more)
{
    size_t cap;
    char *p;

    if (o->oom)
        return;
    if (more > SIZE_MAX / 2 - o->len) {
        o->oom = true;
        return;
    }
    if (o->len + more + 1 <= o->cap)
        return;
    cap = o->cap ? o->cap : 128;
    while (cap < o->len + more + 1)
        cap *= 2;
    p = realloc(o->p, cap);
    if (p == NULL) {
        o->oom = true;
        return;
    }
    o->p = p;
    o->cap = cap;
}

static void out_mem(struct out *o, const char *s, size_t n)
{
    out_reserve(o, n);
    if (o->oom || n == 0)
        return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void out_lit(struct out *o, const char *s)
{
    out_mem(o, s, strlen(s));
}

static void out_fmt(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_fmt(struct out *o, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        o->oom = true;
        return;
    }
    out_mem(o, buf, (size_t)n);
}

/* A JSON string literal. The input is valid UTF-8 (names, ts, messages);
 * only '"', '\\' and control characters need escaping. */
static void out_str(struct out *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run;

    if (s == NULL)
        s = "";
    run = s;
    out_mem(o, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        out_mem(o, run, (size_t)(s - run));
        run = s + 1;
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            out_mem(o, esc, 2);
        } else if (c == '\n' || c == '\t' || c == '\r' || c == '\b' || c == '\f') {
            esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : c == '\r' ? 'r' : c == '\b' ? 'b' : 'f';
            out_mem(o, esc, 2);
        } else {
            out_mem(o, esc, 6);
        }
    }
    out_mem(o, run, (size_t)(s - run));
    out_mem(o, "\"", 1);
}

static void out_op(struct out *o, const char *op)
{
    out_lit(o, "{\"op\":");
    out_str(o, op);
}

/* ,"key":"value" */
static void out_key_str(struct out *o, const char *key, const char *value)
{
    out_lit(o, ",\"");
    out_lit(o, key);
    out_lit(o, "\":");
    out_str(o, value);
}

static void out_key_names(struct out *o, const char *key, const char *const *names, size_t n)
{
    size_t i;

    out_lit(o, ",\"");
    out_lit(o, key);
    out_lit(o, "\":[");
    for (i = 0; i < n; i++) {
        if (i > 0)
            out_mem(o, ",", 1);
        out_str(o, names[i]);
    }
    out_mem(o, "]", 1);
}

/* ,"ref":<ref> when ref is set. Strings go through out_str(); numbers are
 * rendered by jansson. */
static void out_ref(struct out *o, const json_t *ref)
{
    char *num;

    if (ref == NULL)
        return;
    if (json_is_string(ref)) {
        out_key_str(o, "ref", json_string_value(ref));
        return;
    }
    if (json_is_integer(ref)) {
        out_fmt(o, ",\"ref\":%" JSON_INTEGER_FORMAT, json_integer_value(ref));
        return;
    }
    num = json_dumps(ref, JSON_ENCODE_ANY | JSON_COMPACT);
    if (num == NULL) {
        o->oom = true;
        return;
    }
    out_lit(o, ",\"ref\":");
    out_lit(o, num);
    free(num);
}

/* Closes the object; returns the text or NULL (and frees) on OOM. */
static char *out_finish(struct out *o, size_t *len)
{
    out_mem(o, "}", 1);
    if (o->oom) {
        free(o->p);
        return NULL;
    }
    o->p[o->len] = '\0';
    if (len)
        *len = o->len;
    return o->p;
}

char *chat_encode_hello_role(const char *user, int heartbeat, bool moderator, size_t *len)
{
    struct out o = {0};

    out_op(&o, "hello");
    out_key_str(&o, "user", user);
    out_fmt(&o, ",\"heartbeat\":%d", heartbeat);
    if (moderator)
        out_lit(&o, ",\"role\":\"moderator\"");
    return out_finish(&o, len);
}

/* {"max_text":N,"readonly":B,"rooms":"…","first_room":"…"} */
static void out_policy_obj(struct out *o, const struct chat_policy *p)
{
    char first[CHAT_ROOM_MAX + 1];

    chat_policy_first_room(p, first);
    out_fmt(o, "{\"max_text\":%zu,\"readonly\":%s", p->max_text, p->readonly ? "true" : "false");
    out_key_str(o, "rooms", p->rooms);
    out_key_str(o, "first_room", first);
    out_mem(o, "}", 1);
}

static void out_policy(struct out *o, const struct chat_policy *p)
{
    out_lit(o, ",\"policy\":");
    out_policy_obj(o, p);
}

char *chat_encode_policy(const struct chat_policy *p, size_t *len)
{
    struct out o = {0};

    out_policy_obj(&o, p);
    out_reserve(&o, 1);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    o.p[o.len] = '\0';
    if (len)
        *len = o.len;
    return o.p;
}

char *chat_encode_hello_policy(const char *user, int heartbeat, const struct chat_policy *p,
                               size_t *len)
{
    struct out o = {0};

    out_op(&o, "hello");
    out_key_str(&o, "user", user);
    out_fmt(&o, ",\"heartbeat\":%d", heartbeat);
    if (p->moderator)
        out_lit(&o, ",\"role\":\"moderator\"");
    out_policy(&o, p);
    return out_finish(&o, len);
}

char *chat_encode_hello(const char *user, int heartbeat, size_t *len)
{
    return chat_encode_hello_role(user, heartbeat, false, len);
}

char *chat_encode_joined_h(const char *room, int64_t seq, const char *const *members, size_t n,
                           size_t count, int64_t horizon, const json_t *ref, size_t *len)
{
    struct out o = {0};

    out_op(&o, "joined");
    out_key_str(&o, "room", chat_room_local(room));
    out_fmt(&o, ",\"seq\":%" PRId64, seq);
    out_key_names(&o, "members", members, n);
    out_fmt(&o, ",\"count\":%zu", count);
    if (horizon > 0)
        out_fmt(&o, ",\"horizon\":%" PRId64, horizon);
    out_ref(&o, ref);
    return out_finish(&o, len);
}

char *chat_encode_joined(const char *room, int64_t seq, const char *const *members, size_t n,
                         size_t count, const json_t *ref, size_t *len)
{
    return chat_encode_joined_h(room, seq, members, n, count, 0, ref, len);
}

char *chat_encode_left(const char *room, const json_t *ref, size_t *len)
{
    struct out o = {0};

    out_op(&o, "left");
    out_key_str(&o, "room", chat_room_local(room));
    out_ref(&o, ref);
    return out_finish(&o, len);
}

char *chat_encode_ack(const char *room, const char *cid, int64_t seq, const char *ts,
                      const json_t *ref, size_t *len)
{
    struct out o = {0};

    out_op(&o, "ack");
    out_key_str(&o, "room", chat_room_local(room));
    if (cid != NULL)
        out_key_str(&o, "cid", cid);
    out_fmt(&o, ",\"seq\":%" PRId64, seq);
    out_key_str(&o, "ts", ts);
    out_ref(&o, ref);
    return out_finish(&o, len);
}

char *chat_encode_page(const char *op, const char *room, const struct chat_str *msgs, size_t n,
                       int64_t horizon, const json_t *ref, size_t *len)
{
    struct out o = {0};
    size_t i;

    out_op(&o, op);
    out_key_str(&o, "room", chat_room_local(room));
    out_lit(&o, ",\"messages\":[");
    for (i = 0; i < n; i++) {
        if (i > 0)
            out_mem(&o, ",", 1);
        out_mem(&o, msgs[i].p, msgs[i].len);
    }
    out_mem(&o, "]", 1);
    if (horizon >= 0)
        out_fmt(&o, ",\"horizon\":%" PRId64, horizon);
    out_ref(&o, ref);
    return out_finish(&o, len);
}

char *chat_encode_history(const char *room, const struct chat_str *msgs, size_t n,
                          const json_t *ref, size_t *len)
{
    return chat_encode_page("history", room, msgs, n, -1, ref, len);
}

char *chat_encode_poll(const char *events, size_t events_len, const char *const *rooms,
                       const int64_t *cursors, size_t n, const char *members, size_t *len)
{
    return chat_encode_poll_h(events, events_len, rooms, cursors, NULL, n, members, len);
}

char *chat_encode_poll_h(const char *events, size_t events_len, const char *const *rooms,
                         const int64_t *cursors, const int64_t *horizons, size_t n,
                         const char *members, size_t *len)
{
    return chat_encode_poll_p(events, events_len, rooms, cursors, horizons, n, members, NULL, NULL,
                              len);
}

char *chat_encode_poll_p(const char *events, size_t events_len, const char *const *rooms,
                         const int64_t *cursors, const int64_t *horizons, size_t n,
                         const char *members, const char *user, const struct chat_policy *p,
                         size_t *len)
{
    struct out o = {0};
    bool any = false;

    out_lit(&o, "{\"events\":[");
    out_mem(&o, events, events_len);
    out_lit(&o, "],\"cursor\":\"");
    for (size_t i = 0; i < n; i++) {
        out_lit(&o, chat_room_local(rooms[i])); /* valid room names need no escaping */
        out_fmt(&o, ":%lld%s", (long long)cursors[i], i + 1 < n ? "," : "");
    }
    out_lit(&o, "\"");
    if (members) {
        out_lit(&o, ",\"members\":");
        out_lit(&o, members);
    }
    for (size_t i = 0; horizons && i < n; i++) {
        if (horizons[i] <= 0)
            continue;
        out_lit(&o, any ? "," : ",\"horizon\":{");
        out_str(&o, chat_room_local(rooms[i]));
        out_fmt(&o, ":%lld", (long long)horizons[i]);
        any = true;
    }
    if (any)
        out_lit(&o, "}");
    if (user)
        out_key_str(&o, "user", user);
    if (p)
        out_policy(&o, p);
    return out_finish(&o, len); /* closes the object */
}

char *chat_encode_reset(const char *room, int64_t seq, size_t *len)
{
    struct out o = {0};

    out_op(&o, "reset");
    out_key_str(&o, "room", chat_room_local(room));
    out_fmt(&o, ",\"seq\":%" PRId64, seq);
    return out_finish(&o, len);
}

char *chat_encode_typing(const char *room, const char *user, size_t *len)
{
    struct out o = {0};

    out_mem(&o, room, chat_room_ns_len(room)); /* the bus line's namespace */
    if (chat_room_ns_len(room) > 0)
        out_mem(&o, "\t", 1);
    out_op(&o, "typing");
    out_key_str(&o, "room", chat_room_local(room));
    out_key_str(&o, "user", user);
    return out_finish(&o, len);
}

char *chat_encode_members(const char *room, const char *const *members, size_t n, size_t count,
                          const json_t *ref, size_t *len)
{
    struct out o = {0};

    out_op(&o, "members");
    out_key_str(&o, "room", chat_room_local(room));
    out_key_names(&o, "members", members, n);
    out_fmt(&o, ",\"count\":%zu", count);
    out_ref(&o, ref);
    return out_finish(&o, len);
}

char *chat_encode_pong(const json_t *ref, size_t *len)
{
    struct out o = {0};

    out_op(&o, "pong");
    out_ref(&o, ref);
    return out_finish(&o, len);
}

char *chat_encode_presence(const char *room, const char *const *online, size_t n_on,
                           const char *const *offline, size_t n_off, size_t count, size_t *len)
{
    struct out o = {0};

    out_op(&o, "presence");
    out_key_str(&o, "room", chat_room_local(room));
    if (online != NULL)
        out_key_names(&o, "online", online, n_on);
    if (offline != NULL)
        out_key_names(&o, "offline", offline, n_off);
    out_fmt(&o, ",\"count\":%zu", count);
    return out_finish(&o, len);
}

char *chat_encode_error(enum chat_err code, const char *message, const json_t *ref, size_t *len)
{
    struct out o = {0};

    if ((unsigned)code >= CHAT_E_NERR || code == CHAT_OK)
        code = CHAT_E_BAD_REQUEST;
    out_op(&o, "error");
    out_key_str(&o, "code", chat_err_name(code));
    out_key_str(&o, "message", message != NULL ? message : err_info[code].message);
    out_ref(&o, ref);
    return out_finish(&o, len);
}

char *chat_encode_banned(const char *until, const char *reason, const json_t *ref, size_t *len)
{
    struct out o = {0};
    bool timed = until != NULL && until[0] != '\0';

    out_op(&o, "error");
    out_key_str(&o, "code", "banned");
    out_key_str(&o, "message",
                timed ? "you are banned from this chat for a while"
                      : "you are banned from this chat until a moderator lifts it");
    if (timed)
        out_key_str(&o, "until", until);
    out_key_str(&o, "reason", reason ? reason : "");
    out_ref(&o, ref);
    return out_finish(&o, len);
}

char *chat_encode_ban(const char *op, int64_t id, int lifted, const json_t *ref, size_t *len)
{
    struct out o = {0};

    out_op(&o, op);
    out_fmt(&o, ",\"id\":%" PRId64, id);
    if (lifted >= 0)
        out_lit(&o, lifted ? ",\"lifted\":true" : ",\"lifted\":false");
    out_ref(&o, ref);
    return out_finish(&o, len);
}

char *chat_encode_bans(const char *list, size_t list_len, const json_t *ref, size_t *len)
{
    struct out o = {0};

    out_op(&o, "bans");
    out_lit(&o, ",\"bans\":");
    out_mem(&o, list, list_len);
    out_ref(&o, ref);
    return out_finish(&o, len);
}
