/* lp_listener: the one thread that owns every parked poll. It LISTENs on
 * channel 'chat' over its own connection and runs epoll over that socket,
 * an eventfd through which acceptors hand it polls, and the connection of
 * every parked poll (a browser that leaves makes nginx close it: the poll
 * is freed at once). Each room keeps the list of polls waiting on it and
 * the highest seq heard of; news completes the waiters with the NOTIFY
 * bytes when they are exactly next, else with rows read from the table.
 * A min-heap of deadlines answers expired polls with events: []. */
#define _GNU_SOURCE
#include "lp.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chat_backoff.h"
#include "chat_bans.h"
#include "chat_log.h"
#include "chat_sys.h"
#include "chat_sql.h"
#include "lp_rooms.h"
#include "chat_metrics.h"

/* ---- state (touched by the listener thread only, except the hand-off) --- */

static pthread_t listener_thread;
static bool listener_running;
static int epfd = -1;
static int wakefd = -1;
static PGconn *db;
static int64_t db_retry_at;
static struct chat_backoff db_backoff;
static char tag_wake, tag_db; /* epoll data for the two non-poll fds */

static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lp_poll *handoff_head, *handoff_tail;
static bool handoff_closed;

static struct lp_poll **heap;
static size_t heap_len, heap_cap;
static struct lp_poll *ready;
static size_t nparked;

/* ---- polls ------------------------------------------------------------- */

struct lp_poll *lp_poll_new(const struct lp_conn *c, const char *member, const char *addr,
                            const struct lp_cursor *rooms, size_t n, unsigned timeout_s,
                            unsigned gen, enum lp_checked how)
{
    struct lp_poll *p = calloc(1, sizeof(*p) + n * sizeof(p->w[0]));

    if (p == NULL)
        return NULL;
    p->conn = *c;
    snprintf(p->member, sizeof(p->member), "%s", member);
    snprintf(p->addr, sizeof(p->addr), "%s", addr ? addr : "");
    p->deadline = chat_now_ms() + (int64_t)timeout_s * 1000;
    p->gen = gen;
    p->how = how;
    p->n = n;
    for (size_t k = 0; k < n; k++) {
        p->w[k].poll = p;
        p->w[k].cursor = rooms[k].seq;
        memcpy(p->w[k].name, rooms[k].room, sizeof(p->w[k].name));
    }
    return p;
}

void lp_poll_free(struct lp_poll *p)
{
    if (p == NULL)
        return;
    lp_stream_free(p->stream);
    chat_sbuf_free(&p->events);
    free(p);
}

void lp_poll_set_stream(struct lp_poll *p, struct lp_stream *s)
{
    p->stream = s;
    p->deadline = chat_now_ms() + lp_stream_heartbeat_ms(s);
}

/* ---- deadline heap ------------------------------------------------------ */

static void heap_set(size_t i, struct lp_poll *p)
{
    heap[i] = p;
    p->heap_i = i;
}

static void heap_up(size_t i)
{
    struct lp_poll *p = heap[i];
    while (i > 0 && heap[(i - 1) / 2]->deadline > p->deadline) {
        heap_set(i, heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, p);
}

static void heap_down(size_t i)
{
    struct lp_poll *p = heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= heap_len)
            break;
        if (c + 1 < heap_len && heap[c + 1]->deadline < heap[c]->deadline)
            c++;
        if (heap[c]->deadline >= p->deadline)
            break;
        heap_set(i, heap[c]);
        i = c;
    }
    heap_set(i, p);
}

static int heap_push(struct lp_poll *p)
{
    if (heap_len == heap_cap) {
        size_t cap = heap_cap ? heap_cap * 2 : 1024;
        struct lp_poll **h = realloc(heap, cap * sizeof(*h));
        if (h == NULL)
            return -1;
        heap = h;
        heap_cap = cap;
    }
    heap_set(heap_len++, p);
    heap_up(heap_len - 1);
    return 0;
}

