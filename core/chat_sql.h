/* chat_sql: every statement both daemons send to PostgreSQL, by name, and
 * the numbers they must agree on. The texts live here once (grep finds
 * each in C only here); what a daemon alone sends stays with it (chat-ws:
 * the room load and join backlog in module/ws_room.c; chat-fcgi: the
 * first poll's read in fcgi/lp_poll.c and its node check in
 * fcgi/lp_writer.c). The functions they call are in sql/. */
#ifndef CHAT_SQL_H
#define CHAT_SQL_H

#include <stdbool.h>
#include <stdint.h>

#include "chat_db.h"

#define CHAT_STR_(x) #x
#define CHAT_STR(x) CHAT_STR_(x)

/* ---- shared numbers ---- */

#define CHAT_CHANNEL "chat"
/* PostgreSQL's NOTIFY payload limit; chat_post() sends a hint line for a
 * message whose line would not fit (sql/001_init.sql). */
#define CHAT_NOTIFY_MAX 8000
/* Members listed in a joined/members answer (the count is exact). */
#define CHAT_MEMBERS_MAX 1000
/* Messages replayed to a join or poll without a cursor. */
#define CHAT_BACKLOG_DEFAULT 50
/* A node whose last beat is older than this is reaped by the others. */
#define CHAT_NODE_REAP_S 30
/* Rows per catch-up read; a full page asks for the next one. */
#define CHAT_CATCHUP_PAGE 500

/* ---- statements ---- */

#define CHAT_SQL_LISTEN "LISTEN " CHAT_CHANNEL

/* $1 a line (chat_encode_typing): sent to every process. */
#define CHAT_SQL_NOTIFY "SELECT pg_notify('" CHAT_CHANNEL "', $1)"

/* $1..$4 rooms, senders, texts, cids (chat_post_args): one row per send,
 * in input order: idx, seq, ts, dup (chat_post_answer). */
#define CHAT_SQL_POST                                                                              \
    "SELECT idx, seq, ts, dup FROM chat_post($1::text[], $2::text[], $3::text[], $4::text[]) "     \
    "ORDER BY idx"

/* $1 room, $2 after, $3 page: the message events past after, ascending:
 * seq, event. */
/* A room's last seq (0 for a room not created yet): loading a room, and
 * checking a cursor that may be past it (chat_cursor.h VERIFY). */
#define CHAT_SQL_ROOM_SEQ "SELECT coalesce((SELECT last_seq FROM rooms WHERE name = $1), 0)"
#define CHAT_SQL_CATCHUP                                                                           \
    "SELECT seq, chat_row_json(m) FROM messages m "                                                \
    "WHERE room = $1 AND seq > $2::bigint ORDER BY seq LIMIT $3::int"

/* $1 room, $2 before (0: the newest), $3 limit: the page of message events
 * before it, ascending: seq, event. */
#define CHAT_SQL_HISTORY                                                                           \
    "SELECT seq, j FROM (SELECT seq, chat_row_json(m) AS j "                                       \
    "FROM messages m WHERE room = $1 AND ($2::bigint = 0 OR seq < $2::bigint) "                    \
    "ORDER BY seq DESC LIMIT $3::int) s ORDER BY seq"

/* $1 room: count, members (a JSON array of names, sorted, capped). */
#define CHAT_SQL_MEMBERS "SELECT count, members FROM chat_members($1)"

/* $1 node, $2..$4 rooms, members, online (chat_presence_args). */
#define CHAT_SQL_PRESENCE "SELECT chat_presence($1, $2::text[], $3::text[], $4::boolean[])"
/* $1 node, $2..$3 rooms, members: the node's whole view, after a
 * reconnect (chat_presence_args, online unused). */
#define CHAT_SQL_PRESENCE_SYNC "SELECT chat_presence_sync($1, $2::text[], $3::text[])"

