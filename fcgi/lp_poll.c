/* lp_poll: GET poll on the acceptor's side. Validates the cursor list,
 * marks the poller present, reads every room past its cursor in one
 * statement and answers at once when there is news (or a room was given
 * without ":N": its last 50 and its members, like WebSocket "joined");
 * otherwise hands the poll to the listener, which answers it later. */
#define _GNU_SOURCE
#include "lp.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"

struct poll_ctx {
    struct lp_cursor rooms[LP_MAX_ROOMS]; /* seq: as asked (-1: none) */
    int64_t cursor[LP_MAX_ROOMS];         /* seq: as answered */
    size_t n;
    bool backlog; /* a room without ":N" */
    char member[CHAT_SENDER_MAX + 1];
    unsigned timeout;
    struct chat_sbuf events;
};

static const char *const sql_fast =
    "SELECT r.i, r.lo, m.seq, m.j FROM ("
    "  SELECT q.i, q.room, CASE WHEN q.cur >= 0 THEN q.cur"
    "         ELSE greatest(coalesce(rm.last_seq, 0) - "
    "50"
    ", 0) END AS lo"
    "  FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS q(room, cur, i)"
    "  LEFT JOIN rooms rm ON rm.name = q.room) r"
    " LEFT JOIN LATERAL (SELECT seq, chat_msg_json(room, seq, sender, text, ts, cid) AS j"
    "  FROM messages WHERE room = r.room AND seq > r.lo ORDER BY seq LIMIT 500) m ON true"
    " ORDER BY r.i, m.seq";

static int bad(struct lp_req *r, const char *why)
{
    lp_reply_error(&r->conn, CHAT_E_BAD_REQUEST, why);
    return -1;
}

static int parse(struct lp_req *r, struct poll_ctx *c)
{
    char list[LP_QUERY_MAX + 1], num[32], name[CHAT_USER_MAX + 2];
    int n = chat_query_get(r->query, r->query_len, "rooms", list, sizeof(list));
    int64_t t = r->policy.poll_timeout;

    if (n < 0)
        return bad(r, n == CHAT_QUERY_ABSENT ? "rooms missing" : "bad rooms parameter");
    n = lp_cursor_parse(list, (size_t)n, c->rooms, LP_MAX_ROOMS);
    if (n == LP_CURSOR_TOO_MANY)
        return bad(r, "too many rooms (at most 20)");
    if (n < 0)
        return bad(r, "bad rooms: room or room:N, separated by commas");
    c->n = (size_t)n;
    int k = chat_query_get(r->query, r->query_len, "name", name, sizeof(name));
    if (k == CHAT_QUERY_BAD)
        return bad(r, "bad name");
    int id =
        chat_policy_identity(&r->policy, k >= 0 ? name : NULL, k >= 0 ? (size_t)k : 0, c->member);
    if (id == -1) {
        lp_reply_error(&r->conn, CHAT_E_UNAUTHORIZED, "guests are not allowed here");
        return -1;
    }
    if (id < 0)
        return bad(r, "a guest needs a name: 1-32 of letters, digits, _ . -");
    for (size_t i = 0; i < c->n; i++) {
        if (!chat_policy_room_allowed(&r->policy, c->rooms[i].room, strlen(c->rooms[i].room))) {
            lp_reply_error(&r->conn, CHAT_E_FORBIDDEN, "room not allowed here");
            return -1;
        }
        c->backlog |= c->rooms[i].seq < 0;
        c->cursor[i] = c->rooms[i].seq < 0 ? 0 : c->rooms[i].seq;
    }
    k = chat_query_get(r->query, r->query_len, "timeout", num, sizeof(num));
    if (k == CHAT_QUERY_BAD || (k >= 0 && chat_query_int(num, (size_t)k, 0, 86400, &t) < 0))
        return bad(r, "timeout must be a number of seconds");
    c->timeout = t < r->policy.poll_timeout ? (unsigned)t : r->policy.poll_timeout;
    return 0;
}

