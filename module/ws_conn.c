/* ws_conn: WebSocket connections of one worker process. Accepts, reads the
 * handshake (bounded in bytes and time), then feeds frames to the RFC 6455
 * reader and the chat; writes outboxes with writev before the loop sleeps,
 * replies and control frames ahead of fan-out; closes slow consumers with
 * 1008. A connection is never freed inside its own callback: it is marked
 * dead and reaped before the loop sleeps. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "chat_addr.h"
#include "chat_hash.h"
#include "chat_list.h"
#include "chat_log.h"
#include "chat_metrics.h"
#include "ws.h"
#include "ws_handshake.h"

#define WS_IOV_MAX 64
#define WS_CLOSE_WAIT_MS 2000
#define WS_ACCEPT_BATCH 128
#define WS_FULL_MARGIN 64
#define WS_RING_KEEP 8
#define WS_ACCEPT_PAUSE_MS 200
#define WS_HS_FIRST 2048            /* bytes of a handshake buffer at first */
#define WS_LINGER_MS 2000           /* a failed connection's input is drained this long at most */
#define WS_LINGER_BYTES (16u << 20) /* and this much */
#define WS_PEER_EVERY_MS 250        /* a worker publishes its state this often */
#define WS_PEER_STALE_MS 1500       /* a worker silent longer is not counted on */

static void conn_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events);
static void conn_timer_cb(struct ev_loop *loop, struct ev_timer *t);
static void conn_msg_timer_cb(struct ev_loop *loop, struct ev_timer *t);
static void conn_kill(struct ws_conn *c);
static void conn_mark_pending(struct ws_conn *c);
static void listen_update(struct ws_server *srv);
static void conn_feed(struct ws_conn *c, uint8_t *buf, size_t len);
const struct chat_policy *ws_policy_intern(const struct chat_policy *p);

/* ---- frames ---- */

struct ws_buf *ws_buf_frame(int opcode, const void *payload, size_t len)
{
    uint8_t hdr[WS_FRAME_HDR_MAX];
    size_t h = opcode < 0 ? 0 : ws_frame_header(hdr, opcode, len);
    struct ws_buf *b;

    if (len > UINT32_MAX - h)
        return NULL;
    b = malloc(sizeof(*b) + h + len);
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = (uint32_t)(h + len);
    memcpy(b->data, hdr, h);
    if (len)
        memcpy(b->data + h, payload, len);
    return b;
}

void ws_buf_unref(struct ws_buf *b)
{
    if (b && --b->refs == 0)
        free(b);
}

static int ring_push(struct ws_ring *r, struct ws_buf *b)
{
    if (r->count == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 8;
        struct ws_buf **v = malloc(cap * sizeof(*v));
        if (!v)
            return -1;
        for (uint32_t i = 0; i < r->count; i++)
            v[i] = r->v[(r->head + i) % r->cap];
        free(r->v);
        r->v = v;
        r->head = 0;
        r->cap = cap;
    }
    r->v[(r->head + r->count) % r->cap] = b;
    r->count++;
    return 0;
}

static struct ws_buf *ring_at(const struct ws_ring *r, uint32_t i)
{
    return r->v[(r->head + i) % r->cap];
}

static struct ws_buf *ring_pop(struct ws_ring *r)
{
    struct ws_buf *b = r->v[r->head];
    r->head = (r->head + 1) % r->cap;
    if (--r->count == 0) {
        r->head = 0;
        /* a busy connection keeps its small ring (no malloc per message);
         * one that queued a burst gives the memory back */
        if (r->cap > WS_RING_KEEP) {
            free(r->v);
            r->v = NULL;
            r->cap = 0;
        }
    }
    return b;
}

static void ring_clear(struct ws_ring *r, size_t *bytes)
{
    while (r->count) {
        struct ws_buf *b = ring_pop(r);
        *bytes -= b->len;
        ws_buf_unref(b);
    }
    free(r->v);
    r->v = NULL;
    r->cap = r->head = 0;
}

/* ---- open connections and joined rooms per client address (nginx's
 * X-Chat-Addr) ----
 * counted by the address's group (core/chat_addr.h: an IPv6 address by its
 * /64), as every per-address bound of both daemons is; an entry lives while
 * its address has a connection or a joined room here */

#define WS_ADDR_BUCKETS 1024

struct ws_addr_count {
    struct ws_addr_count *next;
    size_t conns, rooms;
    char addr[CHAT_ADDR_MAX + 1];
};

static struct ws_addr_count **addr_slot(struct ws_server *srv, const char *raw)
{
    char addr[CHAT_ADDR_MAX + 1];

