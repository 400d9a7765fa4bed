/* lp_sse: GET events on the acceptor's side (docs/longpoll.md, "GET
 * events"). Validates like GET poll (the same rooms, name, policy and
 * limits), takes the cursors of Last-Event-ID over those of the query,
 * reads every room past its cursor, writes the head, the backlog and a
 * "ready" event, and hands the connection to the listener as a stream: a
 * parked poll that is answered again and again (lp_stream.c). */
#define _GNU_SOURCE
#include "lp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"

static const char head[] = "Status: 200 OK\r\n"
                           "Content-Type: text/event-stream; charset=utf-8\r\n"
                           "Cache-Control: no-store\r\n"
                           "X-Accel-Buffering: no\r\n"
                           "\r\n"
                           "retry: 2000\n\n";

static void bad(struct lp_req *r, const char *why)
{
    lp_reply_error(&r->conn, CHAT_E_BAD_REQUEST, why);
}

/* Last-Event-ID "lobby:13,dev:4" (what the browser saw last) moves the
 * cursors of the rooms it names; rooms it does not name keep the query's.
 * 0, or -1 with the error answered. */
static int resume(struct lp_req *r, struct lp_poll_ctx *c)
{
    struct lp_cursor le[LP_MAX_ROOMS];

    if (r->last_event_id_too_long)
        return bad(r, "Last-Event-ID too long"), -1;
    if (r->last_event_id[0] != '\0') {
        int k = lp_cursor_parse(r->last_event_id, strlen(r->last_event_id), le, LP_MAX_ROOMS);
        if (k < 0)
            return bad(r, "bad Last-Event-ID: room:N pairs separated by commas"), -1;
        for (int j = 0; j < k; j++)
            for (size_t i = 0; i < c->n; i++)
                if (le[j].seq >= 0 && strcmp(le[j].room, chat_room_local(c->rooms[i].room)) == 0)
                    c->rooms[i].seq = le[j].seq;
    }
    c->backlog = false;
    for (size_t i = 0; i < c->n; i++) {
        c->backlog |= c->rooms[i].seq < 0;
        c->cursor[i] = c->rooms[i].seq < 0 ? 0 : c->rooms[i].seq;
    }
    return 0;
}

static int heartbeat(struct lp_req *r, unsigned *out)
{
    char num[32];
    int64_t v = LP_SSE_HEARTBEAT_DEFAULT;
    int k = chat_query_get(r->query, r->query_len, "heartbeat", num, sizeof(num));

    if (k == CHAT_QUERY_BAD ||
        (k >= 0 && chat_query_int(num, (size_t)k, 1, LP_SSE_HEARTBEAT_MAX, &v) < 0))
        return bad(r, "heartbeat must be a number of seconds in 1..300"), -1;
    *out = (unsigned)v;
    return 0;
}

static int add_str(struct chat_sbuf *out, const char *s)
{
    return chat_sbuf_add(out, s, strlen(s));
}

/* The head, the events read, and {"op":"ready",...,"policy":policy} with the
 * cursor as its id. */
static int first_bytes(struct lp_stream *s, struct lp_poll_ctx *c, const char *members, unsigned hb,
                       const char *policy, struct chat_sbuf *out)
{
    char tail[96];
    int bad_mem = chat_sbuf_add(out, head, sizeof(head) - 1);

    bad_mem |= lp_stream_format(s, out, c->events.p, c->events.len);
    lp_stream_reached(s, c->cursor);
    bad_mem |= chat_sbuf_add(out, "id: ", 4);
    bad_mem |= lp_stream_cursor(s, out);
    bad_mem |= add_str(out, "\ndata: {\"op\":\"ready\",\"user\":\"");
    bad_mem |= add_str(out, c->member); /* a valid name: nothing to escape */
    bad_mem |= add_str(out, "\",\"cursor\":\"");
    bad_mem |= lp_stream_cursor(s, out);
    int n =
        snprintf(tail, sizeof(tail), "\",\"heartbeat\":%u%s", hb, members ? ",\"members\":" : "");
    bad_mem |= chat_sbuf_add(out, tail, (size_t)n);
    if (members)
        bad_mem |= add_str(out, members);
    bad_mem |= add_str(out, ",\"policy\":");
    bad_mem |= !policy || add_str(out, policy);
    bad_mem |= add_str(out, "}\n\n");
    return bad_mem ? -1 : 0;
}

