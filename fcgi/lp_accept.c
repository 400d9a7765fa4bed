/* lp_accept: the acceptor threads. Each loops on FCGX_Accept_r, copies the
 * request out of libfcgi (lp_req_read) and serves it: history, health and
 * polls with news at once over the thread's own blocking connection; sends
 * go to the writer, polls without news to the listener, and the thread is
 * free for the next request. The typing throttle is applied here; the
 * token buckets of every client are lp_rate.c's. */
#define _GNU_SOURCE
#include "lp.h"

#include <errno.h>
#include <fcgiapp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_typing.h"
#include "chat_hash.h"
#include "chat_log.h"
#include "chat_sys.h"
#include "chat_sql.h"

/* ---- shared helpers ------------------------------------------------------ */

static int query_param(struct lp_req *r, const char *name, char *out, size_t cap)
{
    return chat_query_get(r->query, r->query_len, name, out, cap);
}

/* The speaker: nginx's user, else "~" + the guest name from the body or
 * the query. 0, or answers the error and returns -1. */
static int identity(struct lp_req *r, const char *body_name, size_t body_len, char *out)
{
    char q[CHAT_USER_MAX + 2];
    int n = 0;

    if (body_name == NULL && r->policy.user[0] == '\0') {
        n = query_param(r, "name", q, sizeof(q));
        if (n >= 0) {
            body_name = q;
            body_len = (size_t)n;
        }
    }
    switch (chat_policy_identity(&r->policy, body_name, body_len, out)) {
    case 0:
        return 0;
    case -1:
        lp_reply_error(&r->conn, CHAT_E_UNAUTHORIZED, "guests are not allowed here");
        return -1;
    default:
        lp_reply_error(&r->conn, CHAT_E_BAD_REQUEST,
                       "a guest needs a name: 1-32 of letters, digits, _ . -");
        return -1;
    }
}

/* room: a key of the location's namespace (chat_ns.h). */
static bool room_allowed(struct lp_req *r, const char *room)
{
    room = chat_room_local(room);
    if (chat_policy_room_allowed(&r->policy, room, strlen(room)))
        return true;
    lp_reply_error(&r->conn, CHAT_E_FORBIDDEN, "room not allowed here");
    return false;
}

/* 415, 413 or 400 for a POST body that cannot be a request; 0 when fine. */
static int check_body(struct lp_req *r)
{
    if (!r->json)
        return lp_reply_error_status(&r->conn, 415, CHAT_E_BAD_REQUEST,
                                     "Content-Type must be application/json"),
               -1;
    if (r->body_too_large)
        return lp_reply_error(&r->conn, CHAT_E_TOO_LARGE, "request body too large"), -1;
    if (r->body_short)
        return lp_reply_error(&r->conn, CHAT_E_BAD_REQUEST, "request body cut short"), -1;
    return 0;
}

/* ---- POST send ----------------------------------------------------------- */

/* A POST that writes: a JSON body, on a location that is not read-only.
 * 0, or -1 with the error answered. */
static int check_writable(struct lp_req *r)
{
    if (check_body(r) < 0)
        return -1;
    if (r->policy.readonly) {
        lp_reply_error(&r->conn, CHAT_E_FORBIDDEN, "read-only here");
        return -1;
    }
    return 0;
}

/* What every write of a client goes through, in this order: a writable
 * location, the body as a request of op, who speaks (the nginx user, or
 * the body's guest name), bans, the location's rooms, the rate buckets
 * (a send also spends the send bucket). 0: admitted, q, room and sender
 * filled, the caller frees q; -1: answered and q freed. */
static int admit_write(struct lp_req *r, enum chat_op op, struct chat_request *q,
                       char room[CHAT_ROOM_KEY_MAX + 1], char sender[CHAT_SENDER_MAX + 1])
{
    const char *why;
    enum chat_err e;

    if (check_writable(r) < 0)
        return -1;
    e = chat_request_parse(q, r->body, r->body_len, op, r->policy.max_text, r->policy.ns, &why);
    if (e != CHAT_OK) {
        lp_reply_error(&r->conn, e, why);
        chat_request_free(q);
        return -1;
    }
    json_t *name = json_object_get(q->root, "name");
    memcpy(room, q->key, CHAT_ROOM_KEY_MAX + 1);
    if (identity(r, json_string_value(name), json_string_length(name), sender) == 0 &&
        !lp_bans_refuse(r, sender) && room_allowed(r, room) &&
        lp_rate_admit(r, sender, op != CHAT_OP_TYPING))
        return 0;
    chat_request_free(q);
    return -1;
}

