/* pg: asynchronous libpq connection in the ev loop (see pg.h). A query's
 * callback runs once, when the query is over (libpq's final NULL result):
 * with the extended protocol the implicit transaction commits at Sync, after
 * the rows, so an error at commit arrives after them and must win. Failures
 * noticed while a caller is inside pg_query() are handled from a 0 ms timer,
 * so no callback ever runs inside pg_query(). */
#define _GNU_SOURCE
#include "pg.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "chat_backoff.h"
#include "chat_log.h"
#include "chat_metrics.h"
#include "ev.h"
#include "pg_resolve.h"

#define PG_CONNECT_TIMEOUT_MS 10000
#define PG_QUERY_TIMEOUT_MS 5000 /* until pg_set_timeout */

struct pg_query {
    struct pg_query *next;
    char *sql;
    int nparams;
    char **params;
    pg_result_cb *cb;
    void *data;
    int timeout_ms; /* its deadline, from when it is sent */
};

enum pg_state { PG_DOWN, PG_RESOLVING, PG_CONNECTING, PG_LISTENING, PG_UP };

struct pg {
    struct ev_loop *loop;
    char *name, *conninfo, *channel;
    struct pg_handlers h;
    PGconn *conn;
    enum pg_state state;
    struct ev_io io;
    struct ev_timer retry;    /* reconnect backoff */
    struct ev_timer deadline; /* connect timeout */
    struct ev_timer fail;     /* deferred loss (see pg_fail) */
    struct ev_timer qtimer;   /* the in-flight query's deadline */
    int timeout_ms;           /* of a query (pg_set_timeout) */
    int64_t sent_at;          /* when the in-flight query was sent */
    int64_t sent_us;          /* the same in microseconds (chat_metrics) */
    int64_t heard_at;         /* when the server last sent anything */
    char fail_why[160];
    struct chat_backoff backoff;
    struct pg_resolve resolve; /* host names, off the loop */
    bool resolve_names;        /* the conninfo has host names */
    bool broken;               /* a failure is pending on the fail timer */
    bool flushing;             /* output left to send: EPOLLOUT wanted */
    bool in_flight;            /* head of the queue has been sent */
    PGresult *held;            /* the in-flight query's result so far */
    struct pg_query *head, *tail;
    size_t nqueued;
    unsigned long stat_timeouts;
};

static void pg_start_connect(struct pg *pg);

static void query_free(struct pg_query *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q);
}

static struct pg_query *pop_head(struct pg *pg)
{
    struct pg_query *q = pg->head;

    if (q) {
        pg->head = q->next;
        if (!pg->head)
            pg->tail = NULL;
        pg->nqueued--;
    }
    return q;
}

/* Connection lost or failed: fail every queued query, schedule a retry. */
static void pg_lost(struct pg *pg, const char *why)
{
    bool was_up = pg->state == PG_UP;
    struct pg_query *q;

    if (pg->state != PG_DOWN)
        log_warn("pg %s: connection lost: %s", pg->name, why);
    ev_io_set(pg->loop, &pg->io, 0);
    ev_timer_stop(pg->loop, &pg->deadline);
    ev_timer_stop(pg->loop, &pg->fail);
    ev_timer_stop(pg->loop, &pg->qtimer);
    pg_resolve_cancel(&pg->resolve);
    pg->io.fd = -1;
    if (pg->conn) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    PQclear(pg->held);
    pg->held = NULL;
    pg->state = PG_DOWN;
    pg->broken = pg->in_flight = pg->flushing = false;
    while ((q = pop_head(pg))) {
        if (q->cb)
            q->cb(pg, NULL, q->data);
        query_free(q);
    }
    if (was_up && pg->h.state)
        pg->h.state(pg, false, pg->h.data);
    ev_timer_start(pg->loop, &pg->retry, chat_backoff_next(&pg->backoff));
}

static void fail_cb(struct ev_loop *loop, struct ev_timer *t)
{
    struct pg *pg = t->data;
    (void)loop;
    pg_lost(pg, pg->fail_why);
}

/* A failure found where callbacks must not run: handled on the next loop
 * iteration; meanwhile the connection counts as down for new queries. */
static void pg_fail(struct pg *pg, const char *why)
{
    if (pg->broken)
        return;
    pg->broken = true;
    snprintf(pg->fail_why, sizeof(pg->fail_why), "%s", why);
    ev_timer_start(pg->loop, &pg->fail, 0);
}

