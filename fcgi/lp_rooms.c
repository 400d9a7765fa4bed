/* lp_rooms: rooms as the listener sees them (see lp_rooms.h). A message
 * reaches a waiter as the NOTIFY's own bytes when the waiter's cursor is
 * just before the round's contiguous run of messages; any other waiter of
 * the room is served from one read of the table from the lowest such
 * cursor (invariant 3: NOTIFY is a hint, the table is the truth). */
#define _GNU_SOURCE
#include "lp_rooms.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat_list.h"
#include "chat_hash.h"
#include "chat_cursor.h"
#include "chat_log.h"
#include "chat_notify.h"
#include "chat_sql.h"
#include "chat_sys.h"
#include "chat_metrics.h"

#define ITEMS_MAX 2000 /* NOTIFY lines kept per room per round */
#define IDLE_MS 30000  /* a room without waiters is forgotten after */
#define SWEEP_MS 10000

enum item_kind { ITEM_MSG, ITEM_HINT, ITEM_EPHEMERAL };

struct item {
    enum item_kind kind;
    int64_t seq;
    size_t off, len;                /* in room->bytes */
    char user[CHAT_SENDER_MAX + 1]; /* not sent to this member: the typist, or the one
                                     * member a presence line is about */
};

struct lp_room {
    struct lp_room *hnext;
    struct lp_room *dirty_next;
    bool dirty, force_read;
    bool reconnected; /* this round: every waiter's cursor is suspect */
    char name[CHAT_ROOM_KEY_MAX + 1];
    int64_t known; /* highest seq heard of */
    int64_t est;   /* threshold vouched for under est_gen (lp_seqcache.c) */
    unsigned est_gen;
    int64_t reset_from; /* the highest cursor a reset moved back (0: none) */
    int64_t touched;    /* last news or waiter, ms */
    struct lp_wait *waiters;
    size_t nwaiters;
    struct chat_sbuf bytes;
    struct item *items;
    size_t nitems, cap_items;
};

static struct lp_room **buckets;
static size_t nbuckets, nrooms;
static struct lp_room *dirty;
static const struct lp_rooms_ops *ops;
static int64_t next_sweep;

static uint64_t hash_name(const char *s, size_t len)
{
    return chat_hash(s, len);
}

int lp_rooms_init(const struct lp_rooms_ops *o)
{
    ops = o;
    nbuckets = 1024;
    buckets = calloc(nbuckets, sizeof(*buckets));
    return buckets ? 0 : -1;
}

static void room_free(struct lp_room *r)
{
    chat_sbuf_free(&r->bytes);
    free(r->items);
    free(r);
}

void lp_rooms_free(void)
{
    for (size_t b = 0; b < nbuckets; b++) {
        while (buckets[b]) {
            struct lp_room *r = buckets[b];
            buckets[b] = r->hnext;
            room_free(r);
        }
    }
    free(buckets);
    buckets = NULL;
    nbuckets = nrooms = 0;
}

static void grow(void)
{
    size_t n = nbuckets * 2;
    struct lp_room **nb = calloc(n, sizeof(*nb));

    if (nb == NULL)
        return; /* longer chains; still correct */
    for (size_t b = 0; b < nbuckets; b++) {
        while (buckets[b]) {
            struct lp_room *r = buckets[b];
            buckets[b] = r->hnext;
            size_t i = hash_name(r->name, strlen(r->name)) & (n - 1);
            r->hnext = nb[i];
            nb[i] = r;
        }
    }
    free(buckets);
    buckets = nb;
    nbuckets = n;
}

static struct lp_room *find(const char *name, size_t len, bool create)
{
    size_t i = hash_name(name, len) & (nbuckets - 1);

    if (len == 0 || len > CHAT_ROOM_KEY_MAX)
        return NULL;
    for (struct lp_room *r = buckets[i]; r; r = r->hnext)
        if (strlen(r->name) == len && memcmp(r->name, name, len) == 0)
            return r;
    if (!create)
        return NULL;
    struct lp_room *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    memcpy(r->name, name, len);
    r->hnext = buckets[i];
    buckets[i] = r;
    if (++nrooms > nbuckets)
        grow();
    return r;
}

/* Tells the acceptors the room's threshold when one holds in this LISTEN
 * generation. */
static void publish(struct lp_room *r)
{
    unsigned gen = atomic_load(&lp_listen_gen);
    int64_t p = r->est > r->known ? r->est : r->known;

    /* below the height a reset came from, a client's cursor may be from
     * before the reset: vouch for nothing, so that a poll or stream that
     * comes with one reads the table (and is reset there: lp_poll.c) */
    if (r->est_gen == gen && gen != 0)
        lp_seqcache_put(r->name, p < r->reset_from ? INT64_MAX : p, gen);
}

