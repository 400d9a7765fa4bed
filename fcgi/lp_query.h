/* lp_query: the query strings of the long-poll endpoints, parsed in place.
 * (buf, len) in, no allocation, no NUL terminator needed, so a fuzzer can
 * feed any bytes. Values are percent-decoded ("+" is a space) into the
 * caller's buffer; the cursor list of /poll ("lobby:12,dev:0,general") is
 * split and validated into the caller's array. */
#ifndef LP_QUERY_H
#define LP_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "chat_ns.h"
#include "chat_valid.h"

#include "chat_http.h"

enum {
    LP_CURSOR_TOO_MANY = -3 /* more rooms than the caller allows */
};

struct lp_cursor {
    char room[CHAT_ROOM_KEY_MAX + 1]; /* valid room name, NUL-terminated (lp_poll
                                       * makes it the room's key, chat_ns.h) */
    int64_t seq;                      /* position in the room; -1 when not given */
};

/* Parses a decoded cursor list: entries "room" or "room:N" (N >= 0)
 * separated by ","; each room at most once. Returns the number of entries
 * written to out (1..max), CHAT_QUERY_BAD (empty list or entry, bad room
 * name or number, a room twice) or LP_CURSOR_TOO_MANY. */
int lp_cursor_parse(const char *s, size_t len, struct lp_cursor *out, size_t max);

/* The value of cookie name in a Cookie header ("a=1; b=2"), copied into
 * out (NUL-terminated, not decoded). Only values of printable ASCII without
 * space, quote, comma, semicolon or backslash are taken. Returns its
 * length, CHAT_QUERY_ABSENT, or CHAT_QUERY_BAD (a bad value, or longer than
 * cap - 1). The first cookie of that name wins. */
int lp_cookie_get(const char *s, size_t len, const char *name, char *out, size_t cap);

#endif