static void pg_retry_cb(struct ev_loop *loop, struct ev_timer *t)
{
    (void)loop;
    pg_start_connect(t->data);
}

static void deadline_cb(struct ev_loop *loop, struct ev_timer *t)
{
    (void)loop;
    pg_lost(t->data, "timed out connecting");
}

/* A query past its deadline: the connection is dropped, never cancelled.
 * A cancelled commit that waits for a synchronous standby still commits
 * locally and reports success (docs/ha.md): the caller would ack what the
 * standby may lack. Dropped, the caller gets NULL ("may or may not have
 * run") and answers unavailable; a retry with the same cid is deduplicated. */
static void qtimer_cb(struct ev_loop *loop, struct ev_timer *t)
{
    struct pg *pg = t->data;
    char why[160];

    snprintf(why, sizeof(why),
             "no answer within %lld ms: dropping the connection (the query may or may not have "
             "run)",
             (long long)(ev_now(loop) - pg->sent_at));
    pg->stat_timeouts++;
    chat_metric_inc(CHAT_M_DB_TIMEOUTS);
    pg_lost(pg, why);
}

static int set_events(struct pg *pg)
{
    uint32_t ev = 0;

    if (pg->conn && pg->io.fd >= 0 && pg->state != PG_DOWN) {
        ev = EPOLLIN;
        if (pg->flushing)
            ev |= EPOLLOUT;
    }
    if (ev_io_set(pg->loop, &pg->io, ev) < 0) {
        pg_fail(pg, "epoll_ctl failed");
        return -1;
    }
    return 0;
}

static void send_head(struct pg *pg)
{
    struct pg_query *q = pg->head;

    if (pg->state != PG_UP || pg->broken || pg->in_flight || !q)
        return;
    if (!PQsendQueryParams(pg->conn, q->sql, q->nparams, NULL, (const char *const *)q->params, NULL,
                           NULL, 0)) {
        pg_fail(pg, PQerrorMessage(pg->conn));
        return;
    }
    pg->in_flight = true;
    pg->sent_at = ev_now(pg->loop);
    pg->sent_us = chat_metrics_now_us();
    ev_timer_start(pg->loop, &pg->qtimer, q->timeout_ms > 0 ? q->timeout_ms : pg->timeout_ms);
    int f = PQflush(pg->conn);
    if (f < 0) {
        pg_fail(pg, PQerrorMessage(pg->conn));
        return;
    }
    pg->flushing = f == 1;
    set_events(pg);
}

static void became_up(struct pg *pg)
{
    pg->state = PG_UP;
    chat_metric_inc(CHAT_M_DB_CONNECTS);
    chat_backoff_reset(&pg->backoff);
    ev_timer_stop(pg->loop, &pg->deadline);
    pg->heard_at = ev_now(pg->loop);
    log_info("pg %s: connected%s%s", pg->name, pg->channel ? ", listening on " : "",
             pg->channel ? pg->channel : "");
    if (pg->h.state)
        pg->h.state(pg, true, pg->h.data);
    send_head(pg);
}