    chat_addr_group(raw, addr);
    if (!srv->addrs) {
        srv->addrs = calloc(WS_ADDR_BUCKETS, sizeof(*srv->addrs));
        if (!srv->addrs)
            return NULL;
        srv->addr_buckets = WS_ADDR_BUCKETS;
        /* seeded: peers choose the keys */
        srv->addr_seed = chat_hash_more(CHAT_HASH_INIT, (const char *)&srv, sizeof(srv)) ^
                         (uint64_t)ev_now(srv->loop) ^ (uint64_t)getpid() << 32;
    }
    struct ws_addr_count **pp =
        &srv->addrs[chat_hash_more(srv->addr_seed, addr, strlen(addr)) % srv->addr_buckets];
    while (*pp && strcmp((*pp)->addr, addr) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Counts c under its address: 0, or -1 when the address has its
 * --max-conns-per-addr already (or out of memory). */
static int addr_take(struct ws_conn *c)
{
    struct ws_server *srv = c->srv;
    struct ws_addr_count **pp, *a;

    if ((!srv->cfg.max_per_addr && !srv->cfg.max_rooms_per_addr) || !c->addr[0])
        return 0;
    if (!(pp = addr_slot(srv, c->addr)))
        return -1;
    if (!(a = *pp)) {
        if (!(a = calloc(1, sizeof(*a))))
            return -1;
        chat_addr_group(c->addr, a->addr);
        *pp = a;
    }
    if (srv->cfg.max_per_addr && a->conns >= srv->cfg.max_per_addr)
        return -1;
    a->conns++;
    c->counted = true;
    return 0;
}

static void addr_release(struct ws_conn *c)
{
    struct ws_addr_count **pp, *a;

    if (!c->counted)
        return;
    c->counted = false;
    pp = addr_slot(c->srv, c->addr);
    if (pp && (a = *pp) && --a->conns == 0 && a->rooms == 0) {
        *pp = a->next;
        free(a);
    }
}

int ws_conn_addr_room_take(struct ws_conn *c)
{
    struct ws_addr_count **pp;

    if (!c->srv->cfg.max_rooms_per_addr || !c->counted)
        return 0;
    if (!(pp = addr_slot(c->srv, c->addr)) || !*pp) /* (a counted connection has one) */
        return -1;
    if ((*pp)->rooms >= c->srv->cfg.max_rooms_per_addr)
        return -1;
    (*pp)->rooms++;
    return 1;
}

void ws_conn_addr_room_give(struct ws_conn *c)
{
    struct ws_addr_count **pp = addr_slot(c->srv, c->addr), *a;

    if (pp && (a = *pp) && a->rooms > 0 && --a->rooms == 0 && a->conns == 0) {
        *pp = a->next;
        free(a);
    }
}

/* ---- references and reaping ---- */

void ws_conn_ref(struct ws_conn *c)
{
    c->refs++;
}

static void conn_free(struct ws_conn *c)
{
    free(c);
}

void ws_conn_unref(struct ws_conn *c)
{
    if (--c->refs == 0 && c->state == WS_DEAD && c->io.fd < 0) {
        conn_free(c);
        return;
    }
    /* a request came back: a connection that stopped parsing may go on */
    if (c->refs == WS_INFLIGHT_MAX - 1 && c->state == WS_OPEN)
        conn_mark_pending(c);
}

static void conn_mark_pending(struct ws_conn *c)
{
    if (!c->pending && c->state != WS_DEAD) {
        c->pending = true;
        c->pending_next = c->srv->pending;
        c->srv->pending = c;
    }
}

/* Marks c dead: no more I/O; reaped before the loop sleeps. */
static void conn_kill(struct ws_conn *c)
{
    if (c->state == WS_DEAD)
        return;
    c->state = WS_DEAD;
    ev_io_set(c->srv->loop, &c->io, 0);
    ev_timer_stop(c->srv->loop, &c->timer);
    ev_timer_stop(c->srv->loop, &c->msg_timer);
    c->reap_next = c->srv->reap;
    c->srv->reap = c;
}

static void conn_reap(struct ws_conn *c)
{
    struct ws_server *srv = c->srv;

    /* rooms are left here, before the loop sleeps, never inside a fan-out
     * loop that may be walking them */
    if (c->chatting) {
        c->chatting = false;
        srv->h->closed(c);
    }
    close(c->io.fd);
    c->io.fd = -1;
    free(c->hs);
    c->hs = NULL;
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    ws_reader_free(&c->rd);
    if (c->cur)
        ws_buf_unref(c->cur);
    c->cur = NULL;
    ring_clear(&c->urgent, &c->out_bytes);
    ring_clear(&c->normal, &c->out_bytes);
    addr_release(c);
    CHAT_LIST_UNLINK(srv->conns, c, prev, next);
    srv->nconns--;
    if (!srv->listening)
        listen_update(srv);
    if (c->refs == 0)
        conn_free(c);
}

/* ---- output ---- */

void ws_conn_queue(struct ws_conn *c, struct ws_buf *b, bool urgent)
{
    if (c->state == WS_DEAD || c->state == WS_HANDSHAKE || (c->close_sent && !urgent))
        return;
    if (!urgent && c->out_bytes + b->len > c->srv->cfg.outbox_max) {
        log_info("conn %llu: outbox over %zu bytes: closing slow consumer",
                 (unsigned long long)c->id, c->srv->cfg.outbox_max);
        ws_conn_close(c, WS_CLOSE_POLICY, "too slow: resume from your cursor");
        return;
    }
    if (ring_push(urgent ? &c->urgent : &c->normal, ws_buf_ref(b)) < 0) {
        ws_buf_unref(b);
        log_error("conn %llu: out of memory queueing a frame", (unsigned long long)c->id);
        conn_kill(c);
        return;
    }
    c->out_bytes += b->len;
    c->srv->stat_frames_out++; /* chat_deliveries_total: published per loop turn (ws_main.c) */
    conn_mark_pending(c);
}

static void queue_raw(struct ws_conn *c, int opcode, const void *p, size_t len)
{
    struct ws_buf *b = ws_buf_frame(opcode, p, len);

    if (!b) {
        conn_kill(c);
        return;
    }
    if (ring_push(&c->urgent, b) < 0) {
        ws_buf_unref(b);
        conn_kill(c);
        return;
    }
    c->out_bytes += b->len;
    conn_mark_pending(c);
}

void ws_conn_reply(struct ws_conn *c, char *json, const size_t *lenp)
{
    size_t len = json ? *lenp : 0;

    if (!json) {
        log_error("conn %llu: out of memory encoding a reply", (unsigned long long)c->id);
        conn_kill(c);
        return;
    }
    if (c->state == WS_OPEN)
        queue_raw(c, WS_OP_TEXT, json, len);
    free(json);
}

void ws_conn_error(struct ws_conn *c, enum chat_err code, const char *message, const json_t *ref)
{
    size_t len;
    chat_metric_refused(code);
    ws_conn_reply(c, chat_encode_error(code, message, ref, &len), &len);
}

void ws_conn_close(struct ws_conn *c, unsigned code, const char *reason)
{
    uint8_t payload[WS_CONTROL_MAX];

    if (c->state == WS_DEAD || c->close_sent)
        return;
    /* fan-out not yet started is dropped: the client resumes by cursor */
    ring_clear(&c->normal, &c->out_bytes);
    size_t n = ws_close_payload(payload, code, reason, reason ? strlen(reason) : 0);
    queue_raw(c, WS_OP_CLOSE, payload, n);
    if (c->state == WS_DEAD)
        return;
    c->close_sent = true;
    c->state = WS_CLOSING;
    ev_timer_start(c->srv->loop, &c->timer, WS_CLOSE_WAIT_MS);
}

/* Not parsing requests now: the outbox is over its bound (until half of
 * it drained), or WS_INFLIGHT_MAX requests wait for the database. */
static bool conn_stalled(const struct ws_conn *c)
{
    return c->paused || c->out_bytes > c->srv->cfg.outbox_max || c->refs >= WS_INFLIGHT_MAX;
}

/* Writes as much of the outbox as the socket takes. 0, or -1 when the
 * connection died. */
static int conn_flush(struct ws_conn *c)
{
    struct iovec iov[WS_IOV_MAX];
    int n = 0;

    while (c->out_bytes > 0) {
        n = 0;
        if (c->cur) {
            iov[n].iov_base = c->cur->data + c->cur_off;
            iov[n++].iov_len = c->cur->len - c->cur_off;
        }
        for (uint32_t i = 0; i < c->urgent.count && n < WS_IOV_MAX; i++, n++) {
            struct ws_buf *b = ring_at(&c->urgent, i);
            iov[n].iov_base = b->data;
            iov[n].iov_len = b->len;
        }
        for (uint32_t i = 0; i < c->normal.count && n < WS_IOV_MAX; i++, n++) {
            struct ws_buf *b = ring_at(&c->normal, i);
            iov[n].iov_base = b->data;
            iov[n].iov_len = b->len;
        }
        ssize_t w = writev(c->io.fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            log_debug("conn %llu: write: %s", (unsigned long long)c->id, strerror(errno));
            conn_kill(c);
            return -1;
        }
        size_t left = (size_t)w;
        c->out_bytes -= left;
        while (left > 0) {
            if (!c->cur)
                c->cur = ring_pop(c->urgent.count ? &c->urgent : &c->normal);
            size_t rest = c->cur->len - c->cur_off;
            if (left < rest) {
                c->cur_off += (uint32_t)left;
                break;
            }
            left -= rest;
            ws_buf_unref(c->cur);
            c->cur = NULL;
            c->cur_off = 0;
        }
    }
    /* backpressure: replies come only from requests, so not parsing them
     * while the outbox is over its bound (resume below half) or while
     * WS_INFLIGHT_MAX are at the database bounds replies too */
    if (c->out_bytes > c->srv->cfg.outbox_max) {
        if (!c->paused)
            log_info("conn %llu: outbox over %zu bytes: stops reading until half of it drained",
                     (unsigned long long)c->id, c->srv->cfg.outbox_max);
        c->paused = true;
    } else if (c->out_bytes <= c->srv->cfg.outbox_max / 2)
        c->paused = false;
    if (c->in_len > 0 && !conn_stalled(c) && c->state == WS_OPEN) {
        /* input held while stalled: parse it now; what it queues comes
         * back here (pending) */
        conn_feed(c, c->in, c->in_len);
        if (c->state == WS_DEAD)
            return -1;
    }
    bool reading = c->linger || (c->in_len == 0 && !conn_stalled(c));
    uint32_t want = (reading ? EPOLLIN | EPOLLRDHUP : 0) | (c->out_bytes ? EPOLLOUT : 0);
    if (ev_io_set(c->srv->loop, &c->io, want) < 0) {
        conn_kill(c);
        return -1;
    }
    /* our close frame is out: done once the peer's arrived (or timed out) */
    if (c->out_bytes == 0 && c->close_sent && (c->close_received || c->state == WS_HANDSHAKE)) {
        if (!c->linger) {
            conn_kill(c);
        } else if (!c->shut) {
            /* lingering close: our FIN after the close frame, then what the
             * peer still sends is read and dropped until its FIN, for at
             * most WS_LINGER_MS; closing with unread bytes would send a
             * reset, and the peer would lose our close frame (1006) */
            c->shut = true;
            shutdown(c->io.fd, SHUT_WR);
            ev_timer_start(c->srv->loop, &c->timer, WS_LINGER_MS);
        }
    }
    return 0;
}

void ws_server_before_sleep(struct ev_loop *loop, void *data)
{
    struct ws_server *srv = data;
    (void)loop;

    while (srv->pending) {
        struct ws_conn *c = srv->pending;
        srv->pending = c->pending_next;
        c->pending = false;
        if (c->state != WS_DEAD)
            conn_flush(c);
    }
    while (srv->reap) {
        struct ws_conn *c = srv->reap;
        srv->reap = c->reap_next;
        conn_reap(c);
    }
}

/* ---- plain HTTP answers before the upgrade ---- */

static void http_answer(struct ws_conn *c, int status, const char *extra, const char *ctype,
                        const char *body)
{
    char out[2048];
    int n = ws_http_response(out, sizeof(out), status, NULL, extra, ctype, body, strlen(body));

    if (n > 0)
        queue_raw(c, -1, out, (size_t)n);
    c->close_sent = true; /* closed once written (and drained) */
    c->close_received = true;
    c->linger = true;
}

static void http_error(struct ws_conn *c, int status, const char *why)
{
    char body[256];
    snprintf(body, sizeof(body), "%s\n", why);
    log_info("conn %llu: handshake refused: %d %s", (unsigned long long)c->id, status, why);
    http_answer(c, status, NULL, NULL, body);
}

/* Reads the X-Chat-* headers into the connection's policy. */
static int read_policy(struct ws_conn *c, const struct ws_request *req, struct chat_policy *p,
                       const char **why)
{
    chat_policy_init(p);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct ws_header *h = &req->headers[i];
        int key = chat_policy_key_from_header(h->name, h->name_len);
        if (key < 0)
            continue;
        if (chat_policy_set(p, key, h->value, h->value_len, why) < 0) {
            log_error("conn %llu: bad policy header %.*s from nginx: %s", (unsigned long long)c->id,
                      (int)h->name_len, h->name, *why);
            return -1;
        }
    }
    return 0;
}

static void upgrade(struct ws_conn *c, const struct ws_request *req, const struct ws_hs_result *res,
                    size_t head_len)
{
    struct ws_server *srv = c->srv;
    char out[256], name[CHAT_USER_MAX + 8];
    const char *why = NULL;

    if (!srv->cfg.echo) {
        struct chat_policy p;
        if (read_policy(c, req, &p, &why) < 0) {
            http_error(c, 500, "bad chat policy from nginx");
            return;
        }
        int nl = ws_query_param(req->target, req->target_len, "name", name, sizeof(name));
        int id = chat_policy_identity(&p, nl >= 0 ? name : NULL, nl >= 0 ? (size_t)nl : 0, c->user);
        if (id == -1) {
            http_error(c, 401, "sign in first: guests are not allowed here");
            return;
        }
        if (id < 0) {
            http_error(c, 400, "guests need a name: ?name= with 1-32 of A-Z a-z 0-9 _ . -");
            return;
        }
        c->authenticated = p.user[0] != '\0';
        const char *addr;
        size_t addr_len;
        if (ws_header_get(req, "X-Chat-Addr", &addr, &addr_len) == 1 && addr_len <= CHAT_ADDR_MAX) {
            memcpy(c->addr, addr, addr_len);
            c->addr[addr_len] = '\0';
        }
        if (addr_take(c) < 0) {
            log_info("conn %llu: refused: %zu connections from %s", (unsigned long long)c->id,
                     srv->cfg.max_per_addr, c->addr);
            http_answer(c, 429, "Retry-After: 5", "application/json",
                        "{\"op\":\"error\",\"code\":\"rate_limited\","
                        "\"message\":\"too many connections from your address\"}");
            return;
        }
        p.user[0] = '\0'; /* the identity lives in c->user; policies are shared */
        c->policy = ws_policy_intern(&p);
        if (!c->policy) {
            http_error(c, 503, "out of memory");
            return;
        }
    }
    int n = ws_handshake_accept(out, sizeof(out), res->key, res->key_len);
    if (n < 0) {
        conn_kill(c);
        return;
    }
    queue_raw(c, -1, out, (size_t)n);
    c->state = WS_OPEN;
    ws_reader_init(&c->rd, srv->cfg.max_message);
    c->tokens_at = ev_now(srv->loop);
    c->send_tokens = srv->cfg.send_burst;
    c->req_tokens = srv->cfg.req_burst;
    ev_timer_start(srv->loop, &c->timer, (int64_t)srv->cfg.heartbeat * 1000);
    if (!srv->cfg.echo) {
        c->chatting = true;
        srv->h->open(c);
    }
    /* frames the client sent right behind its handshake */
    size_t rest = c->hs_len - head_len;
    if (rest > 0) {
        memcpy(srv->rbuf, c->hs + head_len, rest);
    }
    free(c->hs);
    c->hs = NULL;
    c->hs_len = c->hs_cap = 0;
    if (rest > 0)
        conn_feed(c, srv->rbuf, rest);
}

static bool target_is_health(const struct ws_request *req)
{
    size_t n = req->target_len;
    const char *t = req->target;
    const char *q = memchr(t, '?', n);
    if (q)
        n = (size_t)(q - t);
    return n >= 7 && memcmp(t + n - 7, "/health", 7) == 0;
}

static void handshake(struct ws_conn *c)
{
    struct ws_request req;
    struct ws_hs_result res;
    const char *origins = NULL;
    size_t origins_len = 0;
    int n = ws_handshake_parse(c->hs, c->hs_len, &req);

    if (n == WS_HS_INCOMPLETE)
        return;
    if (n < 0) {
        http_error(c, req.too_large ? 431 : 400, "malformed HTTP request");
        return;
    }
    ws_header_get(&req, "X-Chat-Origins", &origins, &origins_len);
    switch (ws_handshake_check(&req, origins, origins_len, &res)) {
    case WS_HS_UPGRADE:
        if (c->full) {
            const char *body = "{\"op\":\"error\",\"code\":\"unavailable\","
                               "\"message\":\"server full: retry later\"}";
            log_info("conn %llu: refused: %zu connections", (unsigned long long)c->id,
                     c->srv->nconns);
            http_answer(c, 503, "Retry-After: 5", "application/json", body);
            return;
        }
        upgrade(c, &req, &res, (size_t)n);
        return;
    case WS_HS_NOT_UPGRADE:
        if (target_is_health(&req)) {
            char body[1024];
            int status = c->srv->h->health(c->srv, body, sizeof(body));
            http_answer(c, status, NULL, "application/json", body);
            return;
        }
        http_error(c, 426, "this is a WebSocket endpoint");
        return;
    default:
        log_info("conn %llu: handshake refused: %d %s", (unsigned long long)c->id, res.status,
                 res.reason);
        char body[256];
        snprintf(body, sizeof(body), "%s\n", res.reason);
        http_answer(c, res.status, res.extra_header, NULL, body);
        return;
    }
}

/* ---- input ---- */

static void on_frame_event(struct ws_conn *c, const struct ws_event *ev)
{
    struct ws_server *srv = c->srv;

    switch (ev->type) {
    case WS_EV_TEXT:
    case WS_EV_BINARY:
        ev_timer_stop(srv->loop, &c->msg_timer); /* the message is whole */
        if (c->close_sent)
            return;
        srv->stat_msgs_in++;
        if (srv->cfg.echo) {
            queue_raw(c, ev->type == WS_EV_TEXT ? WS_OP_TEXT : WS_OP_BINARY, ev->data, ev->len);
        } else if (ev->type == WS_EV_BINARY) {
            ws_conn_close(c, WS_CLOSE_UNSUPPORTED, "binary messages are not spoken here");
        } else {
            srv->h->message(c, (const char *)ev->data, ev->len);
        }
        return;
    case WS_EV_PING:
        if (!c->close_sent)
            queue_raw(c, WS_OP_PONG, ev->data, ev->len);
        return;
    case WS_EV_PONG:
        c->missed_pongs = 0;
        return;
    case WS_EV_CLOSE:
        c->close_received = true;
        if (!c->close_sent)
            ws_conn_close(c, ev->code == WS_CLOSE_NO_STATUS ? 0 : ev->code, NULL);
        conn_mark_pending(c);
        return;
    case WS_EV_ERROR:
        log_info("conn %llu: protocol error, closing with %u", (unsigned long long)c->id, ev->code);
        ws_conn_close(c, ev->code, NULL);
        c->close_received = true; /* nothing more will be parsed */
        c->linger = true;         /* but read, so that the client sees the code */
        conn_mark_pending(c);
        return;
    default:
        return;
    }
}

/* Holds buf[0..len) (the unparsed rest of a read, or of what was held)
 * until the connection is no longer stalled. */
static void conn_hold(struct ws_conn *c, const uint8_t *buf, size_t len)
{
    /* what a read leaves: at most a read buffer, or a handshake's tail */
    size_t cap = c->srv->rbuf_size > WS_HANDSHAKE_MAX ? c->srv->rbuf_size : WS_HANDSHAKE_MAX;

    if (!c->in && !(c->in = malloc(cap))) {
        conn_kill(c);
        return;
    }
    memmove(c->in, buf, len);
    c->in_len = len;
    conn_mark_pending(c); /* reading stops at the next flush */
}

static void conn_feed(struct ws_conn *c, uint8_t *buf, size_t len)
{
    c->in_len = 0; /* buf may be c->in itself: held again below if need be */
    while (len > 0 && c->state != WS_DEAD) {
        if (c->state == WS_OPEN && !c->close_received && conn_stalled(c)) {
            conn_hold(c, buf, len);
            return;
        }
        struct ws_event ev;
        size_t used = 0;
        int r = ws_reader_feed(&c->rd, buf, len, &used, &ev);
        buf += used;
        len -= used;
        if (r == 0)
            break;
        on_frame_event(c, &ev);
        if (r < 0)
            break;
    }
    /* a message begun: it has --message-timeout to finish, whatever else
     * (pongs, pings) comes meanwhile */
    if (c->state == WS_OPEN && c->rd.msg_opcode && !ev_timer_armed(&c->msg_timer))
        ev_timer_start(c->srv->loop, &c->msg_timer, (int64_t)c->srv->cfg.message_timeout * 1000);
}

static void conn_msg_timer_cb(struct ev_loop *loop, struct ev_timer *t)
{
    struct ws_conn *c = t->data;
    (void)loop;

    if (c->state != WS_OPEN || c->close_sent)
        return;
    log_info("conn %llu: a message not finished in %d s: closing", (unsigned long long)c->id,
             c->srv->cfg.message_timeout);
    ws_conn_close(c, WS_CLOSE_POLICY, "message not finished in time");
    c->close_received = true; /* the rest of it is drained, not parsed */
    c->linger = true;
    conn_mark_pending(c);
}

/* A failed connection being closed: reads and drops, up to a bound. */
static void conn_drain(struct ws_conn *c)
{
    ssize_t n = read(c->io.fd, c->srv->rbuf, c->srv->rbuf_size);

    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_kill(c);
        return;
    }
    c->drained += (size_t)n;
    if (n == 0 || c->drained > WS_LINGER_BYTES)
        conn_kill(c);
}