/* e: a seq such that every message past it is heard in this generation.
 * The lowest such fact holds for all of them. */
static void establish(struct lp_room *r, int64_t e)
{
    unsigned gen = atomic_load(&lp_listen_gen);

    if (r->est_gen != gen || e < r->est) {
        r->est_gen = gen;
        r->est = e;
    }
    publish(r);
}

static void mark_dirty(struct lp_room *r)
{
    if (r->dirty)
        return;
    r->dirty = true;
    r->dirty_next = dirty;
    dirty = r;
}

int lp_rooms_link(struct lp_wait *w, enum lp_link mode)
{
    struct lp_room *r = find(w->name, strlen(w->name), true);

    if (r == NULL)
        return -1;
    w->room = r;
    CHAT_LIST_LINK(r->waiters, w, prev, next);
    r->nwaiters++;
    r->touched = chat_now_ms();
    if (mode == LP_LINK_READ)
        r->force_read = true;
    else if (mode == LP_LINK_ESTABLISH)
        establish(r, w->cursor);
    if (r->force_read || r->known > w->cursor)
        mark_dirty(r); /* news that came between the acceptor's look and now */
    return 0;
}

void lp_rooms_unlink(struct lp_wait *w)
{
    struct lp_room *r = w->room;

    if (r == NULL)
        return;
    CHAT_LIST_UNLINK(r->waiters, w, prev, next);
    r->nwaiters--;
    w->room = NULL;
    w->prev = w->next = NULL;
}

void lp_rooms_check_all(void)
{
    for (size_t b = 0; b < nbuckets; b++) {
        for (struct lp_room *r = buckets[b]; r; r = r->hnext) {
            if (r->nwaiters == 0)
                continue;
            r->reconnected = true; /* a standby that lacked the newest messages? */
            r->force_read = true;
            mark_dirty(r);
        }
    }
}

/* ---- news ------------------------------------------------------------------ */

static void add_item(struct lp_room *r, enum item_kind kind, int64_t seq, const char *line,
                     size_t len, const char *user)
{
    if (r->nitems == ITEMS_MAX) {
        r->force_read = true; /* too much at once: the table has it all */
        mark_dirty(r);
        return;
    }
    if (r->nitems == r->cap_items) {
        size_t cap = r->cap_items ? r->cap_items * 2 : 8;
        struct item *it = realloc(r->items, cap * sizeof(*it));
        if (it == NULL) {
            r->force_read = true;
            mark_dirty(r);
            return;
        }
        r->items = it;
        r->cap_items = cap;
    }
    struct item *it = &r->items[r->nitems];
    it->kind = kind;
    it->seq = seq;
    it->off = r->bytes.len;
    it->len = kind == ITEM_HINT ? 0 : len;
    it->user[0] = '\0';
    if (user && strlen(user) < sizeof(it->user))
        memcpy(it->user, user, strlen(user) + 1);
    if (it->len && chat_sbuf_add(&r->bytes, line, len) < 0) {
        r->force_read = true;
        mark_dirty(r);
        return;
    }
    r->nitems++;
    mark_dirty(r);
}

/* The one member a presence line is about (online and offline together
 * name exactly one) into out, else "": a poller is not woken by its own
 * coming and going (its own answer counts itself already). */
static void presence_sole(const char *line, size_t len, char *out, size_t cap)
{
    json_t *ev = json_loadb(line, len, 0, NULL);
    json_t *on = json_object_get(ev, "online"), *off = json_object_get(ev, "offline");

    out[0] = '\0';
    if (json_is_array(on) && json_is_array(off) &&
        json_array_size(on) + json_array_size(off) == 1) {
        const char *m = json_string_value(json_array_get(json_array_size(on) ? on : off, 0));
        if (m && strlen(m) < cap)
            memcpy(out, m, strlen(m) + 1);
    }
    json_decref(ev);
}

