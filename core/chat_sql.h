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
#include "chat_proto.h"

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
/* sends per group commit: default and ceiling of --batch in both daemons */
#define CHAT_BATCH_DEFAULT 256
#define CHAT_BATCH_LIMIT 10000

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
 * before it, ascending: seq, event, and the room's horizon in every row
 * (a room without messages there: one row, seq and event NULL; see
 * chat_history_horizon). */
#define CHAT_SQL_HISTORY                                                                           \
    "SELECT s.seq, s.j, r.horizon FROM (SELECT horizon FROM rooms WHERE name = $1) r "             \
    "LEFT JOIN LATERAL (SELECT seq, chat_row_json(m) AS j "                                        \
    "FROM messages m WHERE room = $1 AND ($2::bigint = 0 OR seq < $2::bigint) "                    \
    "ORDER BY seq DESC LIMIT $3::int) s ON true ORDER BY s.seq"

/* The messages of a CHAT_SQL_HISTORY result (rows with a seq) into msgs
 * (cap entries, borrowed from res); *horizon: the room's horizon when
 * nothing older than this page is left (history starts there: retention
 * removed what was below), else -1. Returns how many. */
size_t chat_history_rows(const PGresult *res, struct chat_str *msgs, size_t cap, int64_t *horizon);

/* The messages of a page answer: "history" as chat_history_rows, "search"
 * (CHAT_SQL_SEARCH: the text in column 1, no horizon: -1). */
size_t chat_page_rows(const char *op, const PGresult *res, struct chat_str *msgs, size_t cap,
                      int64_t *horizon);

/* $1 room, $2 actor, $3 seq, $4 "edit"|"delete", $5 text (NULL for a
 * delete), $6 cid (NULL: none), $7 moderator, $8 the author's window in
 * seconds (chat_change_params): one row, seq, ts, dup, err, message
 * (chat_change_answer). */
#define CHAT_SQL_CHANGE                                                                            \
    "SELECT seq, ts, dup, err, message FROM chat_change($1, $2, $3::bigint, $4, $5, $6, "          \
    "$7::boolean, make_interval(secs => $8::int))"

/* Moderators, in their location's namespace ($6, $3, $1: "" the shared
 * one; sql/006). $1 user ("" none), $2 addr ("" none), $3 seconds (0:
 * until lifted), $4 by, $5 reason: the ban's id (announced on chat_admin). */
#define CHAT_SQL_BAN                                                                               \
    "SELECT chat_ban(nullif($1, ''), nullif($2, '')::inet, CASE WHEN $3::int = 0 THEN NULL "       \
    "ELSE make_interval(secs => $3::int) END, $4, $5, $6)"
/* $1 id, $2 by: whether an active ban of the namespace was lifted. */
#define CHAT_SQL_UNBAN "SELECT chat_unban($1::bigint, $2, $3)"
/* The namespace's active bans as a JSON array, oldest first. */
#define CHAT_SQL_BANS_LIST                                                                         \
    "SELECT coalesce(json_agg(json_build_object('id', id, 'user', target, 'addr', abbrev(addr), "  \
    "'created', chat_ts(created), 'until', chat_ts(until), 'by', by, 'reason', reason) "           \
    "ORDER BY id), '[]')::text FROM chat_bans_active WHERE chat_ban_ours(ns, $1)"

/* $1 room, $2 query (web-search syntax), $3 before (0: the newest), $4
 * limit: the matching messages' current events below before, the newest
 * limit of them, in ascending order like history: seq, event. */
#define CHAT_SQL_SEARCH                                                                            \
    "SELECT seq, line FROM chat_search($1, $2, nullif($3::bigint, 0), $4::int) ORDER BY seq"

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

/* chat_change (edit or delete, sql/003_moderation.sql): the parameters of
 * CHAT_SQL_CHANGE from a parsed CHAT_OP_EDIT or CHAT_OP_DELETE request
 * (its strings are NUL-terminated: jansson's) and the location's policy.
 * params point into r, actor and a; valid while they are. */
struct chat_change_params {
    char seq[24], window[16];
    const char *params[8];
};
struct chat_policy;
void chat_change_params(struct chat_change_params *a, const struct chat_request *r,
                        const char *actor, const struct chat_policy *p);

/* One mapping of chat_change's answer for both transports: CHAT_OK with
 * *out (seq and ts of the change row; ts borrowed from res), or the error
 * the client gets (not_found, forbidden, too_late, bad_request) with *why
 * (borrowed from res, or static). A result that is not chat_change's
 * (an error, no row) is CHAT_E_UNAVAILABLE. */
enum chat_err chat_change_answer(const PGresult *res, struct chat_post_ack *out, const char **why);

/* The statement (CHAT_SQL_BAN, CHAT_SQL_UNBAN or CHAT_SQL_BANS_LIST) and
 * its parameters for a parsed ban, unban or bans request made by moderator
 * by in namespace ns ("" the shared one); params point into r, by, ns and a. */
struct chat_ban_params {
    char num[24];
    const char *sql;
    int n;
    const char *params[6];
};
void chat_ban_params(struct chat_ban_params *a, const struct chat_request *r, const char *by,
                     const char *ns);

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
