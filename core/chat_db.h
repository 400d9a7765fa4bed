/* chat_db: what both daemons need of PostgreSQL besides the event loop:
 * the schema version check at start-up (synchronous: before any client is
 * served) and the text[] literals that feed chat_post. */
#ifndef CHAT_DB_H
#define CHAT_DB_H

#include <libpq-fe.h>
#include <stddef.h>

/* The highest sql/NNN_*.sql this build knows. */
#define CHAT_SCHEMA_VERSION 6

/* Blocking; start-up only. 0 when the schema is exactly CHAT_SCHEMA_VERSION;
 * -1 otherwise, with a message for the operator in err ("not migrated: run
 * chat-migrate", "schema version 3 is newer than this build (1)", or the
 * server's error). */
int chat_db_check_schema(PGconn *conn, char *err, size_t errlen);

/* The database both daemons use, chosen the same way: opt (--db) when
 * non-empty, else $DATABASE_URL when non-empty, else "" (libpq's PG*
 * variables and defaults). *source names the choice for the start-up log:
 * "--db", "DATABASE_URL" or "PG* environment". */
const char *chat_db_conninfo(const char *opt, const char **source);

/* The conninfo both daemons connect with: conninfo (a keyword=value
 * string or a URI, "" for the PG* environment) as keyword='value' pairs,
 * plus the deadlines it lacks (CHAT_DB_DEADLINES: TCP keepalives, a
 * connect timeout, tcp_user_timeout), so that a database host that
 * vanishes is noticed in seconds, not after the kernel's 15 minutes. A
 * keyword the admin set is kept as set. Returns a new string (free()), or
 * NULL with err set when libpq cannot parse conninfo or out of memory. */
char *chat_db_conninfo_deadlines(const char *conninfo, char *err, size_t errlen);
/* What is added when missing, in this order (docs/operations.md). */
#define CHAT_DB_DEADLINES                                                                          \
    "connect_timeout=3 keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=2 "   \
    "tcp_user_timeout=5000"
/* How long any query may take before the daemons drop its connection and
 * answer unavailable (--db-timeout, ms), and the deadline of /health's
 * own database probe: it answers within a second whatever the database does. */
#define CHAT_DB_TIMEOUT_MS 5000
#define CHAT_DB_HEALTH_MS 700

/* Connects (blocking; start-up only) and checks the schema. NULL with err
 * set on failure. conninfo may be "" to use the PG* environment. */
PGconn *chat_db_open(const char *conninfo, char *err, size_t errlen);

/* A growable byte string for building SQL parameters. */
struct chat_sbuf {
    char *p;
    size_t len, cap;
};
void chat_sbuf_free(struct chat_sbuf *b);
int chat_sbuf_add(struct chat_sbuf *b, const char *s, size_t len); /* 0, -1 ENOMEM */

/* Appends one element to a PostgreSQL array literal being built in b:
 * "{" before the first, "," between, quoted and escaped; s == NULL is
 * NULL. chat_db_array_end() closes it ("{}" when empty). 0, -1 ENOMEM. */
int chat_db_array_add(struct chat_sbuf *b, const char *s, size_t len);
int chat_db_array_end(struct chat_sbuf *b);

#endif
