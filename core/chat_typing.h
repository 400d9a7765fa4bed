/* chat_typing: the one typing throttle of both transports: at most one
 * typing event per (room, sender) per CHAT_TYPING_EVERY_MS is sent to the
 * bus; the rest are dropped (the client repeats while the user types, and
 * the event only shows "is typing" for a few seconds). A fixed table of
 * slots keyed by hash: a collision only ever lets an extra event through.
 * No locking: chat-ws has one per worker process (one thread), chat-fcgi
 * one per process under its own mutex. */
#ifndef CHAT_TYPING_H
#define CHAT_TYPING_H

#include <stdbool.h>
#include <stdint.h>

#define CHAT_TYPING_EVERY_MS 1000
#define CHAT_TYPING_SLOTS 4096

struct chat_typing {
    struct {
        uint64_t key;
        int64_t at;
    } slot[CHAT_TYPING_SLOTS];
};

/* true: send this event now (and remember it); false: drop it. now in ms
 * of a monotonic clock. */
bool chat_typing_due(struct chat_typing *t, const char *room, const char *sender, int64_t now);

#endif
