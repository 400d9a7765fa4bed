/* lp_presence: long-poll users as members of rooms. A (room, member) pair
 * comes online with its first poll and goes offline 2 poll timeouts after
 * its last one. Acceptors touch pairs; the writer thread flushes the
 * transitions once a second in one chat_presence() call, so presence costs
 * the database one transaction per second per process, not one per poll.
 * A transition is applied locally only once the database took it. Pairs
 * are also indexed by room, so that a member list can show this process's
 * own members at once (lp_presence_members), not a flush later. */
#define _GNU_SOURCE
#include "lp.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_hash.h"
#include "chat_log.h"
#include "chat_members.h"
#include "chat_sys.h"
#include "chat_sql.h"

#define FLUSH_MAX 5000 /* transitions per chat_presence call */
#define SEEN_MAX 10000 /* users waiting for chat_users_seen */

enum pair_state { PAIR_NEW, PAIR_ONLINE, PAIR_GOING_ON, PAIR_GOING_OFF };

struct proom;

struct pair {
    struct pair *hnext;
    struct pair *rnext, *rprev; /* the pairs of its room */
    struct proom *pr;
    enum pair_state state;
    bool touched; /* polled again while going offline */
    int64_t expires;
    char room[CHAT_ROOM_KEY_MAX + 1];
    char member[CHAT_SENDER_MAX + 1];
    char addr[CHAT_ADDR_MAX + 1]; /* whose poll made it: counted against --max-presence-per-addr */
};

/* The pairs of one room (whatever their state). */
struct proom {
    struct proom *hnext;
    struct pair *pairs;
    size_t n;
    char room[CHAT_ROOM_KEY_MAX + 1];
};

static const struct lp_config *conf; /* given at init */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct pair **buckets;
static size_t nbuckets = 16384, npairs;
static struct proom **rooms; /* nbuckets chains, by room */
static char (*seen)[CHAT_SENDER_MAX + 1];
static size_t nseen;
static bool full_logged;
static bool resync; /* send the whole view (chat_presence_sync) on the next flush */

static size_t hash_pair(const char *room, const char *member)
{
    uint64_t h = chat_hash_field(chat_hash_field(CHAT_HASH_INIT, room), member);
    return (size_t)(h & (nbuckets - 1));
}

/* Under the lock: room's entry (made when make; NULL when not there, or
 * out of memory). */
static struct proom *proom_of(const char *room, bool make)
{
    struct proom **pp = &rooms[chat_hash_field(CHAT_HASH_INIT, room) & (nbuckets - 1)];

    while (*pp && strcmp((*pp)->room, room) != 0)
        pp = &(*pp)->hnext;
    if (*pp == NULL && make && (*pp = calloc(1, sizeof(**pp))) != NULL)
        snprintf((*pp)->room, sizeof((*pp)->room), "%s", room);
    return *pp;
}

/* Under the lock: p out of its room's list; the room goes with its last. */
static void proom_unlink(struct pair *p)
{
    struct proom *r = p->pr;

    if (p->rprev)
        p->rprev->rnext = p->rnext;
    else
        r->pairs = p->rnext;
    if (p->rnext)
        p->rnext->rprev = p->rprev;
    if (--r->n > 0)
        return;
    struct proom **pp = &rooms[chat_hash_field(CHAT_HASH_INIT, r->room) & (nbuckets - 1)];
    while (*pp != r)
        pp = &(*pp)->hnext;
    *pp = r->hnext;
    free(r);
}

int lp_presence_init(const struct lp_config *cfg)
{
    conf = cfg;
    buckets = calloc(nbuckets, sizeof(*buckets));
    rooms = calloc(nbuckets, sizeof(*rooms));
    seen = calloc(SEEN_MAX, sizeof(*seen));
    return buckets && rooms && seen ? 0 : -1;
}

void lp_presence_free(void)
{
    for (size_t b = 0; buckets && b < nbuckets; b++) {
        while (buckets[b]) {
            struct pair *p = buckets[b];
            buckets[b] = p->hnext;
            proom_unlink(p);
            free(p);
        }
    }
    free(buckets);
    free(rooms);
    free(seen);
    buckets = NULL;
    rooms = NULL;
    seen = NULL;
}

static void note_seen(const char *member)
{
    for (size_t i = 0; i < nseen; i++)
        if (strcmp(seen[i], member) == 0)
            return;
    if (nseen < SEEN_MAX)
        snprintf(seen[nseen++], sizeof(seen[0]), "%s", member);
}

