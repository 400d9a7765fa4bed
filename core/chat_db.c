#define _POSIX_C_SOURCE 200809L
/* chat_db: schema check and array literals (see chat_db.h). */
#include "chat_db.h"
#include "chat_sql.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int chat_db_check_schema(PGconn *conn, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, CHAT_SQL_SCHEMA_VERSION);
    int rc = -1;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "42P01") == 0)
            snprintf(err, errlen,
                     "database is not migrated (no schema_migrations table): "
                     "run chat-migrate (dev: make migrate)");
        else
            snprintf(err, errlen, "schema check failed: %s", PQerrorMessage(conn));
    } else {
        long v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        if (v == CHAT_SCHEMA_VERSION)
            rc = 0;
        else if (v < CHAT_SCHEMA_VERSION)
            snprintf(err, errlen,
                     "database schema is at version %ld, this build needs %d: "
                     "run chat-migrate (dev: make migrate)",
                     v, CHAT_SCHEMA_VERSION);
        else
            snprintf(err, errlen,
                     "database schema version %ld is newer than this build "
                     "knows (%d): upgrade the daemons",
                     v, CHAT_SCHEMA_VERSION);
    }
    PQclear(res);
    return rc;
}

const char *chat_db_conninfo(const char *opt, const char **source)
{
    const char *env = getenv("DATABASE_URL");

    if (opt && *opt) {
        *source = "--db";
        return opt;
    }
    if (env && *env) {
        *source = "DATABASE_URL";
        return env;
    }
    *source = "PG* environment";
    return "";
}

static int add_pair(struct chat_sbuf *b, const char *key, const char *val)
{
    if ((b->len && chat_sbuf_add(b, " ", 1) < 0) || chat_sbuf_add(b, key, strlen(key)) < 0 ||
        chat_sbuf_add(b, "='", 2) < 0)
        return -1;
    for (const char *v = val; *v; v++) {
        if ((*v == '\'' || *v == '\\') && chat_sbuf_add(b, "\\", 1) < 0)
            return -1;
        if (chat_sbuf_add(b, v, 1) < 0)
            return -1;
    }
    return chat_sbuf_add(b, "'", 1);
}

char *chat_db_conninfo_deadlines(const char *conninfo, char *err, size_t errlen)
{
    char *perr = NULL, defaults[] = CHAT_DB_DEADLINES;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &perr);
    struct chat_sbuf b = {0};

    if (!opts) {
        snprintf(err, errlen, "bad conninfo: %s", perr ? perr : "out of memory");
        PQfreemem(perr);
        return NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val && add_pair(&b, o->keyword, o->val) < 0)
            goto oom;
    }
    for (char *save = NULL, *kv = strtok_r(defaults, " ", &save); kv;
         kv = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(kv, '=');
        *eq = '\0';
        bool set = false;
        for (PQconninfoOption *o = opts; o->keyword; o++)
            set |= o->val && strcmp(o->keyword, kv) == 0;
        if (!set && add_pair(&b, kv, eq + 1) < 0)
            goto oom;
    }
    PQconninfoFree(opts);
    if (chat_sbuf_add(&b, "", 1) < 0) { /* the NUL */
        chat_sbuf_free(&b);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return b.p;
oom:
    PQconninfoFree(opts);
    chat_sbuf_free(&b);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

PGconn *chat_db_open(const char *conninfo, char *err, size_t errlen)
{
    PGconn *conn = PQconnectdb(conninfo ? conninfo : "");

    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
        goto fail;
    }
    if (chat_db_check_schema(conn, err, errlen) < 0)
        goto fail;
    return conn;
fail:
    PQfinish(conn);
    return NULL;
}

void chat_sbuf_free(struct chat_sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int sbuf_reserve(struct chat_sbuf *b, size_t more)
{
    if (b->cap - b->len > more)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int chat_sbuf_add(struct chat_sbuf *b, const char *s, size_t len)
{
    if (sbuf_reserve(b, len) < 0)
        return -1;
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
    return 0;
}

int chat_db_array_add(struct chat_sbuf *b, const char *s, size_t len)
{
    /* worst case: every byte escaped, plus quotes, separator */
    if (sbuf_reserve(b, 2 * len + 8) < 0)
        return -1;
    char sep = b->len == 0 ? '{' : ',';
    b->p[b->len++] = sep;
    if (!s) {
        memcpy(b->p + b->len, "NULL", 4);
        b->len += 4;
    } else {
        b->p[b->len++] = '"';
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '"' || s[i] == '\\')
                b->p[b->len++] = '\\';
            b->p[b->len++] = s[i];
        }
        b->p[b->len++] = '"';
    }
    b->p[b->len] = '\0';
    return 0;
}

int chat_db_array_end(struct chat_sbuf *b)
{
    if (b->len == 0)
        return chat_sbuf_add(b, "{}", 2);
    return chat_sbuf_add(b, "}", 1);
}
