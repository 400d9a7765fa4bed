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
#include "chat_members.h"
#include "chat_sql.h"
#include "chat_metrics.h"

static const struct lp_config *conf; /* given at init */
static const char *const sql_fast =
    "SELECT r.i, r.lo, m.seq, m.j, r.h, r.last FROM ("
    "  SELECT q.i, q.room, coalesce(rm.horizon, 0) AS h, coalesce(rm.last_seq, 0) AS last,"
    "         CASE WHEN q.cur >= 0 THEN q.cur"
    "         ELSE greatest(coalesce(rm.last_seq, 0) - " CHAT_STR(
        CHAT_BACKLOG_DEFAULT) ", 0) END AS lo"
                              "  FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS q(room, "
                              "cur, i)"
                              "  LEFT JOIN rooms rm ON rm.name = q.room) r"
                              " LEFT JOIN LATERAL (SELECT seq, chat_row_json(mm) AS j"
                              "  FROM messages mm WHERE room = r.room AND seq > r.lo ORDER BY seq "
                              "LIMIT " CHAT_STR(CHAT_CATCHUP_PAGE) ") m ON true"
                                                                   " ORDER BY r.i, m.seq";

static int bad(struct lp_req *r, const char *why)
{
    lp_reply_error(&r->conn, CHAT_E_BAD_REQUEST, why);
    return -1;
}

int lp_poll_parse(struct lp_req *r, struct lp_poll_ctx *c)
{
    char list[LP_QUERY_MAX + 1], num[32], name[CHAT_USER_MAX + 2];
    int n = chat_query_get(r->query, r->query_len, "rooms", list, sizeof(list));
    int64_t t = r->policy.poll_timeout;

    if (n < 0 && n != CHAT_QUERY_ABSENT)
        return bad(r, "bad rooms parameter");
    /* no rooms: who the poller is and the policy, at once (lp_poll_handle) */
    n = n < 0 ? 0 : lp_cursor_parse(list, (size_t)n, c->rooms, LP_MAX_ROOMS);
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
        char *room = c->rooms[i].room, key[CHAT_ROOM_KEY_MAX + 1];
        if (chat_room_key(r->policy.ns, room, strlen(room), key) == 0)
            return bad(r, "bad rooms: room or room:N, separated by commas");
        memcpy(room, key, sizeof(key));
        c->backlog |= c->rooms[i].seq < 0;
        c->cursor[i] = c->rooms[i].seq < 0 ? 0 : c->rooms[i].seq;
    }
    k = chat_query_get(r->query, r->query_len, "timeout", num, sizeof(num));
    if (k == CHAT_QUERY_BAD || (k >= 0 && chat_query_int(num, (size_t)k, 0, 86400, &t) < 0))
        return bad(r, "timeout must be a number of seconds");
    c->timeout = t < r->policy.poll_timeout ? (unsigned)t : r->policy.poll_timeout;
    return 0;
}

static int add_event(struct lp_poll_ctx *c, const char *ev, size_t len)
{
    if (c->events.len >= LP_RESPONSE_SOFT_MAX)
        return -1;
    const char sep = c->sep ? c->sep : ',';
    if (c->events.len && chat_sbuf_add(&c->events, &sep, 1) < 0)
        return -1;
    return chat_sbuf_add(&c->events, ev, len);
}

/* The client's cursor of room i is past the room's last seq: the database
 * went back in time (or the client's cursor is not this database's). Where
 * the room and what the client has part is not known here, so it gets
 * {"op":"reset","seq":0} (drop everything shown of the room) and the
 * cursor of a fresh join: its next poll brings the last 50, and older ones
 * are history. */
static void reset(struct lp_poll_ctx *c, size_t i, int64_t last)
{
    size_t len;
    char *ev = chat_encode_reset(c->rooms[i].room, 0, &len);

    atomic_fetch_add(&lp_resets, 1);
    log_warn("poll: room %s: the client's cursor %" PRId64 " is past the room's last seq %" PRId64
             ": reset (the database went back in time?)",
             c->rooms[i].room, c->rooms[i].seq, last);
    if (ev && add_event(c, ev, len) == 0)
        c->cursor[i] = last > CHAT_BACKLOG_DEFAULT ? last - CHAT_BACKLOG_DEFAULT : 0;
    free(ev);
}

