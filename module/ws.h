/* ws: internals of the WebSocket daemon, shared by its files:
 *   ws_main.c   options, worker processes, signals
 *   ws_conn.c   connections: handshake, frames in, outbox out, timers, limits
 *   ws_chat.c   the chat protocol: requests, replies, group-committed sends
 *   ws_room.c   rooms: subscribers, fan-out, NOTIFY, catch-up, presence
 * One ws_server per worker process, single-threaded, in one ev loop. */
#ifndef WS_H
#define WS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chat_bans.h"
#include "chat_policy.h"
#include "chat_proto.h"
#include "chat_typing.h"
#include "ev.h"
#include "pg.h"
#include "ws_frame.h"

struct ws_config {
    const char *db;               /* libpq conninfo ("" = PG* environment) */
    const char *listen;           /* "unix:/path" or "host:port" */
    int workers;                  /* processes sharing the socket */
    bool echo;                    /* conformance mode: echo, no database */
    int heartbeat;                /* seconds between server pings */
    int message_timeout;          /* seconds a started client message may take (1008) */
    size_t max_conns;             /* per process; 503 before upgrade past it */
    size_t max_per_addr;          /* per client address (X-Chat-Addr) per process; 0: none */
    int handshake_timeout;        /* ms for the request head */
    size_t max_message;           /* bytes of one client message (1009) */
    size_t outbox_max;            /* bytes queued to one client (1008) */
    int max_rooms;                /* joined rooms per connection */
    size_t max_rooms_per_addr;    /* joined rooms of one address's connections; 0: none */
    double send_rate, send_burst; /* token bucket for send, per connection */
    double req_rate, req_burst;   /* token bucket for every request */
    int backlog_max;              /* messages replayed on join */
    int batch_max;                /* sends per group commit */
    int db_timeout;               /* ms a query may take before its connection is dropped */
};

/* A complete server frame (header + payload), shared by every outbox it is
 * queued to: encode once, send many. */
struct ws_buf {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
};

struct ws_buf *ws_buf_frame(int opcode, const void *payload, size_t len); /* refs = 1 */
static inline struct ws_buf *ws_buf_ref(struct ws_buf *b)
{
    b->refs++;
    return b;
}
void ws_buf_unref(struct ws_buf *b);

/* A ring of frames waiting in an outbox. */
struct ws_ring {
    struct ws_buf **v;
    uint32_t head, count, cap;
};

enum ws_conn_state { WS_HANDSHAKE, WS_OPEN, WS_CLOSING, WS_DEAD };

struct ws_sub;
struct ws_server;
struct ws_addr_count;

/* Requests of one connection waiting for the database (history, search,
 * members, sends, edits...) before it stops parsing more: with pages cut
 * to half the outbox, a connection holds at most --outbox plus this many
 * half-outboxes of replies. */
#define WS_INFLIGHT_MAX 4

struct ws_conn {
    struct ws_server *srv;
    struct ev_io io;
    struct ev_timer timer;        /* handshake deadline, then heartbeat, then close wait */
    struct ev_timer msg_timer;    /* a started message's deadline (--message-timeout) */
    struct ws_conn *prev, *next;  /* srv->conns */
    struct ws_conn *pending_next; /* srv->pending (output to flush) */
    struct ws_conn *reap_next;    /* srv->reap */
    uint64_t id;
    uint32_t refs; /* async operations holding it; freed at 0 once dead;
                      no request is parsed while WS_INFLIGHT_MAX are */
    uint8_t state; /* enum ws_conn_state */
    bool pending;  /* on srv->pending */
    bool close_sent, close_received;
    bool full;     /* accepted past --max-conns: answered 503 */
    bool chatting; /* opened in chat mode: leaves its rooms when reaped */
    bool paused;   /* outbox over its bound: not reading */
    bool counted;  /* counted in srv->addrs under addr */
    bool linger;   /* failed (or answered before the upgrade): input drained, not parsed */
    bool shut;     /* lingering: our side shut down, waiting for the peer's FIN */
    size_t drained;
    int64_t msg_since; /* ms: a client message has been arriving since; 0: none */
    /* input read but not yet parsed: held while the connection is stalled
     * (outbox over its bound, or WS_INFLIGHT_MAX requests at the database);
     * at most one read buffer */
    uint8_t *in;
    size_t in_len;
    uint8_t missed_pongs;
    /* handshake bytes, freed once open */
    char *hs;
    size_t hs_len, hs_cap;
    struct ws_reader rd;
    /* outbox: cur is partly written; urgent (replies, control) go ahead of
     * fan-out frames not yet started */
    struct ws_buf *cur;
    uint32_t cur_off;
    struct ws_ring urgent, normal;
    size_t out_bytes;
    size_t held_bytes; /* fan-out frames held for joins in progress (ws_room.c) */
    /* chat */
    char user[CHAT_SENDER_MAX + 1]; /* "alice" or "~bob" */
    bool authenticated;
    char addr[CHAT_ADDR_MAX + 1];     /* X-Chat-Addr (nginx's $remote_addr); "" when none */
    const struct chat_policy *policy; /* shared, see ws_policy_intern */
    struct ws_sub *subs;
    int nsubs;
    double send_tokens, req_tokens;
    int64_t tokens_at;
};

struct ws_room;

/* What the connection layer calls in the layer above it (wslay's callback
 * shape): ws_conn.c knows nothing of the chat, ws_chat.c registers these.
 * In --echo mode open, message and closed are not called. */
