/* ws_chat: the chat protocol of one WebSocket worker process: requests in,
 * replies out, sends group-committed through the writer connection (one
 * chat_post per batch, acked at commit; a batch the database refuses is
 * posted again send by send: core/chat_sql.h chat_post_failed), history,
 * members, typing, users seen and the node heartbeat through the reader
 * connection (the LISTEN connection only listens). Rooms, fan-out and
 * presence are in ws_room.c. */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_db.h"
#include "chat_log.h"
#include "chat_members.h"
#include "chat_metrics.h"
#include "chat_sys.h"
#include "chat_valid.h"
#include "chat_sql.h"
#include "ws.h"

#define NODE_BEAT_EVERY 10 /* ticks */
#define WS_SENDS_QUEUED_BATCHES 8

/* A send waiting for (or in) a group commit. */
struct ws_send {
    struct ws_send *next;
    struct ws_conn *conn; /* referenced */
    json_t *ref;          /* owned, may be NULL */
    char room[CHAT_ROOM_KEY_MAX + 1];
    char cid[CHAT_CID_MAX + 1];
    bool has_cid;
    char *text;
    size_t text_len;
    bool alone; /* its batch failed: posted on its own (chat_post_failed) */
};

/* An asynchronous read made for one connection. */
struct ws_op {
    struct ws_conn *conn; /* referenced */
    json_t *ref;          /* owned, may be NULL */
    char room[CHAT_ROOM_KEY_MAX + 1];
    char cid[CHAT_CID_MAX + 1]; /* edit, delete: "" when none; ban, unban, bans,
                                 * history, search: the op */
    int64_t id;                 /* unban: the ban */
};

static struct ws_op *op_new(struct ws_conn *c, const json_t *ref, const char *room)
{
    struct ws_op *op = calloc(1, sizeof(*op));

    if (!op)
        return NULL;
    op->conn = c;
    ws_conn_ref(c);
    op->ref = ref ? json_deep_copy(ref) : NULL;
    if (room)
        snprintf(op->room, sizeof(op->room), "%s", room);
    return op;
}

static void op_free(struct ws_op *op)
{
    ws_conn_unref(op->conn);
    json_decref(op->ref);
    free(op);
}

static void cstr(char *out, const struct chat_str *s)
{
    memcpy(out, s->p, s->len);
    out[s->len] = '\0';
}

/* ---- group commit ---- */

static void send_free(struct ws_send *s)
{
    ws_conn_unref(s->conn);
    json_decref(s->ref);
    free(s->text);
    free(s);
}

static void writer_kick(struct ws_server *srv);

/* A failed batch goes back to the head of the queue, each send alone. */
static void requeue_alone(struct ws_server *srv, struct ws_send *batch)
{
    struct ws_send *last = batch;
    size_t n = 1;

    for (; last->next; last = last->next, n++)
        last->alone = true;
    last->alone = true;
    last->next = srv->send_head;
    srv->send_head = batch;
    if (!srv->send_tail)
        srv->send_tail = last;
    srv->nsends += n;
}

/* The policy of core/chat_sql.h for a batch that failed: SPLIT requeues it
 * (true: nothing to answer now); REJECTED and UNAVAILABLE set *e. */
static bool post_failed(struct pg *pg, PGresult *res, struct ws_send *batch, enum chat_err *e)
{
    size_t n = 0;

    for (struct ws_send *s = batch; s; s = s->next)
        n++;
    switch (chat_post_failed(n, res && pg_is_up(pg),
                             res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL)) {
    case CHAT_POST_SPLIT:
        requeue_alone(batch->conn->srv, batch);
        return true;
    case CHAT_POST_REJECTED:
        *e = CHAT_E_BAD_REQUEST;
        return false;
    case CHAT_POST_UNAVAILABLE:
        break;
    }
    *e = CHAT_E_UNAVAILABLE;
    return false;
}