static void conn_read(struct ws_conn *c)
{
    struct ws_server *srv = c->srv;
    ssize_t n;

    if (c->linger) {
        conn_drain(c);
        return;
    }

    if (c->state == WS_HANDSHAKE) {
        /* the head's buffer grows as it comes: most are under 1 KiB */
        if (c->hs_len == c->hs_cap) {
            size_t cap = c->hs_cap ? c->hs_cap * 2 : WS_HS_FIRST;
            if (cap > WS_HANDSHAKE_MAX + 1)
                cap = WS_HANDSHAKE_MAX + 1;
            char *hs = realloc(c->hs, cap);
            if (!hs) {
                conn_kill(c);
                return;
            }
            c->hs = hs;
            c->hs_cap = cap;
        }
        n = read(c->io.fd, c->hs + c->hs_len, c->hs_cap - c->hs_len);
    } else if (c->in_len > 0 || conn_stalled(c)) {
        conn_mark_pending(c); /* the flush stops reading (level-triggered) */
        return;
    } else {
        n = read(c->io.fd, srv->rbuf, srv->rbuf_size);
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_kill(c);
        return;
    }
    if (n == 0) {
        conn_kill(c);
        return;
    }
    if (c->state == WS_HANDSHAKE) {
        if (c->close_sent)
            return; /* answered already; ignore the rest */
        c->hs_len += (size_t)n;
        handshake(c);
        return;
    }
    if (c->close_received)
        return;
    conn_feed(c, srv->rbuf, (size_t)n);
}

