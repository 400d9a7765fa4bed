/* ws_chat: the chat protocol of one WebSocket worker process: requests in,
 * replies out, sends group-committed through the writer connection (one
 * chat_post per batch, acked at commit), history, members and typing
 * through the bus connection, users seen and the node heartbeat once a
 * second. Rooms, fan-out and presence are in ws_room.c. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_db.h"
#include "chat_log.h"
#include "chat_notify.h"
#include "chat_sys.h"
#include "chat_valid.h"
#include "ws.h"

#define NODE_BEAT_EVERY 10 /* ticks */
#define WS_TYPING_EVERY_MS 1000
#define WS_SENDS_QUEUED_BATCHES 8

/* A send waiting for (or in) a group commit. */
struct ws_send {
    struct ws_send *next;
    struct ws_conn *conn; /* referenced */
    json_t *ref;          /* owned, may be NULL */
    char room[CHAT_ROOM_MAX + 1];
    char cid[CHAT_CID_MAX + 1];
    bool has_cid;
    char *text;
    size_t text_len;
};

/* An asynchronous read made for one connection. */
struct ws_op {
    struct ws_conn *conn; /* referenced */
    json_t *ref;          /* owned, may be NULL */
    char room[CHAT_ROOM_MAX + 1];
};

static struct ws_op *op_new(struct ws_conn *c, const json_t *ref, const struct chat_str *room)
{
    struct ws_op *op = calloc(1, sizeof(*op));

    if (!op)
        return NULL;
    op->conn = c;
    ws_conn_ref(c);
    op->ref = ref ? json_deep_copy(ref) : NULL;
    if (room && room->p)
        memcpy(op->room, room->p, room->len);
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

static void post_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_send *batch = data, *s;
    struct ws_server *srv = batch ? batch->conn->srv : NULL;
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    int rows = ok ? PQntuples(res) : 0;
    int i = 0;
    (void)pg;

    if (res && !ok)
        log_error("chat_post failed: %s", PQresultErrorMessage(res));
    for (s = batch; s; s = s->next, i++) {
        if (!ws_conn_alive(s->conn))
            continue;
        if (!ok || i >= rows || atoi(PQgetvalue(res, i, 0)) != i + 1) {
            ws_conn_error(s->conn, CHAT_E_UNAVAILABLE,
                          "the database is unavailable; nothing was stored: retry with the same "
                          "cid",
                          s->ref);
            continue;
        }
        int64_t seq = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        size_t len;
        char *ack = chat_encode_ack(s->room, s->has_cid ? s->cid : NULL, seq, PQgetvalue(res, i, 2),
                                    s->ref, &len);
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
    struct chat_sbuf rooms = {0}, senders = {0}, texts = {0}, cids = {0};
    struct ws_send *batch, *s, *last = NULL;
    int n = 0;

    if (srv->writer_busy || !srv->send_head)
        return;
    batch = srv->send_head;
    for (s = batch; s && n < srv->cfg.batch_max; s = s->next, n++) {
        if (chat_db_array_add(&rooms, s->room, strlen(s->room)) < 0 ||
            chat_db_array_add(&senders, s->conn->user, strlen(s->conn->user)) < 0 ||
            chat_db_array_add(&texts, s->text, s->text_len) < 0 ||
            chat_db_array_add(&cids, s->has_cid ? s->cid : NULL, strlen(s->cid)) < 0)
            goto oom;
        last = s;
    }
    if (chat_db_array_end(&rooms) < 0 || chat_db_array_end(&senders) < 0 ||
        chat_db_array_end(&texts) < 0 || chat_db_array_end(&cids) < 0)
        goto oom;
    srv->send_head = last->next;
    if (!srv->send_head)
        srv->send_tail = NULL;
    srv->nsends -= (size_t)n;
    last->next = NULL;
    const char *params[4] = {rooms.p, senders.p, texts.p, cids.p};
    if (pg_query(srv->writer,
                 "SELECT idx, seq, ts, dup FROM chat_post($1::text[], $2::text[], $3::text[], "
                 "$4::text[]) ORDER BY idx",
                 4, params, post_done, batch) < 0) {
        /* down: fail the batch at once */
        post_done(srv->writer, NULL, batch);
    } else {
        srv->writer_busy = true;
    }
    goto out;
oom:
    log_error("out of memory building a batch of %d sends", n);
out:
    chat_sbuf_free(&rooms);
    chat_sbuf_free(&senders);
    chat_sbuf_free(&texts);
    chat_sbuf_free(&cids);
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
    cstr(s->room, &r->room);
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

/* ---- reads: history, members, typing ---- */

static void history_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_op *op = data;
    struct chat_str msgs[CHAT_HISTORY_MAX];
    size_t n = 0, len;
    (void)pg;

    if (!ws_conn_alive(op->conn))
        goto out;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res)
            log_error("history: %s", PQresultErrorMessage(res));
        ws_conn_error(op->conn, CHAT_E_UNAVAILABLE, "the database is unavailable", op->ref);
        goto out;
    }
    if (!PQgetisnull(res, 0, 0)) {
        const char *p = PQgetvalue(res, 0, 0), *end = p + PQgetlength(res, 0, 0);
        while (n < CHAT_HISTORY_MAX && chat_next_line(&p, end, &msgs[n].p, &msgs[n].len))
            n++;
    }
    ws_conn_reply(op->conn, chat_encode_history(op->room, msgs, n, op->ref, &len), &len);