static int add_event(struct poll_ctx *c, const char *ev, size_t len)
{
    if (c->events.len >= LP_RESPONSE_SOFT_MAX)
        return -1;
    if (c->events.len && chat_sbuf_add(&c->events, ",", 1) < 0)
        return -1;
    return chat_sbuf_add(&c->events, ev, len);
}

/* Reads past every cursor. 0, or -1 when the database cannot be asked. */
static int fast_path(PGconn **db, struct poll_ctx *c)
{
    struct chat_sbuf rooms = {0}, curs = {0};
    int bad_mem = 0, rc = -1;

    for (size_t i = 0; i < c->n; i++) {
        char num[24];
        int len = snprintf(num, sizeof(num), "%s%" PRId64, i ? "," : "{", c->rooms[i].seq);
        bad_mem |= chat_db_array_add(&rooms, c->rooms[i].room, strlen(c->rooms[i].room));
        bad_mem |= chat_sbuf_add(&curs, num, (size_t)len);
    }
    bad_mem |= chat_db_array_end(&rooms) | chat_sbuf_add(&curs, "}", 1);
    if (bad_mem)
        goto out;
    const char *vals[2] = {rooms.p, curs.p};
    PGresult *res = lp_db_query(db, "poll", sql_fast, 2, vals);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int row = 0; row < PQntuples(res); row++) {
            long i = strtol(PQgetvalue(res, row, 0), NULL, 10) - 1;
            if (i < 0 || (size_t)i >= c->n)
                continue;
            if (c->rooms[i].seq < 0 && c->cursor[i] == 0)
                c->cursor[i] = strtoll(PQgetvalue(res, row, 1), NULL, 10);
            if (PQgetisnull(res, row, 2))
                continue;
            int64_t seq = strtoll(PQgetvalue(res, row, 2), NULL, 10);
            if (seq > c->cursor[i] &&
                add_event(c, PQgetvalue(res, row, 3), (size_t)PQgetlength(res, row, 3)) == 0)
                c->cursor[i] = seq;
        }
        rc = 0;
    } else if (res) {
        log_warn("poll: reading rooms failed: %s", lp_pgerr(res, NULL));
    }
    PQclear(res);
out:
    chat_sbuf_free(&rooms);
    chat_sbuf_free(&curs);
    return rc;
}

/* The poller itself is a member from its first poll on, like a WebSocket
 * client in its own "joined", even before presence reached the database. */
static void add_self(json_t *list, json_int_t *count, const char *member)
{
    size_t i, n = json_array_size(list);

    for (i = 0; i < n; i++) {
        int cmp = strcmp(json_string_value(json_array_get(list, i)), member);
        if (cmp == 0)
            return;
        if (cmp > 0)
            break;
    }
    if (n < 1000 || i < n) {
        json_array_insert_new(list, i, json_string(member));
        if (json_array_size(list) > 1000)
            json_array_remove(list, 1000);
        (*count)++;
    }
}

/* {"room":{"members":[...],"count":N},...} for the rooms without ":N". */
static char *members_json(PGconn **db, struct poll_ctx *c)
{
    json_t *all = json_object();
    char *out = NULL;

    for (size_t i = 0; all && i < c->n; i++) {
        if (c->rooms[i].seq >= 0)
            continue;
        const char *vals[1] = {c->rooms[i].room};
        PGresult *res =
            lp_db_query(db, "poll", "SELECT count, members FROM chat_members($1)", 1, vals);
        json_t *list = NULL;
        json_int_t count = 0;
        if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            list = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
        }
        PQclear(res);
        if (!json_is_array(list)) {
            json_decref(list);
            list = json_array();
            count = 0;
        }
        add_self(list, &count, c->member);
        json_object_set_new(all, c->rooms[i].room,
                            json_pack("{s:o, s:I}", "members", list, "count", count));
    }
    if (all)
        out = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    return out;
}