static void post_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_send *batch = data, *s;
    struct ws_server *srv = batch ? batch->conn->srv : NULL;
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    enum chat_err e = CHAT_E_UNAVAILABLE;
    struct chat_post_ack a;
    size_t i = 0;

    if (res && !ok)
        log_error("chat_post failed: %s", PQresultErrorMessage(res));
    if (!ok && batch && post_failed(pg, res, batch, &e)) {
        srv->writer_busy = false;
        writer_kick(srv);
        return;
    }
    for (s = batch; s; s = s->next, i++) {
        if (!ws_conn_alive(s->conn))
            continue;
        if (!ok && e == CHAT_E_BAD_REQUEST) {
            ws_conn_error(s->conn, e, "rejected by the database", s->ref);
            continue;
        }
        if (!ok || chat_post_answer(res, i, &a) < 0) {
            ws_conn_error(s->conn, CHAT_E_UNAVAILABLE,
                          "the database is unavailable; nothing was stored: retry with the same "
                          "cid",
                          s->ref);
            continue;
        }
        size_t len;
        chat_metric_inc(CHAT_M_MESSAGES_IN);
        char *ack = chat_encode_ack(s->room, s->has_cid ? s->cid : NULL, a.seq, a.ts, s->ref, &len);
        ws_conn_reply(s->conn, ack, &len);
    }
    if (ok)
        srv->stat_commits++;
    while (batch) {
        s = batch->next;
        send_free(batch);
        batch = s;
    }
    if (srv) {
        srv->writer_busy = false;
        writer_kick(srv);
    }
}

/* Sends everything queued as one transaction, unless one is in flight:
 * sends arriving meanwhile wait for its commit and go together. */
static void writer_kick(struct ws_server *srv)
{
    struct chat_post_args a = {0};
    const char *params[4];
    struct ws_send *batch, *s, *last = NULL;
    int n = 0;

    if (srv->writer_busy || !srv->send_head)
        return;
    batch = srv->send_head;
    int max = batch->alone ? 1 : srv->cfg.batch_max; /* a split batch: one by one */
    for (s = batch; s && n < max && (n == 0 || !s->alone); s = s->next, n++) {
        if (chat_post_args_add(&a, s->room, s->conn->user, s->text, s->text_len,
                               s->has_cid ? s->cid : NULL, strlen(s->cid)) < 0)
            goto oom;
        last = s;
    }
    if (chat_post_args_end(&a, params) < 0)
        goto oom;
    srv->send_head = last->next;
    if (!srv->send_head)
        srv->send_tail = NULL;
    srv->nsends -= (size_t)n;
    last->next = NULL;
    if (pg_query(srv->writer, CHAT_SQL_POST, 4, params, post_done, batch) < 0) {
        /* down: fail the batch at once */
        post_done(srv->writer, NULL, batch);
    } else {
        srv->writer_busy = true;
    }
    goto out;
oom:
    log_error("out of memory building a batch of %d sends", n);
out:
    chat_post_args_free(&a);
}

static void chat_send(struct ws_conn *c, const struct chat_request *r)
{
    struct ws_server *srv = c->srv;
    struct ws_send *s;

    if (!pg_is_up(srv->writer)) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE,
                      "the database is unavailable; nothing was stored: retry with the same cid",
                      r->ref);
        return;
    }
    /* bounded: a writer that cannot keep up refuses rather than queues */
    if (srv->nsends >= (size_t)srv->cfg.batch_max * WS_SENDS_QUEUED_BATCHES) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE,
                      "too many messages waiting for the database; nothing was stored: retry "
                      "with the same cid",
                      r->ref);
        return;
    }
    s = calloc(1, sizeof(*s));
    if (!s || !(s->text = malloc(r->text.len + 1))) {
        free(s);
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "out of memory", r->ref);
        return;
    }
    s->conn = c;
    ws_conn_ref(c);
    s->ref = r->ref ? json_deep_copy(r->ref) : NULL;
    memcpy(s->room, r->key, sizeof(s->room));
    if (r->cid.p) {
        cstr(s->cid, &r->cid);
        s->has_cid = true;
    }
    memcpy(s->text, r->text.p, r->text.len);
    s->text[r->text.len] = '\0';
    s->text_len = r->text.len;
    if (srv->send_tail)
        srv->send_tail->next = s;
    else
        srv->send_head = s;
    srv->send_tail = s;
    srv->nsends++;
    writer_kick(srv);
}

/* ---- edit and delete: one chat_change each, on the writer connection ---- */

