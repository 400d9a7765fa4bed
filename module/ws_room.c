/* ws_room: the rooms of one WebSocket worker process. A room exists here
 * while a local connection is in it (or a query for it is in flight). It
 * knows `seq`, the highest message delivered to its subscribers: every
 * message past it is delivered in order exactly once, from a NOTIFY line
 * when that line is the next one, else from the table (catch-up), so a
 * lost or oversized notification delays a message and never loses it.
 * A joining subscriber gets `joined` at seq N, then its backlog up to N
 * from the table, then the live frames that arrived meanwhile (held), then
 * live. Presence: local first/last connections become transitions sent
 * to the database once a second; the database's presence events are
 * coalesced here and sent to local members at most once a second. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_list.h"
#include "chat_hash.h"
#include "chat_cursor.h"
#include "chat_db.h"
#include "chat_log.h"
#include "chat_members.h"
#include "chat_metrics.h"
#include "chat_notify.h"
#include "chat_valid.h"
#include "chat_sql.h"
#include "ws.h"

#define PRESENCE_LIST_MAX 50
#define PRESENCE_CHANGES_MAX 100000
#define WS_MEMBERS_TTL_MS 1000

/* The newest message events of (since $2, N $3] of room $1 that fit $4
 * bytes, joined by newlines, ascending. */
#define BACKLOG_SQL                                                                                \
    "(SELECT string_agg(j, E'\\n' ORDER BY seq) FROM "                                             \
    "(SELECT seq, j, sum(octet_length(j)) OVER (ORDER BY seq DESC) AS size FROM "                  \
    "(SELECT seq, chat_row_json(m) AS j FROM messages m "                                          \
    "WHERE room = $1 AND seq > $2::bigint AND seq <= $3::bigint) b) c WHERE size <= $4::bigint)"

/* Where room $1's history starts (retention, docs/moderation.md). */
#define HORIZON_SQL "(SELECT horizon FROM rooms WHERE name = $1)"

/* Where room $1 ends in the table now (not where this process has heard). */
#define LAST_SQL "(SELECT last_seq FROM rooms WHERE name = $1)"

enum sub_state { SUB_WAIT, SUB_BACKFILL, SUB_LIVE };

struct ws_member {
    struct ws_member *next;
    int conns;
    char name[CHAT_SENDER_MAX + 1];
};

struct ws_held {
    struct ws_buf *b;
    int64_t seq;
};

struct ws_sub {
    struct ws_conn *c;
    struct ws_room *r;
    struct ws_sub *rprev, *rnext; /* in the room */
    struct ws_sub *cnext;         /* in the connection */
    uint8_t state;                /* enum sub_state */
    bool gone;                    /* left while a query for it was in flight */
    bool addr_counted;            /* counted in its address's joined rooms */
    int64_t since;                /* the join's since (-1: none) */
    int64_t after;                /* delivered up to here: nothing <= it again */
    json_t *ref;                  /* the join's ref until joined is sent */
    struct ws_held *held;         /* SUB_BACKFILL: live frames past N */
    uint32_t nheld, capheld;
};

/* The answer to members built from a remembered list (members_cached). */
struct ws_members_list {
    const char **names;
    size_t n, count;
    uint64_t json_ver, local_ver; /* of what it was built from */
};

/* A members request waiting for the room's one query. */
struct ws_members_wait {
    struct ws_members_wait *next;
    struct ws_conn *c; /* referenced */
    json_t *ref;
};

struct ws_pres_change {
    struct ws_pres_change *next;
    char room[CHAT_ROOM_KEY_MAX + 1];
    char member[CHAT_SENDER_MAX + 1];
    bool online;
};

struct ws_room {
    struct ws_room *hnext;
    struct ws_server *srv;
    uint32_t refs; /* subscribers + queries in flight */
    bool loading, catching;
    bool retry_catchup; /* a catch-up failed: try again on the next tick */
    /* the last chat_members answer (see members_remember) */
    char *members_json;
    size_t members_len;
    long long members_count;
    int64_t members_at;
    uint64_t members_gen; /* presence lines heard: a member list older than one is stale */
    struct ws_members_wait *members_waiting; /* members requests for the query in flight */
    bool members_asking;                     /* a CHAT_SQL_MEMBERS for this room is in flight */
    uint64_t members_asked_gen;              /* members_gen when it was sent */
    uint64_t members_ver;                    /* members_json replaced or dropped */
    uint64_t local_ver;                      /* r->members gained or lost a name */
    struct ws_members_list answer;
    struct chat_cursor cur;       /* delivered to subscribers, heard of, loaded */
    int64_t reset_at, reset_from; /* the last reset: from reset_from down to reset_at */
    struct ws_sub *subs;
    size_t nsubs;
    struct ws_member *members; /* local connections per member */
    /* presence heard from the database, sent on the next tick */
    json_t *pres_on, *pres_off;
    bool pres_dirty, pres_no_lists;
    long long pres_count;
    char name[CHAT_ROOM_KEY_MAX + 1];
};

/* transitions waiting for the next flush (process-wide) */
static struct ws_pres_change *pres_head, **pres_tail = &pres_head;
static bool pres_in_flight, pres_resync;
static size_t pres_count;

static size_t hash_name(const char *s)
{
    return (size_t)chat_hash(s, strlen(s));
}

