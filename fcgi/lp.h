/* lp: what the threads of the long-poll worker (chat-fcgi) share. The
 * process runs N acceptor threads (lp_accept.c), one listener thread that
 * owns every parked poll (lp_listener.c) and one writer thread that owns
 * every database write (lp_writer.c); docs/longpoll.md tells the design.
 * Everything here is set up by lp_main.c before the threads start. */
#ifndef LP_H
#define LP_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_addr.h"
#include "chat_db.h"
#include "chat_policy.h"
#include "chat_proto.h"
#include "chat_valid.h"
#include "lp_query.h"

#define LP_MAX_ROOMS 20                    /* rooms per poll */
#define LP_BODY_MAX (80 * 1024)            /* request body bytes */
#define LP_QUERY_MAX 4096                  /* query string bytes */
#define LP_BACKLOG 50                      /* messages of a room given without ":N" */
#define LP_RESPONSE_SOFT_MAX (1024 * 1024) /* no more events once a poll answer is this big */
#define LP_SEND_QUEUE_MAX 10000            /* sends waiting for the writer */
#define LP_MAX_PARKED_DEFAULT 15000
#define LP_RATE_TABLE_DEFAULT 65536 /* rate-limit entries (32 bytes each) */
/* all guests of one address share buckets this many times a client's: a
 * guest names itself, and a new name per request must not buy a new budget */
#define LP_GUEST_ADDR_FACTOR_DEFAULT 10
/* guest names new to the rate table that one address may bring a minute
 * (burst as many): a NAT's guests keep theirs, a name per request stops */
#define LP_MAX_GUESTS_PER_ADDR_DEFAULT 100

/* ---- process-wide settings and state (lp_main.c) ----------------------- */

struct lp_config {
    const char *db;            /* libpq conninfo; "" = PG* environment */
    const char *listen;        /* socket path or [host]:port; NULL = fd 0 (spawn-fcgi) */
    const char *ws_health;     /* the WebSocket daemon's socket, for /health; may be NULL */
    int threads;               /* acceptor threads */
    int workers;               /* processes sharing the socket (--workers) */
    int max_parked;            /* parked polls; beyond: 503 */
    int max_parked_per_addr;   /* parked polls of one address; beyond: 503; 0: no bound */
    int max_presence_per_addr; /* presence entries of one address; beyond: not shown online */
    /* token buckets (lp_accept.c, docs/longpoll.md "Rate limits"); rate 0: off */
    double send_rate, send_burst; /* sends per second per client */
    double req_rate, req_burst;   /* requests (poll, send, typing, history) */
    double guest_addr_factor;     /* > 0: all guests of one address share buckets this
                                   * many times larger, too; 0: off */
    int max_guests_per_addr;      /* new guest names per address a minute; 0: no bound */
    int rate_table;               /* entries of the bucket table */
    int db_timeout;               /* ms a query may take (lp_db_exec) */
    int batch_max;                /* sends per group commit (lp_writer.c) */
    char node[128];               /* presence node name: fcgi-<host>-<pid>-<random> */

    /* --metrics-dir; NULL: beside the socket (chat_metrics.h) */
    const char *metrics_dir;
};

extern atomic_bool lp_stopping;   /* SIGTERM seen */
extern atomic_int lp_parked;      /* polls handed to the listener, not yet answered */
extern atomic_uint lp_listen_gen; /* bumped whenever the listener (re)starts LISTEN */
extern atomic_bool lp_listen_up;  /* the listener's connection is up */

/* ---- one FastCGI connection (lp_fcgi.c) --------------------------------- */

/* A request whose input has been read whole. The thread holding it owns
 * the connection until an lp_reply* call answers and closes it (or
 * lp_conn_drop closes it unanswered). */
struct lp_conn {
    int fd;
    int id; /* FastCGI request id */
};

/* Writes the answer as FastCGI records (STDOUT, end of STDOUT,
 * END_REQUEST) and closes the connection. body may be NULL when len is 0.
 * status 204 gets neither Content-Type nor Content-Length. Returns 0, or
 * -1 when the web server had gone (the connection is closed either way). */
int lp_reply(struct lp_conn *c, int status, const char *body, size_t len);
/* The error object of docs/protocol.md with the status of its code. */
int lp_reply_error(struct lp_conn *c, enum chat_err code, const char *message);
/* Same object with another status (404, 405, 415, 500). */
int lp_reply_error_status(struct lp_conn *c, int status, enum chat_err code, const char *message);
void lp_conn_drop(struct lp_conn *c);
/* A streamed answer (lp_sse.c, lp_stream.c): writes data (the header block
 * first, then SSE bytes) as STDOUT records, and with end the end of STDOUT
 * and END_REQUEST too; the connection stays open either way (lp_conn_drop
 * closes it). wait: blocking with a 5 s send timeout (acceptors); else one
 * non-blocking send that must take everything (the listener never waits on
 * a slow reader). 0, or -1 when not all was written. */
