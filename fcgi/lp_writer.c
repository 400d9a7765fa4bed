/* lp_writer: the one thread that writes to PostgreSQL. Acceptors queue
 * validated sends and go back to accepting; the writer takes everything
 * queued, posts it with one chat_post() call (group commit: one
 * transaction, one NOTIFY per batch) and answers each send with its ack
 * after the commit. A lone send waits for nothing but its own round trip.
 * Between batches it flushes presence (once a second) and beats for this
 * node (every 10 s). */
#define _GNU_SOURCE
#include "lp.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_backoff.h"
#include "chat_log.h"
#include "chat_sys.h"
#include "chat_sql.h"
#include "chat_metrics.h"

#define BEAT_MS 10000
#define PRESENCE_MS 1000

static const struct lp_config *conf; /* given at init */
static pthread_t writer_thread;
static bool writer_running;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond;
static struct lp_send *qhead, *qtail;
static size_t qlen;
static bool qclosed, wstop;

static PGconn *db;
static int64_t db_retry_at;
static struct chat_backoff db_backoff;

void lp_send_free(struct lp_send *s)
{
    if (s == NULL)
        return;
    chat_request_free(&s->req);
    lp_conn_drop(&s->conn);
    free(s);
}

int lp_writer_submit(struct lp_send *s)
{
    pthread_mutex_lock(&qlock);
    if (qclosed || qlen >= LP_SEND_QUEUE_MAX) {
        pthread_mutex_unlock(&qlock);
        return -1;
    }
    s->next = NULL;
    if (qtail)
        qtail->next = s;
    else
        qhead = s;
    qtail = s;
    qlen++;
    pthread_cond_signal(&qcond);
    pthread_mutex_unlock(&qlock);
    return 0;
}

size_t lp_writer_queued(void)
{
    pthread_mutex_lock(&qlock);
    size_t n = qlen;
    pthread_mutex_unlock(&qlock);
    return n;
}

/* ---- the connection ----------------------------------------------------- */

static PGresult *exec(const char *sql, int n, const char *const *vals)
{
    return lp_db_exec(db, sql, n, vals);
}

/* Registers this node; when its row had been reaped meanwhile (the database
 * was away for longer than the heartbeat age), presence is sent again. */
static int node_up(void)
{
    char pid[16];
    const char *vals[3] = {conf->node, "fcgi", pid};
    snprintf(pid, sizeof(pid), "%d", (int)getpid());

    PGresult *res = exec("SELECT EXISTS (SELECT 1 FROM nodes WHERE node = $1)", 1, vals);
    bool existed = lp_db_ok(res) && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    res = exec(CHAT_SQL_NODE_UP, 3, vals);
    int rc = lp_db_ok(res) ? 0 : -1;
    if (rc < 0)
        log_warn("writer: chat_node_up failed: %s", lp_pgerr(res, db));
    PQclear(res);
    if (rc == 0 && !existed)
        lp_presence_resync();
    return rc;
}

static bool db_ready(void)
{
    char err[256];
    int64_t now = chat_now_ms();

    if (db != NULL && PQstatus(db) == CONNECTION_OK)
        return true;
    if (db != NULL) {
        log_warn("writer: lost PostgreSQL; reconnecting with backoff");
        PQfinish(db);
        db = NULL;
        db_retry_at = now;
        chat_backoff_reset(&db_backoff);
    }
    if (now < db_retry_at)
        return false;
    db = lp_db_connect("writer", err, sizeof(err));
    if (db == NULL || node_up() < 0) {
        if (db == NULL)
            log_debug("writer: cannot connect: %s", err);
        PQfinish(db);
        db = NULL;
        db_retry_at = now + chat_backoff_next(&db_backoff);
        return false;
    }
    log_info("writer: connected to PostgreSQL as node %s", conf->node);
    /* whatever was lost or reaped while away: the whole view, as chat-ws */
    lp_presence_resync();
    return true;
}

/* ---- posting ------------------------------------------------------------ */

static void answer_ack(struct lp_send *s, int64_t n, const char *ts)
{
    size_t len;
    char cid[CHAT_CID_MAX + 1];

    if (s->req.cid.p)
        snprintf(cid, sizeof(cid), "%.*s", (int)s->req.cid.len, s->req.cid.p);
    char *body = chat_encode_ack(s->room, s->req.cid.p ? cid : NULL, n, ts, s->req.ref, &len);
    if (body == NULL) {
        lp_reply_error(&s->conn, CHAT_E_UNAVAILABLE, "out of memory after storing; retry");
        return;
    }
    chat_metric_inc(CHAT_M_MESSAGES_IN);
    lp_reply(&s->conn, 200, body, len);
    free(body);
}

static void answer_all(struct lp_send *v[], size_t n, enum chat_err e, const char *why)
{
    for (size_t i = 0; i < n; i++)
        if (v[i]->conn.fd >= 0)
            lp_reply_error(&v[i]->conn, e, why);
}

static int build_args(struct lp_send *v[], size_t n, struct chat_post_args *a,
                      const char *params[4])
{
    for (size_t i = 0; i < n; i++) {
        const struct chat_request *r = &v[i]->req;
        if (chat_post_args_add(a, v[i]->room, v[i]->sender, r->text.p, r->text.len, r->cid.p,
                               r->cid.len) < 0)
            return -1;
    }
    return chat_post_args_end(a, params);
}