static struct ws_room *room_find(struct ws_server *srv, const char *name)
{
    if (!srv->room_buckets)
        return NULL;
    struct ws_room *r = srv->rooms[hash_name(name) & (srv->room_buckets - 1)];
    while (r && strcmp(r->name, name) != 0)
        r = r->hnext;
    return r;
}

static int rooms_grow(struct ws_server *srv)
{
    size_t nb = srv->room_buckets ? srv->room_buckets * 2 : 256;
    struct ws_room **b = calloc(nb, sizeof(*b));

    if (!b)
        return -1;
    for (size_t i = 0; i < srv->room_buckets; i++) {
        struct ws_room *r = srv->rooms[i], *next;
        for (; r; r = next) {
            next = r->hnext;
            size_t k = hash_name(r->name) & (nb - 1);
            r->hnext = b[k];
            b[k] = r;
        }
    }
    free(srv->rooms);
    srv->rooms = b;
    srv->room_buckets = nb;
    return 0;
}

struct ws_room *ws_room_get(struct ws_server *srv, const char *name, bool create)
{
    struct ws_room *r = room_find(srv, name);

    if (r || !create)
        return r;
    if (srv->nrooms >= srv->room_buckets && rooms_grow(srv) < 0)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->srv = srv;
    snprintf(r->name, sizeof(r->name), "%s", name);
    size_t k = hash_name(name) & (srv->room_buckets - 1);
    r->hnext = srv->rooms[k];
    srv->rooms[k] = r;
    srv->nrooms++;
    return r;
}

static void room_free(struct ws_room *r)
{
    struct ws_server *srv = r->srv;
    struct ws_room **pp = &srv->rooms[hash_name(r->name) & (srv->room_buckets - 1)];

    while (*pp != r)
        pp = &(*pp)->hnext;
    *pp = r->hnext;
    srv->nrooms--;
    json_decref(r->pres_on);
    json_decref(r->pres_off);
    free(r->members_json);
    chat_members_free(r->answer.names, r->answer.n);
    free(r);
}

static void room_unref(struct ws_room *r)
{
    if (--r->refs == 0)
        room_free(r);
}

/* ---- presence: local transitions ---- */

static void pres_change(struct ws_room *r, const char *member, bool online)
{
    struct ws_pres_change *ch;

    /* bounded: past the cap, the whole local view is sent instead */
    if (pres_resync || pres_count >= PRESENCE_CHANGES_MAX) {
        pres_resync = true;
        return;
    }
    ch = calloc(1, sizeof(*ch));
    if (!ch) {
        pres_resync = true; /* repaired by a full sync */
        return;
    }
    snprintf(ch->room, sizeof(ch->room), "%s", r->name);
    snprintf(ch->member, sizeof(ch->member), "%s", member);
    ch->online = online;
    *pres_tail = ch;
    pres_tail = &ch->next;
    pres_count++;
}

static void member_add(struct ws_room *r, const char *name)
{
    struct ws_member *m;

    for (m = r->members; m; m = m->next) {
        if (strcmp(m->name, name) == 0) {
            m->conns++;
            return;
        }
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        pres_resync = true;
        return;
    }
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->conns = 1;
    m->next = r->members;
    r->members = m;
    r->local_ver++;
    pres_change(r, name, true);
}

static void member_del(struct ws_room *r, const char *name)
{
    struct ws_member **pp = &r->members, *m;

    while ((m = *pp) && strcmp(m->name, name) != 0)
        pp = &m->next;
    if (!m || --m->conns > 0)
        return;
    *pp = m->next;
    free(m);
    r->local_ver++;
    pres_change(r, name, false);
}

/* ---- subscribers ---- */

static struct ws_sub *sub_find(struct ws_conn *c, const char *room)
{
    for (struct ws_sub *s = c->subs; s; s = s->cnext)
        if (strcmp(s->r->name, room) == 0)
            return s;
    return NULL;
}

bool ws_room_joined(struct ws_conn *c, const char *room)
{
    return sub_find(c, room) != NULL;
}

static void sub_release(struct ws_sub *s)
{
    for (uint32_t i = 0; i < s->nheld; i++) {
        s->c->held_bytes -= s->held[i].b->len;
        ws_buf_unref(s->held[i].b);
    }
    free(s->held);
    s->held = NULL;
    s->nheld = s->capheld = 0;
    json_decref(s->ref);
    s->ref = NULL;
}

/* Unlinks s from its room and connection; the memory goes once no query
 * holds it (s->gone tells the query's callback). */
static void sub_remove(struct ws_sub *s, bool in_query)
{
    struct ws_room *r = s->r;
    struct ws_conn *c = s->c;
    struct ws_sub **pp = &c->subs;

    while (*pp != s)
        pp = &(*pp)->cnext;
    *pp = s->cnext;
    c->nsubs--;
    if (s->addr_counted)
        ws_conn_addr_room_give(c);
    CHAT_LIST_UNLINK(r->subs, s, rprev, rnext);
    r->nsubs--;
    member_del(r, c->user);
    sub_release(s);
    if (in_query)
        s->gone = true;
    else
        free(s);
    room_unref(r);
}

