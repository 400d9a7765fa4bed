/* lp_query: the query strings of the long-poll endpoints, parsed in place.
 * (buf, len) in, no allocation, no NUL terminator needed, so a fuzzer can
 * feed any bytes. Values are percent-decoded ("+" is a space) into the
 * caller's buffer; the cursor list of /poll ("lobby:12,dev:0,general") is
 * split and validated into the caller's array. */
#ifndef LP_QUERY_H
#define LP_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "chat_valid.h"

enum {
    LP_QUERY_ABSENT = -1,   /* no such name in the query string */
    LP_QUERY_BAD = -2,      /* bad %-escape, NUL byte, or longer than the buffer */
    LP_CURSOR_TOO_MANY = -3 /* more rooms than the caller allows */
};

/* Percent-decodes in[0..len) into out (cap bytes, cap >= 1; a NUL is
 * added). Returns the decoded length, or LP_QUERY_BAD for a bad escape, a
 * decoded NUL byte, or a value that does not fit in cap - 1 bytes. */
int lp_query_decode(const char *in, size_t len, char *out, size_t cap);

/* Decodes the value of the first pair named name (compared after decoding
 * the pair's name) into out, as lp_query_decode. A pair without "=" has an
 * empty value; pairs whose name cannot decode to name (by length) are
 * skipped unparsed. Returns the value's length, LP_QUERY_ABSENT or
 * LP_QUERY_BAD (bad value, or a bad escape in a name that was decoded). */
int lp_query_get(const char *qs, size_t len, const char *name, char *out, size_t cap);

/* Whole of s[0..len) as a decimal integer in [min, max] (digits only, an
 * optional leading "-" when min < 0): 0 and *out, or -1. */
int lp_query_int(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

struct lp_cursor {
    char room[CHAT_ROOM_MAX + 1]; /* valid room name, NUL-terminated */
    int64_t seq;                  /* position in the room; -1 when not given */
};

/* Parses a decoded cursor list: entries "room" or "room:N" (N >= 0)
 * separated by ","; each room at most once. Returns the number of entries
 * written to out (1..max), LP_QUERY_BAD (empty list or entry, bad room
 * name or number, a room twice) or LP_CURSOR_TOO_MANY. */
int lp_cursor_parse(const char *s, size_t len, struct lp_cursor *out, size_t max);

#endif