static void change_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_op *op = data;
    struct chat_post_ack a;
    const char *why;
    size_t len;
    (void)pg;

    if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
        log_error("chat_change failed: %s", PQresultErrorMessage(res));
    if (!ws_conn_alive(op->conn))
        goto out;
    enum chat_err e = chat_change_answer(res, &a, &why);
    if (e != CHAT_OK) {
        ws_conn_error(op->conn, e, why, op->ref);
        goto out;
    }
    ws_conn_reply(
        op->conn,
        chat_encode_ack(op->room, op->cid[0] ? op->cid : NULL, a.seq, a.ts, op->ref, &len), &len);
out:
    op_free(op);
}

static void chat_change(struct ws_conn *c, const struct chat_request *r)
{
    struct chat_change_params a;
    struct ws_op *op = op_new(c, r->ref, r->key);

    if (!op) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "out of memory", r->ref);
        return;
    }
    if (r->cid.p)
        cstr(op->cid, &r->cid);
    chat_change_params(&a, r, c->user, c->policy);
    if (pg_query(c->srv->writer, CHAT_SQL_CHANGE, 8, a.params, change_done, op) < 0) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE,
                      "the database is unavailable; nothing was changed: retry with the same cid",
                      r->ref);
        op_free(op);
    }
}

/* ---- bans and kicks: the list in memory, kept fresh by chat_admin ---- */

#define WS_CLOSE_KICKED 4001 /* kicked: may come back (close codes 4000-4999: ours) */
#define WS_CLOSE_BANNED 4003 /* banned: the error before it says until when and why */

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct chat_ban *conn_ban(struct ws_conn *c)
{
    return chat_bans_match(&c->srv->bans, c->user, c->addr, c->policy->ns, wall_ms());
}

/* Answers "banned" (with until and reason) and closes. */
static void conn_banned(struct ws_conn *c, const struct chat_ban *ban, const json_t *ref)
{
    size_t len;

    log_info("conn %llu: %s (%s) is banned (ban %lld): closing", (unsigned long long)c->id, c->user,
             c->addr, (long long)ban->id);
    chat_metric_refused(CHAT_E_BANNED);
    ws_conn_reply(c, chat_encode_banned(ban->until, ban->reason, ref, &len), &len);
    ws_conn_close(c, WS_CLOSE_BANNED, "banned");
}

/* Every open chat connection a ban (or a kick of user) names is closed. */
static void sweep(struct ws_server *srv, const char *kicked)
{
    for (struct ws_conn *c = srv->conns; c; c = c->next) {
        const struct chat_ban *ban;
        if (!ws_conn_alive(c) || !c->policy)
            continue;
        if (kicked && strcmp(c->user, kicked) == 0) {
            log_info("conn %llu: %s kicked: closing", (unsigned long long)c->id, c->user);
            ws_conn_close(c, WS_CLOSE_KICKED, "kicked");
        } else if (!kicked && (ban = conn_ban(c)) != NULL) {
            conn_banned(c, ban, NULL);
        }
    }
}

static void bans_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_server *srv = data;
    (void)pg;

    if (chat_bans_load(&srv->bans, res) < 0) {
        log_error("cannot load the bans: %s", res ? PQresultErrorMessage(res) : "connection lost");
        return;
    }
    log_info("bans: %zu active", srv->bans.n);
    sweep(srv, NULL);
}

static void bans_reload(struct ws_server *srv)
{
    if (pg_query(srv->reader, CHAT_SQL_BANS, 0, NULL, bans_done, srv) < 0)
        log_warn("bans: the reader is down; reloading when it is back");
}

static void admin_listening(struct pg *pg, PGresult *res, void *data)
{
    (void)pg;
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        log_error("LISTEN " CHAT_ADMIN_CHANNEL " failed: bans and kicks of other processes "
                  "are not heard until the next reconnect");
    bans_reload(data); /* after LISTEN: no ban falls between the list and the news */
}

/* A line of channel chat_admin: a ban or an unban reloads the list (then
 * closes whom it names), a kick closes that user's connections. */
static void admin_notify(struct ws_server *srv, const char *payload, size_t len)
{
    char user[CHAT_SENDER_MAX + 1];

    switch (chat_admin_parse(payload, len, user)) {
    case CHAT_ADMIN_BAN:
    case CHAT_ADMIN_UNBAN:
        bans_reload(srv);
        return;
    case CHAT_ADMIN_KICK:
        sweep(srv, user);
        return;
    default:
        log_warn("ignoring a bad line on channel " CHAT_ADMIN_CHANNEL);
        return;
    }
}

/* ---- moderators: ban, unban, bans ---- */