static void queue_ordered(struct ws_conn *c, char *json, const size_t *lenp)
{
    size_t len = json ? *lenp : 0;
    struct ws_buf *b = json ? ws_buf_frame(WS_OP_TEXT, json, len) : NULL;

    free(json);
    if (!b) {
        ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    /* in order with the room's messages: after what was queued before */
    ws_conn_queue(c, b, false);
    ws_buf_unref(b);
}

static void sub_fail(struct ws_sub *s, bool in_query)
{
    ws_conn_error(s->c, CHAT_E_UNAVAILABLE, "the database is unavailable: join again later",
                  s->ref);
    sub_remove(s, in_query);
}

static void hold(struct ws_sub *s, struct ws_buf *b, int64_t seq)
{
    struct ws_conn *c = s->c;

    if (c->close_sent)
        return; /* closing: nothing more is sent */
    /* held frames are part of the outbox to be: the same bound */
    if (c->out_bytes + c->held_bytes + b->len > c->srv->cfg.outbox_max) {
        log_info("conn %llu: outbox and held frames over %zu bytes: closing slow consumer",
                 (unsigned long long)c->id, c->srv->cfg.outbox_max);
        ws_conn_close(c, WS_CLOSE_POLICY, "too slow: resume from your cursor");
        return;
    }
    if (s->nheld == s->capheld) {
        uint32_t cap = s->capheld ? s->capheld * 2 : 16;
        struct ws_held *v = realloc(s->held, cap * sizeof(*v));
        if (!v) {
            ws_conn_close(s->c, WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
        s->held = v;
        s->capheld = cap;
    }
    c->held_bytes += b->len;
    s->held[s->nheld].b = ws_buf_ref(b);
    s->held[s->nheld++].seq = seq;
}

/* ---- delivery ---- */

/* Delivers message seq (the room's next) to every subscriber: framed once.
 * false when it could not (the room stays behind and reads it again). */
static bool deliver(struct ws_room *r, int64_t seq, const char *json, size_t len)
{
    struct ws_buf *b = ws_buf_frame(WS_OP_TEXT, json, len);

    if (!b) {
        log_error("room %s: out of memory framing seq %lld", r->name, (long long)seq);
        r->retry_catchup = true;
        return false;
    }
    int64_t out = 0;

    chat_cursor_delivered(&r->cur, seq);
    for (struct ws_sub *s = r->subs; s; s = s->rnext) {
        if (s->state == SUB_LIVE && seq > s->after) {
            ws_conn_queue(s->c, b, false);
            out++;
        } else if (s->state == SUB_BACKFILL)
            hold(s, b, seq);
    }
    chat_metric_add(CHAT_M_MESSAGES_OUT, out); /* once per message, not per subscriber */
    ws_buf_unref(b);
    return true;
}

static void catchup(struct ws_room *r);
static void verify(struct ws_room *r);

/* The room went back in time (chat_cursor.h RESET): every subscriber is
 * told, in order with the room's messages, to drop what it shows past to
 * and to expect the room from there; then the room reads past to. */
static void room_reset(struct ws_room *r, int64_t was, int64_t last, int64_t to)
{
    r->srv->stat_resets++;
    r->reset_at = to;
    r->reset_from = was;
    log_warn("room %s: the database went back in time: delivered up to seq %lld, the table now "
             "ends at %lld; subscribers reset to %lld",
             r->name, (long long)was, (long long)last, (long long)to);
    for (struct ws_sub *s = r->subs, *next; s; s = next) {
        next = s->rnext;
        if (s->state == SUB_BACKFILL) { /* its backlog was read from the old table */
            sub_fail(s, true);
            continue;
        }
        if (s->state != SUB_LIVE)
            continue;
        size_t len;
        queue_ordered(s->c, chat_encode_reset(r->name, to, &len), &len);
        if (s->after > to)
            s->after = to;
    }
    if (r->cur.target > r->cur.seq)
        catchup(r);
}

static void verify_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_room *r = data;
    int64_t was = r->cur.seq, to;
    (void)pg;

    r->catching = false;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        int64_t last = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        switch (chat_cursor_verified(&r->cur, last, &to)) {
        case CHAT_STEP_RESET:
            room_reset(r, was, last, to);
            break;
        case CHAT_STEP_CATCHUP:
            catchup(r);
            break;
        default:
            break;
        }
    } else {
        r->retry_catchup = true; /* read again, and check again, on the next tick */
    }
    room_unref(r);
}

/* Reads the room's last_seq (chat_cursor.h VERIFY), as a catch-up: one
 * read of the room at a time. */
static void verify(struct ws_room *r)
{
    const char *params[1] = {r->name};

    if (r->catching || !pg_is_up(r->srv->reader))
        return;
    if (pg_query(r->srv->reader, CHAT_SQL_ROOM_SEQ, 1, params, verify_done, r) == 0) {
        r->catching = true;
        r->refs++;
    }
}

static void catchup_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_room *r = data;
    int rows = 0;
    (void)pg;

    r->catching = false;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
        rows = PQntuples(res);
        for (int i = 0; i < rows; i++) {
            int64_t seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
            if (chat_cursor_row(&r->cur, seq) == CHAT_STEP_DELIVER &&
                !deliver(r, seq, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1)))
                break; /* nothing past a message not delivered */
        }
        bool bogus;
        int64_t heard = r->cur.target;
        switch (chat_cursor_read_end(&r->cur, (size_t)rows, CHAT_CATCHUP_PAGE, &bogus)) {
        case CHAT_STEP_CATCHUP:
            catchup(r);
            break;
        case CHAT_STEP_VERIFY:
            verify(r);
            break;
        default:
            break;
        }
        if (bogus)
            log_warn("room %s: heard of seq %lld, table ends at %lld", r->name, (long long)heard,
                     (long long)r->cur.seq);
    } else {
        if (res)
            log_error("room %s: catch-up: %s", r->name, PQresultErrorMessage(res));
        r->retry_catchup = true; /* again on the next tick */
    }
    room_unref(r);
}

