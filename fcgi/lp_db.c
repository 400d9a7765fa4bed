/* lp_db: the blocking libpq connections of the acceptors, the writer and
 * the listener: connect with a bounded wait, run every statement with a
 * deadline (a frozen or vanished server costs the caller --db-timeout, then
 * the connection is dropped: never cancelled, docs/ha.md), and retry a read
 * once over a fresh connection after PostgreSQL restarted under us. */
#define _GNU_SOURCE
#include "lp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "chat_log.h"
#include "chat_sys.h"
#include "chat_metrics.h"

const char *lp_db_msg(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    bool space = false;

    for (; s && *s && n + 1 < cap; s++) {
        bool ws = *s == '\n' || *s == '\t' || *s == '\r' || *s == ' ';
        if (ws) {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < cap)
            buf[n++] = ' ';
        space = false;
        buf[n++] = *s;
    }
    buf[n] = '\0';
    return buf;
}

const char *lp_pgerr(const PGresult *res, const PGconn *conn)
{
    static _Thread_local char buf[512];
    const char *m = res ? PQresultErrorMessage(res) : "";

    if ((m == NULL || *m == '\0') && conn)
        m = PQerrorMessage(conn);
    return lp_db_msg(m, buf, sizeof(buf));
}

static const struct lp_config *conf; /* given at init */

/* Server messages that arrive outside a query (a FATAL as the server shuts
 * down, say): one log line instead of libpq's raw stderr output. */
static void on_notice(void *arg, const char *message)
{
    char buf[512];
    log_warn("%s: PostgreSQL says: %s", (const char *)arg, lp_db_msg(message, buf, sizeof(buf)));
}

void lp_db_init(const struct lp_config *cfg)
{
    conf = cfg;
}

static const char *const connect_keys[] = {"dbname", "application_name", NULL};

/* Waits (poll) for fd until deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, bool out, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - chat_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (out ? POLLOUT : 0))};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* The connection's conninfo (conf->db, with the deadlines of core's
 * chat_db_conninfo_deadlines: connect_timeout per host, keepalives). */
PGconn *lp_db_connect(const char *what, char *err, size_t errlen)
{
    const char *const vals[] = {conf->db ? conf->db : "", "chat-fcgi", NULL};
    PGconn *c = PQconnectdbParams(connect_keys, vals, 1);

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        lp_db_msg(PQerrorMessage(c), err, errlen);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, on_notice, (void *)what);
    chat_metric_inc(CHAT_M_DB_CONNECTS);
    log_debug("%s: connected to PostgreSQL", what);
    return c;
}

PGconn *lp_db_connect_within(const char *what, int ms, char *err, size_t errlen)
{
    const char *const vals[] = {conf->db ? conf->db : "", "chat-fcgi", NULL};
    int64_t deadline = chat_now_ms() + ms;
    PGconn *c = PQconnectStartParams(connect_keys, vals, 1);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        int w = wait_fd(PQsocket(c), st == PGRES_POLLING_WRITING, deadline);
        if (w <= 0) {
            snprintf(err, errlen, w == 0 ? "no answer within %d ms" : "poll failed", ms);
            PQfinish(c);
            return NULL;
        }
        st = PQconnectPoll(c);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        lp_db_msg(PQerrorMessage(c), err, errlen);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, on_notice, (void *)what);
    chat_metric_inc(CHAT_M_DB_CONNECTS);
    return c;
}

/* Past the deadline: the socket is shut down so that the connection reads
 * as broken (CONNECTION_BAD) and every caller's existing "lost: reconnect"
 * path takes over; the server sees the client go, as after a network loss. */
static void break_conn(PGconn *c)
{
    shutdown(PQsocket(c), SHUT_RDWR);
    PQconsumeInput(c);
}