static void answer(struct lp_req *r, struct poll_ctx *c, PGconn **db)
{
    struct chat_sbuf b = {0};
    char *members = c->backlog ? members_json(db, c) : NULL;
    int oom = chat_sbuf_add(&b, "{\"events\":[", 11);

    if (c->events.len)
        oom |= chat_sbuf_add(&b, c->events.p, c->events.len);
    oom |= chat_sbuf_add(&b, "],\"cursor\":\"", 12);
    for (size_t i = 0; i < c->n; i++) {
        char num[32];
        int n = snprintf(num, sizeof(num), ":%" PRId64 "%s", c->cursor[i], i + 1 < c->n ? "," : "");
        oom |= chat_sbuf_add(&b, c->rooms[i].room, strlen(c->rooms[i].room));
        oom |= chat_sbuf_add(&b, num, (size_t)n);
    }
    oom |= chat_sbuf_add(&b, "\"", 1);
    if (members) {
        oom |= chat_sbuf_add(&b, ",\"members\":", 11);
        oom |= chat_sbuf_add(&b, members, strlen(members));
    }
    oom |= chat_sbuf_add(&b, "}", 1);
    if (oom || (c->backlog && members == NULL))
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
    else
        lp_reply(&r->conn, 200, b.p, b.len);
    free(members);
    chat_sbuf_free(&b);
}

/* Parks the poll (or answers it at once when shutting down): true when the
 * poller is being served, false when refused. */
static bool park(struct lp_req *r, struct poll_ctx *c, unsigned gen, enum lp_checked how,
                 PGconn **db)
{
    struct lp_cursor at[LP_MAX_ROOMS];

    if (atomic_fetch_add(&lp_parked, 1) >= lp_cfg.max_parked) {
        atomic_fetch_sub(&lp_parked, 1);
        log_warn("poll: %d polls parked already (--max-parked); refusing one", lp_cfg.max_parked);
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "too many waiting polls; retry later");
        return false;
    }
    for (size_t i = 0; i < c->n; i++) {
        at[i] = c->rooms[i];
        at[i].seq = c->cursor[i];
    }
    struct lp_poll *p = lp_poll_new(&r->conn, c->member, at, c->n, c->timeout, gen, how);
    if (p && lp_listener_park(p) == 0) {
        r->conn.fd = -1; /* the listener answers it */
        return true;
    }
    atomic_fetch_sub(&lp_parked, 1);
    lp_poll_free(p);
    answer(r, c, db); /* shutting down (or out of memory): events: [] now */
    return true;
}

/* Every cursor at or past what the listener vouches for (lp_seqcache.c). */
static bool covered(const struct poll_ctx *c, unsigned gen)
{
    for (size_t i = 0; i < c->n; i++)
        if (!lp_seqcache_covers(c->rooms[i].room, c->rooms[i].seq, gen))
            return false;
    return true;
}

void lp_poll_handle(struct lp_req *r, PGconn **db)
{
    struct poll_ctx c;
    bool served = true;

    memset(&c, 0, sizeof(c));
    if (parse(r, &c) < 0 || !lp_rate_admit(r, c.member, false))
        return;
    unsigned gen = atomic_load(&lp_listen_gen);
    if (!c.backlog && c.timeout > 0 && covered(&c, gen)) {
        served = park(r, &c, gen, LP_CHECKED_CACHE, db); /* the listener says: nothing to read */
    } else if (fast_path(db, &c) < 0) {
        if (c.backlog) {
            lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "database unavailable; retry later");
            served = false;
        } else if (c.timeout == 0) {
            answer(r, &c, db);
        } else {
            served = park(r, &c, gen, LP_CHECKED_NOT, db); /* the listener reads once it can */
        }
    } else if (c.events.len > 0 || c.backlog || c.timeout == 0) {
        answer(r, &c, db);
    } else {
        served = park(r, &c, gen, LP_CHECKED_TABLE, db);
    }
    /* online while polling: from the first poll that is served */
    for (size_t i = 0; served && i < c.n; i++)
        lp_presence_touch(c.rooms[i].room, c.member, r->policy.poll_timeout);
    chat_sbuf_free(&c.events);
}