void lp_sse_handle(struct lp_req *r, PGconn **db)
{
    struct lp_poll_ctx c;
    struct lp_cursor at[LP_MAX_ROOMS];
    struct chat_sbuf out = {0};
    struct lp_stream *s = NULL;
    char *members = NULL, *policy = NULL;
    unsigned hb;
    enum lp_checked how = LP_CHECKED_TABLE;

    memset(&c, 0, sizeof(c));
    c.sep = '\n';
    if (!r->accept_sse) {
        lp_reply_error_status(&r->conn, 406, CHAT_E_BAD_REQUEST,
                              "events needs Accept: text/event-stream");
        return;
    }
    if (lp_poll_parse(r, &c) < 0 || (c.n == 0 && (bad(r, "rooms missing"), true)) ||
        resume(r, &c) < 0 || heartbeat(r, &hb) < 0 || lp_bans_refuse(r, c.member) ||
        !lp_rate_admit(r, c.member, false))
        goto out;
    unsigned gen = atomic_load(&lp_listen_gen);
    if (!c.backlog && lp_poll_covered(&c, gen)) {
        how = LP_CHECKED_CACHE;
    } else if (lp_poll_read(db, &c) < 0) {
        if (c.backlog) {
            lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "database unavailable; retry later");
            goto out;
        }
        how = LP_CHECKED_NOT; /* the listener reads once it can */
    } else if (c.events.len > 0) {
        how = LP_CHECKED_NOT; /* more may be past what one read gives: read again */
    }
    if (c.backlog && (members = lp_poll_members(db, &c)) == NULL) {
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
        goto out;
    }
    int full = lp_park_take(r->addr);
    if (full < 0) {
        if (full == -1)
            log_warn("events: %d polls and streams parked already (--max-parked); refusing one",
                     lp_poll_max_parked());
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE,
                       full == -1 ? "too many waiting polls; retry later"
                                  : "too many waiting polls from your address; retry later");
        goto out;
    }
    for (size_t i = 0; i < c.n; i++) {
        at[i] = c.rooms[i];
        if (c.cursor[i] < at[i].seq) /* a reset: the room starts again below the client's cursor */
            at[i].seq = c.cursor[i];
    }
    s = lp_stream_new(c.member, r->addr, at, c.n, hb);
    policy = chat_encode_policy(&r->policy, NULL);
    if (s == NULL || first_bytes(s, &c, members, hb, policy, &out) < 0) {
        lp_park_give(r->addr);
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
        goto out;
    }
    if (lp_stream_records(&r->conn, out.p, out.len, false, true) < 0) {
        lp_park_give(r->addr);
        log_debug("events %d: web server gone before the head", r->conn.id);
        goto out; /* lp_req_free closes it */
    }
    for (size_t i = 0; i < c.n; i++) {
        at[i].seq = c.cursor[i];
        lp_presence_touch(c.rooms[i].room, c.member, r->addr, hb < 10 ? 10 : hb);
    }
    struct lp_poll *p = lp_poll_new(&r->conn, c.member, r->addr, at, c.n, hb, gen, how);
    if (p == NULL) {
        lp_park_give(r->addr);
        lp_stream_end(&r->conn);
        goto out;
    }
    lp_poll_set_stream(p, s);
    s = NULL; /* the poll's */
    if (lp_listener_park(p) == 0) {
        r->conn.fd = -1; /* the listener's now */
    } else {
        lp_park_give(r->addr);
        lp_poll_free(p);
        lp_stream_end(&r->conn); /* shutting down: the client resumes elsewhere */
    }
out:
    lp_stream_free(s);
    free(members);
    free(policy);
    chat_sbuf_free(&out);
    chat_sbuf_free(&c.events);
}