int lp_stream_records(struct lp_conn *c, const char *data, size_t len, bool end, bool wait);

enum lp_endpoint {
    LP_EP_UNKNOWN = 0,
    LP_EP_POLL,
    LP_EP_SEND,
    LP_EP_HISTORY,
    LP_EP_TYPING,
    LP_EP_HEALTH,
    LP_EP_EVENTS, /* GET events: Server-Sent Events (lp_sse.c) */
    LP_EP_BASIC,  /* basic/...: the HTML mode without JavaScript (lp_basic.c) */
    LP_EP_EDIT,   /* POST edit (moderation) */
    LP_EP_DELETE, /* POST delete (moderation) */
    LP_EP_BAN,    /* POST ban (moderators) */
    LP_EP_UNBAN,  /* POST unban (moderators) */
    LP_EP_BANS,   /* GET bans (moderators) */
    LP_EP_SEARCH, /* GET search */
    /* GET metrics: Prometheus text (lp_metrics.c), where nginx passes CHAT_ADMIN on */
    LP_EP_METRICS,
};

/* Everything an acceptor needs of one request, copied out of libfcgi so
 * that the request can be freed before it is answered. */
struct lp_req {
    struct lp_conn conn;
    enum lp_endpoint ep;
    bool get, post;
    struct chat_policy policy;
    char addr[CHAT_ADDR_MAX + 1]; /* REMOTE_ADDR as nginx passed it; "" when none */
    const char *policy_err;       /* non-NULL: nginx passed a bad CHAT_* value */
    /* GET events (lp_sse.c): the Accept and Last-Event-ID headers */
    bool accept_sse;          /* Accept names text/event-stream */
    char last_event_id[1024]; /* "" when none */
    bool last_event_id_too_long;
    /* basic/... (lp_basic.c): the page, and what a form check needs */
    char basic_page[16]; /* after "basic/": "", "room", "post"; "?" other */
    char base[128];      /* DOCUMENT_URI up to and with "basic/" */
    bool form;           /* Content-Type application/x-www-form-urlencoded */
    char cookie[1024], origin[256], referer[512], host[256];
    /* cross-site requests (lp_req_cross_site): what nginx says the site is
     * ($chat_scheme, $http_host, $server_name, $server_addr), $chat_origins,
     * and what the browser sent */
    char scheme[8], site_host[256], server_name[256], server_addr[64], origins[1024];
    char fetch_site[16]; /* Sec-Fetch-Site; "" when none */
    bool xreq;           /* an X-Chat-Request header (the shipped clients send it) */
    char query[LP_QUERY_MAX + 1];
    size_t query_len;
    bool query_too_long;
    bool json;  /* Content-Type is application/json */
    char *body; /* malloc'd, NUL-terminated; NULL when none */
    size_t body_len;
    bool body_too_large;
    bool body_short; /* fewer bytes than CONTENT_LENGTH */

    /* nginx passed CHAT_ADMIN on: health details, metrics (lp_health.c) */
    bool admin;
    /* nginx passed CHAT_HEALTH_WS on: it reached chat_ws's /health first */
    bool ws_checked;
};

struct FCGX_Request;
/* Copies the request out of libfcgi (params, policy, query, body read to
 * the end of stdin) and frees libfcgi's part of it (FCGX_Free without
 * closing): from here on only r->conn ties it to the web server. */
void lp_req_read(struct FCGX_Request *fr, struct lp_req *r);
void lp_req_free(struct lp_req *r);
/* Did a page of another site make this request (docs/protocol.md,
 * "Cross-site requests")? true when the browser sent an Origin that is
 * neither the site (core/chat_origin.h) nor in $chat_origins, or no Origin
 * and Sec-Fetch-Site says cross-site or same-site. */
bool lp_req_cross_site(const struct lp_req *r);

/* ---- database helpers (lp_db.c) ----------------------------------------- */

/* Connects with a 3 s timeout; NULL (and err) on failure. Blocking. */
/* The conninfo to use (the configuration, for the life of the process). */
void lp_db_init(const struct lp_config *cfg);
PGconn *lp_db_connect(const char *what, char *err, size_t errlen);
/* The same, given up after ms (for /health, which answers within a
 * second): the first host that does not answer in time is "unreachable". */
