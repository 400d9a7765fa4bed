/* lp_rate: the rate limits of the long-poll endpoints (token buckets per
 * client, the WebSocket daemon's numbers), asked by the acceptors before
 * they serve a request (lp_rate_admit) and counted for /health. Its own
 * file: the acceptors, the poll handler and the health probe all use it,
 * and it uses none of them. */
#define _GNU_SOURCE
#include "lp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_addr.h"
#include "chat_hash.h"
#include "chat_log.h"
#include "chat_sys.h"

#define RATE_WAYS 8           /* entries per set of the bucket table */
#define RATE_LOCKS 64         /* sets are locked in stripes */
#define RATE_LOG_GAP_MS 10000 /* at most one log line about refusals per 10 s */

/* ---- rate limits ------------------------------------------------------------
 * Token buckets per client, with the WebSocket daemon's numbers: one for
 * every request (poll, send, typing, history), one for sends. A client is
 * an authenticated user (nginx vouches for the name: the name alone), or a
 * guest name at one client address ("~bob" at 192.0.2.7: a "~bob" elsewhere
 * has buckets of its own); docs/longpoll.md argues the key. The address is
 * its group (core/chat_addr.h: an IPv6 address by its /64, so that a host
 * cannot buy new buckets with new addresses of its /64). The table is
 * fixed (--rate-table entries), set-associative, locked in stripes; a
 * newcomer takes a free entry of its set, else the least recently used one.
 * An entry unused for a refill time has full buckets, so forgetting it
 * loses nothing; a table too small forgets busier clients (fails open) and
 * counts it. Keys are 64-bit hashes seeded per process.
 *
 * A guest names itself, so a new name at one address buys a fresh pair of
 * buckets (their sum is capped by the address's, --guest-addr-factor) and
 * a fresh entry of the table, which everybody shares: rotating names (500
 * a second from one address at the defaults) would make the table forget
 * other clients' buckets, which then start over full. So the names new to
 * the table at one address come out of one more bucket of that address,
 * --max-guests-per-addr a minute (burst as many): past it the request is
 * refused before it takes an entry. */

struct rate_entry {
    uint64_t key;     /* 0: free */
    int64_t at;       /* ms of the last refill */
    double send, req; /* tokens */
};

enum rate_verdict { RATE_OK = 0, RATE_REQUESTS, RATE_SENDS, RATE_NAMES };

/* What one entry's buckets refill to and at: a client's, an address's. */
struct rate_spec {
    double send_rate, send_burst, req_rate, req_burst;
};

static const struct lp_config *conf;  /* given at init */
static struct rate_entry *rate_table; /* NULL: limits off */
static size_t rate_sets;              /* a power of two */
static uint64_t rate_seed;
static int64_t rate_idle_ms; /* from empty to full */
static pthread_mutex_t rate_locks[RATE_LOCKS];
static atomic_ulong rate_refused_n, rate_forgot_busy, rate_names_refused;
static atomic_llong rate_logged_at;

int lp_rate_init(const struct lp_config *cfg)
{
    conf = cfg;
    size_t n = RATE_WAYS;

    if (conf->send_rate <= 0 && conf->req_rate <= 0)
        return 0;
    while (n * 2 <= (size_t)conf->rate_table)
        n *= 2;
    rate_table = calloc(n, sizeof(*rate_table));
    if (rate_table == NULL) {
        log_error("out of memory for %zu rate-limit entries", n);
        return -1;
    }
    rate_sets = n / RATE_WAYS;
    for (int i = 0; i < RATE_LOCKS; i++)
        pthread_mutex_init(&rate_locks[i], NULL);
    if (getentropy(&rate_seed, sizeof(rate_seed)) < 0)
        rate_seed = (uint64_t)chat_now_ms() ^ ((uint64_t)getpid() << 32);
    double idle = 0;
    if (conf->send_rate > 0)
        idle = conf->send_burst / conf->send_rate;
    if (conf->req_rate > 0 && conf->req_burst / conf->req_rate > idle)
        idle = conf->req_burst / conf->req_rate;
    rate_idle_ms = (int64_t)(idle * 1000) + 1;
    return 0;
}

unsigned long lp_rate_refused(void)
{
    return atomic_load(&rate_refused_n);
}

/* kind, who and addr, each followed by a separator, hashed with the seed
 * (FNV-1a, then the splitmix64 finalizer). Never 0 (a free entry). */
static uint64_t rate_key(char kind, const char *who, const char *addr)
{
    uint64_t h = chat_hash_more(CHAT_HASH_INIT ^ rate_seed, &kind, 1);

    h = chat_hash_field(chat_hash_field(h, who), addr);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h ? h : 1;
}

static size_t rate_set_of(uint64_t key)
{
    return (size_t)(key >> 7) & (rate_sets - 1);
}

/* A client's buckets, factor times (the address's of all its guests). */
static struct rate_spec spec_of(double factor)
{
    return (struct rate_spec){conf->send_rate * factor, conf->send_burst * factor,
                              conf->req_rate * factor, conf->req_burst * factor};
}

/* The entry of key in its set (locked by the caller), made when missing. */
static struct rate_entry *rate_entry_of(uint64_t key, int64_t now, const struct rate_spec *sp)
{
    struct rate_entry *set = &rate_table[rate_set_of(key) * RATE_WAYS];
    struct rate_entry *lru = &set[0];