static void start_listen(struct pg *pg)
{
    char *ident = PQescapeIdentifier(pg->conn, pg->channel, strlen(pg->channel));
    char sql[256];

    if (!ident) {
        pg_lost(pg, "cannot escape channel name");
        return;
    }
    snprintf(sql, sizeof(sql), "LISTEN %s", ident);
    PQfreemem(ident);
    if (!PQsendQuery(pg->conn, sql)) {
        pg_lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    pg->state = PG_LISTENING;
    pg->flushing = PQflush(pg->conn) == 1;
    set_events(pg);
}

static void connect_poll(struct pg *pg)
{
    switch (PQconnectPoll(pg->conn)) {
    case PGRES_POLLING_READING:
        pg->flushing = false;
        break;
    case PGRES_POLLING_WRITING:
        pg->flushing = true;
        break;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(pg->conn, 1) < 0) {
            pg_lost(pg, "cannot set non-blocking mode");
            return;
        }
        pg->flushing = false;
        if (pg->channel)
            start_listen(pg);
        else
            became_up(pg);
        return;
    default:
        pg_lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    /* libpq may have opened another socket (SSL refused, next host): it can
     * even have the old number, whose registration the kernel dropped with
     * the old socket. Register afresh every time. */
    ev_io_set(pg->loop, &pg->io, 0);
    pg->io.fd = PQsocket(pg->conn);
    if (set_events(pg) == 0 && pg->io.fd < 0)
        pg_lost(pg, "no socket while connecting");
}

static void connect_to(struct pg *pg, const char *conninfo)
{
    pg->conn = PQconnectStart(conninfo);
    if (!pg->conn || PQstatus(pg->conn) == CONNECTION_BAD) {
        pg_lost(pg, pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
        return;
    }
    pg->state = PG_CONNECTING;
    pg->io.fd = -1;
    connect_poll(pg);
}

static void resolved(void *data, char *conninfo, const char *err)
{
    struct pg *pg = data;

    if (!conninfo) {
        pg_lost(pg, err);
        return;
    }
    connect_to(pg, conninfo); /* libpq copies what it needs */
    free(conninfo);
}

/* Host names are resolved in a thread (pg_resolve.h) and libpq is given
 * their addresses: getaddrinfo() never runs in the loop. The connect
 * deadline covers the resolution too. */
static void pg_start_connect(struct pg *pg)
{
    char err[200];

    ev_timer_start(pg->loop, &pg->deadline, PG_CONNECT_TIMEOUT_MS);
    if (!pg->resolve_names) {
        connect_to(pg, pg->conninfo);
        return;
    }
    if (pg_resolve_start(&pg->resolve, pg->loop, pg->conninfo, resolved, pg, err, sizeof(err)) <
        0) {
        pg_lost(pg, err);
        return;
    }
    pg->state = PG_RESOLVING;
}

static void drain_notifies(struct pg *pg)
{
    PGnotify *n;

    while (pg->conn && (n = PQnotifies(pg->conn))) {
        if (pg->h.notify)
            pg->h.notify(pg, n->relname, n->extra, strlen(n->extra), pg->h.data);
        PQfreemem(n);
    }
}

/* Keeps the in-flight query's first result, or a later error (a failure at
 * commit comes after the rows); calls back at the final NULL. */
static void drain_results(struct pg *pg)
{
    while (pg->conn && !pg->broken && !PQisBusy(pg->conn)) {
        PGresult *res = PQgetResult(pg->conn);
        if (pg->state == PG_LISTENING) {
            if (!res) {
                became_up(pg);
                continue;
            }
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                char why[200];
                snprintf(why, sizeof(why), "LISTEN failed: %s", PQresultErrorMessage(res));
                PQclear(res);
                pg_lost(pg, why);
                return;
            }
            PQclear(res);
            continue;
        }
        if (!pg->in_flight) {
            PQclear(res);
            return;
        }
        if (res) {
            ExecStatusType st = PQresultStatus(res);
            if (!pg->held || st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
                PQclear(pg->held);
                pg->held = res;
            } else {
                PQclear(res);
            }
            continue;
        }
        struct pg_query *q = pop_head(pg);
        PGresult *held = pg->held;
        ev_timer_stop(pg->loop, &pg->qtimer);
        chat_metric_db_us(chat_metrics_now_us() - pg->sent_us);
        pg->held = NULL;
        pg->in_flight = false;
        if (q->cb)
            q->cb(pg, held, q->data);
        PQclear(held);
        query_free(q);
        send_head(pg);
        if (!pg->in_flight)
            return;
    }
}

static void pg_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct pg *pg = io->data;

    if (pg->broken)
        return; /* the fail timer takes it from here */
    if (pg->state == PG_CONNECTING) {
        connect_poll(pg);
        return;
    }
    if (events & EPOLLOUT) {
        int f = PQflush(pg->conn);
        if (f < 0) {
            pg_lost(pg, PQerrorMessage(pg->conn));
            return;
        }
        pg->flushing = f == 1;
        if (set_events(pg) < 0)
            return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        pg->heard_at = ev_now(loop);
        if (!PQconsumeInput(pg->conn)) {
            pg_lost(pg, PQerrorMessage(pg->conn));
            return;
        }
        drain_results(pg);
        drain_notifies(pg);
        if (pg->conn && !pg->broken && PQstatus(pg->conn) == CONNECTION_BAD)
            pg_lost(pg, PQerrorMessage(pg->conn));
    }
}

