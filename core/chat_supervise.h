/* chat_supervise: --workers N, for both daemons. The parent forks N
 * workers (each runs run(arg) with the signal mask the caller had, and
 * exits with its result), passes SIGHUP on, restarts a worker that dies,
 * and stops them all on SIGTERM or SIGINT (SIGKILL after 8 s). One restart
 * policy: more than CHAT_RESTARTS_PER_MINUTE deaths in a minute (all
 * workers together) is a crash loop, not bad luck: every worker is stopped
 * and the parent exits 1, so that the service manager and the admin see it
 * (a pool that silently shrinks is worse). The parent only forks, waits
 * and signals: no sockets, no event loop, no threads (the listening socket
 * is opened by the daemon before, and inherited). */
#ifndef CHAT_SUPERVISE_H
#define CHAT_SUPERVISE_H

#define CHAT_RESTARTS_PER_MINUTE 10
#define CHAT_STOP_GRACE_MS 8000

/* Returns in the parent only: 0 after a stop signal, 1 after giving up
 * (crash loop, or no worker could be forked). */
int chat_supervise(int n, int (*run)(void *arg), void *arg);

#endif