static void handle_send(struct lp_req *r)
{
    struct lp_send *s;

    if ((s = calloc(1, sizeof(*s))) == NULL) {
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
        return;
    }
    s->conn.fd = -1;
    if (admit_write(r, CHAT_OP_SEND, &s->req, s->room, s->sender) == 0) {
        s->conn = r->conn;
        if (lp_writer_submit(s) == 0) {
            r->conn.fd = -1; /* the writer answers it */
            return;
        }
        s->conn.fd = -1;
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "too many sends waiting; retry");
    }
    lp_send_free(s);
}

/* ---- POST edit, POST delete ----------------------------------------------- */

/* One chat_change on the acceptor's own connection: the same statement and
 * the same mapping of its answer as chat-ws (core/chat_sql.h). */
static void handle_change(struct lp_req *r, PGconn **db, enum chat_op op)
{
    char room[CHAT_ROOM_KEY_MAX + 1], sender[CHAT_SENDER_MAX + 1];
    struct chat_change_params a;
    struct chat_request q;
    struct chat_post_ack ack;
    const char *why;
    enum chat_err e;

    if (admit_write(r, op, &q, room, sender) < 0)
        return;
    chat_change_params(&a, &q, sender, &r->policy);
    PGresult *res = lp_db_query(db, "change", CHAT_SQL_CHANGE, 8, a.params);
    if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
        log_error("chat_change failed: %s", PQresultErrorMessage(res));
    e = chat_change_answer(res, &ack, &why);
    if (e != CHAT_OK) {
        lp_reply_error(&r->conn, e, why);
    } else {
        size_t len;
        char *body = chat_encode_ack(room, q.cid.p, ack.seq, ack.ts, NULL, &len);
        if (body)
            lp_reply(&r->conn, 200, body, len);
        else
            lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
        free(body);
    }
    PQclear(res);
    chat_request_free(&q);
}

/* ---- POST ban, POST unban, GET bans (moderators) ---------------------------- */

static void handle_moderate(struct lp_req *r, PGconn **db, enum chat_op op)
{
    char who[CHAT_SENDER_MAX + 1];
    struct chat_ban_params a;
    struct chat_request q;
    const char *why;
    size_t len;
    char *body = NULL;

    memset(&q, 0, sizeof(q));
    q.op = op;
    if (!r->policy.moderator)
        return (void)lp_reply_error(&r->conn, CHAT_E_FORBIDDEN, "moderators only");
    if (identity(r, NULL, 0, who) < 0)
        return;
    if (op != CHAT_OP_BANS) {
        if (check_writable(r) < 0)
            return;
        enum chat_err e = chat_request_parse(&q, r->body, r->body_len, op, 0, NULL, &why);
        if (e != CHAT_OK) {
            lp_reply_error(&r->conn, e, why);
            chat_request_free(&q);
            return;
        }
    }
    chat_ban_params(&a, &q, who, r->policy.ns);
    if (!lp_rate_admit(r, who, op != CHAT_OP_BANS))
        goto out;
    PGresult *res = lp_db_query(db, "moderate", a.sql, a.n, a.params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        log_error("moderation: %s", lp_pgerr(res, *db));
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "database unavailable; retry later");
        PQclear(res);
        goto out;
    }
    const char *v = PQgetvalue(res, 0, 0);
    if (op == CHAT_OP_BANS)
        body = chat_encode_bans(v, (size_t)PQgetlength(res, 0, 0), NULL, &len);
    else if (op == CHAT_OP_UNBAN)
        body = chat_encode_ban("unban", q.seq, v[0] == 't', NULL, &len);
    else
        body = chat_encode_ban("ban", strtoll(v, NULL, 10), -1, NULL, &len);
    PQclear(res);
    if (body)
        lp_reply(&r->conn, 200, body, len);
    else
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
    free(body);
out:
    chat_request_free(&q);
}

/* ---- POST typing ---------------------------------------------------------- */

static pthread_mutex_t typing_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chat_typing typing; /* the one throttle (core/chat_typing.h) */

/* addr: nginx's REMOTE_ADDR; for a guest it is part of the key (a new
 * name per request must not buy a new slot). */
static bool typing_too_soon(const char *room, const char *sender, const char *addr)
{
    pthread_mutex_lock(&typing_lock);
    bool due = chat_typing_due(&typing, room, sender, addr, chat_now_ms());
    pthread_mutex_unlock(&typing_lock);
    return !due;
}