out:
    op_free(op);
}

static void chat_history(struct ws_conn *c, const struct chat_request *r)
{
    char before[24], limit[16];
    struct ws_op *op = op_new(c, r->ref, &r->room);

    if (!op) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "out of memory", r->ref);
        return;
    }
    snprintf(before, sizeof(before), "%lld", (long long)r->before);
    snprintf(limit, sizeof(limit), "%d", r->limit);
    const char *params[3] = {op->room, before, limit};
    if (pg_query(c->srv->reader,
                 "SELECT string_agg(j, E'\\n' ORDER BY seq) FROM (SELECT seq, "
                 "chat_msg_json(room, seq, sender, text, ts, cid) AS j FROM messages "
                 "WHERE room = $1 AND ($2::bigint = 0 OR seq < $2::bigint) "
                 "ORDER BY seq DESC LIMIT $3::int) s",
                 3, params, history_done, op) < 0) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "the database is unavailable", r->ref);
        op_free(op);
    }
}

int ws_members_parse(const char *json, size_t len, const char *self, const char ***names, size_t *n,
                     size_t *count)
{
    json_t *arr = json_loadb(json, len, 0, NULL);
    size_t i, k = 0, m = arr ? json_array_size(arr) : 0;
    bool have_self = self == NULL;
    const char **v = calloc(m + 2, sizeof(char *));

    if (!arr || !v) {
        json_decref(arr);
        free(v);
        return -1;
    }
    for (i = 0; i < m; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s)
            continue;
        if (self && strcmp(s, self) == 0)
            have_self = true;
        v[k++] = strdup(s);
    }
    json_decref(arr);
    /* the joiner itself is online even before this second's presence flush */
    if (!have_self) {
        size_t pos = 0;
        while (pos < k && strcmp(v[pos], self) < 0)
            pos++;
        if (k < 1000 || pos < k) {
            memmove(v + pos + 1, v + pos, (k - pos) * sizeof(char *));
            v[pos] = strdup(self);
            k++;
            if (k > 1000)
                free((void *)v[--k]);
        }
        (*count)++;
    }
    *names = v;
    *n = k;
    return 0;
}

void ws_members_free(const char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)names[i]);
    free(names);
}

static void members_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_op *op = data;
    const char **names = NULL;
    size_t n = 0, count = 0, len;
    (void)pg;

    if (!ws_conn_alive(op->conn))
        goto out;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ws_conn_error(op->conn, CHAT_E_UNAVAILABLE, "the database is unavailable", op->ref);
        goto out;
    }
    count = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    if (ws_members_parse(PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1),
                         ws_room_joined(op->conn, op->room) ? op->conn->user : NULL, &names, &n,
                         &count) < 0) {
        ws_conn_error(op->conn, CHAT_E_UNAVAILABLE, "out of memory", op->ref);
        goto out;
    }
    ws_conn_reply(op->conn, chat_encode_members(op->room, names, n, count, op->ref, &len), &len);
    ws_members_free(names, n);
out:
    op_free(op);
}

static void chat_members(struct ws_conn *c, const struct chat_request *r)
{
    struct ws_op *op = op_new(c, r->ref, &r->room);

    if (!op) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "out of memory", r->ref);
        return;
    }
    const char *params[1] = {op->room};
    if (pg_query(c->srv->reader, "SELECT count, members FROM chat_members($1)", 1, params,
                 members_done, op) < 0) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "the database is unavailable", r->ref);
        op_free(op);
    }
}

