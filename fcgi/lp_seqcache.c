/* lp_seqcache: what the listener vouches for, readable by the acceptors.
 * For a room it publishes P under a LISTEN generation g: every message of
 * the room past P that exists or will exist is (or will be) heard on g's
 * connection, and nothing past P was heard yet. A poll whose cursor is at
 * or past P, while g is still the generation, can park without reading
 * the table: the listener wakes it if anything comes. A re-poll after a
 * presence or typing event (the common case) thus costs no database
 * round trip. Direct-mapped and lossy: a miss only means "read the table". */
#define _GNU_SOURCE
#include "lp.h"

#include <pthread.h>
#include <string.h>

#include "chat_hash.h"

#define SLOTS 16384
#define STRIPES 64

struct slot {
    char room[CHAT_ROOM_KEY_MAX + 1];
    int64_t p;
    unsigned gen;
};

static struct slot slots[SLOTS];
static pthread_mutex_t stripes[STRIPES];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&stripes[i], NULL);
}

static size_t slot_of(const char *room)
{
    return (size_t)(chat_hash(room, strlen(room)) % SLOTS);
}

void lp_seqcache_put(const char *room, int64_t p, unsigned gen)
{
    size_t i = slot_of(room);
    size_t len = strlen(room);

    if (len > CHAT_ROOM_KEY_MAX)
        return;
    pthread_once(&once, init);
    pthread_mutex_lock(&stripes[i % STRIPES]);
    memcpy(slots[i].room, room, len + 1);
    slots[i].p = p;
    slots[i].gen = gen;
    pthread_mutex_unlock(&stripes[i % STRIPES]);
}

bool lp_seqcache_covers(const char *room, int64_t cursor, unsigned gen)
{
    size_t i = slot_of(room);
    bool ok;

    pthread_once(&once, init);
    pthread_mutex_lock(&stripes[i % STRIPES]);
    ok =
        slots[i].gen == gen && gen != 0 && strcmp(slots[i].room, room) == 0 && cursor >= slots[i].p;
    pthread_mutex_unlock(&stripes[i % STRIPES]);
    return ok;
}