/* Reads every message past r->seq from the table. */
static void catchup(struct ws_room *r)
{
    char after[24], limit[16];

    if (r->catching || !r->cur.loaded || !pg_is_up(r->srv->reader))
        return;
    snprintf(after, sizeof(after), "%lld", (long long)r->cur.seq);
    snprintf(limit, sizeof(limit), "%d", CHAT_CATCHUP_PAGE);
    const char *params[3] = {r->name, after, limit};
    if (pg_query(r->srv->reader, CHAT_SQL_CATCHUP, 3, params, catchup_done, r) == 0) {
        r->catching = true;
        chat_cursor_asked(&r->cur);
        r->refs++;
    }
}

/* ---- member lists: the database's, with this process's own members ---- */

/* The database's list (json) as the answer: with every member this process
 * has in r now, not a second later when its presence reaches the database
 * (a user joining just after another here sees the other; core's
 * chat_members_merge). *names: new. */
static int members_of(struct ws_room *r, const char *json, size_t len, const char *self,
                      const char ***names, size_t *n, size_t *count)
{
    const char *local[CHAT_MEMBERS_MAX];
    size_t nlocal = 0;

    if (chat_members_parse(json, len, self, names, n, count) < 0)
        return -1;
    for (struct ws_member *m = r->members; m; m = m->next) {
        /* A room with more members here than a list shows: the database's
         * answer alone (merging would cost a sort of them all on every
         * join, and the list is cut at CHAT_MEMBERS_MAX anyway). */
        if (nlocal == CHAT_MEMBERS_MAX)
            return 0;
        local[nlocal++] = m->name;
    }
    return chat_members_merge(names, n, count, local, nlocal);
}

/* The room's answer to members: built once from the remembered list and
 * the local members, until either changes. */
static const struct ws_members_list *members_cached(struct ws_room *r)
{
    struct ws_members_list *l = &r->answer;

    if (l->names && l->json_ver == r->members_ver && l->local_ver == r->local_ver)
        return l;
    chat_members_free(l->names, l->n);
    l->names = NULL;
    l->count = (size_t)r->members_count;
    if (members_of(r, r->members_json, r->members_len, NULL, &l->names, &l->n, &l->count) < 0) {
        l->names = NULL;
        return NULL;
    }
    l->json_ver = r->members_ver;
    l->local_ver = r->local_ver;
    return l;
}

static void members_reply(struct ws_room *r, struct ws_conn *c, const char **names, size_t n,
                          size_t count, const json_t *ref)
{
    size_t len;

    if (!ws_conn_alive(c))
        return;
    if (!names) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "out of memory", ref);
        return;
    }
    ws_conn_reply(c, chat_encode_members(r->name, names, n, count, ref, &len), &len);
}

static void members_remember(struct ws_room *r, long long count, const char *json, size_t len);

static void members_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_room *r = data;
    struct ws_members_wait *w = r->members_waiting, *next;
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    const char **names = NULL;
    size_t n = 0, count = 0;
    (void)pg;

    r->members_asking = false;
    r->members_waiting = NULL;
    if (ok) {
        count = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        if (r->members_gen == r->members_asked_gen)
            members_remember(r, (long long)count, PQgetvalue(res, 0, 1),
                             (size_t)PQgetlength(res, 0, 1));
        if (members_of(r, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1), NULL, &names, &n,
                       &count) < 0)
            names = NULL;
    }
    /* every request that waited gets this answer: one query for a crowd */
    for (; w; w = next) {
        next = w->next;
        if (!ok)
            ws_conn_error(w->c, CHAT_E_UNAVAILABLE, "the database is unavailable", w->ref);
        else
            members_reply(r, w->c, names, n, count, w->ref);
        ws_conn_unref(w->c);
        json_decref(w->ref);
        free(w);
    }
    if (names)
        chat_members_free(names, n);
    room_unref(r);
}

void ws_room_members(struct ws_conn *c, const char *name, const json_t *ref)
{
    struct ws_server *srv = c->srv;
    struct ws_room *r = ws_room_get(srv, name, true);
    struct ws_members_wait *w;

    if (!r) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "out of memory", ref);
        return;
    }
    /* remembered, and no presence line since: no query at all */
    if (r->members_json && ev_now(srv->loop) - r->members_at < WS_MEMBERS_TTL_MS) {
        const struct ws_members_list *l = members_cached(r);
        members_reply(r, c, l ? l->names : NULL, l ? l->n : 0, l ? l->count : 0, ref);
        return;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        if (r->refs == 0)
            room_free(r);
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "out of memory", ref);
        return;
    }
    w->c = c;
    ws_conn_ref(c);
    w->ref = ref ? json_deep_copy(ref) : NULL;
    w->next = r->members_waiting;
    r->members_waiting = w;
    if (r->members_asking)
        return; /* the query in flight answers it too */
    const char *params[1] = {r->name};
    log_debug("room %s: members from the database", r->name);
    r->members_asked_gen = r->members_gen;
    r->refs++;
    r->members_asking = true;
    if (pg_query(srv->reader, CHAT_SQL_MEMBERS, 1, params, members_done, r) < 0)
        members_done(srv->reader, NULL, r);
}