PGconn *lp_db_connect_within(const char *what, int ms, char *err, size_t errlen);
/* PQexecParams with a deadline (--db-timeout; _within: ms). NULL when the
 * connection is broken or the deadline passed: then the connection has
 * been broken on purpose (PQstatus CONNECTION_BAD: drop it and reconnect;
 * never cancelled, docs/ha.md) and the statement may or may not have run.
 * Otherwise the result (caller PQclears; it may be an error result). */
PGresult *lp_db_exec(PGconn *c, const char *sql, int n, const char *const *vals);
PGresult *lp_db_exec_within(PGconn *c, const char *sql, int n, const char *const *vals, int ms);
extern atomic_ulong lp_db_timeouts; /* statements past their deadline (lp_state.c) */
extern atomic_ulong lp_resets;      /* polls answered reset (lp_state.c) */
/* lp_db_query within ms in all (connect included), without a retry. */
PGresult *lp_db_query_within(PGconn **conn, const char *what, const char *sql, int n,
                             const char *const *vals, int ms);
/* Runs a read-only statement; on a broken connection reconnects once and
 * retries. *conn may be NULL (connects first). NULL when the database is
 * unreachable (logged); otherwise the result (caller PQclears; it may be an
 * error result). */
PGresult *lp_db_query(PGconn **conn, const char *what, const char *sql, int n,
                      const char *const *vals);
bool lp_db_ok(const PGresult *res); /* tuples or command ok */
/* s on one line (newlines and tabs folded) in buf, for the log. */
const char *lp_db_msg(const char *s, char *buf, size_t cap);
/* The error of res (or of conn when res is NULL or has none) on one line,
 * in a buffer of the calling thread valid until its next call. */
const char *lp_pgerr(const PGresult *res, const PGconn *conn);

/* SELECT seq, chat_row_json(m) of room past seq after, ascending, limit rows. */

/* ---- bans (lp_bans.c, core/chat_bans.h) ---------------------------------- */

/* Listener: loads the active bans over db. 0, or -1 (logged; list kept). */
int lp_bans_reload(PGconn *db);
/* Is who (may be NULL) or addr banned now? */
bool lp_bans_match(const char *who, const char *addr);
/* The 403 "banned" body for who/addr (malloc'd), or NULL when not banned. */
char *lp_bans_answer(const char *who, const char *addr, size_t *len);
/* Acceptors: answers 403 "banned" and returns true when who (may be NULL:
 * the address alone) or r's address is banned. */
bool lp_bans_refuse(struct lp_req *r, const char *who);
void lp_bans_free(void);

/* ---- the listener: parked polls (lp_listener.c) ------------------------- */

struct lp_poll;

/* A poll to park: member (who polls; for typing self-filter and bans), addr
 * (REMOTE_ADDR, for bans), its rooms and
 * cursors (all >= 0), how long it may wait. gen: lp_listen_gen read before
 * the acceptor looked at the table or at lp_seqcache; how: what it saw.
 * NULL when out of memory. */
enum lp_checked {
    LP_CHECKED_TABLE = 0, /* the acceptor read the table: nothing past the cursors */
    LP_CHECKED_CACHE,     /* lp_seqcache covered every cursor */
    LP_CHECKED_NOT,       /* the database could not be asked */
};
struct lp_poll *lp_poll_new(const struct lp_conn *c, const char *member, const char *addr,
                            const struct lp_cursor *rooms, size_t n, unsigned timeout_s,
                            unsigned gen, enum lp_checked how);
void lp_poll_free(struct lp_poll *p);

/* Hands p (and its connection) to the listener, which answers it. 0, or -1
 * when the listener is not running (p is still the caller's). The caller
 * has counted it in lp_parked. */
int lp_listener_park(struct lp_poll *p);
int lp_listener_start(void);
void lp_listener_stop(void); /* answers every parked poll with events: [] and joins */

/* ---- what the listener vouches for (lp_seqcache.c) --------------------- */

/* Listener: room's threshold p under LISTEN generation gen (see the file). */
void lp_seqcache_put(const char *room, int64_t p, unsigned gen);
/* Acceptors: true when a poll at cursor may park without reading the table. */
bool lp_seqcache_covers(const char *room, int64_t cursor, unsigned gen);

/* ---- the writer: sends, presence, heartbeats (lp_writer.c) -------------- */

struct lp_send {
    struct lp_send *next;
    struct lp_conn conn;
    struct chat_request req; /* owned: text, cid, ref point into it */
    char room[CHAT_ROOM_KEY_MAX + 1];
    char sender[CHAT_SENDER_MAX + 1];
};

