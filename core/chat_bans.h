/* chat_bans: the active bans as each process keeps them (docs/moderation.md
 * "Bans and kicks"). A process loads the whole list (CHAT_SQL_BANS) when
 * it connects and again on every ban or unban announced on channel
 * chat_admin, and answers "is this user or address banned?" from memory:
 * no query per join, send or poll, and the same answer on both doors.
 * Also the parser of chat_admin lines. */
#ifndef CHAT_BANS_H
#define CHAT_BANS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_addr.h"
#include "chat_ns.h"
#include "chat_valid.h"

#define CHAT_ADMIN_CHANNEL "chat_admin"
#define CHAT_SQL_LISTEN_ADMIN "LISTEN " CHAT_ADMIN_CHANNEL
#define CHAT_BAN_REASON_MAX 1000

/* A ban's namespace when it stops users of every namespace (chatctl's). */
#define CHAT_BAN_EVERY_NS "*"

/* id, target ("" none), addr (host/bits, "" none), until in ms since the
 * epoch (0: until lifted), until (protocol ts, "" none), reason, namespace
 * ("" the shared one, CHAT_BAN_EVERY_NS every one; sql/006). */
#define CHAT_SQL_BANS                                                                              \
    "SELECT id, coalesce(target, ''), coalesce(host(addr) || '/' || masklen(addr), ''), "          \
    "coalesce(floor(extract(epoch FROM until) * 1000)::bigint, 0), coalesce(chat_ts(until), ''), " \
    "reason, coalesce(ns, '" CHAT_BAN_EVERY_NS "') FROM chat_bans_active ORDER BY id"

struct chat_ban {
    int64_t id;
    char target[CHAT_SENDER_MAX + 1]; /* "" : an address ban only */
    int family;                       /* 0: no address, 4 or 6 */
    unsigned char net[16];
    int bits;
    int64_t until_ms; /* 0: until lifted */
    char until[40];   /* "" when until lifted */
    char reason[CHAT_BAN_REASON_MAX + 1];
    char ns[CHAT_NS_MAX + 1]; /* whose users it stops: a namespace, or CHAT_BAN_EVERY_NS */
};

struct chat_bans {
    struct chat_ban *v;
    size_t n;
};

/* Replaces b's list with the rows of a CHAT_SQL_BANS result. 0, or -1
 * (out of memory, not that result): b is left as it was. */
int chat_bans_load(struct chat_bans *b, const PGresult *res);
void chat_bans_free(struct chat_bans *b);

/* The ban that stops user (may be NULL or "") from addr (may be NULL or
 * "", an address as nginx's $remote_addr writes it; an IPv4 address in
 * IPv6 clothes counts as IPv4) in namespace ns (NULL or "": the shared
 * one) at now_ms, or NULL. */
const struct chat_ban *chat_bans_match(const struct chat_bans *b, const char *user,
                                       const char *addr, const char *ns, int64_t now_ms);

/* A line of channel chat_admin: {"op":"ban"|"unban"|"kick",...}. */
enum chat_admin_op { CHAT_ADMIN_BAD = 0, CHAT_ADMIN_BAN, CHAT_ADMIN_UNBAN, CHAT_ADMIN_KICK };
/* user: the kicked user for a kick (a valid name), else "". */
enum chat_admin_op chat_admin_parse(const char *line, size_t len, char user[CHAT_SENDER_MAX + 1]);

#endif
