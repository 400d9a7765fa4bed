/* lp_addr: what one client address holds in this process, bounded so that
 * one address cannot take what everybody shares (issue 12, point 4): parked
 * polls and streams (--max-parked-per-addr, within --max-parked) and
 * presence entries (--max-presence-per-addr, within the table's 200,000).
 * The address is nginx's REMOTE_ADDR, never anything the client sends; an
 * IPv6 address counts by its /64 (one host has a whole /64 to pick from).
 * A fixed table (--rate-table entries, set-associative, locked in
 * stripes, keys seeded per process) like lp_rate.c's; an address that
 * finds its set full of busy addresses is not bounded (fails open) and is
 * counted. Its own file: the poll, SSE, listener and presence code all
 * count here, and it calls none of them. */
#define _GNU_SOURCE
#include "lp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_bans.h"
#include "chat_hash.h"
#include "chat_log.h"
#include "chat_sys.h"

#define ADDR_WAYS 8
#define ADDR_LOCKS 64

struct addr_entry {
    uint64_t key; /* 0: free */
    int n[LP_ADDR_KINDS];
};

static const struct lp_config *conf;
static struct addr_entry *table;
static size_t sets; /* a power of two */
static uint64_t seed;
static pthread_mutex_t locks[ADDR_LOCKS];
static atomic_ulong refused[LP_ADDR_KINDS], unbounded;

int lp_addr_init(const struct lp_config *cfg)
{
    size_t n = ADDR_WAYS;

    conf = cfg;
    while (n * 2 <= (size_t)cfg->rate_table)
        n *= 2;
    if ((table = calloc(n, sizeof(*table))) == NULL) {
        log_error("out of memory for %zu address entries", n);
        return -1;
    }
    sets = n / ADDR_WAYS;
    for (int i = 0; i < ADDR_LOCKS; i++)
        pthread_mutex_init(&locks[i], NULL);
    if (getentropy(&seed, sizeof(seed)) < 0)
        seed = (uint64_t)chat_now_ms() ^ ((uint64_t)getpid() << 32);
    return 0;
}

void lp_addr_free(void)
{
    free(table);
    table = NULL;
}

/* The key of addr: an IPv4 address whole, an IPv6 one by its /64, anything
 * else (a unix socket's "") as given. Never 0. */
static uint64_t addr_key(const char *addr)
{
    unsigned char net[16];
    int family, bits;
    uint64_t h = CHAT_HASH_INIT ^ seed;

    if (chat_addr_parse(addr, &family, net, &bits) == 0)
        h = chat_hash_more(h, (const char *)net, family == 6 ? 8 : 16);
    else
        h = chat_hash_field(h, addr);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h ? h : 1;
}

static int limit_of(enum lp_addr_kind k)
{
    return k == LP_ADDR_PARKED ? conf->max_parked_per_addr : conf->max_presence_per_addr;
}

static bool idle(const struct addr_entry *e)
{
    for (int k = 0; k < LP_ADDR_KINDS; k++)
        if (e->n[k] != 0)
            return false;
    return true;
}

/* Under the set's lock: the entry of key, made when missing (NULL: the set
 * is full of busy addresses). */
static struct addr_entry *entry_of(uint64_t key, bool make)
{
    struct addr_entry *set = &table[((size_t)(key >> 7) & (sets - 1)) * ADDR_WAYS], *free_e = NULL;

    for (int i = 0; i < ADDR_WAYS; i++) {
        if (set[i].key == key)
            return &set[i];
        if (free_e == NULL && (set[i].key == 0 || idle(&set[i])))
            free_e = &set[i];
    }
    if (!make || free_e == NULL)
        return NULL;
    memset(free_e, 0, sizeof(*free_e));
    free_e->key = key;
    return free_e;
}

bool lp_addr_take(const char *addr, enum lp_addr_kind kind)
{
    int max = limit_of(kind);

    if (table == NULL || max <= 0)
        return true;
    uint64_t key = addr_key(addr);
    pthread_mutex_t *m = &locks[(key >> 7) % ADDR_LOCKS];
    bool ok = true;

    pthread_mutex_lock(m);
    struct addr_entry *e = entry_of(key, true);
    if (e == NULL)
        atomic_fetch_add(&unbounded, 1);
    else if (e->n[kind] >= max)
        ok = false;
    else
        e->n[kind]++;
    pthread_mutex_unlock(m);
    if (!ok)
        atomic_fetch_add(&refused[kind], 1);
    return ok;
}

void lp_addr_give(const char *addr, enum lp_addr_kind kind)
{
    if (table == NULL || limit_of(kind) <= 0)
        return;
    uint64_t key = addr_key(addr);
    pthread_mutex_t *m = &locks[(key >> 7) % ADDR_LOCKS];

    pthread_mutex_lock(m);
    struct addr_entry *e = entry_of(key, false);
    if (e && e->n[kind] > 0) /* (not there: it was taken unbounded) */
        e->n[kind]--;
    pthread_mutex_unlock(m);
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