static void conn_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct ws_conn *c = io->data;
    (void)loop;

    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        conn_read(c);
    if (c->state != WS_DEAD && (events & EPOLLOUT))
        conn_mark_pending(c);
}

static void conn_timer_cb(struct ev_loop *loop, struct ev_timer *t)
{
    struct ws_conn *c = t->data;
    struct ws_server *srv = c->srv;

    if (c->linger) { /* drained long enough */
        conn_kill(c);
        return;
    }
    switch (c->state) {
    case WS_HANDSHAKE:
        log_info("conn %llu: no complete handshake in %d ms", (unsigned long long)c->id,
                 srv->cfg.handshake_timeout);
        conn_kill(c);
        return;
    case WS_OPEN:
        if (c->missed_pongs >= 2) {
            log_info("conn %llu: 2 pings unanswered, closing", (unsigned long long)c->id);
            ws_conn_close(c, WS_CLOSE_GOING_AWAY, "no pong");
            return;
        }
        c->missed_pongs++;
        queue_raw(c, WS_OP_PING, NULL, 0);
        if (c->state == WS_OPEN)
            ev_timer_start(loop, t, (int64_t)srv->cfg.heartbeat * 1000);
        return;
    default:
        conn_kill(c);
        return;
    }
}

/* ---- accept ---- */