/* ---- joining ---- */

struct backfill {
    struct ws_sub *s;
    struct ws_conn *c; /* referenced: a join is a request at the database */
    int64_t n;
    uint64_t members_gen; /* the room's when the query was sent */
    char *members;        /* a copy of the remembered list used instead of asking */
    size_t members_len;
    long long members_count;
    int64_t reset_to; /* >= 0: a reset to it follows joined */
    int64_t since;    /* the join's since */
    bool ahead;       /* since is past this process's cursor: the table decides */
};

/* Keeps the room's member list for a moment: a crowd joining a room of
 * thousands then costs one members query a second, not one per join. */
static void members_remember(struct ws_room *r, long long count, const char *json, size_t len)
{
    char *copy = malloc(len + 1);

    if (!copy)
        return;
    memcpy(copy, json, len);
    copy[len] = '\0';
    free(r->members_json);
    r->members_json = copy;
    r->members_ver++;
    r->members_len = len;
    r->members_count = count;
    r->members_at = ev_now(r->srv->loop);
}

static void backfill_done(struct pg *pg, PGresult *res, void *data)
{
    struct backfill *bf = data;
    struct ws_sub *s = bf->s;
    struct ws_conn *c = s->c;
    const char **names = NULL;
    size_t n = 0, count, len;
    (void)pg;

    if (s->gone) {
        free(s);
        goto out;
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res)
            log_error("room %s: join: %s", s->r->name, PQresultErrorMessage(res));
        sub_fail(s, false);
        goto out;
    }
    struct ws_room *r = s->r;
    const char *members = bf->members;
    size_t members_len = bf->members_len;
    count = (size_t)bf->members_count;
    if (!PQgetisnull(res, 0, 1)) { /* asked this time: the answer, remembered if current */
        members = PQgetvalue(res, 0, 1);
        members_len = (size_t)PQgetlength(res, 0, 1);
        count = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        if (bf->members_gen == r->members_gen)
            members_remember(r, (long long)count, members, members_len);
    }
    if (members_of(r, members ? members : "[]", members ? members_len : 2, c->user, &names, &n,
                   &count) < 0) {
        sub_fail(s, false);
        goto out;
    }
    int64_t n_joined = bf->n;
    bool backlog = true;
    if (bf->ahead && !PQgetisnull(res, 0, 4) &&
        strtoll(PQgetvalue(res, 0, 4), NULL, 10) >= bf->since) {
        /* the table has since: only this process is behind (the client came
         * from one that heard first; the lines are on their way here). Not
         * a reset: joined at since, and nothing at or below it is sent. */
        bf->reset_to = -1;
        s->since = s->after = n_joined = bf->since;
        backlog = false; /* what was read is at or below N < since */
    }
    /* a since below the horizon: say older messages were removed */
    int64_t horizon = PQgetisnull(res, 0, 3) ? 0 : strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    if (s->since < 0 || s->since >= horizon)
        horizon = 0;
    queue_ordered(
        c, chat_encode_joined_h(s->r->name, n_joined, names, n, count, horizon, s->ref, &len),
        &len);
    chat_members_free(names, n);
    if (bf->reset_to >= 0) {
        log_info("room %s: a join past what the room has (%lld): reset to %lld", s->r->name,
                 (long long)bf->n, (long long)bf->reset_to);
        queue_ordered(c, chat_encode_reset(s->r->name, bf->reset_to, &len), &len);
    }
    /* the backlog: message texts separated by newlines (JSON has none raw) */
    if (backlog && !PQgetisnull(res, 0, 2)) {
        const char *p = PQgetvalue(res, 0, 2), *end = p + PQgetlength(res, 0, 2), *line;
        size_t n;
        while (ws_conn_alive(c) && chat_next_line(&p, end, &line, &n)) {
            struct ws_buf *b = ws_buf_frame(WS_OP_TEXT, line, n);
            if (b) {
                ws_conn_queue(c, b, false);
                ws_buf_unref(b);
            }
        }
    }
    for (uint32_t i = 0; i < s->nheld && ws_conn_alive(c); i++)
        if (s->held[i].seq > s->after)
            ws_conn_queue(c, s->held[i].b, false);
    sub_release(s);
    s->state = SUB_LIVE;
out:
    ws_conn_unref(bf->c);
    free(bf->members);
    free(bf);
}

