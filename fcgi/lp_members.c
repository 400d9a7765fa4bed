/* lp_members: the answers to "who is in room R" (chat_members) that this
 * process read last, kept LP_MEMBERS_TTL_MS and shared by every acceptor,
 * so that a flood of first polls (each asks for the members of its rooms)
 * costs the database one query per room per TTL, not one per poll (issue
 * 12, point 3). Presence reaches the database at most once a second
 * (lp_presence.c), so a second-old answer is as fresh as a new one. A fixed
 * table of slots by room hash: a collision only costs a query. */
#define _GNU_SOURCE
#include "lp.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chat_hash.h"
#include "chat_sys.h"

#define SLOTS 4096

struct slot {
    char room[CHAT_ROOM_MAX + 1];
    int64_t at; /* ms; 0: empty */
    size_t count;
    char *json; /* the members array */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SLOTS];

static struct slot *slot_of(const char *room)
{
    return &slots[chat_hash(room, strlen(room)) % SLOTS];
}

char *lp_members_get(const char *room, size_t *count)
{
    char *json = NULL;
    int64_t now = chat_now_ms();

    pthread_mutex_lock(&lock);
    struct slot *s = slot_of(room);
    if (s->at != 0 && now - s->at < LP_MEMBERS_TTL_MS && strcmp(s->room, room) == 0 &&
        (json = strdup(s->json)) != NULL)
        *count = s->count;
    pthread_mutex_unlock(&lock);
    return json;
}

void lp_members_put(const char *room, size_t count, const char *json)
{
    char *copy = strdup(json);

    if (copy == NULL || strlen(room) > CHAT_ROOM_MAX) {
        free(copy);
        return;
    }
    pthread_mutex_lock(&lock);
    struct slot *s = slot_of(room);
    free(s->json);
    memcpy(s->room, room, strlen(room) + 1);
    s->at = chat_now_ms();
    s->count = count;
    s->json = copy;
    pthread_mutex_unlock(&lock);
}

void lp_members_free(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < SLOTS; i++) {
        free(slots[i].json);
        slots[i].json = NULL;
        slots[i].at = 0;
    }
    pthread_mutex_unlock(&lock);
}