static void chat_typing(struct ws_conn *c, const struct chat_request *r)
{
    char room[CHAT_ROOM_MAX + 1];
    size_t len;
    int64_t now = ev_now(c->srv->loop);

    /* a typist sends one per keystroke; the others need one a second */
    if (c->typing_at && now - c->typing_at < WS_TYPING_EVERY_MS)
        return;
    c->typing_at = now;

    cstr(room, &r->room);
    char *ev = chat_encode_typing(room, c->user, &len);
    if (!ev)
        return;
    const char *params[1] = {ev};
    /* not persisted: a hint to the others, lost if the database is down */
    pg_query(c->srv->reader, "SELECT pg_notify('chat', $1)", 1, params, NULL, NULL);
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

static void dispatch(struct ws_conn *c, const struct chat_request *r)
{
    char room[CHAT_ROOM_MAX + 1];
    size_t len;

    switch (r->op) {
    case CHAT_OP_PING:
        ws_conn_reply(c, chat_encode_pong(r->ref, &len), &len);
        return;
    case CHAT_OP_JOIN:
        if (!room_allowed(c, r))
            return;
        cstr(room, &r->room);
        ws_room_join(c, room, r->since, r->ref);
        return;
    case CHAT_OP_LEAVE:
        cstr(room, &r->room);
        ws_room_leave(c, room, r->ref);
        return;
    case CHAT_OP_SEND:
        if (c->policy->readonly) {
            ws_conn_error(c, CHAT_E_FORBIDDEN, "this location is read-only", r->ref);
            return;
        }
        if (!room_allowed(c, r))
            return;
        if (c->send_tokens < 1.0) {
            ws_conn_error(c, CHAT_E_RATE_LIMITED, "too many messages: slow down", r->ref);
            return;
        }
        c->send_tokens -= 1.0;
        chat_send(c, r);
        return;
    case CHAT_OP_HISTORY:
        if (room_allowed(c, r))
            chat_history(c, r);
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
        if (room_allowed(c, r))
            chat_members(c, r);
        return;
    default:
        ws_conn_error(c, CHAT_E_UNKNOWN_OP, NULL, r->ref);
        return;
    }
}

void ws_chat_message(struct ws_conn *c, const char *text, size_t len)
{
    struct chat_request r;
    const char *why = NULL;

    refill(c);
    enum chat_err e = chat_request_parse(&r, text, len, CHAT_OP_NONE, c->policy->max_text, &why);
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

void ws_chat_open(struct ws_conn *c)
{
    size_t len;

    ws_conn_reply(c, chat_encode_hello(c->user, c->srv->cfg.heartbeat, &len), &len);
    seen(c);
}

void ws_chat_closed(struct ws_conn *c)
{
    ws_room_leave_all(c);
    seen(c);
}

/* ---- once a second ---- */

static void flush_seen(struct ws_server *srv)
{
    struct chat_sbuf names = {0}, auth = {0};
    size_t i;
    json_t *v;

    if (json_array_size(srv->seen_names) == 0 || !pg_is_up(srv->reader))
        return;
    json_array_foreach(srv->seen_names, i, v)
    {
        const char *s = json_string_value(v);
        const char *a = json_is_true(json_array_get(srv->seen_auth, i)) ? "t" : "f";
        if (chat_db_array_add(&names, s, strlen(s)) < 0 || chat_db_array_add(&auth, a, 1) < 0)
            goto out;
    }
    if (chat_db_array_end(&names) < 0 || chat_db_array_end(&auth) < 0)
        goto out;
    const char *params[2] = {names.p, auth.p};
    if (pg_query(srv->reader, "SELECT chat_users_seen($1::text[], $2::boolean[])", 2, params, NULL,
                 NULL) == 0) {
        json_array_clear(srv->seen_names);
        json_array_clear(srv->seen_auth);
    }
out:
    chat_sbuf_free(&names);
    chat_sbuf_free(&auth);
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
    pg_query(pg, "SELECT chat_node_up($1, $2, $3::int)", 3, params, NULL, NULL);
    ws_room_bus_up(srv); /* resyncs presence, catches rooms up */
}

static void tick_cb(struct ev_loop *loop, struct ev_timer *t)
{
    struct ws_server *srv = t->data;
    static unsigned ticks;

    ev_timer_start(loop, t, 1000);
    ws_room_tick(srv);
    flush_seen(srv);
    if (++ticks % NODE_BEAT_EVERY == 0 && pg_is_up(srv->reader)) {
        const char *params[1] = {srv->node};
        pg_query(srv->reader,
                 "SELECT chat_node_beat($1, interval '30 seconds'), "
                 "EXISTS (SELECT 1 FROM nodes WHERE node = $1)",
                 1, params, beat_done, srv);
    }
}

static void bus_notify(struct pg *pg, const char *channel, const char *payload, size_t len,
                       void *data)
{
    (void)pg;
    (void)channel;
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
    pg_query(srv->reader, "SELECT chat_node_up($1, $2, $3::int)", 3, params, NULL, NULL);
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
    srv->bus = pg_new(srv->loop, "listen", srv->cfg.db, "chat", &bus_h);
    srv->reader = pg_new(srv->loop, "reader", srv->cfg.db, NULL, &reader_h);
    srv->writer = pg_new(srv->loop, "writer", srv->cfg.db, NULL, &reader_h);
    if (!srv->seen_names || !srv->seen_auth || !srv->bus || !srv->reader || !srv->writer)
        return -1;
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
}

void ws_chat_health(struct ws_server *srv, char *out, size_t size)
{
    bool db = srv->cfg.echo ||
              (srv->bus && pg_is_up(srv->bus) && pg_is_up(srv->reader) && pg_is_up(srv->writer));

    snprintf(out, size,
             "{\"status\":\"%s\",\"backend\":\"ws\",\"pid\":%d,\"mode\":\"%s\","
             "\"connections\":%zu,\"rooms\":%zu,\"database\":\"%s\",\"rss_kib\":%ld}",
             db ? "ok" : "degraded", (int)getpid(), srv->cfg.echo ? "echo" : "chat", srv->nconns,
             srv->nrooms,
             srv->cfg.echo ? "unused"
             : db          ? "up"
                           : "down",
             chat_sys_rss_kib());
}
