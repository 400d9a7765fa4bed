/* lp_stream: one Server-Sent Events stream (GET events, docs/longpoll.md).
 * A stream is a parked poll that is answered again and again on the same
 * connection: each round's events become SSE events, each message with the
 * full cursor list after it as its id, so that the browser's Last-Event-ID
 * (or the cursor a client keeps) says exactly how far it got. No own
 * thread: the acceptor writes the head, the listener the rest. */
#define _GNU_SOURCE
#include "lp.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "chat_notify.h"
#include "chat_sys.h"

#define TOUCH_MS 5000 /* presence is refreshed at most this often */

struct lp_stream {
    size_t n;
    char member[CHAT_SENDER_MAX + 1];
    char addr[CHAT_ADDR_MAX + 1]; /* REMOTE_ADDR, for the presence bound per address */
    unsigned heartbeat_s;
    int64_t touched;       /* last presence touch, ms */
    struct lp_cursor at[]; /* n: what the client has been sent */
};

struct lp_stream *lp_stream_new(const char *member, const char *addr, const struct lp_cursor *rooms,
                                size_t n, unsigned heartbeat_s)
{
    struct lp_stream *s = n <= LP_MAX_ROOMS ? calloc(1, sizeof(*s) + n * sizeof(s->at[0])) : NULL;

    if (s == NULL)
        return NULL;
    s->n = n;
    memcpy(s->at, rooms, n * sizeof(rooms[0]));
    snprintf(s->member, sizeof(s->member), "%s", member);
    snprintf(s->addr, sizeof(s->addr), "%s", addr ? addr : "");
    s->heartbeat_s = heartbeat_s;
    s->touched = chat_now_ms();
    return s;
}

void lp_stream_free(struct lp_stream *s)
{
    free(s);
}

void lp_stream_reached(struct lp_stream *s, const int64_t *cursor)
{
    for (size_t i = 0; i < s->n; i++)
        if (cursor[i] > s->at[i].seq)
            s->at[i].seq = cursor[i];
}

int64_t lp_stream_heartbeat_ms(const struct lp_stream *s)
{
    return (int64_t)s->heartbeat_s * 1000;
}

int lp_stream_cursor(const struct lp_stream *s, struct chat_sbuf *out)
{
    int bad = 0;

    for (size_t i = 0; i < s->n; i++) {
        char num[24];
        int len = snprintf(num, sizeof(num), ":%" PRId64, s->at[i].seq < 0 ? 0 : s->at[i].seq);
        if (i)
            bad |= chat_sbuf_add(out, ",", 1);
        const char *room = chat_room_local(s->at[i].room);
        bad |= chat_sbuf_add(out, room, strlen(room));
        bad |= chat_sbuf_add(out, num, (size_t)len);
    }
    bad |= chat_sbuf_add(out, "", 1); /* NUL */
    if (!bad)
        out->len--;
    return bad ? -1 : 0;
}

/* The room (index into s->at) and seq of a {"op":"reset",...} line
 * (chat_encode_reset: a room went back in time), else -1. */
static int reset_of(const struct lp_stream *s, const char *line, size_t len, int64_t *seq)
{
    static const char op[] = "{\"op\":\"reset\"";
    int k = -1;

    if (len < sizeof(op) - 1 || memcmp(line, op, sizeof(op) - 1) != 0)
        return -1;
    json_t *ev = json_loadb(line, len, 0, NULL);
    const char *room = json_string_value(json_object_get(ev, "room"));
    json_t *n = json_object_get(ev, "seq");
    for (size_t i = 0; room && json_is_integer(n) && i < s->n && k < 0; i++)
        if (strcmp(chat_room_local(s->at[i].room), room) == 0)
            k = (int)i;
    if (k >= 0)
        *seq = json_integer_value(n);
    json_decref(ev);
    return k;
}

static int add_id(const struct lp_stream *s, struct chat_sbuf *out)
{
    return chat_sbuf_add(out, "id: ", 4) | lp_stream_cursor(s, out) | chat_sbuf_add(out, "\n", 1);
}

/* One event: "id: ...\n" when it moves a cursor, then "data: line\n\n".
 * A reset moves the room's cursor back to its seq (the messages that
 * follow it start there, each once).
 * The lines are JSON rendered by PostgreSQL or a daemon: no raw newline can
 * be in them, and a CR would end an SSE line too, so none is passed on. */
static int add_line(struct lp_stream *s, struct chat_sbuf *out, const char *line, size_t len)
{
    struct chat_line l;
    int64_t seq;
    int bad = 0, k;

    if (len == 0 || memchr(line, '\r', len) != NULL)
        return 0;
    if (chat_line_parse(line, len, &l) == 0 && l.op == CHAT_LINE_MSG) {
        size_t i = 0;
        /* an event names its room as clients know it (chat_ns.h) */
        while (i < s->n && strcmp(chat_room_local(s->at[i].room), l.room) != 0)
            i++;
        if (i == s->n || l.seq <= s->at[i].seq)
            return 0; /* not ours, or sent already: exactly once */
        s->at[i].seq = l.seq;
        bad |= add_id(s, out);
    } else if ((k = reset_of(s, line, len, &seq)) >= 0) {
        s->at[k].seq = seq;
        bad |= add_id(s, out);
    }
    bad |= chat_sbuf_add(out, "data: ", 6);
    bad |= chat_sbuf_add(out, line, len);
    bad |= chat_sbuf_add(out, "\n\n", 2);
    return bad ? -1 : 0;
}

int lp_stream_format(struct lp_stream *s, struct chat_sbuf *out, const char *events, size_t len)
{
    const char *p = events, *end = events + len, *line;
    size_t n;

    while (events && chat_next_line(&p, end, &line, &n))
        if (add_line(s, out, line, n) < 0)
            return -1;
    return 0;
}

int lp_stream_flush(struct lp_stream *s, struct lp_conn *c, const char *events, size_t len)
{
    struct chat_sbuf out = {0};
    int64_t now = chat_now_ms();
    int rc;

    if (len == 0)
        rc = chat_sbuf_add(&out, ": heartbeat\n\n", 13);
    else
        rc = lp_stream_format(s, &out, events, len);
    if (rc == 0 && out.len > 0)
        rc = lp_stream_records(c, out.p, out.len, false, false);
    chat_sbuf_free(&out);
    /* online while the stream is open, like a poller while it polls */
    if (rc == 0 && (len == 0 || now - s->touched >= TOUCH_MS)) {
        unsigned t = s->heartbeat_s < 10 ? 10 : s->heartbeat_s;
        for (size_t i = 0; i < s->n; i++)
            lp_presence_touch(s->at[i].room, s->member, s->addr, t);
        s->touched = now;
    }
    return rc;
}

void lp_stream_end(struct lp_conn *c)
{
    if (lp_stream_records(c, NULL, 0, true, true) < 0)
        log_debug("stream %d: web server gone before its end", c->id);
    lp_conn_drop(c);
}