static void news_line(const char *line, size_t len)
{
    struct chat_line l;

    if (chat_line_parse(line, len, &l) < 0) {
        log_warn("listener: ignoring a notification line that is not ours (%zu bytes)", len);
        return;
    }
    size_t nlen = strlen(l.room);
    if (l.op == CHAT_LINE_MSG || l.op == CHAT_LINE_HINT) {
        struct lp_room *r = find(l.room, nlen, true);
        if (r) {
            if (l.seq > r->known) {
                r->known = l.seq;
                publish(r);
            }
            r->touched = chat_now_ms();
            if (r->nwaiters > 0)
                add_item(r, l.op == CHAT_LINE_MSG ? ITEM_MSG : ITEM_HINT, l.seq, l.raw, l.len,
                         NULL);
        }
    } else {
        struct lp_room *r = find(l.room, nlen, false);
        char sole[CHAT_SENDER_MAX + 1] = "";
        if (l.op == CHAT_LINE_PRESENCE)
            lp_members_changed(l.room); /* the cached list is stale now */
        if (r && r->nwaiters > 0 && l.op == CHAT_LINE_PRESENCE)
            presence_sole(l.raw, l.len, sole, sizeof(sole));
        if (r && r->nwaiters > 0)
            add_item(r, ITEM_EPHEMERAL, 0, l.raw, l.len, l.op == CHAT_LINE_TYPING ? l.user : sole);
    }
}

void lp_rooms_news(const char *payload, size_t len)
{
    const char *p = payload, *end = payload + len, *line;
    size_t n;

    while (chat_next_line(&p, end, &line, &n))
        if (n > 0)
            news_line(line, n);
}

/* ---- waking ---------------------------------------------------------------- */

static bool append_event(struct lp_poll *p, const char *ev, size_t len)
{
    if (p->events.len >= LP_RESPONSE_SOFT_MAX)
        return false;
    if ((p->events.len && chat_sbuf_add(&p->events, p->stream ? "\n" : ",", 1) < 0) ||
        chat_sbuf_add(&p->events, ev, len) < 0)
        return false;
    ops->mark_ready(p);
    return true;
}

/* First pass, per waiter: the round's lines through its cursor
 * (chat_cursor.h). Whole messages that come next are answered from the
 * NOTIFY bytes; a hint, a gap, or the room known past what the round
 * brought (a hint too) needs a read. true when some waiter needs one. */
static bool serve_verbatim(struct lp_room *r)
{
    bool reads = false;

    for (struct lp_wait *w = r->waiters; w; w = w->next) {
        struct chat_cursor c = chat_cursor_at(w->cursor, 0);
        c.suspect = r->reconnected;
        enum chat_step st = r->force_read ? CHAT_STEP_CATCHUP : CHAT_STEP_DROP;
        bool full = false;

        for (size_t i = 0; i < r->nitems && st != CHAT_STEP_CATCHUP && !full; i++) {
            const struct item *it = &r->items[i];
            if (it->kind == ITEM_EPHEMERAL)
                continue;
            st = chat_cursor_heard(&c, it->kind == ITEM_MSG, it->seq);
            if (st != CHAT_STEP_DELIVER)
                continue;
            full = !append_event(w->poll, r->bytes.p + it->off, it->len);
            if (!full) {
                chat_cursor_delivered(&c, it->seq);
                w->cursor = it->seq;
                chat_metric_inc(CHAT_M_MESSAGES_OUT);
            }
        }
        if (st != CHAT_STEP_CATCHUP && !full)
            st = chat_cursor_heard(&c, false, r->known);
        w->need_read = st == CHAT_STEP_CATCHUP && !full;
        w->suspect = c.suspect;
        w->low = c.low;
        reads |= w->need_read;
    }
    return reads;
}

static size_t first_after(PGresult *res, int rows, int64_t cursor)
{
    size_t lo = 0, hi = (size_t)rows;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strtoll(PQgetvalue(res, (int)mid, 0), NULL, 10) <= cursor)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* w heard a message at or below its cursor (or lived through a reconnect)
 * and the table has nothing past it: the room's last_seq (read once per
 * round, *last) tells a duplicate from a room that went back in time
 * (chat_cursor.h VERIFY). Back in time, w is told
 * {"op":"reset","room":R,"seq":N}, N chosen as chat-ws chooses it, and
 * reads on from N in this round: a stream is never polled again, so it
 * cannot wait for its poller to find out. true when w was reset. */
static bool verify(struct lp_room *r, struct lp_wait *w, int64_t *last)
{
    struct chat_cursor c = chat_cursor_at(w->cursor, 0);
    int64_t to;
    size_t len;

    if (*last < 0 && (*last = ops->last_seq(r->name)) < 0)
        return false; /* database away: the reconnect reads and verifies again */
    c.suspect = true;
    c.low = w->low;
    if (chat_cursor_verified(&c, *last, &to) != CHAT_STEP_RESET) {
        w->suspect = false; /* a plain duplicate */
        w->low = 0;
        return false;
    }
    char *ev = chat_encode_reset(r->name, to, &len);
    bool told = ev && append_event(w->poll, ev, len);
    free(ev);
    if (!told)
        return false; /* its answer is full (LP_RESPONSE_SOFT_MAX): told next time */
    atomic_fetch_add(&lp_resets, 1);
    if (w->cursor > r->reset_from)
        r->reset_from = w->cursor;
    w->suspect = false;
    w->low = 0;
    w->cursor = to;
    w->need_read = true;
    return true;
}