/* Reads past every cursor. 0, or -1 when the database cannot be asked. */
int lp_poll_read(PGconn **db, struct lp_poll_ctx *c)
{
    struct chat_sbuf rooms = {0}, curs = {0};
    int bad_mem = 0, rc = -1;
    size_t events_before = c->events.len;

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
            int64_t last = strtoll(PQgetvalue(res, row, 5), NULL, 10);
            if (c->rooms[i].seq > last && c->cursor[i] == c->rooms[i].seq) {
                reset(c, i, last);
                continue; /* nothing past the cursor: the next poll reads past last */
            }
            int64_t h = strtoll(PQgetvalue(res, row, 4), NULL, 10);
            if (c->rooms[i].seq >= 0 && c->rooms[i].seq < h) {
                /* older messages were removed by retention: not a loss */
                c->horizon[i] = h;
                c->jumped = true;
                if (c->cursor[i] < h)
                    c->cursor[i] = h;
            }
            if (PQgetisnull(res, row, 2))
                continue;
            int64_t seq = strtoll(PQgetvalue(res, row, 2), NULL, 10);
            if (seq > c->cursor[i] &&
                add_event(c, PQgetvalue(res, row, 3), (size_t)PQgetlength(res, row, 3)) == 0) {
                c->cursor[i] = seq;
                chat_metric_inc(CHAT_M_MESSAGES_OUT);
            }
        }
        rc = 0;
        if (c->events.len > events_before) /* an answer or a stream write with events */
            chat_metric_inc(CHAT_M_DELIVERIES);
    } else if (res) {
        log_warn("poll: reading rooms failed: %s", lp_pgerr(res, NULL));
    }
    PQclear(res);
out:
    chat_sbuf_free(&rooms);
    chat_sbuf_free(&curs);
    return rc;
}

/* {"room":{"members":[...],"count":N},...} for the rooms without ":N":
 * the database's (lp_members.c), the poller and this process's pollers. */
char *lp_poll_members(PGconn **db, struct lp_poll_ctx *c)
{
    json_t *all = json_object();
    char *out = NULL;

    for (size_t i = 0; all && i < c->n; i++) {
        if (c->rooms[i].seq >= 0)
            continue;
        const char **names = NULL;
        size_t n = 0, count = 0;
        json_t *list = json_array();
        char *cached = lp_members_get(c->rooms[i].room, &count);
        PGresult *res = NULL;
        if (cached == NULL) {
            const char *vals[1] = {c->rooms[i].room};
            res = lp_db_query(db, "poll", CHAT_SQL_MEMBERS, 1, vals);
            if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
                count = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
                lp_members_put(c->rooms[i].room, count, PQgetvalue(res, 0, 1));
                cached = strdup(PQgetvalue(res, 0, 1));
            }
            PQclear(res);
        }
        /* the poller is a member from its first poll on, as a WebSocket
         * client is in its own "joined"; an unreadable answer is no one */
        if (cached == NULL ||
            chat_members_parse(cached, strlen(cached), c->member, &names, &n, &count) < 0) {
            count = 0;
            if (chat_members_parse("[]", 2, c->member, &names, &n, &count) < 0)
                n = 0;
        }
        free(cached);
        /* and the other pollers of this process at once, not when the
         * presence flush (once a second) has told the database; a list
         * the database cut (count > n) may count them already: as is */
        const char **local = NULL;
        size_t nlocal = 0;
        if (names && count <= n && lp_presence_members(c->rooms[i].room, &local, &nlocal) == 0 &&
            chat_members_merge(&names, &n, &count, local, nlocal) < 0)
            count = 0;
        chat_members_free(local, nlocal);
        for (size_t k = 0; list && k < n; k++)
            json_array_append_new(list, json_string(names[k]));
        chat_members_free(names, n);
        json_object_set_new(all, chat_room_local(c->rooms[i].room),
                            json_pack("{s:o, s:I}", "members", list, "count", (json_int_t)count));
    }
    if (all)
        out = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    return out;
}