static void handle_typing(struct lp_req *r, PGconn **db)
{
    struct chat_request q;
    char room[CHAT_ROOM_KEY_MAX + 1], sender[CHAT_SENDER_MAX + 1];

    if (admit_write(r, CHAT_OP_TYPING, &q, room, sender) < 0)
        return;
    size_t len;
    char *ev =
        typing_too_soon(room, sender, r->addr) ? NULL : chat_encode_typing(room, sender, &len);
    if (ev) {
        const char *vals[1] = {ev};
        PGresult *res = lp_db_query(db, "typing", CHAT_SQL_NOTIFY, 1, vals);
        if (!res || !lp_db_ok(res))
            log_warn("typing: notify failed");
        PQclear(res);
        free(ev);
    }
    lp_reply(&r->conn, 204, NULL, 0);
    chat_request_free(&q);
}

/* ---- GET history, GET search ---------------------------------------------- */

/* A page of rows (history: chat_history_rows, with the horizon; search:
 * the text of column 1) as one answer of op. */
static void page_answer(struct lp_req *r, const char *op, const char *room, PGresult *res)
{
    int n = PQntuples(res);
    struct chat_str *msgs = calloc((size_t)n + 1, sizeof(*msgs));
    int64_t horizon;
    size_t len;
    char *body = NULL;

    if (msgs) {
        size_t got = chat_page_rows(op, res, msgs, (size_t)n + 1, &horizon);
        body = chat_encode_page(op, room, msgs, got, horizon, NULL, &len);
    }
    if (body)
        lp_reply(&r->conn, 200, body, len);
    else
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
    free(body);
    free(msgs);
}

/* Who reads, for the rate limit: the user, the guest's "~name" when the
 * query gives a valid one, else "" (keyed by address alone). */
static const char *reader(struct lp_req *r, char *out)
{
    char q[CHAT_USER_MAX + 2];
    int n = r->policy.user[0] ? -1 : query_param(r, "name", q, sizeof(q));

    if (chat_policy_identity(&r->policy, n >= 0 ? q : NULL, n >= 0 ? (size_t)n : 0, out) != 0)
        out[0] = '\0';
    return out;
}

/* The query of a page: room (allowed here; its key), before (0: the
 * newest) and limit (1..max) as decimal strings for the statement, then
 * the rate bucket. 0: go on; -1: answered. */
static int page_query(struct lp_req *r, int64_t max, char room[CHAT_ROOM_KEY_MAX + 1],
                      char before_s[24], char limit_s[16])
{
    char num[32], who[CHAT_SENDER_MAX + 1], why[48], name[CHAT_ROOM_MAX + 2];
    int64_t before = 0, limit = CHAT_HISTORY_DEFAULT;
    int n = query_param(r, "room", name, sizeof(name));

    if (n < 0 || chat_room_key(r->policy.ns, name, (size_t)n, room) == 0)
        return lp_reply_error(&r->conn, CHAT_E_BAD_REQUEST, "missing or invalid room"), -1;
    n = query_param(r, "before", num, sizeof(num));
    if (n == CHAT_QUERY_BAD ||
        (n >= 0 && chat_query_int(num, (size_t)n, 1, INT64_MAX, &before) < 0))
        return lp_reply_error(&r->conn, CHAT_E_BAD_REQUEST, "before must be an integer >= 1"), -1;
    n = query_param(r, "limit", num, sizeof(num));
    if (n == CHAT_QUERY_BAD || (n >= 0 && chat_query_int(num, (size_t)n, 1, max, &limit) < 0)) {
        snprintf(why, sizeof(why), "limit must be an integer in 1..%" PRId64, max);
        return lp_reply_error(&r->conn, CHAT_E_BAD_REQUEST, why), -1;
    }
    if (!room_allowed(r, room) || !lp_rate_admit(r, reader(r, who), false))
        return -1;
    snprintf(before_s, 24, "%" PRId64, before);
    snprintf(limit_s, 16, "%" PRId64, limit);
    return 0;
}

static void handle_history(struct lp_req *r, PGconn **db)
{
    char room[CHAT_ROOM_KEY_MAX + 1], before_s[24], limit_s[16];

    if (page_query(r, CHAT_HISTORY_MAX, room, before_s, limit_s) < 0)
        return;
    const char *vals[3] = {room, before_s, limit_s};
    PGresult *res = lp_db_query(db, "history", CHAT_SQL_HISTORY, 3, vals);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "database unavailable; retry later");
    else
        page_answer(r, "history", room, res);
    PQclear(res);
}