static void heap_remove(struct lp_poll *p)
{
    size_t i = p->heap_i;
    struct lp_poll *last = heap[--heap_len];

    if (i == heap_len)
        return;
    heap_set(i, last);
    heap_up(i);
    heap_down(last->heap_i);
}

/* ---- parking and answering ---------------------------------------------- */

/* Unlinks p from its rooms, the heap and epoll. Its connection stays open. */
static void unpark(struct lp_poll *p)
{
    for (size_t k = 0; k < p->n; k++)
        lp_rooms_unlink(&p->w[k]);
    if (p->state == LP_POLL_PARKED || p->state == LP_POLL_READY) {
        heap_remove(p);
        epoll_ctl(epfd, EPOLL_CTL_DEL, p->conn.fd, NULL);
        nparked--;
    }
    p->state = LP_POLL_DONE;
}

/* A poll or stream of someone banned since it was accepted (the news may
 * come before its handoff is adopted, or an event may ready it first):
 * answered 403 banned, whatever else it had. True when it was. */
/* The namespace of a poll's rooms (one location's: they share it). */
static const char *poll_ns(const struct lp_poll *p, char out[CHAT_NS_MAX + 1])
{
    return chat_room_ns(p->n > 0 ? p->w[0].name : "", out);
}

static bool end_banned(struct lp_poll *p)
{
    char ns[CHAT_NS_MAX + 1];
    size_t len;
    char *body = lp_bans_answer(p->member, p->addr, poll_ns(p, ns), &len);

    if (body == NULL)
        return false;
    log_info("parked poll %d: %s is banned: ending it", p->conn.id, p->member);
    if (p->stream)
        lp_stream_end(&p->conn);
    else
        lp_reply(&p->conn, 403, body, len);
    free(body);
    lp_park_give(p->addr);
    lp_poll_free(p);
    return true;
}

static void finish(struct lp_poll *p)
{
    const char *rooms[LP_MAX_ROOMS];
    int64_t cursors[LP_MAX_ROOMS];
    size_t len;

    if (end_banned(p))
        return;
    if (p->stream) { /* shutting down, or out of memory: the client resumes elsewhere */
        lp_stream_end(&p->conn);
        lp_park_give(p->addr);
        lp_poll_free(p);
        return;
    }
    for (size_t k = 0; k < p->n; k++) {
        rooms[k] = p->w[k].name;
        cursors[k] = p->w[k].cursor;
    }
    char *body = chat_encode_poll_p(p->events.p, p->events.len, rooms, cursors, NULL, p->n, NULL,
                                    p->member, NULL, &len);
    if (!body)
        lp_reply_error(&p->conn, CHAT_E_UNAVAILABLE, "out of memory");
    else
        lp_reply(&p->conn, 200, body, len);
    free(body);
    lp_park_give(p->addr);
    lp_poll_free(p);
}

static void adopt(struct lp_poll *p);

/* A stream is answered with the round's events (or a heartbeat) and parked
 * again with its cursors moved; a stream that cannot take them is dropped. */
static void complete(struct lp_poll *p)
{
    unpark(p);
    if (p->events.len > 0) /* a parked poll or a stream answered with events */
        chat_metric_inc(CHAT_M_DELIVERIES);
    if (end_banned(p))
        return;
    if (p->stream && !atomic_load(&lp_stopping)) {
        if (lp_stream_flush(p->stream, &p->conn, p->events.p, p->events.len) < 0) {
            log_debug("stream %d: gone or too slow; dropping it (it resumes by its id)",
                      p->conn.id);
            lp_conn_drop(&p->conn);
            lp_park_give(p->addr);
            lp_poll_free(p);
            return;
        }
        chat_sbuf_free(&p->events); /* a quiet stream holds no buffer */
        p->state = LP_POLL_NEW;
        p->deadline = chat_now_ms() + lp_stream_heartbeat_ms(p->stream);
        p->gen = atomic_load(&lp_listen_gen);
        p->how = LP_CHECKED_CACHE; /* it was linked all along: plain */
        adopt(p);
        return;
    }
    finish(p);
}