/* $1..$2 names, authenticated (chat_seen_args). */
#define CHAT_SQL_USERS_SEEN "SELECT chat_users_seen($1::text[], $2::boolean[])"

/* $1 node, $2 kind ("ws", "fcgi"), $3 pid. */
#define CHAT_SQL_NODE_UP "SELECT chat_node_up($1, $2, $3::int)"
/* $1 node: reaps the nodes silent for CHAT_NODE_REAP_S; then whether this
 * node's own row still exists (false: it was reaped, announce again). */
#define CHAT_SQL_NODE_BEAT                                                                         \
    "SELECT chat_node_beat($1, interval '" CHAT_STR(                                               \
        CHAT_NODE_REAP_S) " seconds'), "                                                           \
                          "EXISTS (SELECT 1 FROM nodes WHERE node = $1)"
#define CHAT_SQL_NODE_DOWN "SELECT chat_node_down($1)"

#define CHAT_SQL_SCHEMA_VERSION "SELECT coalesce(max(version), 0) FROM schema_migrations"

/* ---- array parameters and answers ----
 * Each *_args is built element by element (0, or -1 out of memory: the
 * caller drops the call), closed by *_end, which points params at the
 * statement's parameters (valid until *_free). A zeroed struct is empty. */

/* chat_post: one element per send, in arrival order (a room's order). */
struct chat_post_args {
    struct chat_sbuf room, sender, text, cid;
    size_t n;
};
/* cid NULL: none (never deduplicated). */
int chat_post_args_add(struct chat_post_args *a, const char *room, const char *sender,
                       const char *text, size_t text_len, const char *cid, size_t cid_len);
int chat_post_args_end(struct chat_post_args *a, const char *params[4]);
void chat_post_args_free(struct chat_post_args *a);

struct chat_post_ack {
    int64_t seq;
    const char *ts; /* protocol format; borrowed from the result */
    bool dup;       /* (room, sender, cid) was stored before: its seq and ts */
};
/* The answer for send k (0-based) of a CHAT_SQL_POST result: 0, or -1
 * when the result has no row for it (the send was not stored). */
int chat_post_answer(const PGresult *res, size_t k, struct chat_post_ack *out);

/* What a chat_post that failed as a whole means for its n sends (one
 * policy for both transports, docs/architecture.md "Group commit"):
 *   SPLIT        n > 1 and the database answered: post them again one by
 *                one, so that one send it refuses sinks no other;
 *   REJECTED     a lone send refused as data (SQLSTATE class 22 or 23):
 *                bad_request, do not retry;
 *   UNAVAILABLE  the connection or the server failed: unavailable,
 *                nothing stored, retry with the same cid.
 * connected: the connection is still up; sqlstate may be NULL. */
enum chat_post_fail {
    CHAT_POST_SPLIT = 1,
    CHAT_POST_REJECTED,
    CHAT_POST_UNAVAILABLE,
};
enum chat_post_fail chat_post_failed(size_t n, bool connected, const char *sqlstate);

/* chat_presence / chat_presence_sync: (room, member) pairs; online is
 * what the member became (unused by the sync, which sends the whole view). */
struct chat_presence_args {
    struct chat_sbuf room, member, online;
    size_t n;
};
int chat_presence_args_add(struct chat_presence_args *a, const char *room, const char *member,
                           bool online);
int chat_presence_args_end(struct chat_presence_args *a, const char *node, const char *params[4]);
void chat_presence_args_free(struct chat_presence_args *a);

/* chat_users_seen: who connected or left, and whether nginx authenticated
 * them (guests are "~name"). */
struct chat_seen_args {
    struct chat_sbuf name, auth;
    size_t n;
};
int chat_seen_args_add(struct chat_seen_args *a, const char *name, bool authenticated);
int chat_seen_args_end(struct chat_seen_args *a, const char *params[2]);
void chat_seen_args_free(struct chat_seen_args *a);

#endif