/* Queues a validated send; the writer answers it (ack after commit, or 503).
 * 0, or -1 when the queue is full or the writer is stopping (s is still the
 * caller's). */
int lp_writer_submit(struct lp_send *s);
/* Sends waiting for the writer (not counting a batch in flight), for /health. */
size_t lp_writer_queued(void);
void lp_send_free(struct lp_send *s);
int lp_writer_start(const struct lp_config *cfg); /* cfg: for the life of the process */
void lp_writer_stop(void);                        /* drains the queue, node down, joins */

/* ---- presence of long-poll users (lp_presence.c) ------------------------ */

int lp_presence_init(const struct lp_config *cfg);
void lp_presence_free(void);
/* member polled room: online now, offline 2 * timeout_s after its last poll. */
void lp_presence_touch(const char *room, const char *member, const char *addr, unsigned timeout_s);
/* Writer thread: sends due transitions (one chat_presence call) and users
 * seen. 0, or -1 on a database error (nothing is lost: retried later). */
int lp_presence_flush(PGconn *db);
/* After a (re)connect, or when the node row was reaped: the next flush
 * sends this node's whole view with chat_presence_sync(), as chat-ws does
 * (one policy: docs/architecture.md, "Presence"). */
void lp_presence_resync(void);
/* This process's own members of room now (present by their last poll,
 * announced to the database or not yet): *names new (chat_members_free),
 * none when the room has more here than CHAT_MEMBERS_MAX (a list would
 * not show them all: the database's answer alone then). 0, or -1 out of
 * memory. */
int lp_presence_members(const char *room, const char ***names, size_t *n);
/* Members this node holds online right now (for /health). */
size_t lp_presence_count(void);

/* ---- what one client address holds (lp_addr.c) --------------------------- */

#define LP_MAX_PARKED_PER_ADDR_DEFAULT 1000   /* polls and streams of one address */
#define LP_MAX_PRESENCE_PER_ADDR_DEFAULT 5000 /* (room, member) entries of one address */
#define LP_PRESENCE_PAIRS_MAX 200000          /* (room, member) pairs tracked (lp_presence.c) */

enum lp_addr_kind { LP_ADDR_PARKED = 0, LP_ADDR_PRESENCE, LP_ADDR_KINDS };

int lp_addr_init(const struct lp_config *cfg); /* 0, or -1 out of memory */
void lp_addr_free(void);
/* One more of kind for addr (REMOTE_ADDR, counted by chat_addr_group: an
 * IPv6 address by its /64): true when within its bound (then counted),
 * false when the address holds its maximum already (counted as refused).
 * Never true uncounted while the bound is on: give undoes exactly a take. */
bool lp_addr_take(const char *addr, enum lp_addr_kind kind);
void lp_addr_give(const char *addr, enum lp_addr_kind kind); /* undoes one take */
unsigned long lp_addr_refused(enum lp_addr_kind kind);
/* A parked poll or stream: --max-parked and the address's bound. 0, -1
 * when the process is full, -2 when the address is (nothing taken then). */
int lp_park_take(const char *addr);
void lp_park_give(const char *addr); /* when it is answered or dropped */

/* ---- members of a room, read lately (lp_members.c) ------------------------ */

#define LP_MEMBERS_TTL_MS 1000 /* presence reaches the database once a second */

/* The members array (JSON, malloc'd) and count of room read less than
 * LP_MEMBERS_TTL_MS ago by any thread, or NULL: then the caller reads it
 * and puts it (another thread that asks meanwhile waits for that answer,
 * up to half a second). A presence change heard drops the list
 * (lp_members_changed), so it is as fresh as the database. */
char *lp_members_get(const char *room, size_t *count);
void lp_members_put(const char *room, size_t count, const char *json); /* what was read */
/* A presence line of room was heard: its list is read again when asked. */
void lp_members_changed(const char *room);
void lp_members_free(void);

/* ---- health (lp_health.c) and the acceptors (lp_accept.c) --------------- */

/* Allocates the rate-limit table (nothing when both rates are 0). 0, or -1
 * out of memory. The table lives as long as the process. */
int lp_rate_init(const struct lp_config *cfg);
/* Takes a request token (and a send token when send) of the client: who is
 * the speaker ("alice", "~bob", or "" for a guest without a name) at
 * r->addr. true when granted; false when refused, having answered 429
 * rate_limited (nothing is taken then; a guest name new to the table and
 * past its address's --max-guests-per-addr is refused so too). */