static void mark_ready(struct lp_poll *p)
{
    if (p->state != LP_POLL_PARKED)
        return;
    p->state = LP_POLL_READY;
    p->ready_next = ready;
    ready = p;
}

static void complete_ready(void)
{
    while (ready) {
        struct lp_poll *p = ready;
        ready = p->ready_next;
        complete(p);
    }
}

static void adopt(struct lp_poll *p)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = p};
    enum lp_link mode = LP_LINK_PLAIN;

    if (end_banned(p))
        return;
    if (p->gen != atomic_load(&lp_listen_gen) || p->how == LP_CHECKED_NOT)
        mode = db != NULL ? LP_LINK_READ : LP_LINK_PLAIN; /* else: the reconnect checks */
    else if (p->how == LP_CHECKED_TABLE)
        mode = LP_LINK_ESTABLISH;

    if (heap_push(p) < 0) {
        finish(p);
        return;
    }
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, p->conn.fd, &ev) < 0) {
        log_warn("cannot watch parked poll %d: %s; answering it now", p->conn.id, strerror(errno));
        heap_remove(p);
        finish(p);
        return;
    }
    p->state = LP_POLL_PARKED;
    nparked++;
    for (size_t k = 0; k < p->n; k++) {
        if (lp_rooms_link(&p->w[k], mode) < 0) {
            unpark(p);
            finish(p);
            return;
        }
    }
}