/* Another worker is alive, has published lately and is below --max-conns. */
static bool others_have_room(const struct ws_server *srv)
{
    int64_t now = ev_now(srv->loop);

    for (int i = 0; i < srv->npeers; i++) {
        const struct ws_peer *p = &srv->peers[i];
        if (p == srv->me || __atomic_load_n(&p->pid, __ATOMIC_RELAXED) == 0)
            continue;
        if (now - __atomic_load_n(&p->at, __ATOMIC_RELAXED) < WS_PEER_STALE_MS &&
            !__atomic_load_n(&p->full, __ATOMIC_RELAXED))
            return true;
    }
    return false;
}

/* Publishes this worker's state and takes the listening socket in or out
 * of epoll: a full worker leaves new connections to one that has room;
 * when every worker is full, they all take them again, to answer 503. */
static void listen_update(struct ws_server *srv)
{
    bool full = srv->nconns >= srv->cfg.max_conns;

    if (srv->me) {
        __atomic_store_n(&srv->me->full, full, __ATOMIC_RELAXED);
        __atomic_store_n(&srv->me->at, ev_now(srv->loop), __ATOMIC_RELAXED);
    }
    bool want = srv->accepting && !srv->accept_paused && !(full && others_have_room(srv));
    if (want == srv->listening)
        return;
    /* several worker processes share the socket: wake one of them */
    if (ev_io_set(srv->loop, &srv->listen_io,
                  want ? EPOLLIN | (srv->cfg.workers > 1 ? EPOLLEXCLUSIVE : 0) : 0) < 0) {
        log_error("cannot %s accepting: %s", want ? "resume" : "pause", strerror(errno));
        return;
    }
    srv->listening = want;
    if (srv->accepting && !srv->accept_paused)
        log_info(want ? "accepting connections again (%zu)"
                      : "full (%zu connections): leaving new ones to the other workers",
                 srv->nconns);
}