static void backfill(struct ws_sub *s)
{
    struct ws_room *r = s->r;
    struct ws_server *srv = r->srv;
    int64_t n = r->cur.seq, from;
    char sfrom[24], sto[24], sbytes[24];
    struct backfill *bf = calloc(1, sizeof(*bf));

    if (!bf) {
        sub_fail(s, false);
        return;
    }
    /* a client that has seen what this process reset is told to drop what
     * it has past the point this process knows to be shared (the last
     * reset), in a reset right after joined. A client that has seen more
     * than this process came from a process that heard first, or the
     * database went back in time since: this process's cursor cannot tell
     * (it may lag the table by the lines still on their way), the table
     * read with the backlog does (backfill_done). Read as for a reset to 0
     * (the client re-reads the room: the last 50, older ones by history),
     * used only when the table ends below since. Nothing twice, no hole. */
    bf->since = s->since;
    if (r->reset_from > 0 && s->since > r->reset_at && s->since <= r->reset_from)
        bf->reset_to = r->reset_at;
    else if ((bf->ahead = s->since > n))
        bf->reset_to = 0;
    else
        bf->reset_to = -1;
    if (bf->reset_to >= 0)
        s->since = bf->reset_to > 0 ? bf->reset_to : -1;
    from = s->since < 0 ? n - CHAT_BACKLOG_DEFAULT : s->since;
    if (from < n - srv->cfg.backlog_max)
        from = n - srv->cfg.backlog_max;
    if (from < 0)
        from = 0;
    if (from > n)
        from = n;
    bf->s = s;
    bf->n = n;
    bf->members_gen = r->members_gen;
    s->after = n;
    snprintf(sfrom, sizeof(sfrom), "%lld", (long long)from);
    snprintf(sto, sizeof(sto), "%lld", (long long)n);
    snprintf(sbytes, sizeof(sbytes), "%zu", srv->cfg.outbox_max / 2);
    const char *params[4] = {r->name, sfrom, sto, sbytes};
    s->state = SUB_BACKFILL;
    bool fresh = r->members_json && ev_now(srv->loop) - r->members_at < WS_MEMBERS_TTL_MS &&
                 (bf->members = strndup(r->members_json, r->members_len)) != NULL;
    if (fresh) {
        bf->members_len = r->members_len;
        bf->members_count = r->members_count;
    }
    /* the newest messages of (since, N] that fit half an outbox, where the
     * room starts and ends in the table, and the member list unless a
     * fresh one is at hand */
    const char *sql = fresh ? "SELECT NULL, NULL, " BACKLOG_SQL ", " HORIZON_SQL ", " LAST_SQL
                            : "SELECT m.count, m.members, " BACKLOG_SQL ", " HORIZON_SQL
                              ", " LAST_SQL " FROM chat_members($1) m";
    if (pg_query(srv->reader, sql, 4, params, backfill_done, bf) < 0) {
        free(bf->members);
        free(bf);
        sub_fail(s, false);
        return;
    }
    bf->c = s->c;
    ws_conn_ref(bf->c);
}

static void load_done(struct pg *pg, PGresult *res, void *data)
{
    struct ws_room *r = data;
    (void)pg;

    r->loading = false;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
        enum chat_step st = chat_cursor_load(&r->cur, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
        for (struct ws_sub *s = r->subs, *next; s; s = next) {
            next = s->rnext;
            if (s->state == SUB_WAIT)
                backfill(s);
        }
        if (st == CHAT_STEP_CATCHUP)
            catchup(r);
    } else {
        if (res)
            log_error("room %s: load: %s", r->name, PQresultErrorMessage(res));
        for (struct ws_sub *s = r->subs, *next; s; s = next) {
            next = s->rnext;
            if (s->state == SUB_WAIT)
                sub_fail(s, false);
        }
    }
    room_unref(r);
}

static void load(struct ws_room *r)
{
    const char *params[1] = {r->name};

    if (r->loading || r->cur.loaded)
        return;
    if (pg_query(r->srv->reader, CHAT_SQL_ROOM_SEQ, 1, params, load_done, r) == 0) {
        r->loading = true;
        r->refs++;
    }
}

void ws_room_join(struct ws_conn *c, const char *name, int64_t since, const json_t *ref)
{
    struct ws_server *srv = c->srv;
    struct ws_sub *s = sub_find(c, name);
    struct ws_room *r;

    if (s) /* joining again: start over from the new cursor */
        sub_remove(s, s->state == SUB_BACKFILL);
    if (c->nsubs >= srv->cfg.max_rooms) {
        ws_conn_error(c, CHAT_E_FORBIDDEN, "too many rooms joined on this connection", ref);
        return;
    }
    if (!pg_is_up(srv->reader)) {
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "the database is unavailable: join again later", ref);
        return;
    }
    int counted = ws_conn_addr_room_take(c);
    if (counted < 0) {
        ws_conn_error(c, CHAT_E_FORBIDDEN, "too many rooms joined from your address", ref);
        return;
    }
    r = ws_room_get(srv, name, true);
    s = r ? calloc(1, sizeof(*s)) : NULL;
    if (!s) {
        if (r && r->refs == 0)
            room_free(r);
        if (counted)
            ws_conn_addr_room_give(c);
        ws_conn_error(c, CHAT_E_UNAVAILABLE, "out of memory", ref);
        return;
    }
    s->addr_counted = counted > 0;
    s->c = c;
    s->r = r;
    s->since = since;
    s->ref = ref ? json_deep_copy(ref) : NULL;
    s->state = SUB_WAIT;
    CHAT_LIST_LINK(r->subs, s, rprev, rnext);
    r->nsubs++;
    r->refs++;
    s->cnext = c->subs;
    c->subs = s;
    c->nsubs++;
    member_add(r, c->user);
    chat_metric_inc(CHAT_M_JOINS);
    if (r->cur.loaded)
        backfill(s);
    else
        load(r);
}