static void handle_search(struct lp_req *r, PGconn **db)
{
    char room[CHAT_ROOM_KEY_MAX + 1], q[CHAT_SEARCH_Q_MAX + 2], before_s[24], limit_s[16];
    int n = query_param(r, "q", q, sizeof(q));

    /* the text first: a bad q is a bad request whatever the room */
    if (n < 0 || chat_valid_text(q, (size_t)n, CHAT_SEARCH_Q_MAX) != CHAT_TEXT_OK)
        return (void)lp_reply_error(&r->conn, CHAT_E_BAD_REQUEST, "q must be 1..256 bytes of text");
    if (page_query(r, CHAT_SEARCH_MAX, room, before_s, limit_s) < 0)
        return;
    const char *vals[4] = {room, q, before_s, limit_s};
    PGresult *res = lp_db_query(db, "search", CHAT_SQL_SEARCH, 4, vals);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "database unavailable; retry later");
    else
        page_answer(r, "search", room, res);
    PQclear(res);
}

/* ---- dispatch and the thread ------------------------------------------------ */

/* Another site's page must not act for the user whose credentials the
 * browser attaches (docs/protocol.md, "Cross-site requests"): a foreign
 * Origin, or Sec-Fetch-Site cross-site without one (an <img>), is refused
 * on every endpoint before any bucket or presence is touched; every GET
 * (poll, history, search, bans) also needs the X-Chat-Request header,
 * which a cross-site page cannot send without a CORS preflight (the POSTs
 * need application/json, which is the same). GET events cannot carry a
 * header (EventSource): the Origin and Sec-Fetch-Site rule is what guards
 * it; health and the basic HTML pages are answered before this. true when
 * answered. */
static bool refuse_cross_site(struct lp_req *r)
{
    if (lp_req_cross_site(r)) {
        log_debug("refused a cross-site request (Origin \"%s\", Sec-Fetch-Site \"%s\")", r->origin,
                  r->fetch_site);
        lp_reply_error(&r->conn, CHAT_E_FORBIDDEN, "cross-site request refused");
        return true;
    }
    if (r->get && r->ep != LP_EP_EVENTS && !r->xreq) {
        lp_reply_error(&r->conn, CHAT_E_FORBIDDEN,
                       "this request needs the X-Chat-Request header (cross-site requests are "
                       "refused)");
        return true;
    }
    return false;
}

static void dispatch(struct lp_req *r, PGconn **db)
{
    if (r->policy_err)
        return (void)lp_reply_error_status(&r->conn, 500, CHAT_E_UNAVAILABLE,
                                           "server misconfigured (see its log)");
    if (r->ep == LP_EP_UNKNOWN)
        return (void)lp_reply_error_status(&r->conn, 404, CHAT_E_BAD_REQUEST, "no such endpoint");
    if (r->ep == LP_EP_BASIC) /* the HTML mode: pages and a form (lp_basic.c) */
        return lp_basic_handle(r, db);
    bool want_post = r->ep == LP_EP_SEND || r->ep == LP_EP_TYPING || r->ep == LP_EP_EDIT ||
                     r->ep == LP_EP_DELETE || r->ep == LP_EP_BAN || r->ep == LP_EP_UNBAN;
    if ((want_post && !r->post) || (!want_post && !r->get))
        return (void)lp_reply_error_status(&r->conn, 405, CHAT_E_BAD_REQUEST,
                                           want_post ? "use POST" : "use GET");
    if (r->ep == LP_EP_HEALTH)
        return lp_health(r, db);
    if (r->ep == LP_EP_METRICS)
        return lp_metrics(r);
    if (r->policy.user[0] == '\0' && !r->policy.guests)
        return (void)lp_reply_error(&r->conn, CHAT_E_UNAUTHORIZED, "guests are not allowed here");
    if (r->query_too_long)
        return (void)lp_reply_error(&r->conn, CHAT_E_BAD_REQUEST, "query string too long");
    if (refuse_cross_site(r))
        return;
    switch (r->ep) {
    case LP_EP_POLL:
        lp_poll_handle(r, db);
        break;
    case LP_EP_SEND:
        handle_send(r);
        break;
    case LP_EP_HISTORY:
        handle_history(r, db);
        break;
    case LP_EP_EVENTS: /* Server-Sent Events (lp_sse.c) */
        lp_sse_handle(r, db);
        break;
    case LP_EP_EDIT:
        handle_change(r, db, CHAT_OP_EDIT);
        break;
    case LP_EP_DELETE:
        handle_change(r, db, CHAT_OP_DELETE);
        break;
    case LP_EP_BAN:
        handle_moderate(r, db, CHAT_OP_BAN);
        break;
    case LP_EP_UNBAN:
        handle_moderate(r, db, CHAT_OP_UNBAN);
        break;
    case LP_EP_BANS:
        handle_moderate(r, db, CHAT_OP_BANS);
        break;
    case LP_EP_SEARCH:
        handle_search(r, db);
        break;
    default:
        handle_typing(r, db);
        break;
    }
}