static void ban_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_op *op = data;
    size_t len;
    (void)pg;

    if (!ws_conn_alive(op->conn))
        goto out;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        if (res)
            log_error("%s: %s", op->cid, PQresultErrorMessage(res));
        ws_conn_error(op->conn, CHAT_E_UNAVAILABLE, "the database is unavailable; retry", op->ref);
        goto out;
    }
    const char *v = PQgetvalue(res, 0, 0);
    if (strcmp(op->cid, "bans") == 0)
        ws_conn_reply(op->conn, chat_encode_bans(v, (size_t)PQgetlength(res, 0, 0), op->ref, &len),
                      &len);
    else if (strcmp(op->cid, "unban") == 0)
        ws_conn_reply(op->conn, chat_encode_ban("unban", op->id, v[0] == 't', op->ref, &len), &len);
    else
        ws_conn_reply(op->conn, chat_encode_ban("ban", strtoll(v, NULL, 10), -1, op->ref, &len),
                      &len);
out:
    op_free(op);
}

static void chat_moderate(struct ws_conn *c, const struct chat_request *r)
{
    struct chat_ban_params a;
    struct ws_op *op;

    if (!c->policy->moderator) {
        ws_conn_error(c, CHAT_E_FORBIDDEN, "moderators only", r->ref);
        return;
    }
    if (!(op = op_new(c, r->ref, NULL))) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "out of memory", r->ref);
        return;
    }
    /* the op's name rides in cid: these ops have no cid */
    snprintf(op->cid, sizeof(op->cid), "%s",
             r->op == CHAT_OP_BAN     ? "ban"
             : r->op == CHAT_OP_UNBAN ? "unban"
                                      : "bans");
    op->id = r->seq;
    chat_ban_params(&a, r, c->user, c->policy->ns);
    if (pg_query(c->srv->writer, a.sql, a.n, a.params, ban_done, op) < 0) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "the database is unavailable; retry", r->ref);
        op_free(op);
    }
}

/* ---- reads: history, members, typing ---- */

/* A page of msgs[0..n) (ascending) cut to its newest messages that fit
 * half an outbox (at least one): a reply is bounded like the join backlog,
 * and the client pages on from the oldest it got. Returns the first kept. */
static size_t page_fit(const struct ws_conn *c, const struct chat_str *msgs, size_t n)
{
    size_t budget = c->srv->cfg.outbox_max / 2, used = 0, first = n;

    while (first > 0 && (first == n || used + msgs[first - 1].len + 1 <= budget)) {
        used += msgs[first - 1].len + 1;
        first--;
    }
    return first;
}

/* A history or search page (op->cid holds which: "history" or "search"),
 * cut to what half an outbox holds. */
static void page_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_op *op = data;
    struct chat_str msgs[CHAT_HISTORY_MAX > CHAT_SEARCH_MAX ? CHAT_HISTORY_MAX : CHAT_SEARCH_MAX];
    size_t len;
    int64_t horizon;
    (void)pg;

    if (!ws_conn_alive(op->conn))
        goto out;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res)
            log_error("%s: %s", op->cid, PQresultErrorMessage(res));
        ws_conn_error(op->conn, CHAT_E_UNAVAILABLE, "the database is unavailable", op->ref);
        goto out;
    }
    size_t n = chat_page_rows(op->cid, res, msgs, sizeof(msgs) / sizeof(msgs[0]), &horizon);
    size_t first = page_fit(op->conn, msgs, n);
    if (first > 0)
        horizon = -1; /* older messages are left */
    ws_conn_reply(
        op->conn,
        chat_encode_page(op->cid, op->room, msgs + first, n - first, horizon, op->ref, &len), &len);
out:
    op_free(op);
}

/* A history or search page (r->op says which), answered by page_done. */
static void chat_page(struct ws_conn *c, const struct chat_request *r)
{
    char before[24], limit[16];
    struct ws_op *op = op_new(c, r->ref, r->key);
    bool search = r->op == CHAT_OP_SEARCH;

    if (!op) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "out of memory", r->ref);
        return;
    }
    snprintf(before, sizeof(before), "%lld", (long long)r->before);
    snprintf(limit, sizeof(limit), "%d", r->limit);
    const char *search_params[4] = {op->room, r->q.p, before, limit};
    const char *history_params[3] = {op->room, before, limit};
    snprintf(op->cid, sizeof(op->cid), "%s", search ? "search" : "history");
    if (pg_query(c->srv->reader, search ? CHAT_SQL_SEARCH : CHAT_SQL_HISTORY, search ? 4 : 3,
                 search ? search_params : history_params, page_done, op) < 0) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "the database is unavailable", r->ref);
        op_free(op);
    }
}