bool lp_rate_admit(struct lp_req *r, const char *who, bool send);
/* Requests refused with 429 since start (for /health). */
unsigned long lp_rate_refused(void);

void lp_health_init(const struct lp_config *cfg);
void lp_health(struct lp_req *r, PGconn **db);
void lp_metrics_init(const struct lp_config *cfg);
void lp_metrics(struct lp_req *r);
/* GET poll (lp_poll.c): answers at once or parks the poll. */
void lp_poll_init(const struct lp_config *cfg);
void lp_poll_handle(struct lp_req *r, PGconn **db);

/* What GET poll and GET events share (lp_poll.c): the rooms asked, the
 * cursors reached, and the events read so far, separated by sep. */
struct lp_poll_ctx {
    struct lp_cursor rooms[LP_MAX_ROOMS]; /* seq: as asked (-1: none) */
    int64_t cursor[LP_MAX_ROOMS];         /* seq: as answered */
    int64_t horizon[LP_MAX_ROOMS];        /* > 0: the cursor was below the room's horizon */
    bool jumped;                          /* some cursor was: answer at once */
    size_t n;
    bool backlog; /* a room without ":N" */
    char member[CHAT_SENDER_MAX + 1];
    unsigned timeout;
    char sep; /* between events: ',' (poll) or '\n' (events); 0 is ',' */
    struct chat_sbuf events;
};
/* rooms, name, timeout of the query; 0, or -1 with the error answered. */
int lp_poll_parse(struct lp_req *r, struct lp_poll_ctx *c);
/* Reads every room past its cursor. 0, or -1 when the database cannot be asked. */
int lp_poll_read(PGconn **db, struct lp_poll_ctx *c);
/* {"room":{"members":[...],"count":N},...} of the rooms without ":N"; malloc'd or NULL. */
char *lp_poll_members(PGconn **db, struct lp_poll_ctx *c);
/* --max-parked: polls and streams one process holds */
int lp_poll_max_parked(void);
int lp_poll_workers(void); /* --workers */
/* Every cursor at or past what the listener vouches for (lp_seqcache.c). */
bool lp_poll_covered(const struct lp_poll_ctx *c, unsigned gen);

/* ---- Server-Sent Events (lp_sse.c: the acceptor's side; lp_stream.c: a
 * stream's state and bytes, used by the acceptor and the listener) ------- */

#define LP_SSE_HEARTBEAT_DEFAULT 15 /* seconds between heartbeat comments */
#define LP_SSE_HEARTBEAT_MAX 300

void lp_sse_handle(struct lp_req *r, PGconn **db);
/* basic/: the HTML pages and the form post (lp_basic.c). */
void lp_basic_handle(struct lp_req *r, PGconn **db);

struct lp_stream;
/* A stream of member over rooms (cursors: what the client has). NULL out of memory. */
struct lp_stream *lp_stream_new(const char *member, const char *addr, const struct lp_cursor *rooms,
                                size_t n, unsigned heartbeat_s);
void lp_stream_free(struct lp_stream *s);
/* The acceptor's read reached cursor[i] of each room (nothing to send before). */
void lp_stream_reached(struct lp_stream *s, const int64_t *cursor);
int64_t lp_stream_heartbeat_ms(const struct lp_stream *s);
/* Appends events (JSON lines joined by "\n") to out as SSE: one event per
 * line, a message carrying the full cursor list after it as its id
 * ("lobby:13,dev:4"), which moves the stream's cursors; a message at or
 * below its room's cursor is dropped. 0, or -1 out of memory. */
int lp_stream_format(struct lp_stream *s, struct chat_sbuf *out, const char *events, size_t len);
/* The cursor list "room:seq,..." (NUL-terminated) into out. */
int lp_stream_cursor(const struct lp_stream *s, struct chat_sbuf *out);
/* Listener: sends the round's events (or, with none, a heartbeat comment),
 * refreshes the member's presence when due. 0, or -1: drop the stream
 * (gone, or too slow to take it at once: the client resumes by its id). */
int lp_stream_flush(struct lp_stream *s, struct lp_conn *c, const char *events, size_t len);
/* Ends the response (end of STDOUT, END_REQUEST) and closes the connection. */
void lp_stream_end(struct lp_conn *c);
/* Listener: p streams (freed with it); it is answered with SSE and parked again. */
void lp_poll_set_stream(struct lp_poll *p, struct lp_stream *s);
void *lp_acceptor_main(void *arg); /* arg: struct lp_acceptor */

struct lp_acceptor {
    int index;
    int listen_sock;
};

#endif
