/* chat_backoff: the one reconnect policy of both daemons towards
 * PostgreSQL: exponential from 100 ms to 5 s, each wait drawn in its upper
 * half (jitter), so that the processes of a host, and the hosts of a
 * cluster, do not all knock at once when PostgreSQL comes back. No I/O:
 * the caller arms its own timer (chat-ws) or compares clocks (chat-fcgi). */
#ifndef CHAT_BACKOFF_H
#define CHAT_BACKOFF_H

#include <stdint.h>

#define CHAT_BACKOFF_MIN_MS 100
#define CHAT_BACKOFF_MAX_MS 5000

struct chat_backoff {
    int ms; /* the current step; 0 before the first failure */
    uint32_t rnd;
};

/* After a failure: how long to wait before the next attempt. */
int chat_backoff_next(struct chat_backoff *b);
/* After a success: the next failure starts from CHAT_BACKOFF_MIN_MS. */
void chat_backoff_reset(struct chat_backoff *b);

#endif