static void chat_typing(struct ws_conn *c, const struct chat_request *r)
{
    const char *room = r->key;
    size_t len;

    /* a typist sends one per keystroke; the others need one a second */
    if (!chat_typing_due(&c->srv->typing, room, c->user, c->addr, ev_now(c->srv->loop)))
        return;
    char *ev = chat_encode_typing(room, c->user, &len);
    if (!ev)
        return;
    const char *params[1] = {ev};
    /* not persisted: a hint to the others, lost if the database is down */
    pg_query(c->srv->reader, CHAT_SQL_NOTIFY, 1, params, NULL, NULL);
    free(ev);
}

/* ---- dispatch ---- */

static void refill(struct ws_conn *c)
{
    const struct ws_config *cfg = &c->srv->cfg;
    int64_t now = ev_now(c->srv->loop);
    double dt = (double)(now - c->tokens_at) / 1000.0;

    c->tokens_at = now;
    c->send_tokens += dt * cfg->send_rate;
    if (c->send_tokens > cfg->send_burst)
        c->send_tokens = cfg->send_burst;
    c->req_tokens += dt * cfg->req_rate;
    if (c->req_tokens > cfg->req_burst)
        c->req_tokens = cfg->req_burst;
}

static bool room_allowed(struct ws_conn *c, const struct chat_request *r)
{
    if (chat_policy_room_allowed(c->policy, r->room.p, r->room.len))
        return true;
    ws_conn_error(c, CHAT_E_FORBIDDEN, "this room is not allowed here", r->ref);
    return false;
}

/* A send, edit or delete: a writable location, an allowed room, and a
 * token of the send bucket (docs/protocol.md, "Limits"). false: answered. */
static bool may_write(struct ws_conn *c, const struct chat_request *r, const char *slow)
{
    if (c->policy->readonly) {
        ws_conn_error(c, CHAT_E_FORBIDDEN, "this location is read-only", r->ref);
        return false;
    }
    if (!room_allowed(c, r))
        return false;
    if (c->send_tokens < 1.0) {
        ws_conn_error(c, CHAT_E_RATE_LIMITED, slow, r->ref);
        return false;
    }
    c->send_tokens -= 1.0;
    return true;
}

static void dispatch(struct ws_conn *c, const struct chat_request *r)
{
    const struct chat_ban *ban;
    size_t len;

    /* a ban that expired or arrived since: joins and writes are refused */
    if (r->op != CHAT_OP_PING && r->op != CHAT_OP_LEAVE && (ban = conn_ban(c)) != NULL) {
        conn_banned(c, ban, r->ref);
        return;
    }

    switch (r->op) {
    case CHAT_OP_PING:
        ws_conn_reply(c, chat_encode_pong(r->ref, &len), &len);
        return;
    case CHAT_OP_JOIN:
        if (!room_allowed(c, r))
            return;
        ws_room_join(c, r->key, r->since, r->ref);
        return;
    case CHAT_OP_LEAVE:
        ws_room_leave(c, r->key, r->ref);
        return;
    case CHAT_OP_SEND:
        if (may_write(c, r, "too many messages: slow down"))
            chat_send(c, r);
        return;
    case CHAT_OP_EDIT:
    case CHAT_OP_DELETE:
        if (may_write(c, r, "too many changes: slow down"))
            chat_change(c, r);
        return;
    case CHAT_OP_BAN:
    case CHAT_OP_UNBAN:
    case CHAT_OP_BANS:
        chat_moderate(c, r);
        return;
    case CHAT_OP_HISTORY:
    case CHAT_OP_SEARCH:
        if (room_allowed(c, r))
            chat_page(c, r);
        return;
    case CHAT_OP_TYPING:
        if (c->policy->readonly) {
            ws_conn_error(c, CHAT_E_FORBIDDEN, "this location is read-only", r->ref);
            return;
        }
        if (room_allowed(c, r))
            chat_typing(c, r);
        return;
    case CHAT_OP_MEMBERS:
        if (!room_allowed(c, r))
            return;
        ws_room_members(c, r->key, r->ref);
        return;
    default:
        ws_conn_error(c, CHAT_E_UNKNOWN_OP, NULL, r->ref);
        return;
    }
}

