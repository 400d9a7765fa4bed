/* lp_db: the blocking libpq connections of the acceptors, the writer and
 * the listener: connect with a bounded wait, and retry a read once over a
 * fresh connection after PostgreSQL restarted under us. */
#include "lp.h"

#include <stdio.h>
#include <string.h>

#include "chat_log.h"

const char *const lp_sql_rows_after =
    "SELECT seq, chat_msg_json(room, seq, sender, text, ts, cid) FROM messages"
    " WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3";

PGconn *lp_db_connect(const char *what, char *err, size_t errlen)
{
    const char *const keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *const vals[] = {lp_cfg.db ? lp_cfg.db : "", "3", "chat-fcgi", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        size_t n = strlen(err);
        while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
            err[--n] = '\0';
        PQfinish(c);
        return NULL;
    }
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
                 res ? PQresultErrorMessage(res) : "no result", attempt ? "" : "; reconnecting");
        PQclear(res);
        PQfinish(*conn);
        *conn = NULL;
    }
    return NULL;
}