/* Frees p (unlinked by the caller) and gives its address's entry back. */
static void pair_free(struct pair *p)
{
    proom_unlink(p);
    lp_addr_give(p->addr, LP_ADDR_PRESENCE);
    npairs--;
    free(p);
}

void lp_presence_touch(const char *room, const char *member, const char *addr, unsigned timeout_s)
{
    int64_t expires = chat_now_ms() + 2 * (int64_t)timeout_s * 1000;

    pthread_mutex_lock(&lock);
    size_t b = hash_pair(room, member);
    struct pair *p = buckets[b];
    while (p && (strcmp(p->room, room) != 0 || strcmp(p->member, member) != 0))
        p = p->hnext;
    if (p == NULL) {
        if (!lp_addr_take(addr, LP_ADDR_PRESENCE)) { /* (counted for /health) */
            pthread_mutex_unlock(&lock);
            return;
        }
        struct proom *r = NULL;
        if (npairs >= LP_PRESENCE_PAIRS_MAX || (p = calloc(1, sizeof(*p))) == NULL ||
            (r = proom_of(room, true)) == NULL) {
            free(p);
            lp_addr_give(addr, LP_ADDR_PRESENCE);
            if (!full_logged)
                log_warn("presence: %zu pairs tracked, not tracking more", npairs);
            full_logged = true;
            pthread_mutex_unlock(&lock);
            return;
        }
        snprintf(p->addr, sizeof(p->addr), "%s", addr ? addr : "");
        snprintf(p->room, sizeof(p->room), "%s", room);
        snprintf(p->member, sizeof(p->member), "%s", member);
        p->state = PAIR_NEW;
        p->hnext = buckets[b];
        buckets[b] = p;
        p->pr = r;
        p->rnext = r->pairs;
        if (r->pairs)
            r->pairs->rprev = p;
        r->pairs = p;
        r->n++;
        npairs++;
        note_seen(member);
    }
    if (expires > p->expires)
        p->expires = expires;
    p->touched = true;
    pthread_mutex_unlock(&lock);
}

int lp_presence_members(const char *room, const char ***names, size_t *n)
{
    int64_t now = chat_now_ms();
    int rc = 0;

    *names = NULL;
    *n = 0;
    pthread_mutex_lock(&lock);
    struct proom *r = proom_of(room, false);
    /* more here than a list shows: the database's answer alone */
    if (r != NULL && r->n <= CHAT_MEMBERS_MAX && (*names = calloc(r->n, sizeof(**names))) != NULL) {
        for (struct pair *p = r->pairs; p && rc == 0; p = p->rnext) {
            if (p->expires <= now) /* gone, announced or not */
                continue;
            if (((*names)[*n] = strdup(p->member)) == NULL)
                rc = -1;
            else
                (*n)++;
        }
    } else if (r != NULL && r->n <= CHAT_MEMBERS_MAX) {
        rc = -1;
    }
    pthread_mutex_unlock(&lock);
    if (rc < 0) {
        chat_members_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return rc;
}

void lp_presence_resync(void)
{
    pthread_mutex_lock(&lock);
    resync = true;
    pthread_mutex_unlock(&lock);
}

/* The whole view of this node (the pairs the database has taken online),
 * as chat-ws does after a reconnect: the database's rows for this node
 * become exactly these, whatever was lost or reaped meanwhile. */
static int call_sync(PGconn *db)
{
    struct chat_presence_args a = {0};
    const char *vals[4];
    int bad = 0, rc = 0;

    pthread_mutex_lock(&lock);
    if (!resync) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    for (size_t b = 0; b < nbuckets && !bad; b++)
        for (struct pair *p = buckets[b]; p && !bad; p = p->hnext)
            if (p->state == PAIR_ONLINE)
                bad |= chat_presence_args_add(&a, p->room, p->member, true);
    resync = false;
    pthread_mutex_unlock(&lock);
    if (bad || chat_presence_args_end(&a, conf->node, vals) < 0) {
        rc = -1;
    } else {
        PGresult *res = lp_db_exec(db, CHAT_SQL_PRESENCE_SYNC, 3, vals);
        rc = lp_db_ok(res) ? 0 : -1;
        if (rc < 0)
            log_warn("presence: chat_presence_sync failed: %s", lp_pgerr(res, db));
        else
            log_info("presence: whole view sent (%zu pairs)", a.n);
        PQclear(res);
    }
    if (rc < 0)
        lp_presence_resync(); /* again on the next flush */
    chat_presence_args_free(&a);
    return rc;
}

size_t lp_presence_count(void)
{
    pthread_mutex_lock(&lock);
    size_t n = npairs;
    pthread_mutex_unlock(&lock);
    return n;
}

/* Under the lock: picks due transitions into out (at most FLUSH_MAX), marks
 * them in flight, drops pairs that expire before ever being announced. */
static size_t collect(struct pair **out, int64_t now)
{
    size_t n = 0;

    for (size_t b = 0; b < nbuckets && n < FLUSH_MAX; b++) {
        struct pair **pp = &buckets[b];
        while (*pp && n < FLUSH_MAX) {
            struct pair *p = *pp;
            if (p->state == PAIR_NEW && p->expires <= now) {
                *pp = p->hnext;
                pair_free(p);
                continue;
            }
            if (p->state == PAIR_NEW) {
                p->state = PAIR_GOING_ON;
                out[n++] = p;
            } else if (p->state == PAIR_ONLINE && p->expires <= now) {
                p->state = PAIR_GOING_OFF;
                p->touched = false;
                out[n++] = p;
            }
            pp = &p->hnext;
        }
    }
    return n;
}

static void unlink_pair(struct pair *p)
{
    struct pair **pp = &buckets[hash_pair(p->room, p->member)];
    while (*pp && *pp != p)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = p->hnext;
        pair_free(p);
    }
}

