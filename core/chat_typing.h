/* chat_typing: the one typing throttle of both transports: at most one
 * typing event per (room, sender) per CHAT_TYPING_EVERY_MS is sent to the
 * bus, and for guests at most CHAT_TYPING_PER_ADDR per (room, address
 * group: an IPv6 address by its /64) in the same interval, whatever names
 * and addresses of the group they give (a guest names itself: a new name
 * per request must not buy a new slot; docs/operations.md). The rest
 * are dropped (the client repeats while the user types, and the event only
 * shows "is typing" for a few seconds). A fixed table of slots keyed by a
 * hash seeded per table (drawn at the first call), so that a peer cannot
 * aim names at the slot of its own address: a collision only ever lets an
 * extra event through. No locking: chat-ws has one per worker process (one
 * thread), chat-fcgi one per process under its own mutex. */
#ifndef CHAT_TYPING_H
#define CHAT_TYPING_H

#include <stdbool.h>
#include <stdint.h>

#define CHAT_TYPING_EVERY_MS 1000
#define CHAT_TYPING_PER_ADDR 2 /* guests' events per (room, address) per interval */
#define CHAT_TYPING_SLOTS 8192

struct chat_typing {
    uint64_t seed; /* 0: not drawn yet */
    struct {
        uint64_t key;
        int64_t at;
        uint32_t n; /* events in the interval that began at `at` */
    } slot[CHAT_TYPING_SLOTS];
};

/* true: send this event now (and remember it); false: drop it. sender:
 * "alice" or "~guest"; addr: the client's address as nginx gave it (NULL
 * or "" when unknown), used for guests only (a signed-in user's name is
 * vouched for by nginx), counted by its group (chat_addr_group: an IPv6
 * address by its /64). now in ms of a monotonic clock. */
bool chat_typing_due(struct chat_typing *t, const char *room, const char *sender, const char *addr,
                     int64_t now);

#endif