/* --workers: the processes share one listening socket and the kernel hands
 * a connection to whichever thread waits in accept(), so a process at
 * --max-parked would go on taking connections (and answering 503) while
 * another had room. So a thread waits in accept() only while the parked
 * polls plus the threads waiting there or serving what they accepted stay
 * below --max-parked;
 * otherwise it leaves the connections to the other processes, and takes
 * one only when it has been pending for FULL_WAIT_MS (nobody took it: every
 * process is full, or busy), then answers it (503 if it must park). One
 * process alone never holds back. */
#define FULL_WAIT_MS 100

static pthread_mutex_t seat_lock = PTHREAD_MUTEX_INITIALIZER;
static int in_accept; /* threads in accept() or serving what it gave (--workers > 1) */

/* Connections pending at every look for FULL_WAIT_MS: the queue never
 * emptied, so nobody took the one that was there. A listening socket does
 * not say which connection waits, so two looks 100 ms apart would also
 * see one that another process took followed by a new one; looking every
 * FULL_LOOK_MS sees the queue empty in between unless they follow each
 * other that closely (then every process is busy anyway). */
#define FULL_LOOK_MS 5

static bool pending_unclaimed(int listen_sock)
{
    struct pollfd pf = {.fd = listen_sock, .events = POLLIN};

    if (poll(&pf, 1, FULL_WAIT_MS) != 1)
        return false;
    for (int waited = 0; waited < FULL_WAIT_MS; waited += FULL_LOOK_MS) {
        struct timespec ts = {0, FULL_LOOK_MS * 1000000L};
        nanosleep(&ts, NULL);
        pf.revents = 0;
        if (poll(&pf, 1, 0) != 1)
            return false;
    }
    return true;
}

static void take_seat(int listen_sock)
{
    if (lp_poll_workers() <= 1)
        return;
    for (;;) {
        pthread_mutex_lock(&seat_lock);
        bool room = atomic_load(&lp_parked) + in_accept < lp_poll_max_parked();
        if (room || atomic_load(&lp_stopping)) {
            in_accept++;
            pthread_mutex_unlock(&seat_lock);
            return;
        }
        pthread_mutex_unlock(&seat_lock);
        if (pending_unclaimed(listen_sock)) {
            pthread_mutex_lock(&seat_lock);
            in_accept++;
            pthread_mutex_unlock(&seat_lock);
            return;
        }
    }
}

static void leave_seat(void)
{
    if (lp_poll_workers() <= 1)
        return;
    pthread_mutex_lock(&seat_lock);
    in_accept--;
    pthread_mutex_unlock(&seat_lock);
}

void *lp_acceptor_main(void *arg)
{
    struct lp_acceptor *a = arg;
    FCGX_Request *fr = calloc(1, sizeof(*fr));
    struct lp_req *r = malloc(sizeof(*r));
    PGconn *db = NULL;
    sigset_t wake;

    if (fr == NULL || r == NULL) {
        log_error("acceptor %d: out of memory at start", a->index);
        goto out;
    }
    sigemptyset(&wake);
    sigaddset(&wake, SIGUSR1);
    /* lp_main.c installed a no-op SIGUSR1 handler without SA_RESTART: the
     * signal interrupts accept() at shutdown */
    pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
    while (!atomic_load(&lp_stopping)) {
        take_seat(a->listen_sock);
        FCGX_InitRequest(fr, a->listen_sock, FCGI_FAIL_ACCEPT_ON_INTR);
        int rc = FCGX_Accept_r(fr);
        if (rc < 0) {
            leave_seat();
            if (atomic_load(&lp_stopping))
                break;
            if (rc != -EINTR) {
                log_error("acceptor %d: accept failed: %s", a->index, strerror(-rc));
                struct timespec ts = {0, 100 * 1000000};
                nanosleep(&ts, NULL); /* EMFILE and friends: do not spin */
            }
            continue;
        }
        lp_req_read(fr, r);
        dispatch(r, &db);
        lp_req_free(r);
        leave_seat(); /* counted until here: what it accepted may have parked */
    }
out:
    PQfinish(db);
    free(fr);
    free(r);
    return NULL;
}