    for (int i = 0; i < RATE_WAYS; i++) {
        if (set[i].key == key) {
            struct rate_entry *e = &set[i];
            double dt = (double)(now - e->at) / 1000.0;
            e->at = now;
            e->send += dt * sp->send_rate;
            if (e->send > sp->send_burst)
                e->send = sp->send_burst;
            e->req += dt * sp->req_rate;
            if (e->req > sp->req_burst)
                e->req = sp->req_burst;
            return e;
        }
        if (set[i].at < lru->at)
            lru = &set[i]; /* free entries have at 0: taken first */
    }
    if (lru->key != 0 && now - lru->at < rate_idle_ms)
        atomic_fetch_add(&rate_forgot_busy, 1);
    lru->key = key;
    lru->at = now;
    lru->send = sp->send_burst;
    lru->req = sp->req_burst;
    return lru;
}

static pthread_mutex_t *rate_lock_of(uint64_t key)
{
    return &rate_locks[rate_set_of(key) % RATE_LOCKS];
}

/* Takes a request token, and a send token when send, or nothing at all. */
static enum rate_verdict rate_take(uint64_t key, double factor, bool send)
{
    pthread_mutex_t *m = rate_lock_of(key);
    enum rate_verdict v = RATE_OK;
    struct rate_spec sp = spec_of(factor);

    pthread_mutex_lock(m);
    struct rate_entry *e = rate_entry_of(key, chat_now_ms(), &sp);
    if (conf->req_rate > 0 && e->req < 1.0)
        v = RATE_REQUESTS;
    else if (send && conf->send_rate > 0 && e->send < 1.0)
        v = RATE_SENDS;
    if (v == RATE_OK) {
        e->req -= 1.0;
        e->send -= send ? 1.0 : 0.0;
    }
    pthread_mutex_unlock(m);
    return v;
}

/* Gives back what rate_take took (refused by the address's buckets). */
static void rate_give(uint64_t key, double factor, bool send)
{
    pthread_mutex_t *m = rate_lock_of(key);
    struct rate_spec sp = spec_of(factor);

    pthread_mutex_lock(m);
    struct rate_entry *e = rate_entry_of(key, chat_now_ms(), &sp);
    if ((e->req += 1.0) > sp.req_burst)
        e->req = sp.req_burst;
    if (send && (e->send += 1.0) > sp.send_burst)
        e->send = sp.send_burst;
    pthread_mutex_unlock(m);
}

/* Is key in the table (a guest name its address used lately)? */
static bool rate_known(uint64_t key)
{
    const struct rate_entry *set = &rate_table[rate_set_of(key) * RATE_WAYS];
    pthread_mutex_t *m = rate_lock_of(key);
    bool known = false;

    pthread_mutex_lock(m);
    for (int i = 0; i < RATE_WAYS && !known; i++)
        known = set[i].key == key;
    pthread_mutex_unlock(m);
    return known;
}

/* A new guest name at group: a token of the address's names bucket
 * (--max-guests-per-addr a minute, burst as many). */
static bool rate_new_name(const char *group)
{
    uint64_t key = rate_key('n', "", group);
    pthread_mutex_t *m = rate_lock_of(key);
    double n = conf->max_guests_per_addr;
    struct rate_spec sp = {0, 0, n / 60.0, n};
    bool ok;

    pthread_mutex_lock(m);
    struct rate_entry *e = rate_entry_of(key, chat_now_ms(), &sp);
    if ((ok = e->req >= 1.0))
        e->req -= 1.0;
    pthread_mutex_unlock(m);
    return ok;
}

static void rate_log(const char *who, const char *addr)
{
    int64_t now = chat_now_ms();
    long long last = atomic_load(&rate_logged_at);

    if (now - last < RATE_LOG_GAP_MS ||
        !atomic_compare_exchange_strong(&rate_logged_at, &last, (long long)now))
        return;
    log_warn("rate limits: %lu requests refused so far (%lu for a new guest name past"
             " --max-guests-per-addr; latest: \"%s\" at %s); %lu busy clients"
             " forgotten for want of room (--rate-table)",
             atomic_load(&rate_refused_n), atomic_load(&rate_names_refused), who,
             addr[0] ? addr : "no address", atomic_load(&rate_forgot_busy));
}

bool lp_rate_admit(struct lp_req *r, const char *who, bool send)
{
    if (rate_table == NULL)
        return true;
    /* a signed-in user's bucket only for what the user asked (who is the
     * user): a request that speaks for nobody is the address's */
    bool guest = r->policy.user[0] == '\0' || who[0] == '\0';
    char group[CHAT_ADDR_MAX + 1];

    chat_addr_group(r->addr, group);
    uint64_t key = guest ? rate_key('g', who, group) : rate_key('u', who, "");
    enum rate_verdict v;

    if (guest && who[0] && conf->max_guests_per_addr > 0 && !rate_known(key) &&
        !rate_new_name(group))
        v = RATE_NAMES; /* refused before it takes an entry */
    else
        v = rate_take(key, 1.0, send);

    if (v == RATE_OK && guest && conf->guest_addr_factor > 0) {
        uint64_t all = rate_key('a', "", group);
        v = rate_take(all, conf->guest_addr_factor, send);
        if (v != RATE_OK)
            rate_give(key, 1.0, send);
    }
    if (v == RATE_OK)
        return true;
    atomic_fetch_add(&rate_refused_n, 1);
    if (v == RATE_NAMES)
        atomic_fetch_add(&rate_names_refused, 1);
    rate_log(who, r->addr);
    lp_reply_error(&r->conn, CHAT_E_RATE_LIMITED,
                   v == RATE_SENDS   ? "too many messages: slow down"
                   : v == RATE_NAMES ? "too many new guest names from your address: keep one"
                                     : "too many requests: slow down");
    return false;
}