static void ws_chat_message(struct ws_conn *c, const char *text, size_t len)
{
    struct chat_request r;
    const char *why = NULL;

    refill(c);
    enum chat_err e =
        chat_request_parse(&r, text, len, CHAT_OP_NONE, c->policy->max_text, c->policy->ns, &why);
    if (e != CHAT_OK) {
        ws_conn_error(c, e, why, r.ref);
    } else if (c->req_tokens < 1.0) {
        ws_conn_error(c, CHAT_E_RATE_LIMITED, "too many requests: slow down", r.ref);
    } else {
        c->req_tokens -= 1.0;
        dispatch(c, &r);
    }
    chat_request_free(&r);
}

/* ---- connections come and go ---- */

static void seen(struct ws_conn *c)
{
    struct ws_server *srv = c->srv;

    if (json_array_size(srv->seen_names) < 10000) {
        json_array_append_new(srv->seen_names, json_string(c->user));
        json_array_append_new(srv->seen_auth, json_boolean(c->authenticated));
    }
}

static void ws_chat_open(struct ws_conn *c)
{
    size_t len;

    const struct chat_ban *ban = conn_ban(c);

    if (ban) {
        conn_banned(c, ban, NULL);
        return;
    }
    ws_conn_reply(c, chat_encode_hello_policy(c->user, c->srv->cfg.heartbeat, c->policy, &len),
                  &len);
    seen(c);
}

static void ws_chat_closed(struct ws_conn *c)
{
    ws_room_leave_all(c);
    seen(c);
}

/* ---- once a second ---- */

static void flush_seen(struct ws_server *srv)
{
    struct chat_seen_args a = {0};
    const char *params[2];
    size_t i;
    json_t *v;

    if (json_array_size(srv->seen_names) == 0 || !pg_is_up(srv->reader))
        return;
    json_array_foreach(srv->seen_names, i, v)
    {
        if (chat_seen_args_add(&a, json_string_value(v),
                               json_is_true(json_array_get(srv->seen_auth, i))) < 0)
            goto out;
    }
    if (chat_seen_args_end(&a, params) < 0)
        goto out;
    if (pg_query(srv->reader, CHAT_SQL_USERS_SEEN, 2, params, NULL, NULL) == 0) {
        json_array_clear(srv->seen_names);
        json_array_clear(srv->seen_auth);
    }
out:
    chat_seen_args_free(&a);
}

/* Another node may have taken us for dead (our beats were late) and reaped
 * our presence: come back and send the whole local view again. */
static void beat_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_server *srv = data;
    char pid[16];

    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQgetvalue(res, 0, 1)[0] == 't')
        return;
    log_warn("node %s was reaped while alive: announcing it again", srv->node);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    const char *params[3] = {srv->node, "ws", pid};
    pg_query(pg, CHAT_SQL_NODE_UP, 3, params, NULL, NULL);
    ws_room_bus_up(srv); /* resyncs presence, catches rooms up */
}

static void tick_cb(struct ev_loop *loop, struct ev_timer *t)
{
    struct ws_server *srv = t->data;
    static unsigned ticks;

    ev_timer_start(loop, t, 1000);
    /* an idle connection to a frozen or vanished server is found out too */
    pg_probe(srv->bus, 1000);
    pg_probe(srv->reader, 1000);
    pg_probe(srv->writer, 1000);
    ws_room_tick(srv);
    flush_seen(srv);
    if (++ticks % NODE_BEAT_EVERY == 0 && pg_is_up(srv->reader)) {
        const char *params[1] = {srv->node};
        pg_query(srv->reader, CHAT_SQL_NODE_BEAT, 1, params, beat_done, srv);
    }
}

static void bus_notify(struct pg *pg, const char *channel, const char *payload, size_t len,
                       void *data)
{
    (void)pg;
    if (channel && strcmp(channel, CHAT_ADMIN_CHANNEL) == 0)
        admin_notify(data, payload, len);
    else
        ws_room_notify(data, payload, len);
}

/* The listener, the reader and the writer come and go separately; rooms
 * catch up once all are up again (the listener so that nothing new is
 * missed, the reader to read what was). */