struct pg *pg_new(struct ev_loop *loop, const char *name, const char *conninfo,
                  const char *listen_channel, const struct pg_handlers *h)
{
    struct pg *pg = calloc(1, sizeof(*pg));

    if (!pg)
        return NULL;
    pg->loop = loop;
    pg->name = strdup(name);
    pg->conninfo = strdup(conninfo ? conninfo : "");
    pg->channel = listen_channel ? strdup(listen_channel) : NULL;
    if (!pg->name || !pg->conninfo || (listen_channel && !pg->channel)) {
        pg_free(pg);
        return NULL;
    }
    if (h)
        pg->h = *h;
    pg->io.fd = -1;
    pg->io.cb = pg_io_cb;
    pg->io.data = pg;
    pg->retry.cb = pg_retry_cb;
    pg->retry.data = pg;
    pg->deadline.cb = deadline_cb;
    pg->deadline.data = pg;
    pg->fail.cb = fail_cb;
    pg->fail.data = pg;
    pg->qtimer.cb = qtimer_cb;
    pg->qtimer.data = pg;
    pg->timeout_ms = PG_QUERY_TIMEOUT_MS;
    chat_backoff_reset(&pg->backoff);
    pg->resolve.io.fd = -1;
    pg->resolve_names = pg_resolve_needed(pg->conninfo);
    pg_start_connect(pg);
    return pg;
}

void pg_free(struct pg *pg)
{
    struct pg_query *q;

    if (!pg)
        return;
    ev_timer_stop(pg->loop, &pg->retry);
    ev_timer_stop(pg->loop, &pg->deadline);
    ev_timer_stop(pg->loop, &pg->fail);
    ev_timer_stop(pg->loop, &pg->qtimer);
    pg_resolve_cancel(&pg->resolve);
    if (pg->io.events)
        ev_io_set(pg->loop, &pg->io, 0);
    if (pg->conn)
        PQfinish(pg->conn);
    PQclear(pg->held);
    while ((q = pop_head(pg)))
        query_free(q);
    free(pg->name);
    free(pg->conninfo);
    free(pg->channel);
    free(pg);
}

bool pg_is_up(const struct pg *pg)
{
    return pg->state == PG_UP && !pg->broken;
}

size_t pg_queued(const struct pg *pg)
{
    return pg->nqueued;
}

void pg_set_timeout(struct pg *pg, int ms)
{
    pg->timeout_ms = ms;
}

bool pg_stalled(const struct pg *pg, int ms)
{
    return pg->in_flight && ev_now(pg->loop) - pg->sent_at > ms;
}

unsigned long pg_timeouts(const struct pg *pg)
{
    return pg ? pg->stat_timeouts : 0;
}

static void probe_done(struct pg *pg, PGresult *res, void *data)
{
    (void)pg;
    (void)res;
    (void)data;
}

void pg_probe(struct pg *pg, int idle_ms)
{
    if (pg && pg_is_up(pg) && !pg->head && ev_now(pg->loop) - pg->heard_at >= idle_ms)
        pg_query(pg, "SELECT 1", 0, NULL, probe_done, NULL);
}

int pg_query(struct pg *pg, const char *sql, int nparams, const char *const *params,
             pg_result_cb *cb, void *data)
{
    return pg_query_within(pg, sql, nparams, params, 0, cb, data);
}

int pg_query_within(struct pg *pg, const char *sql, int nparams, const char *const *params,
                    int timeout_ms, pg_result_cb *cb, void *data)
{
    struct pg_query *q;

    if (!pg_is_up(pg))
        return -1;
    q = calloc(1, sizeof(*q));
    if (!q)
        return -1;
    q->sql = strdup(sql);
    q->nparams = nparams;
    q->params = nparams ? calloc((size_t)nparams, sizeof(char *)) : NULL;
    if (!q->sql || (nparams && !q->params))
        goto oom;
    for (int i = 0; i < nparams; i++) {
        if (params[i] && !(q->params[i] = strdup(params[i])))
            goto oom;
    }
    q->cb = cb;
    q->data = data;
    q->timeout_ms = timeout_ms;
    if (pg->tail)
        pg->tail->next = q;
    else
        pg->head = q;
    pg->tail = q;
    pg->nqueued++;
    send_head(pg); /* never calls back: a failure goes through pg_fail */
    return 0;
oom:
    query_free(q);
    return -1;
}
