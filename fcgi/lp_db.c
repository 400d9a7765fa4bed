/* lp_db: the blocking libpq connections of the acceptors, the writer and
 * the listener: connect with a bounded wait, and retry a read once over a
 * fresh connection after PostgreSQL restarted under us. */
#define _GNU_SOURCE
#include "lp.h"

#include <stdio.h>
#include <string.h>

#include "chat_log.h"

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

PGconn *lp_db_connect(const char *what, char *err, size_t errlen)
{
    const char *const keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *const vals[] = {conf->db ? conf->db : "", "3", "chat-fcgi", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);

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
    log_debug("%s: connected to PostgreSQL", what);
    return c;
}

bool lp_db_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
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
        PGresult *res = PQexecParams(*conn, sql, n, NULL, vals, NULL, NULL, 0);
        if (res != NULL && PQstatus(*conn) == CONNECTION_OK)
            return res;
        log_warn("%s: database connection lost (%s)%s", what,
                 lp_db_msg(res ? PQresultErrorMessage(res) : "no result", err, sizeof(err)),
                 attempt ? "" : "; reconnecting");
        PQclear(res);
        PQfinish(*conn);
        *conn = NULL;
    }
    return NULL;
}