void ws_room_leave(struct ws_conn *c, const char *name, const json_t *ref)
{
    struct ws_sub *s = sub_find(c, name);
    size_t len;

    if (s)
        sub_remove(s, s->state == SUB_BACKFILL);
    queue_ordered(c, chat_encode_left(name, ref, &len), &len);
}

void ws_room_leave_all(struct ws_conn *c)
{
    while (c->subs)
        sub_remove(c->subs, c->subs->state == SUB_BACKFILL);
}

/* ---- NOTIFY lines ---- */

static void on_msg_line(struct ws_server *srv, const struct chat_line *l)
{
    struct ws_room *r = room_find(srv, l->room);

    if (!r)
        return; /* nobody here is in that room */
    switch (chat_cursor_heard(&r->cur, l->op == CHAT_LINE_MSG, l->seq)) {
    case CHAT_STEP_DELIVER:
        deliver(r, l->seq, l->raw, l->len);
        break;
    case CHAT_STEP_CATCHUP:
        catchup(r);
        break;
    case CHAT_STEP_HOLD: /* read once loaded */
    case CHAT_STEP_DROP:
    case CHAT_STEP_VERIFY: /* only after a read */
    case CHAT_STEP_RESET:
        break;
    }
}

static void json_list_toggle(json_t **add_to, json_t **remove_from, const char *name)
{
    size_t i;
    json_t *v;

    if (!name)
        return; /* not a string: a line that is ours in its head only */
    if (*remove_from) {
        json_array_foreach(*remove_from, i, v)
        {
            if (strcmp(json_string_value(v), name) == 0) {
                json_array_remove(*remove_from, i);
                return;
            }
        }
    }
    if (!*add_to && !(*add_to = json_array()))
        return;
    json_array_foreach(*add_to, i, v)
    {
        if (strcmp(json_string_value(v), name) == 0)
            return;
    }
    json_array_append_new(*add_to, json_string(name));
}

static void on_presence_line(struct ws_server *srv, const struct chat_line *l)
{
    struct ws_room *r = room_find(srv, l->room);
    json_t *ev, *on, *off, *v;
    size_t i;

    if (!r || !(ev = json_loadb(l->raw, l->len, 0, NULL)))
        return;
    on = json_object_get(ev, "online");
    off = json_object_get(ev, "offline");
    /* membership changed: a remembered member list is stale now, and so is
     * any answer still on its way */
    free(r->members_json);
    r->members_json = NULL;
    r->members_ver++;
    r->members_gen++;
    if (!r->cur.loaded)
        goto out;
    r->pres_dirty = true;
    r->pres_count = json_integer_value(json_object_get(ev, "count"));
    if (!json_is_array(on) || !json_is_array(off))
        r->pres_no_lists = true;
    if (r->pres_no_lists)
        goto out;
    json_array_foreach(on, i, v) json_list_toggle(&r->pres_on, &r->pres_off, json_string_value(v));
    json_array_foreach(off, i, v) json_list_toggle(&r->pres_off, &r->pres_on, json_string_value(v));
    if (json_array_size(r->pres_on) + json_array_size(r->pres_off) > PRESENCE_LIST_MAX)
        r->pres_no_lists = true;
out:
    json_decref(ev);
}

static void on_typing_line(struct ws_server *srv, const struct chat_line *l)
{
    struct ws_room *r = room_find(srv, l->room);
    struct ws_buf *b;

    if (!r || !(b = ws_buf_frame(WS_OP_TEXT, l->raw, l->len)))
        return;
    for (struct ws_sub *s = r->subs, *next; s; s = next) {
        next = s->rnext;
        if (s->state == SUB_LIVE && strcmp(s->c->user, l->user) != 0)
            ws_conn_queue(s->c, b, false);
    }
    ws_buf_unref(b);
}

void ws_room_notify(struct ws_server *srv, const char *payload, size_t len)
{
    const char *p = payload, *end = payload + len, *raw;
    struct chat_line l;
    size_t n;

    while (chat_next_line(&p, end, &raw, &n)) {
        if (chat_line_parse(raw, n, &l) < 0) {
            log_warn("ignoring a notification line that is not ours (%zu bytes)", n);
            continue;
        }
        switch (l.op) {
        case CHAT_LINE_MSG:
        case CHAT_LINE_HINT:
            on_msg_line(srv, &l);
            break;
        case CHAT_LINE_PRESENCE:
            on_presence_line(srv, &l);
            break;
        case CHAT_LINE_TYPING:
            on_typing_line(srv, &l);
            break;
        }
    }
}

/* ---- the database comes and goes ---- */

void ws_room_bus_up(struct ws_server *srv)
{
    pres_resync = true;
    for (size_t i = 0; i < srv->room_buckets; i++) {
        for (struct ws_room *r = srv->rooms[i]; r; r = r->hnext) {
            if (chat_cursor_reconnected(&r->cur) == CHAT_STEP_CATCHUP) {
                /* whatever committed while we were away */
                catchup(r);
            } else if (r->subs) {
                load(r);
            }
        }
    }
}

