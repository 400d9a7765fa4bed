/* lp_members: the answers to "who is in room R" (chat_members) that this
 * process read last, kept LP_MEMBERS_TTL_MS and shared by every acceptor,
 * so that a flood of first polls (each asks for the members of its rooms)
 * costs the database one query per room per TTL, not one per poll (issue
 * 12, point 3). Freshness: a presence line of the room (a change stored
 * in the database) drops its answer (lp_rooms.c calls
 * lp_members_changed), so an answer is never older than the database's
 * view; presence reaches the database at most once a second
 * (lp_presence.c), and a poller always sees itself and this process's
 * other pollers at once (lp_poll.c adds them, lp_presence_members).
 *
 * A table of SETS sets of WAYS rooms, the set by a hash seeded per process
 * (names cannot be aimed at a busy room's set from outside), the least
 * recently asked room of a set replaced: a room that polls ask for all the
 * time stays while others come and go. One thread reads a room that is
 * missing or stale while the others that ask for it wait for its answer
 * (at most LOAD_WAIT_MS: then one of them reads it itself). */
#define _GNU_SOURCE
#include "lp.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_hash.h"
#include "chat_sys.h"

#define SETS 1024
#define WAYS 4
#define LOAD_WAIT_MS 500 /* a reader that has not answered by then is not waited for */

struct slot {
    char room[CHAT_ROOM_KEY_MAX + 1]; /* "": free */
    int64_t at;                       /* ms the answer was read; 0: none yet */
    int64_t used;                     /* ms it was last asked for */
    int64_t loading;                  /* ms a thread began to read it; 0: nobody */
    unsigned gen, load_gen;           /* presence changes heard; gen when the read began */
    size_t count;
    char *json; /* the members array */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t answered; /* on CLOCK_MONOTONIC, as chat_now_ms */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint64_t seed;
static struct slot slots[SETS][WAYS];

static void init_once(void)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&answered, &a);
    pthread_condattr_destroy(&a);
    if (getentropy(&seed, sizeof(seed)) < 0)
        seed = (uint64_t)chat_now_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
}

/* Under the lock: room's slot; made (replacing the least recently asked
 * room of its set that nobody is reading) when make. NULL: not there, or
 * every way of the set is being read. */
static struct slot *slot_of(const char *room, bool make)
{
    uint64_t h = chat_hash_field(CHAT_HASH_INIT ^ seed, room);
    struct slot *set = slots[(h ^ (h >> 29)) % SETS], *victim = NULL;

    for (int i = 0; i < WAYS; i++) {
        if (strcmp(set[i].room, room) == 0)
            return &set[i];
        if (set[i].loading == 0 && (victim == NULL || set[i].used < victim->used))
            victim = &set[i];
    }
    if (!make || victim == NULL || strlen(room) > CHAT_ROOM_KEY_MAX)
        return NULL;
    free(victim->json);
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->room, room, strlen(room) + 1);
    return victim;
}

char *lp_members_get(const char *room, size_t *count)
{
    int64_t now = chat_now_ms(), deadline = now + LOAD_WAIT_MS;
    char *json = NULL;

    pthread_once(&once, init_once);
    pthread_mutex_lock(&lock);
    for (;;) {
        struct slot *s = slot_of(room, true);
        if (s == NULL)
            break; /* no room in the table: the caller reads it */
        s->used = now;
        if (s->at != 0 && now - s->at < LP_MEMBERS_TTL_MS && s->json) {
            if ((json = strdup(s->json)) != NULL)
                *count = s->count;
            break;
        }
        if (s->loading == 0 || now - s->loading >= LOAD_WAIT_MS || now >= deadline) {
            s->loading = now; /* the caller reads it, and puts the answer */
            s->load_gen = s->gen;
            break;
        }
        struct timespec ts = {deadline / 1000, (deadline % 1000) * 1000000L};
        pthread_cond_timedwait(&answered, &lock, &ts);
        now = chat_now_ms();
    }
    pthread_mutex_unlock(&lock);
    return json;
}

void lp_members_put(const char *room, size_t count, const char *json)
{
    char *copy = strdup(json);

    pthread_once(&once, init_once);
    pthread_mutex_lock(&lock);
    struct slot *s = copy ? slot_of(room, true) : NULL;
    if (s != NULL) {
        free(s->json);
        s->json = copy;
        s->count = count;
        /* a change heard while it was read: the answer may predate it */
        s->at = s->gen == s->load_gen ? chat_now_ms() : 0;
        s->loading = 0;
        copy = NULL;
    }
    pthread_cond_broadcast(&answered);
    pthread_mutex_unlock(&lock);
    free(copy);
}

void lp_members_changed(const char *room)
{
    pthread_once(&once, init_once);
    pthread_mutex_lock(&lock);
    struct slot *s = slot_of(room, false);
    if (s != NULL) {
        s->at = 0;
        s->gen++;
    }
    pthread_mutex_unlock(&lock);
}

void lp_members_free(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < SETS; i++)
        for (size_t k = 0; k < WAYS; k++) {
            free(slots[i][k].json);
            memset(&slots[i][k], 0, sizeof(slots[i][k]));
        }
    pthread_mutex_unlock(&lock);
}
