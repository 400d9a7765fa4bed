/* lp_addr: what one client address holds in this process, bounded so that
 * one address cannot take what everybody shares (issue 12, point 4): parked
 * polls and streams (--max-parked-per-addr, within --max-parked) and
 * presence entries (--max-presence-per-addr, within the presence table's
 * LP_PRESENCE_PAIRS_MAX). The address is nginx's REMOTE_ADDR, never
 * anything the client sends, counted by its group (core/chat_addr.h: an
 * IPv6 address by its /64).
 *
 * It never fails open: an address is an entry only while it holds
 * something, and everything it can hold is bounded per process, so a pool
 * of --max-parked + LP_PRESENCE_PAIRS_MAX entries (plus a few for takes in
 * flight) has room for every address that holds anything, however many
 * /64s an attacker has. Entries hang in chains off a bucket array by a key
 * hashed with a per-process seed (a peer cannot aim at one chain). Should
 * the pool run out anyway (a bug), a take is refused, not let through.
 * Its own file: the poll, SSE, listener and presence code all count here,
 * and it calls none of them. */
#define _GNU_SOURCE
#include "lp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_addr.h"
#include "chat_hash.h"
#include "chat_log.h"
#include "chat_sys.h"

#define ADDR_SPARE 1024 /* entries beyond the bounds: takes that are given back at once */

struct addr_entry {
    uint64_t key;  /* of the address's group */
    uint32_t next; /* 1 + index of the next entry of the chain or the free list; 0: none */
    int n[LP_ADDR_KINDS];
};

static const struct lp_config *conf;
static struct addr_entry *pool;
static uint32_t *heads; /* 1 + index of a chain's first entry */
static uint32_t free_list;
static size_t pool_n, nbuckets; /* nbuckets: a power of two */
static uint64_t seed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong refused[LP_ADDR_KINDS], exhausted;

int lp_addr_init(const struct lp_config *cfg)
{
    conf = cfg;
    pool_n = (size_t)cfg->max_parked + LP_PRESENCE_PAIRS_MAX + ADDR_SPARE;
    nbuckets = 1024;
    while (nbuckets < pool_n)
        nbuckets *= 2;
    pool = calloc(pool_n, sizeof(*pool));
    heads = calloc(nbuckets, sizeof(*heads));
    if (pool == NULL || heads == NULL) {
        log_error("out of memory for %zu address entries", pool_n);
        lp_addr_free();
        return -1;
    }
    for (size_t i = 0; i < pool_n; i++)
        pool[i].next = i + 1 < pool_n ? (uint32_t)(i + 2) : 0;
    free_list = 1;
    if (getentropy(&seed, sizeof(seed)) < 0)
        seed = (uint64_t)chat_now_ms() ^ ((uint64_t)getpid() << 32);
    return 0;
}

void lp_addr_free(void)
{
    free(pool);
    free(heads);
    pool = NULL;
    heads = NULL;
}

/* The key of addr's group (chat_addr_group), seeded. */
static uint64_t addr_key(const char *addr)
{
    char group[CHAT_ADDR_MAX + 1];

    chat_addr_group(addr, group);
    uint64_t h = chat_hash_field(CHAT_HASH_INIT ^ seed, group);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static int limit_of(enum lp_addr_kind k)
{
    return k == LP_ADDR_PARKED ? conf->max_parked_per_addr : conf->max_presence_per_addr;
}

/* Under the lock: the link that points at key's entry (*link 0: none). */
static uint32_t *link_of(uint64_t key)
{
    uint32_t *link = &heads[key & (nbuckets - 1)];

    while (*link && pool[*link - 1].key != key)
        link = &pool[*link - 1].next;
    return link;
}

bool lp_addr_take(const char *addr, enum lp_addr_kind kind)
{
    int max = limit_of(kind);

    if (pool == NULL || max <= 0)
        return true;
    uint64_t key = addr_key(addr);
    bool ok = true;

    pthread_mutex_lock(&lock);
    uint32_t *link = link_of(key);
    if (*link == 0 && free_list != 0) { /* a newcomer: an entry from the pool */
        struct addr_entry *e = &pool[free_list - 1];
        *link = free_list;
        free_list = e->next;
        memset(e, 0, sizeof(*e));
        e->key = key;
    }
    if (*link == 0) {
        ok = false; /* cannot happen while the bounds hold; refuse, never pass */
        atomic_fetch_add(&exhausted, 1);
    } else if (pool[*link - 1].n[kind] >= max) {
        ok = false;
    } else {
        pool[*link - 1].n[kind]++;
    }
    pthread_mutex_unlock(&lock);
    if (!ok)
        atomic_fetch_add(&refused[kind], 1);
    return ok;
}

/* Under the lock: the entry at *link back to the pool when it holds
 * nothing. */
static void drop_if_idle(uint32_t *link)
{
    struct addr_entry *e = &pool[*link - 1];
    uint32_t i = *link;

    for (int k = 0; k < LP_ADDR_KINDS; k++)
        if (e->n[k] != 0)
            return;
    *link = e->next;
    e->next = free_list;
    free_list = i;
}

void lp_addr_give(const char *addr, enum lp_addr_kind kind)
{
    if (pool == NULL || limit_of(kind) <= 0)
        return;
    uint64_t key = addr_key(addr);

    pthread_mutex_lock(&lock);
    uint32_t *link = link_of(key);
    if (*link != 0 && pool[*link - 1].n[kind] > 0) { /* (every take made an entry) */
        pool[*link - 1].n[kind]--;
        drop_if_idle(link);
    }
    pthread_mutex_unlock(&lock);
}

unsigned long lp_addr_refused(enum lp_addr_kind kind)
{
    return atomic_load(&refused[kind]);
}

/* ---- parked polls and streams: the process's bound and the address's ---- */

int lp_park_take(const char *addr)
{
    if (atomic_fetch_add(&lp_parked, 1) >= conf->max_parked) {
        atomic_fetch_sub(&lp_parked, 1);
        return -1;
    }
    if (!lp_addr_take(addr, LP_ADDR_PARKED)) {
        atomic_fetch_sub(&lp_parked, 1);
        return -2;
    }
    return 0;
}

void lp_park_give(const char *addr)
{
    lp_addr_give(addr, LP_ADDR_PARKED);
    atomic_fetch_sub(&lp_parked, 1);
}
