/* lp_rooms: the listener's rooms (private to lp_listener.c and lp_rooms.c).
 * Per room: the polls waiting on it, the highest seq heard of, and the news
 * of the current round (NOTIFY lines), applied to the waiters once per
 * round by lp_rooms_wake(). Listener thread only. */
#ifndef LP_ROOMS_H
#define LP_ROOMS_H

#include "lp.h"

enum lp_poll_state {
    LP_POLL_NEW = 0, /* built by an acceptor, maybe in the hand-off queue */
    LP_POLL_PARKED,  /* in its rooms, the deadline heap and epoll */
    LP_POLL_READY,   /* has its answer; answered at the end of the round */
    LP_POLL_DONE,
};

struct lp_room;

struct lp_wait { /* one room of one parked poll */
    struct lp_poll *poll;
    struct lp_room *room; /* NULL until linked */
    struct lp_wait *prev, *next;
    int64_t cursor;
    bool need_read;
    bool suspect; /* this round: heard a message at or below its cursor, or a
                   * reconnect (chat_cursor.h) */
    int64_t low;  /* the lowest such message's seq (0: none) */
    char name[CHAT_ROOM_KEY_MAX + 1];
};

struct lp_poll {
    struct lp_poll *next;       /* hand-off queue */
    struct lp_poll *ready_next; /* the round's ready list */
    struct lp_conn conn;
    enum lp_poll_state state;
    char member[CHAT_SENDER_MAX + 1];
    char addr[CHAT_ADDR_MAX + 1]; /* REMOTE_ADDR, for bans */
    int64_t deadline;             /* chat_now_ms() */
    size_t heap_i;
    unsigned gen;
    enum lp_checked how;
    struct chat_sbuf events;  /* the answer's events, comma-separated ("\n" for a stream) */
    struct lp_stream *stream; /* GET events: answered as SSE and parked again; else NULL */
    size_t n;
    struct lp_wait w[];
};

/* What the rooms ask of the listener thread, given at init (the rooms do
 * not call lp_listener.c by name). */
struct lp_rooms_ops {
    void (*mark_ready)(struct lp_poll *p);              /* has its answer: answer it this round */
    PGresult *(*read)(const char *room, int64_t after); /* CHAT_SQL_CATCHUP; NULL: not now */
    int64_t (*last_seq)(const char *room);              /* CHAT_SQL_ROOM_SEQ; -1: not now */
};
int lp_rooms_init(const struct lp_rooms_ops *ops);
void lp_rooms_free(void);
enum lp_link {
    LP_LINK_PLAIN = 0, /* wake it if the room is known past its cursor */
    LP_LINK_READ,      /* read the table for its room this round, whatever is known */
    LP_LINK_ESTABLISH, /* the acceptor read nothing past its cursor in this LISTEN
                          generation: the cursor is a threshold for lp_seqcache */
};
/* Links w into its room's waiters. 0, or -1 out of memory. */
int lp_rooms_link(struct lp_wait *w, enum lp_link mode);
void lp_rooms_unlink(struct lp_wait *w); /* no-op when not linked */
/* One NOTIFY payload of channel 'chat' (lines of JSON). */
void lp_rooms_news(const char *payload, size_t len);
/* Applies the round's news: polls with something to say are marked ready. */
void lp_rooms_wake(void);
/* After a reconnect: read the table for every room with waiters, each
 * cursor suspect (the database may have gone back in time meanwhile). */
void lp_rooms_check_all(void);
/* Forgets idle rooms without waiters (every ~10 s). */
void lp_rooms_sweep(int64_t now);

#endif