struct ws_handlers {
    void (*open)(struct ws_conn *c); /* after the 101: hello */
    void (*message)(struct ws_conn *c, const char *text, size_t len);
    void (*closed)(struct ws_conn *c); /* leaving every room, once, when reaped */
    /* GET /health: the body in out, returns the HTTP status (200, or 503
     * when the database is down) */
    int (*health)(struct ws_server *srv, char *out, size_t size);
};

/* What one worker tells the others (shared memory, one slot per worker,
 * set up by the parent before forking): its connections, so that a full
 * worker stops taking new ones while another has room. */
struct ws_peer {
    int pid;       /* 0: free; a dead worker's slot is taken over */
    uint32_t full; /* at --max-conns */
    int64_t at;    /* ms, chat_now_ms(): a slot not updated for a while is not trusted */
};

struct ws_server {
    const struct ws_handlers *h;
    struct ws_config cfg;
    struct ev_loop *loop;
    int listen_fd;
    struct ev_io listen_io;
    struct ev_timer accept_pause; /* out of file descriptors: retry soon */
    bool accepting;
    bool listening;             /* the listening socket is in epoll */
    bool accept_paused;         /* out of file descriptors: accept_pause runs */
    struct ws_peer *peers, *me; /* NULL with one worker */
    int npeers;
    struct ev_timer balance;      /* refreshes *me, re-decides whether to accept */
    struct chat_typing typing;    /* one typing event per (room, sender) a second */
    struct ws_conn *conns;        /* doubly linked */
    struct ws_addr_count **addrs; /* open connections per client address */
    size_t addr_buckets;
    uint64_t addr_seed;
    size_t nconns;
    uint64_t next_id;
    struct ws_conn *pending, *reap;
    uint8_t *rbuf; /* shared read buffer */
    size_t rbuf_size;
    struct ev_timer tick; /* 1 s: presence, users seen, node beat */
    /* database */
    struct pg *bus;    /* LISTEN chat, nothing else: notifications never wait */
    struct pg *reader; /* joins, catch-up, history, members, presence, typing */
    struct pg *writer; /* group-committed sends */
    char node[96];
    /* rooms (ws_room.c) */
    struct ws_room **rooms;
    size_t nrooms, room_buckets;
    /* group commit (ws_chat.c) */
    struct ws_send *send_head, *send_tail;
    size_t nsends;
    bool writer_busy;
    /* active bans (core/chat_bans.h), reloaded on every ban and unban */
    struct chat_bans bans;
    /* users seen, flushed by tick */
    json_t *seen_names, *seen_auth;
    /* counters for /health and logs */
    uint64_t stat_msgs_in, stat_frames_out, stat_commits;
    uint64_t stat_resets; /* rooms found gone back in time */
};

/* ---- ws_conn.c ---- */
int ws_server_listen(struct ws_server *srv);
void ws_server_before_sleep(struct ev_loop *loop, void *data);
void ws_server_shutdown(struct ws_server *srv); /* close every client with 1001 */
/* Queues a frame (takes its own reference). Urgent: a reply or control
 * frame, goes ahead of queued fan-out. A fan-out frame that would push the
 * outbox past outbox_max closes the connection with 1008 instead. */
void ws_conn_queue(struct ws_conn *c, struct ws_buf *b, bool urgent);
/* Frames and queues a text reply; takes ownership of json (malloc'd). */
void ws_conn_reply(struct ws_conn *c, char *json, const size_t *len);
void ws_conn_error(struct ws_conn *c, enum chat_err code, const char *message, const json_t *ref);
void ws_conn_close(struct ws_conn *c, unsigned code, const char *reason);
static inline bool ws_conn_alive(const struct ws_conn *c)
{
    return c->state == WS_OPEN;
}
/* One more joined room for c's address (--max-rooms-per-addr, counted by
 * its group like --max-conns-per-addr): 1 counted, 0 not counted (no
 * bound, or no address), -1 when the address holds its maximum. */
int ws_conn_addr_room_take(struct ws_conn *c);
void ws_conn_addr_room_give(struct ws_conn *c); /* undoes a take that returned 1 */
void ws_conn_ref(struct ws_conn *c);
void ws_conn_unref(struct ws_conn *c);

/* ---- ws_chat.c ---- */
int ws_chat_init(struct ws_server *srv);
void ws_chat_free(struct ws_server *srv);
/* The chat layer's entries: ws_main puts them in ws_server.h. */
extern const struct ws_handlers ws_chat_handlers;
void ws_chat_tick(struct ws_server *srv);

/* ---- ws_room.c ---- */
struct ws_room *ws_room_get(struct ws_server *srv, const char *name, bool create);
void ws_room_join(struct ws_conn *c, const char *room, int64_t since, const json_t *ref);
void ws_room_leave(struct ws_conn *c, const char *room, const json_t *ref);
void ws_room_leave_all(struct ws_conn *c);
bool ws_room_joined(struct ws_conn *c, const char *room);
/* Answers a members request: from the room's remembered list, or the one
 * query in flight for the room (shared by every request meanwhile), with
 * this process's own members added. */
void ws_room_members(struct ws_conn *c, const char *room, const json_t *ref);
void ws_room_notify(struct ws_server *srv, const char *payload, size_t len);
void ws_room_bus_up(struct ws_server *srv);
void ws_room_bus_down(struct ws_server *srv);
void ws_room_tick(struct ws_server *srv);
void ws_room_free_all(struct ws_server *srv);

#endif
