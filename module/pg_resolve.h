/* pg_resolve: the host names of a conninfo resolved off the event loop.
 * libpq resolves host names with a blocking getaddrinfo() inside
 * PQconnectPoll; chat-ws's loop must not wait for DNS. A thread resolves
 * them and the loop gets the conninfo back with hostaddr= filled in (one
 * host entry per address, so libpq still tries them all, in order), which
 * libpq then connects to without resolving. Unix sockets and literal
 * addresses need nothing (pg_resolve_needed is false). */
#ifndef PG_RESOLVE_H
#define PG_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

#include "ev.h"

struct job;
typedef void pg_resolved_cb(void *data, char *conninfo, const char *err);

/* One resolution in flight, embedded in its owner (pg.c's struct pg). */
struct pg_resolve {
    struct ev_loop *loop;
    struct ev_io io; /* the socket the thread answers on */
    struct job *job; /* NULL: none in flight */
    pg_resolved_cb *cb;
    void *data;
};

/* True when conninfo names a host by name and sets no hostaddr. */
bool pg_resolve_needed(const char *conninfo);

/* The address list of one host name: fills out (up to max, each a
 * NUL-terminated numeric address), returns how many, or -1 with err. */
typedef int pg_lookup_fn(const char *name, char out[][64], int max, char *err, size_t errlen);

/* conninfo with every named host expanded to its addresses (hostaddr=,
 * ports repeated alongside); a name that does not resolve is left out
 * (libpq would have failed it and tried the next). A new string (free()),
 * or NULL with err when no host is left or out of memory. lookup: NULL for
 * getaddrinfo. Blocking: the thread's work, a function for the unit test. */
char *pg_resolve_rewrite(const char *conninfo, pg_lookup_fn *lookup, char *err, size_t errlen);

/* Starts resolving in a thread; cb (conninfo: owned by the callee, free();
 * NULL on failure, err says why) runs later from the loop, once, unless
 * cancelled first. 0, or -1 when it cannot start (err set). */
int pg_resolve_start(struct pg_resolve *r, struct ev_loop *loop, const char *conninfo,
                     pg_resolved_cb *cb, void *data, char *err, size_t errlen);
/* cb will not run; the thread finishes on its own. Nothing in flight: a
 * no-op. */
void pg_resolve_cancel(struct pg_resolve *r);

#endif
