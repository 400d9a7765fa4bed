/* chat_policy: the per-location policy nginx passes with every request
 * (docs/protocol.md, "Identity and policy"): as X-Chat-* headers to the
 * WebSocket daemon, as CHAT_* fastcgi_params to the FastCGI workers. The
 * values are trusted (only nginx reaches the backends) but still checked:
 * a bad value is an admin error, reported, never guessed around. */
#ifndef CHAT_POLICY_H
#define CHAT_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "chat_ns.h"
#include "chat_valid.h"

#define CHAT_ROOMS_SPEC_MAX 1024 /* bytes of the allowed-rooms list */
#define CHAT_POLL_TIMEOUT_DEFAULT 25
#define CHAT_POLL_TIMEOUT_MAX 300
#define CHAT_EDIT_WINDOW_DEFAULT 900  /* seconds an author may edit or delete */
#define CHAT_EDIT_WINDOW_MAX 31536000 /* a year */

enum chat_policy_key {
    CHAT_POLICY_USER = 0,     /* X-Chat-User      CHAT_USER */
    CHAT_POLICY_GUESTS,       /* X-Chat-Guests    CHAT_GUESTS   on|off */
    CHAT_POLICY_ROOMS,        /* X-Chat-Rooms     CHAT_ROOMS */
    CHAT_POLICY_READONLY,     /* X-Chat-Readonly  CHAT_READONLY on|off */
    CHAT_POLICY_MAX_TEXT,     /* X-Chat-Max-Text  CHAT_MAX_TEXT 1..CHAT_TEXT_HARD_MAX */
    CHAT_POLICY_POLL_TIMEOUT, /* (none)           CHAT_POLL_TIMEOUT 1..CHAT_POLL_TIMEOUT_MAX */
    CHAT_POLICY_ROLE,         /* X-Chat-Role      CHAT_ROLE     user|moderator */
    CHAT_POLICY_EDIT_WINDOW,  /* X-Chat-Edit-Window CHAT_EDIT_WINDOW 0..CHAT_EDIT_WINDOW_MAX s */
    CHAT_POLICY_FIRST_ROOM,   /* X-Chat-First-Room CHAT_FIRST_ROOM a room name */
    CHAT_POLICY_NAMESPACE,    /* X-Chat-Namespace CHAT_NAMESPACE a namespace (chat_ns.h) */
    CHAT_POLICY_NKEYS
};

struct chat_policy {
    char user[CHAT_USER_MAX + 1];        /* "" = no authenticated user (guest) */
    bool guests;                         /* default true */
    bool readonly;                       /* default false */
    size_t max_text;                     /* default CHAT_TEXT_DEFAULT */
    unsigned poll_timeout;               /* seconds, default 25 */
    bool moderator;                      /* role moderator: deletes any message; default false */
    unsigned edit_window;                /* seconds an author may edit/delete; default 900 */
    char rooms[CHAT_ROOMS_SPEC_MAX + 1]; /* space-separated patterns, default "*" */
    char first_room[CHAT_ROOM_MAX + 1];  /* the room a client opens first; "" = derived */
    char ns[CHAT_NS_MAX + 1];            /* the rooms' namespace; "" = the shared default */
};

/* Defaults of docs/protocol.md. */
void chat_policy_init(struct chat_policy *p);

/* Whether a and b are the same policy, every field of it (a connection
 * may share another's: chat-ws keeps one copy per distinct policy). */
bool chat_policy_same(const struct chat_policy *a, const struct chat_policy *b);

/* Header name (case-insensitive, e.g. "x-chat-user") or fastcgi param
 * name (exact, e.g. "CHAT_USER") to key; -1 if it is not a policy name. */
int chat_policy_key_from_header(const char *name, size_t len);
int chat_policy_key_from_param(const char *name, size_t len);

/* Sets one value. An empty value for USER means guest; an empty value for
 * any other key leaves the default. Returns 0, or -1 when the value is
 * invalid (bad user name, on/off misspelt, number out of range, rooms list
 * too long or with a bad pattern); then *why (static string) says what. */
int chat_policy_set(struct chat_policy *p, enum chat_policy_key key, const char *v, size_t len,
                    const char **why);

/* Rooms spec: patterns separated by spaces; "name" matches exactly,
 * "prefix*" matches every room starting with prefix, "*" matches all. */
bool chat_policy_room_allowed(const struct chat_policy *p, const char *room, size_t len);

/* The room a client opens first (the page's first room; docs/client.md):
 * $chat_first_room when set and allowed, else "lobby" when allowed, else
 * the first plain name of the rooms list, else the first "prefix*" as
 * prefix + "lobby" (or the prefix alone when that would be too long).
 * Writes a NUL-terminated valid room name to out (size >= CHAT_ROOM_MAX+1). */
void chat_policy_first_room(const struct chat_policy *p, char *out);

/* Resolves who is speaking: the nginx user when set (guest_name ignored),
 * else "~" + guest_name when guests are allowed and guest_name is a valid
 * user name. Writes a NUL-terminated name to out (size >= CHAT_SENDER_MAX+1).
 * Returns 0; -1 when guests are off and no user (HTTP 401); -2 when the
 * guest name is missing or invalid (400 bad_request). */
int chat_policy_identity(const struct chat_policy *p, const char *guest_name, size_t len,
                         char *out);

#endif