static void accept_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct ws_server *srv = io->data;
    (void)events;

    for (int i = 0; i < WS_ACCEPT_BATCH && srv->listening; i++) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* the listening socket stays readable: pause accepting for a
                 * moment instead of spinning on it */
                log_error("accept: %s: pausing accepts for %d ms", strerror(errno),
                          WS_ACCEPT_PAUSE_MS);
                srv->accept_paused = true;
                listen_update(srv);
                ev_timer_start(loop, &srv->accept_pause, WS_ACCEPT_PAUSE_MS);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                       errno != ECONNABORTED)
                log_warn("accept: %s", strerror(errno));
            return;
        }
        /* past the limit a connection is still read, so that its request
         * gets a clean 503; past the limit plus a margin it is dropped */
        if (srv->nconns >= srv->cfg.max_conns + WS_FULL_MARGIN) {
            close(fd);
            continue;
        }
        struct ws_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->srv = srv;
        c->id = ++srv->next_id;
        c->io.fd = fd;
        c->io.cb = conn_io_cb;
        c->io.data = c;
        c->timer.cb = conn_timer_cb;
        c->timer.data = c;
        c->msg_timer.cb = conn_msg_timer_cb;
        c->msg_timer.data = c;
        c->state = WS_HANDSHAKE;
        c->full = srv->nconns >= srv->cfg.max_conns;
        if (ev_io_set(loop, &c->io, EPOLLIN | EPOLLRDHUP) < 0) {
            close(fd);
            free(c);
            continue;
        }
        CHAT_LIST_LINK(srv->conns, c, prev, next);
        srv->nconns++;
        ev_timer_start(loop, &c->timer, srv->cfg.handshake_timeout);
        if (srv->nconns >= srv->cfg.max_conns)
            listen_update(srv);
    }
}

