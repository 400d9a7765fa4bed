/* chat_cursor: the per-room delivery rule of invariant 3 ("NOTIFY is a
 * hint, the table is the truth"), as one small state machine both daemons
 * drive. A cursor is a position in one room: every message <= seq was
 * delivered, none past it. For each thing heard (a NOTIFY line, a row of a
 * catch-up read, the end of a read, a reconnect) it answers what to do:
 *   DELIVER  this message is the next one: deliver it, then call
 *            chat_cursor_delivered();
 *   CATCHUP  read the table from seq (SELECT ... WHERE seq > c->seq);
 *   HOLD     not loaded yet: remembered in target, read once loaded;
 *   DROP     nothing to do (old, duplicate, or already asked for);
 *   VERIFY   read the room's rooms.last_seq, then chat_cursor_verified();
 *   RESET    the database went back in time (restored from a backup, an
 *            asynchronous standby promoted): the room's messages past
 *            c->seq (the new, lower cursor) may differ from those already
 *            delivered. Tell the subscribers ({"op":"reset","seq":c->seq}),
 *            then read past c->seq when c->target > c->seq.
 * A process that had delivered up to D and finds the room's last_seq below
 * D must not drop the room's next messages as duplicates: a whole message
 * line at or below the cursor, and every reconnect, make the cursor
 * suspect; a catch-up read that then finds nothing past the cursor asks
 * for last_seq (VERIFY). The reset point is the lower of last_seq and one
 * below the lowest such line: lower than needed only costs a re-read.
 * chat-ws keeps one cursor per room it serves (module/ws_room.c); chat-fcgi
 * runs one per parked poll and room, each round (fcgi/lp_rooms.c). No I/O,
 * no allocation. */
#ifndef CHAT_CURSOR_H
#define CHAT_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum chat_step {
    CHAT_STEP_DROP = 0,
    CHAT_STEP_DELIVER,
    CHAT_STEP_CATCHUP,
    CHAT_STEP_HOLD,
    CHAT_STEP_VERIFY,
    CHAT_STEP_RESET,
};

struct chat_cursor {
    int64_t seq;    /* delivered up to here (valid once loaded) */
    int64_t target; /* the highest seq heard of */
    int64_t asked;  /* target when the last catch-up was sent */
    bool loaded;
    bool suspect; /* a line at or below seq, or a reconnect: check last_seq */
    int64_t low;  /* the lowest such line's seq (0: none) */
};

/* A cursor already at seq (chat-fcgi: a poll's cursor), loaded. */
static inline struct chat_cursor chat_cursor_at(int64_t seq, int64_t target)
{
    struct chat_cursor c = {seq, target > seq ? target : seq, 0, true, false, 0};
    return c;
}

/* The room's position is known (rooms.last_seq): CATCHUP when something
 * past it was heard meanwhile, else DROP. */
enum chat_step chat_cursor_load(struct chat_cursor *c, int64_t seq);

/* A msg (whole) or hint line of seq for this room. */
enum chat_step chat_cursor_heard(struct chat_cursor *c, bool whole, int64_t seq);

/* The caller delivered message seq. */
void chat_cursor_delivered(struct chat_cursor *c, int64_t seq);

/* A catch-up read from c->seq is sent now. */
void chat_cursor_asked(struct chat_cursor *c);

/* One row of a catch-up read (ascending seq): DELIVER when it is past
 * seq (the table is the truth, even where it has holes), else DROP. */
enum chat_step chat_cursor_row(const struct chat_cursor *c, int64_t seq);

/* A catch-up read answered rows of at most page: CATCHUP when it was full
 * or something was heard past seq since it was sent; VERIFY when it found
 * nothing while the cursor is suspect; DROP otherwise. A target heard
 * before the read that the table does not have is forgotten (*bogus set:
 * the caller logs it) instead of asked for forever. */
enum chat_step chat_cursor_read_end(struct chat_cursor *c, size_t rows, size_t page, bool *bogus);

/* PostgreSQL came back: notifications may have been lost meanwhile.
 * CATCHUP when loaded, HOLD when not. */
enum chat_step chat_cursor_reconnected(struct chat_cursor *c);

/* The answer to VERIFY: the room's last_seq now. RESET (c->seq lowered,
 * *reset_to = c->seq) when it is below the cursor; else CATCHUP or DROP as
 * after a read. */
enum chat_step chat_cursor_verified(struct chat_cursor *c, int64_t last_seq, int64_t *reset_to);

#endif