static void serve_rows(struct lp_room *r, PGresult *res, int rows, int64_t from, int64_t *last)
{
    size_t resets = 0;

    for (struct lp_wait *w = r->waiters; w; w = w->next) {
        if (!w->need_read)
            continue;
        size_t i = first_after(res, rows, w->cursor);
        if (i < (size_t)rows) {
            w->need_read = false;
            w->suspect = false; /* the table goes on past its cursor */
            w->low = 0;
        } else if (rows < CHAT_CATCHUP_PAGE) {
            w->need_read = false; /* nothing past its cursor */
            if (w->suspect && verify(r, w, last)) {
                resets++;
                continue;
            }
        }
        for (; i < (size_t)rows; i++) {
            if (!append_event(w->poll, PQgetvalue(res, (int)i, 1),
                              (size_t)PQgetlength(res, (int)i, 1)))
                break;
            w->cursor = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
            chat_metric_inc(CHAT_M_MESSAGES_OUT);
        }
    }
    if (resets > 0) {
        log_warn("room %s: the database went back in time (it ends at %" PRId64
                 "): %zu parked polls and streams reset",
                 r->name, *last, resets);
        /* vouch for nothing in this room (lp_seqcache.c): new polls read
         * the table (and are reset there) until a read establishes it again */
        r->known = 0;
        r->est_gen = 0;
        lp_seqcache_put(r->name, INT64_MAX, atomic_load(&lp_listen_gen));
        return;
    }
    int64_t end = rows > 0 ? strtoll(PQgetvalue(res, rows - 1, 0), NULL, 10) : from;
    if (end > r->known)
        r->known = end;
    if (rows < CHAT_CATCHUP_PAGE)
        establish(r, end); /* the table ends at end: anything later is heard */
    else
        publish(r);
}

/* Second pass: one read from the lowest cursor that needs one (a few more
 * when some cursors are more than CHAT_CATCHUP_PAGE apart). */
static void serve_reads(struct lp_room *r)
{
    int64_t last = -1; /* the room's last_seq, once asked */

    for (int iter = 0; iter < 4; iter++) {
        int64_t min = INT64_MAX;
        for (struct lp_wait *w = r->waiters; w; w = w->next)
            if (w->need_read && w->cursor < min)
                min = w->cursor;
        if (min == INT64_MAX)
            return;
        PGresult *res = ops->read(r->name, min);
        if (res == NULL)
            return; /* database away: the reconnect checks every room */
        serve_rows(r, res, PQntuples(res), min, &last);
        PQclear(res);
    }
}

static void serve_ephemeral(struct lp_room *r)
{
    for (size_t i = 0; i < r->nitems; i++) {
        const struct item *it = &r->items[i];
        if (it->kind != ITEM_EPHEMERAL)
            continue;
        for (struct lp_wait *w = r->waiters; w; w = w->next)
            if (it->user[0] == '\0' || strcmp(it->user, w->poll->member) != 0)
                append_event(w->poll, r->bytes.p + it->off, it->len);
    }
}

static void wake_room(struct lp_room *r)
{
    if (r->nwaiters > 0) {
        if (serve_verbatim(r))
            serve_reads(r);
        serve_ephemeral(r);
    }
    r->nitems = 0;
    r->bytes.len = 0;
    r->force_read = false;
    r->reconnected = false;
}

void lp_rooms_wake(void)
{
    while (dirty) {
        struct lp_room *r = dirty;
        dirty = r->dirty_next;
        r->dirty = false;
        wake_room(r);
    }
}

void lp_rooms_sweep(int64_t now)
{
    if (now < next_sweep)
        return;
    next_sweep = now + SWEEP_MS;
    for (size_t b = 0; b < nbuckets; b++) {
        struct lp_room **pr = &buckets[b];
        while (*pr) {
            struct lp_room *r = *pr;
            if (r->nwaiters == 0 && !r->dirty && now - r->touched > IDLE_MS) {
                *pr = r->hnext;
                room_free(r);
                nrooms--;
            } else {
                pr = &r->hnext;
            }
        }
    }
}