PGresult *lp_db_exec_within(PGconn *c, const char *sql, int n, const char *const *vals, int ms)
{
    int64_t deadline = chat_now_ms() + ms, t0 = chat_metrics_now_us();
    PGresult *res = NULL, *r;
    int flushing;

    if (PQstatus(c) != CONNECTION_OK || PQsetnonblocking(c, 1) < 0 ||
        !PQsendQueryParams(c, sql, n, NULL, vals, NULL, NULL, 0))
        goto broken;
    for (;;) {
        flushing = PQflush(c);
        if (flushing < 0 || !PQconsumeInput(c))
            goto broken;
        while (!PQisBusy(c)) {
            if ((r = PQgetResult(c)) == NULL) {
                PQsetnonblocking(c, 0);
                chat_metric_db_us(chat_metrics_now_us() - t0);
                return res; /* as PQexec: the first result, or a later error */
            }
            ExecStatusType st = PQresultStatus(r);
            if (res == NULL || st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
                PQclear(res);
                res = r;
            } else {
                PQclear(r);
            }
        }
        int w = wait_fd(PQsocket(c), flushing == 1, deadline);
        if (w == 0) {
            log_warn("PostgreSQL gave no answer within %d ms: dropping the connection (the "
                     "statement may or may not have run)",
                     ms);
            atomic_fetch_add(&lp_db_timeouts, 1);
            chat_metric_inc(CHAT_M_DB_TIMEOUTS);
            break_conn(c);
            PQclear(res);
            return NULL;
        }
        if (w < 0)
            goto broken;
    }
broken:
    PQclear(res);
    if (PQstatus(c) == CONNECTION_OK)
        break_conn(c);
    return NULL;
}

PGresult *lp_db_exec(PGconn *c, const char *sql, int n, const char *const *vals)
{
    return lp_db_exec_within(c, sql, n, vals, conf->db_timeout);
}

bool lp_db_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

PGresult *lp_db_query_within(PGconn **conn, const char *what, const char *sql, int n,
                             const char *const *vals, int ms)
{
    char err[256];
    int64_t deadline = chat_now_ms() + ms;

    if (*conn == NULL || PQstatus(*conn) != CONNECTION_OK) {
        PQfinish(*conn);
        *conn = lp_db_connect_within(what, ms, err, sizeof(err));
        if (*conn == NULL) {
            log_warn("%s: database unreachable: %s", what, err);
            return NULL;
        }
    }
    int left = (int)(deadline - chat_now_ms());
    PGresult *res = lp_db_exec_within(*conn, sql, n, vals, left > 1 ? left : 1);
    if (res == NULL || PQstatus(*conn) != CONNECTION_OK) {
        PQclear(res);
        PQfinish(*conn);
        *conn = NULL;
        return NULL;
    }
    return res;
}

PGresult *lp_db_query(PGconn **conn, const char *what, const char *sql, int n,
                      const char *const *vals)
{
    char err[256];

    for (int attempt = 0; attempt < 2; attempt++) {
        if (*conn == NULL || PQstatus(*conn) != CONNECTION_OK) {
            PQfinish(*conn);
            *conn = lp_db_connect(what, err, sizeof(err));
            if (*conn == NULL) {
                log_warn("%s: database unreachable: %s", what, err);
                return NULL;
            }
        }
        int64_t t0 = chat_now_ms();
        PGresult *res = lp_db_exec(*conn, sql, n, vals);
        if (res != NULL && PQstatus(*conn) == CONNECTION_OK)
            return res;
        if (res == NULL && chat_now_ms() - t0 >= conf->db_timeout) {
            /* timed out: no second wait of as long */
            PQfinish(*conn);
            *conn = NULL;
            return NULL;
        }
        log_warn("%s: database connection lost (%s)%s", what,
                 lp_db_msg(res ? PQresultErrorMessage(res) : "no result", err, sizeof(err)),
                 attempt ? "" : "; reconnecting");
        PQclear(res);
        PQfinish(*conn);
        *conn = NULL;
    }
    return NULL;
}