void ws_room_bus_down(struct ws_server *srv)
{
    (void)srv;
    pres_in_flight = false;
}

/* ---- once a second ---- */

static void pres_done(struct pg *pg, PGresult *res, void *data)
{
    (void)pg;
    (void)data;
    pres_in_flight = false;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res)
            log_error("presence: %s", PQresultErrorMessage(res));
        pres_resync = true;
    }
}

/* Sends local transitions (or, after trouble, the whole local view). */
static void pres_flush(struct ws_server *srv)
{
    struct chat_presence_args a = {0};
    const char *params[4];
    struct ws_pres_change *ch;
    int rc = 0;

    if (pres_in_flight || !pg_is_up(srv->reader) || (!pres_head && !pres_resync))
        return;
    if (pres_resync) {
        for (size_t i = 0; i < srv->room_buckets && rc == 0; i++)
            for (struct ws_room *r = srv->rooms[i]; r && rc == 0; r = r->hnext)
                for (struct ws_member *m = r->members; m && rc == 0; m = m->next)
                    rc = chat_presence_args_add(&a, r->name, m->name, true);
        if (rc == 0 && chat_presence_args_end(&a, srv->node, params) == 0 &&
            pg_query(srv->reader, CHAT_SQL_PRESENCE_SYNC, 3, params, pres_done, NULL) == 0) {
            pres_in_flight = true;
            pres_resync = false;
            goto sent;
        }
        goto out;
    }
    for (ch = pres_head; ch && rc == 0; ch = ch->next)
        rc = chat_presence_args_add(&a, ch->room, ch->member, ch->online);
    if (rc < 0 || chat_presence_args_end(&a, srv->node, params) < 0 ||
        pg_query(srv->reader, CHAT_SQL_PRESENCE, 4, params, pres_done, NULL) < 0)
        goto out;
    pres_in_flight = true;
sent:
    while ((ch = pres_head)) {
        pres_head = ch->next;
        free(ch);
    }
    pres_tail = &pres_head;
    pres_count = 0;
out:
    chat_presence_args_free(&a);
}

static const char **names_of(json_t *arr, size_t *n)
{
    size_t i, k = json_array_size(arr);
    const char **v = calloc(k + 1, sizeof(char *));
    json_t *x;

    *n = 0;
    if (!v)
        return NULL;
    json_array_foreach(arr, i, x) v[(*n)++] = json_string_value(x);
    return v;
}

/* Sends the coalesced presence event of r to its live subscribers. */
static void pres_send(struct ws_room *r)
{
    size_t non = 0, noff = 0, len;
    const char **on = NULL, **off = NULL;
    char *json;
    struct ws_buf *b;

    if (!r->pres_no_lists) {
        on = names_of(r->pres_on, &non);
        off = names_of(r->pres_off, &noff);
        if (!on || !off)
            goto out;
        if (non + noff == 0)
            goto out; /* came and went within the second */
    }
    json = chat_encode_presence(r->name, on, non, off, noff, (size_t)r->pres_count, &len);
    b = json ? ws_buf_frame(WS_OP_TEXT, json, len) : NULL;
    free(json);
    if (b) {
        for (struct ws_sub *s = r->subs, *next; s; s = next) {
            next = s->rnext;
            if (s->state == SUB_LIVE)
                ws_conn_queue(s->c, b, false);
            else if (s->state == SUB_BACKFILL)
                hold(s, b, INT64_MAX); /* after its joined and backlog */
        }
        ws_buf_unref(b);
    }
out:
    free(on);
    free(off);
    json_decref(r->pres_on);
    json_decref(r->pres_off);
    r->pres_on = r->pres_off = NULL;
    r->pres_dirty = r->pres_no_lists = false;
}

void ws_room_tick(struct ws_server *srv)
{
    pres_flush(srv);
    for (size_t i = 0; i < srv->room_buckets; i++) {
        for (struct ws_room *r = srv->rooms[i]; r; r = r->hnext) {
            if (r->pres_dirty)
                pres_send(r);
            if (r->retry_catchup) {
                r->retry_catchup = false;
                catchup(r);
            }
        }
    }
}

void ws_room_free_all(struct ws_server *srv)
{
    struct ws_pres_change *ch;

    for (size_t i = 0; i < srv->room_buckets; i++) {
        struct ws_room *r = srv->rooms[i], *next;
        for (; r; r = next) {
            next = r->hnext;
            while (r->members) {
                struct ws_member *m = r->members;
                r->members = m->next;
                free(m);
            }
            while (r->members_waiting) { /* their query's callback never comes */
                struct ws_members_wait *w = r->members_waiting;
                r->members_waiting = w->next;
                ws_conn_unref(w->c);
                json_decref(w->ref);
                free(w);
            }
            json_decref(r->pres_on);
            json_decref(r->pres_off);
            free(r->members_json);
            chat_members_free(r->answer.names, r->answer.n);
            free(r);
        }
    }
    free(srv->rooms);
    srv->rooms = NULL;
    srv->room_buckets = srv->nrooms = 0;
    while ((ch = pres_head)) {
        pres_head = ch->next;
        free(ch);
    }
    pres_tail = &pres_head;
    pres_count = 0;
}