static void accept_resume(struct ev_loop *loop, struct ev_timer *t)
{
    struct ws_server *srv = t->data;
    (void)loop;

    srv->accept_paused = false;
    listen_update(srv);
}

static void balance_cb(struct ev_loop *loop, struct ev_timer *t)
{
    struct ws_server *srv = t->data;

    listen_update(srv);
    if (srv->accepting)
        ev_timer_start(loop, t, WS_PEER_EVERY_MS);
}

/* Takes this worker's slot: a free one, or a dead worker's. */
static void peer_claim(struct ws_server *srv)
{
    int me = (int)getpid();

    for (int pass = 0; pass < 2 && !srv->me; pass++) {
        for (int i = 0; i < srv->npeers && !srv->me; i++) {
            int was = __atomic_load_n(&srv->peers[i].pid, __ATOMIC_RELAXED);
            if (pass == 0 ? was != 0 : (was == 0 || kill(was, 0) == 0 || errno != ESRCH))
                continue;
            if (__atomic_compare_exchange_n(&srv->peers[i].pid, &was, me, false, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED))
                srv->me = &srv->peers[i];
        }
    }
}

int ws_server_listen(struct ws_server *srv)
{
    srv->accept_pause.cb = accept_resume;
    srv->accept_pause.data = srv;
    srv->listen_io.fd = srv->listen_fd;
    srv->listen_io.cb = accept_cb;
    srv->listen_io.data = srv;
    srv->accepting = true;
    if (srv->peers) {
        peer_claim(srv);
        srv->balance.cb = balance_cb;
        srv->balance.data = srv;
        ev_timer_start(srv->loop, &srv->balance, WS_PEER_EVERY_MS);
    }
    listen_update(srv);
    return srv->listening ? 0 : -1;
}

void ws_server_shutdown(struct ws_server *srv)
{
    ev_timer_stop(srv->loop, &srv->accept_pause);
    ev_timer_stop(srv->loop, &srv->balance);
    srv->accepting = false;
    listen_update(srv);
    for (struct ws_conn *c = srv->conns; c; c = c->next) {
        if (c->state == WS_OPEN)
            ws_conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
        else if (c->state == WS_HANDSHAKE)
            conn_kill(c);
    }
}

/* ---- shared policies: connections of one nginx location share one ----
 * Policies differ by location, not by user (the user is kept apart), so
 * the list stays as short as the number of distinct configurations. */

struct policy_node {
    struct policy_node *next;
    struct chat_policy p;
};
static struct policy_node *policies;

const struct chat_policy *ws_policy_intern(const struct chat_policy *p)
{
    struct policy_node *n;

    for (n = policies; n; n = n->next) {
        if (chat_policy_same(&n->p, p))
            return &n->p;
    }
    n = malloc(sizeof(*n));
    if (!n)
        return NULL;
    n->p = *p;
    n->next = policies;
    policies = n;
    return &n->p;
}
