/* pg: one asynchronous PostgreSQL connection driven by the ev loop. libpq
 * in non-blocking mode, its socket one more fd in epoll; queries are
 * queued and sent one at a time (FIFO), results handed to callbacks. On
 * connection loss every queued query's callback gets NULL, and the
 * connection is re-established with jittered exponential backoff (100 ms
 * to 5 s). A query that passes its deadline drops the connection the same
 * way. The loop never blocks on it. */
#ifndef PG_H
#define PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct ev_loop;
struct pg;

/* res: the query's result (borrowed: valid during the call; the caller
 * must not PQclear it), or NULL when the connection was lost before the
 * query completed (it may or may not have been executed). */
typedef void pg_result_cb(struct pg *pg, PGresult *res, void *data);
/* One NOTIFY: payload is borrowed, NUL-terminated, valid during the call. */
typedef void pg_notify_cb(struct pg *pg, const char *channel, const char *payload, size_t len,
                          void *data);
/* up: true after (re)connecting (and LISTENing); false on loss. */
typedef void pg_state_cb(struct pg *pg, bool up, void *data);

struct pg_handlers {
    pg_notify_cb *notify; /* may be NULL */
    pg_state_cb *state;   /* may be NULL */
    void *data;
};

/* listen_channel: NULL, or a channel to LISTEN on after every connect.
 * name: for log lines ("bus", "writer"). Strings are copied. Starts
 * connecting at once. NULL on allocation failure. */
struct pg *pg_new(struct ev_loop *loop, const char *name, const char *conninfo,
                  const char *listen_channel, const struct pg_handlers *h);
/* Closes the connection; queued callbacks are NOT called. NULL is fine. */
void pg_free(struct pg *pg);

bool pg_is_up(const struct pg *pg);
/* Queries waiting or in flight. */
size_t pg_queued(const struct pg *pg);

/* Queues a parameterized query (text parameters; NULL = SQL NULL). The
 * parameters are copied. Returns 0, or -1 when the connection is down
 * (the callback will not be called: answer "unavailable" at once) or out
 * of memory. The callback never runs inside pg_query(); it runs once,
 * when the query is over: with its result (the error, if the commit
 * failed after the rows came), or NULL if the connection was lost before
 * the end (the query may or may not have committed). */
int pg_query(struct pg *pg, const char *sql, int nparams, const char *const *params,
             pg_result_cb *cb, void *data);
/* pg_query with its own deadline (ms; 0: the connection's). */
int pg_query_within(struct pg *pg, const char *sql, int nparams, const char *const *params,
                    int timeout_ms, pg_result_cb *cb, void *data);

/* Every query has a deadline (default 5000 ms), counted from when it is
 * sent: past it the connection is dropped (never cancelled: see pg.c),
 * every queued callback gets NULL, and it reconnects with backoff. */
void pg_set_timeout(struct pg *pg, int ms);
/* A query has been in flight for more than ms. */
bool pg_stalled(const struct pg *pg, int ms);
/* When up, idle and silent for idle_ms: sends "SELECT 1", so that a
 * frozen or vanished server is noticed (pg_stalled, then the deadline) on
 * an idle or LISTEN-only connection too. NULL is fine. */
void pg_probe(struct pg *pg, int idle_ms);
/* Queries that passed their deadline since pg_new (0 for NULL). */
unsigned long pg_timeouts(const struct pg *pg);

#endif