/* Posts v[0..n) in one transaction. 0 when every send was answered; -1 when
 * the batch is to be split (chat_post_failed: CHAT_POST_SPLIT). */
static int post(struct lp_send *v[], size_t n)
{
    struct chat_post_args a = {0};
    const char *vals[4];
    int rc = 0;

    if (build_args(v, n, &a, vals) < 0) {
        answer_all(v, n, CHAT_E_UNAVAILABLE, "out of memory");
        goto out;
    }
    PGresult *res = exec(CHAT_SQL_POST, 4, vals);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        struct chat_post_ack ack;
        for (size_t i = 0; i < n; i++)
            if (chat_post_answer(res, i, &ack) == 0)
                answer_ack(v[i], ack.seq, ack.ts);
        answer_all(v, n, CHAT_E_UNAVAILABLE, "not stored; retry"); /* none, normally */
    } else {
        log_warn("writer: chat_post of %zu failed: %s", n, lp_pgerr(res, db));
        switch (chat_post_failed(n, PQstatus(db) == CONNECTION_OK,
                                 PQresultErrorField(res, PG_DIAG_SQLSTATE))) {
        case CHAT_POST_SPLIT:
            rc = -1;
            break;
        case CHAT_POST_REJECTED:
            answer_all(v, n, CHAT_E_BAD_REQUEST, "rejected by the database");
            break;
        case CHAT_POST_UNAVAILABLE:
            answer_all(v, n, CHAT_E_UNAVAILABLE, "database unavailable; retry with the same cid");
            break;
        }
    }
    PQclear(res);
out:
    chat_post_args_free(&a);
    return rc;
}

static void post_batch(struct lp_send *v[], size_t n)
{
    if (!db_ready()) {
        answer_all(v, n, CHAT_E_UNAVAILABLE, "database unavailable; retry with the same cid");
    } else if (post(v, n) < 0) {
        /* one bad send must not sink the others: post them one by one */
        for (size_t i = 0; i < n; i++)
            if (db_ready())
                post(&v[i], 1);
        answer_all(v, n, CHAT_E_UNAVAILABLE, "database unavailable; retry with the same cid");
    }
    for (size_t i = 0; i < n; i++)
        lp_send_free(v[i]);
}

/* ---- the loop ----------------------------------------------------------- */

static void housekeeping(int64_t now, int64_t *next_presence, int64_t *next_beat)
{
    if (now >= *next_presence) {
        *next_presence = now + PRESENCE_MS;
        if (db_ready() && lp_presence_flush(db) < 0 && PQstatus(db) != CONNECTION_OK)
            db_ready();
    }
    if (now >= *next_beat) {
        *next_beat = now + BEAT_MS;
        if (db_ready()) {
            const char *vals[1] = {conf->node};
            PGresult *res = exec(CHAT_SQL_NODE_BEAT, 1, vals);
            if (!lp_db_ok(res))
                log_warn("writer: heartbeat failed: %s", lp_pgerr(res, db));
            PQclear(res);
            node_up(); /* reaped while away? then presence is announced again */
        }
    }
}

static size_t take(struct lp_send *v[], int64_t wake_at)
{
    struct timespec ts;
    size_t n = 0;

    pthread_mutex_lock(&qlock);
    while (qhead == NULL && !wstop) {
        int64_t left = wake_at - chat_now_ms();
        if (left <= 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&qcond, &qlock, &ts);
    }
    while (qhead && n < (size_t)conf->batch_max) {
        v[n++] = qhead;
        qhead = qhead->next;
        qlen--;
    }
    if (qhead == NULL)
        qtail = NULL;
    pthread_mutex_unlock(&qlock);
    return n;
}

static void *writer_main(void *arg)
{
    static struct lp_send *v[CHAT_BATCH_LIMIT];
    int64_t next_presence = 0, next_beat = chat_now_ms() + BEAT_MS;
    (void)arg;

    for (;;) {
        size_t n = take(v, next_presence < next_beat ? next_presence : next_beat);
        if (n > 0)
            post_batch(v, n);
        housekeeping(chat_now_ms(), &next_presence, &next_beat);
        pthread_mutex_lock(&qlock);
        bool done = wstop && qhead == NULL;
        pthread_mutex_unlock(&qlock);
        if (done)
            break;
    }
    if (db_ready()) {
        const char *vals[1] = {conf->node};
        PGresult *res = exec(CHAT_SQL_NODE_DOWN, 1, vals);
        if (!lp_db_ok(res))
            log_warn("writer: chat_node_down failed: %s", lp_pgerr(res, db));
        PQclear(res);
    }
    PQfinish(db);
    db = NULL;
    return NULL;
}

int lp_writer_start(const struct lp_config *cfg)
{
    conf = cfg;
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&qcond, &ca);
    pthread_condattr_destroy(&ca);
    if (!db_ready()) {
        log_error("writer: cannot reach PostgreSQL at start-up");
        return -1;
    }
    if (pthread_create(&writer_thread, NULL, writer_main, NULL) != 0) {
        log_error("writer: cannot start its thread");
        return -1;
    }
    writer_running = true;
    return 0;
}

void lp_writer_stop(void)
{
    pthread_mutex_lock(&qlock);
    qclosed = true;
    wstop = true;
    pthread_cond_signal(&qcond);
    pthread_mutex_unlock(&qlock);
    if (writer_running)
        pthread_join(writer_thread, NULL);
    writer_running = false;
}