static void adopt_handoffs(void)
{
    uint64_t v;
    if (read(wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("listener: reading its eventfd: %s", strerror(errno));
    pthread_mutex_lock(&handoff_lock);
    struct lp_poll *p = handoff_head;
    handoff_head = handoff_tail = NULL;
    pthread_mutex_unlock(&handoff_lock);
    while (p) {
        struct lp_poll *next = p->next;
        adopt(p);
        p = next;
    }
}

int lp_listener_park(struct lp_poll *p)
{
    uint64_t one = 1;

    pthread_mutex_lock(&handoff_lock);
    if (handoff_closed) {
        pthread_mutex_unlock(&handoff_lock);
        return -1;
    }
    p->next = NULL;
    if (handoff_tail)
        handoff_tail->next = p;
    else
        handoff_head = p;
    handoff_tail = p;
    pthread_mutex_unlock(&handoff_lock);
    if (write(wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("waking the listener: %s", strerror(errno));
    return 0;
}

/* A parked poll's connection became readable: nginx closed it (the browser
 * left) or sent something we never expect after stdin (an abort record). */
static void on_poll_event(struct lp_poll *p)
{
    char c;
    ssize_t n = recv(p->conn.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    log_debug("parked poll %d: web server closed it; freeing it", p->conn.id);
    unpark(p);
    lp_conn_drop(&p->conn);
    lp_park_give(p->addr);
    lp_poll_free(p);
}

static void expire_due(int64_t now)
{
    while (heap_len > 0 && heap[0]->deadline <= now)
        complete(heap[0]);
}

/* ---- the LISTEN connection ---------------------------------------------- */

static void db_drop(const char *why)
{
    if (db == NULL)
        return;
    log_warn("listener: lost PostgreSQL (%s); reconnecting with backoff", why);
    epoll_ctl(epfd, EPOLL_CTL_DEL, PQsocket(db), NULL);
    PQfinish(db);
    db = NULL;
    atomic_store(&lp_listen_up, false);
    db_retry_at = chat_now_ms();
    chat_backoff_reset(&db_backoff);
}

static int db_connect(void)
{
    char err[256];
    PGconn *c = lp_db_connect("listener", err, sizeof(err));

    if (c == NULL) {
        log_debug("listener: cannot connect: %s", err);
        return -1;
    }
    PGresult *res = lp_db_exec(c, CHAT_SQL_LISTEN, 0, NULL);
    if (!lp_db_ok(res)) {
        log_warn("listener: LISTEN failed: %s", lp_pgerr(res, db));
        PQclear(res);
        PQfinish(c);
        return -1;
    }
    PQclear(res);
    res = PQexec(c, CHAT_SQL_LISTEN_ADMIN);
    if (!lp_db_ok(res))
        log_warn("listener: LISTEN " CHAT_ADMIN_CHANNEL " failed: %s", lp_pgerr(res, c));
    PQclear(res);
    lp_bans_reload(c); /* after LISTEN: no ban falls between the list and the news */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_db};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, PQsocket(c), &ev) < 0) {
        log_error("listener: epoll_ctl: %s", strerror(errno));
        PQfinish(c);
        return -1;
    }
    db = c;
    atomic_fetch_add(&lp_listen_gen, 1);
    atomic_store(&lp_listen_up, true);
    return 0;
}

static void db_retry(int64_t now)
{
    if (db != NULL || now < db_retry_at)
        return;
    if (db_connect() < 0) {
        db_retry_at = now + chat_backoff_next(&db_backoff);
        return;
    }
    log_info("listener: connected to PostgreSQL, LISTEN chat; checking %zu parked polls", nparked);
    lp_rooms_check_all(); /* anything committed while we were away */
}

/* Runs a catch-up read on the listener's connection (lp_rooms.c calls it). */
static PGresult *read_after(const char *room, int64_t after)
{
    char after_s[24], limit_s[16];
    const char *vals[3] = {room, after_s, limit_s};

    if (db == NULL)
        return NULL;
    snprintf(after_s, sizeof(after_s), "%" PRId64, after);
    snprintf(limit_s, sizeof(limit_s), "%d", CHAT_CATCHUP_PAGE);
    PGresult *res = lp_db_exec(db, CHAT_SQL_CATCHUP, 3, vals);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    log_warn("listener: reading room %s past %" PRId64 ": %s", room, after, lp_pgerr(res, db));
    PQclear(res);
    if (PQstatus(db) != CONNECTION_OK)
        db_drop("connection broken during a read");
    return NULL;
}

/* The room's last_seq (lp_rooms.c asks when a cursor is suspect); -1 when
 * the database cannot say now. */
static int64_t read_last_seq(const char *room)
{
    const char *vals[1] = {room};
    int64_t last = -1;

    if (db == NULL)
        return -1;
    PGresult *res = lp_db_exec(db, CHAT_SQL_ROOM_SEQ, 1, vals);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        last = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        log_warn("listener: reading the last seq of room %s: %s", room, lp_pgerr(res, db));
    PQclear(res);
    if (last < 0 && PQstatus(db) != CONNECTION_OK)
        db_drop("connection broken during a read");
    return last;
}

/* Ends the parked polls a ban (kicked NULL) or a kick names: 403 banned,
 * or events: [] for a kick. Ready polls are being answered this round. */
static void sweep(const char *kicked)
{
    struct lp_poll **hit = heap_len ? malloc(heap_len * sizeof(*hit)) : NULL;
    size_t n = 0;

    for (size_t i = 0; hit && i < heap_len; i++) {
        struct lp_poll *p = heap[i];
        if (p->state != LP_POLL_PARKED)
            continue;
        char ns[CHAT_NS_MAX + 1];
        if (kicked ? strcmp(p->member, kicked) == 0
                   : lp_bans_match(p->member, p->addr, poll_ns(p, ns)))
            hit[n++] = p;
    }
    for (size_t i = 0; i < n; i++) {
        struct lp_poll *p = hit[i];
        size_t len;
        char ns[CHAT_NS_MAX + 1];
        char *body = kicked ? NULL : lp_bans_answer(p->member, p->addr, poll_ns(p, ns), &len);
        log_info("parked poll %d: %s %s: ending it", p->conn.id, p->member,
                 kicked ? "kicked" : "banned");
        if (body == NULL) {
            complete(p);
            continue;
        }
        unpark(p);
        lp_reply(&p->conn, 403, body, len);
        free(body);
        lp_park_give(p->addr);
        lp_poll_free(p);
    }
    free(hit);
}

static void admin_news(const char *line)
{
    char user[CHAT_SENDER_MAX + 1];

    switch (chat_admin_parse(line, strlen(line), user)) {
    case CHAT_ADMIN_BAN:
    case CHAT_ADMIN_UNBAN:
        if (lp_bans_reload(db) == 0)
            sweep(NULL);
        return;
    case CHAT_ADMIN_KICK:
        sweep(user);
        return;
    default:
        log_warn("listener: ignoring a bad line on channel " CHAT_ADMIN_CHANNEL);
    }
}

static void db_input(void)
{
    PGnotify *n;

    if (db == NULL)
        return;
    if (!PQconsumeInput(db)) {
        db_drop(lp_pgerr(NULL, db));
        return;
    }
    while (db != NULL && (n = PQnotifies(db)) != NULL) {
        if (strcmp(n->relname, CHAT_CHANNEL) == 0)
            lp_rooms_news(n->extra, strlen(n->extra));
        else if (strcmp(n->relname, CHAT_ADMIN_CHANNEL) == 0)
            admin_news(n->extra);
        PQfreemem(n);
    }
}

/* ---- the loop ----------------------------------------------------------- */

static int next_timeout(int64_t now)
{
    int64_t t = now + 1000;
    if (heap_len > 0 && heap[0]->deadline < t)
        t = heap[0]->deadline;
    if (db == NULL && db_retry_at < t)
        t = db_retry_at;
    return t <= now ? 0 : (int)(t - now);
}

static void run_round(struct epoll_event *evs, int n)
{
    bool woke = false, dbin = false;

    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == &tag_wake)
            woke = true;
        else if (evs[i].data.ptr == &tag_db)
            dbin = true;
        else
            on_poll_event(evs[i].data.ptr);
    }
    if (dbin)
        db_input();
    if (woke)
        adopt_handoffs();
    lp_rooms_wake();
    complete_ready();
    int64_t now = chat_now_ms();
    expire_due(now);
    db_retry(now);
    lp_rooms_sweep(now);
}

