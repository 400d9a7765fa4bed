/* chat_backoff: exponential reconnect waits with jitter (see chat_backoff.h). */
#define _GNU_SOURCE
#include "chat_backoff.h"

#include <time.h>
#include <unistd.h>

int chat_backoff_next(struct chat_backoff *b)
{
    if (b->rnd == 0) { /* seeded per process and per user of it */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        b->rnd = (uint32_t)ts.tv_nsec ^ ((uint32_t)getpid() << 16) ^ (uint32_t)(uintptr_t)b;
        if (b->rnd == 0)
            b->rnd = 1;
    }
    b->rnd ^= b->rnd << 13; /* xorshift32 */
    b->rnd ^= b->rnd >> 17;
    b->rnd ^= b->rnd << 5;
    b->ms = b->ms < CHAT_BACKOFF_MIN_MS ? CHAT_BACKOFF_MIN_MS : b->ms;
    int wait = b->ms / 2 + (int)(b->rnd % (uint32_t)(b->ms / 2 + 1));
    b->ms = b->ms * 2 > CHAT_BACKOFF_MAX_MS ? CHAT_BACKOFF_MAX_MS : b->ms * 2;
    return wait;
}

void chat_backoff_reset(struct chat_backoff *b)
{
    b->ms = 0;
}
