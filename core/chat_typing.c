/* chat_typing: one typing event per (room, sender) per second, and a few
 * per (room, guest address) (see chat_typing.h). */
#define _GNU_SOURCE
#include "chat_typing.h"

#include <unistd.h>

#include "chat_addr.h"
#include "chat_hash.h"

static uint64_t typing_key(const struct chat_typing *t, char kind, const char *room,
                           const char *who)
{
    uint64_t h = chat_hash_more(CHAT_HASH_INIT ^ t->seed, &kind, 1);

    h = chat_hash_field(chat_hash_field(h, room), who);
    h ^= h >> 31; /* FNV's low bits alone are weak: mix the high ones in */
    return h;
}

/* The slot of key: true when it has room for one more event (taken). */
static bool slot_take(struct chat_typing *t, uint64_t key, uint32_t max, int64_t now, bool commit)
{
    size_t i = (size_t)(key % CHAT_TYPING_SLOTS);
    bool fresh = t->slot[i].key == key && now - t->slot[i].at < CHAT_TYPING_EVERY_MS;

    if (fresh && t->slot[i].n >= max)
        return false;
    if (commit && fresh) {
        t->slot[i].n++;
    } else if (commit) {
        t->slot[i].key = key;
        t->slot[i].at = now;
        t->slot[i].n = 1;
    }
    return true;
}

bool chat_typing_due(struct chat_typing *t, const char *room, const char *sender, const char *addr,
                     int64_t now)
{
    bool guest = sender[0] == '~' && addr != NULL && addr[0] != '\0';

    if (t->seed == 0 && (getentropy(&t->seed, sizeof(t->seed)) < 0 || t->seed == 0))
        t->seed = (uint64_t)now * 0x9e3779b97f4a7c15ULL | 1;
    uint64_t ks = typing_key(t, 's', room, sender);
    char group[CHAT_ADDR_MAX + 1];
    uint64_t ka = 0;

    if (guest) { /* IPv6 by its /64: a host picks any address in it */
        chat_addr_group(addr, group);
        ka = typing_key(t, 'a', room, group);
    }

    if (!slot_take(t, ks, 1, now, false) ||
        (guest && !slot_take(t, ka, CHAT_TYPING_PER_ADDR, now, true)))
        return false;
    slot_take(t, ks, 1, now, true);
    return true;
}