static void answer(struct lp_req *r, struct lp_poll_ctx *c, PGconn **db)
{
    char *members = c->backlog ? lp_poll_members(db, c) : NULL;
    const char *rooms[LP_MAX_ROOMS];
    size_t len;

    for (size_t i = 0; i < c->n; i++)
        rooms[i] = c->rooms[i].room;
    char *body = c->backlog && members == NULL
                     ? NULL
                     : chat_encode_poll_p(c->events.p, c->events.len, rooms, c->cursor, c->horizon,
                                          c->n, members, c->member, &r->policy, &len);
    if (!body)
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
    else
        lp_reply(&r->conn, 200, body, len);
    free(body);
    free(members);
}

/* Parks the poll (or answers it at once when shutting down): true when the
 * poller is being served, false when refused. */
static bool park(struct lp_req *r, struct lp_poll_ctx *c, unsigned gen, enum lp_checked how,
                 PGconn **db)
{
    struct lp_cursor at[LP_MAX_ROOMS];

    int full = lp_park_take(r->addr);
    if (full == -1) {
        log_warn("poll: %d polls parked already (--max-parked); refusing one", conf->max_parked);
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "too many waiting polls; retry later");
        return false;
    }
    if (full == -2) {
        log_debug("poll: %s holds %d parked polls (--max-parked-per-addr); refusing one", r->addr,
                  conf->max_parked_per_addr);
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE,
                       "too many waiting polls from your address; retry later");
        return false;
    }
    for (size_t i = 0; i < c->n; i++) {
        at[i] = c->rooms[i];
        at[i].seq = c->cursor[i];
    }
    struct lp_poll *p = lp_poll_new(&r->conn, c->member, r->addr, at, c->n, c->timeout, gen, how);
    if (p && lp_listener_park(p) == 0) {
        r->conn.fd = -1; /* the listener answers it */
        return true;
    }
    lp_park_give(r->addr);
    lp_poll_free(p);
    answer(r, c, db); /* shutting down (or out of memory): events: [] now */
    return true;
}

/* Every cursor at or past what the listener vouches for (lp_seqcache.c). */
bool lp_poll_covered(const struct lp_poll_ctx *c, unsigned gen)
{
    for (size_t i = 0; i < c->n; i++)
        if (!lp_seqcache_covers(c->rooms[i].room, c->rooms[i].seq, gen))
            return false;
    return true;
}

void lp_poll_init(const struct lp_config *cfg)
{
    conf = cfg;
}

int lp_poll_max_parked(void)
{
    return conf->max_parked;
}

int lp_poll_workers(void)
{
    return conf->workers;
}

void lp_poll_handle(struct lp_req *r, PGconn **db)
{
    struct lp_poll_ctx c;
    bool served = true;

    memset(&c, 0, sizeof(c));
    if (lp_poll_parse(r, &c) < 0 || lp_bans_refuse(r, c.member) ||
        !lp_rate_admit(r, c.member, false))
        return;
    unsigned gen = atomic_load(&lp_listen_gen);
    if (c.n == 0) {
        answer(r, &c, db); /* no rooms: "user" and "policy" only */
    } else if (!c.backlog && c.timeout > 0 && lp_poll_covered(&c, gen)) {
        served = park(r, &c, gen, LP_CHECKED_CACHE, db); /* the listener says: nothing to read */
    } else if (lp_poll_read(db, &c) < 0) {
        if (c.backlog) {
            lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "database unavailable; retry later");
            served = false;
        } else if (c.timeout == 0) {
            answer(r, &c, db);
        } else {
            served = park(r, &c, gen, LP_CHECKED_NOT, db); /* the listener reads once it can */
        }
    } else if (c.events.len > 0 || c.backlog || c.timeout == 0 || c.jumped) {
        answer(r, &c, db);
    } else {
        served = park(r, &c, gen, LP_CHECKED_TABLE, db);
    }
    /* online while polling: from the first poll that is served */
    for (size_t i = 0; served && i < c.n; i++)
        lp_presence_touch(c.rooms[i].room, c.member, r->addr, r->policy.poll_timeout);
    chat_sbuf_free(&c.events);
}