static void settle(struct pair **v, size_t n, bool ok)
{
    for (size_t i = 0; i < n; i++) {
        struct pair *p = v[i];
        if (p->state == PAIR_GOING_ON)
            p->state = ok ? PAIR_ONLINE : PAIR_NEW;
        else if (!ok || p->touched)
            p->state = ok ? PAIR_NEW : PAIR_ONLINE;
        else
            unlink_pair(p);
    }
}

static int call_presence(PGconn *db, struct pair **v, size_t n)
{
    struct chat_presence_args a = {0};
    const char *vals[4];
    int bad = 0, rc = -1;

    for (size_t i = 0; i < n; i++)
        bad |= chat_presence_args_add(&a, v[i]->room, v[i]->member, v[i]->state == PAIR_GOING_ON);
    if (!bad && chat_presence_args_end(&a, conf->node, vals) == 0) {
        PGresult *res = lp_db_exec(db, CHAT_SQL_PRESENCE, 4, vals);
        rc = lp_db_ok(res) ? 0 : -1;
        if (rc < 0)
            log_warn("presence: chat_presence failed: %s", lp_pgerr(res, db));
        PQclear(res);
    }
    chat_presence_args_free(&a);
    return rc;
}

static int flush_seen(PGconn *db)
{
    struct chat_seen_args a = {0};
    const char *vals[2];
    size_t n;
    int bad = 0, rc = 0;

    pthread_mutex_lock(&lock);
    n = nseen;
    for (size_t i = 0; i < n; i++)
        bad |= chat_seen_args_add(&a, seen[i], seen[i][0] != '~');
    nseen = 0;
    pthread_mutex_unlock(&lock);
    if (n == 0 || bad || chat_seen_args_end(&a, vals) < 0)
        goto out;
    PGresult *res = lp_db_exec(db, CHAT_SQL_USERS_SEEN, 2, vals);
    if (!lp_db_ok(res)) {
        log_warn("presence: chat_users_seen failed: %s", lp_pgerr(res, db));
        rc = -1;
    }
    PQclear(res);
out:
    chat_seen_args_free(&a);
    return rc;
}

int lp_presence_flush(PGconn *db)
{
    static struct pair *v[FLUSH_MAX];
    int rc = 0;

    if (call_sync(db) < 0)
        return -1;
    pthread_mutex_lock(&lock);
    size_t n = collect(v, chat_now_ms());
    pthread_mutex_unlock(&lock);
    if (n > 0) {
        rc = call_presence(db, v, n);
        pthread_mutex_lock(&lock);
        settle(v, n, rc == 0);
        pthread_mutex_unlock(&lock);
        log_debug("presence: %zu transitions %s", n, rc == 0 ? "sent" : "kept for later");
    }
    if (flush_seen(db) < 0)
        rc = -1;
    return rc;
}