static void answer_everything(void)
{
    adopt_handoffs();
    while (heap_len > 0)
        complete(heap[0]);
}

static void *listener_main(void *arg)
{
    struct epoll_event evs[256];
    (void)arg;

    while (!atomic_load(&lp_stopping)) {
        int n = epoll_wait(epfd, evs, 256, next_timeout(chat_now_ms()));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("listener: epoll_wait: %s", strerror(errno));
            break;
        }
        run_round(evs, n);
    }
    pthread_mutex_lock(&handoff_lock);
    handoff_closed = true;
    pthread_mutex_unlock(&handoff_lock);
    answer_everything();
    return NULL;
}

int lp_listener_start(void)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_wake};

    static const struct lp_rooms_ops ops = {
        .mark_ready = mark_ready, .read = read_after, .last_seq = read_last_seq};

    if (lp_rooms_init(&ops) < 0)
        return -1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd < 0 || wakefd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) < 0) {
        log_error("listener: cannot set up epoll: %s", strerror(errno));
        return -1;
    }
    if (db_connect() < 0) {
        log_error("listener: cannot LISTEN on PostgreSQL at start-up");
        return -1;
    }
    if (pthread_create(&listener_thread, NULL, listener_main, NULL) != 0) {
        log_error("listener: cannot start its thread");
        return -1;
    }
    listener_running = true;
    return 0;
}

void lp_listener_stop(void)
{
    uint64_t one = 1;

    if (!listener_running)
        return;
    if (write(wakefd, &one, sizeof(one)) < 0)
        log_warn("waking the listener: %s", strerror(errno));
    pthread_join(listener_thread, NULL);
    listener_running = false;
    if (db)
        PQfinish(db);
    db = NULL;
    lp_rooms_free();
    free(heap);
    heap = NULL;
    close(epfd);
    close(wakefd);
}