static void db_state(struct pg *pg, bool up, void *data)
{
    struct ws_server *srv = data;

    if (!up) {
        ws_room_bus_down(srv);
        return;
    }
    if (!pg_is_up(srv->bus) || !pg_is_up(srv->reader) || !pg_is_up(srv->writer))
        return;
    (void)pg;
    log_info("ready: listening, reading and writing");
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    const char *params[3] = {srv->node, "ws", pid};
    pg_query(srv->reader, CHAT_SQL_NODE_UP, 3, params, NULL, NULL);
    if (pg_query(srv->bus, CHAT_SQL_LISTEN_ADMIN, 0, NULL, admin_listening, srv) < 0)
        bans_reload(srv);
    ws_room_bus_up(srv);
}

int ws_chat_init(struct ws_server *srv)
{
    char host[64] = "host";
    struct pg_handlers bus_h = {.notify = bus_notify, .state = db_state, .data = srv};
    struct pg_handlers reader_h = {.state = db_state, .data = srv};

    gethostname(host, sizeof(host) - 1);
    snprintf(srv->node, sizeof(srv->node), "ws-%.40s-%d-%08x", host, (int)getpid(),
             (unsigned)rand());
    srv->seen_names = json_array();
    srv->seen_auth = json_array();
    srv->bus = pg_new(srv->loop, "listen", srv->cfg.db, CHAT_CHANNEL, &bus_h);
    srv->reader = pg_new(srv->loop, "reader", srv->cfg.db, NULL, &reader_h);
    srv->writer = pg_new(srv->loop, "writer", srv->cfg.db, NULL, &reader_h);
    if (!srv->seen_names || !srv->seen_auth || !srv->bus || !srv->reader || !srv->writer)
        return -1;
    pg_set_timeout(srv->bus, srv->cfg.db_timeout);
    pg_set_timeout(srv->reader, srv->cfg.db_timeout);
    pg_set_timeout(srv->writer, srv->cfg.db_timeout);
    srv->tick.cb = tick_cb;
    srv->tick.data = srv;
    return ev_timer_start(srv->loop, &srv->tick, 1000);
}

void ws_chat_free(struct ws_server *srv)
{
    struct ws_send *s;

    while ((s = srv->send_head)) {
        srv->send_head = s->next;
        send_free(s);
    }
    ev_timer_stop(srv->loop, &srv->tick);
    ws_room_free_all(srv);
    pg_free(srv->bus);
    pg_free(srv->reader);
    pg_free(srv->writer);
    srv->bus = srv->reader = srv->writer = NULL;
    json_decref(srv->seen_names);
    json_decref(srv->seen_auth);
    chat_bans_free(&srv->bans);
}

/* Up: all three connections are, and none has a query in flight for longer
 * than the health deadline (a frozen server shows here within it, even
 * before the query's own deadline drops the connection). */
static bool db_healthy(const struct pg *pg)
{
    return pg && pg_is_up(pg) && !pg_stalled(pg, CHAT_DB_HEALTH_MS);
}

static int ws_chat_health(struct ws_server *srv, char *out, size_t size)
{
    bool db = srv->cfg.echo ||
              (db_healthy(srv->bus) && db_healthy(srv->reader) && db_healthy(srv->writer));
    unsigned long timeouts =
        pg_timeouts(srv->bus) + pg_timeouts(srv->reader) + pg_timeouts(srv->writer);

    snprintf(out, size,
             "{\"status\":\"%s\",\"backend\":\"ws\",\"pid\":%d,\"mode\":\"%s\","
             "\"connections\":%zu,\"rooms\":%zu,\"database\":\"%s\",\"db_timeouts\":%lu,"
             "\"resets\":%llu,\"rss_kib\":%ld}",
             db ? "ok" : "degraded", (int)getpid(), srv->cfg.echo ? "echo" : "chat", srv->nconns,
             srv->nrooms,
             srv->cfg.echo ? "unused"
             : db          ? "up"
                           : "down",
             timeouts, (unsigned long long)srv->stat_resets, chat_sys_rss_kib());
    return db ? 200 : 503;
}

const struct ws_handlers ws_chat_handlers = {
    .open = ws_chat_open,
    .message = ws_chat_message,
    .closed = ws_chat_closed,
    .health = ws_chat_health,
};
