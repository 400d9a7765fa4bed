/* chat_notify: the lines of channel 'chat', as both daemons read them. A
 * NOTIFY payload (and a string_agg of message events) is lines joined by
 * "\n"; each line is one JSON object that PostgreSQL or a daemon rendered:
 *   {"op":"msg","room":R,"seq":N,...}       a whole message event
 *   {"op":"hint","room":R,"seq":N}          message N exists, read the table
 *   {"op":"presence","room":R,...}          global presence transitions
 *   {"op":"typing","room":R,"user":U}       someone types
 * One strictness for both daemons: the head must be exactly ours (op, a
 * valid room, a seq of 1..INT64_MAX without leading zeros, a valid user), and
 * the line must be one whole, balanced JSON object; anything else is
 * CHAT_LINE_BAD (a daemon logs it and ignores it). A line of a room in a
 * namespace (chat_ns.h) is "ns\t" and then the object; the object's room is
 * the room as clients know it (only a hint, which no client sees, may name
 * a whole key instead). (buf, len) in, no allocation, no NUL needed; room
 * (the key) and user are copied out, NUL-terminated; raw is the object. */
#ifndef CHAT_NOTIFY_H
#define CHAT_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chat_ns.h"
#include "chat_valid.h"

enum chat_line_op {
    CHAT_LINE_MSG = 1,
    CHAT_LINE_HINT,
    CHAT_LINE_PRESENCE,
    CHAT_LINE_TYPING,
};

#define CHAT_LINE_BAD (-1)

struct chat_line {
    enum chat_line_op op;
    char room[CHAT_ROOM_KEY_MAX + 1]; /* the room's key (chat_ns.h) */
    int64_t seq;                      /* msg and hint: >= 1; else 0 */
    char user[CHAT_SENDER_MAX + 1];   /* typing: who types; else "" */
    const char *raw;                  /* the whole line (borrowed from the caller's buffer) */
    size_t len;
};

/* Parses one line (no "\n" in it). 0 and *out filled, or CHAT_LINE_BAD. */
int chat_line_parse(const char *p, size_t len, struct chat_line *out);

/* The lines of a newline-joined text: puts the next line in *line, *len
 * and moves *p past it; false when none is left. Empty lines are returned
 * too (and are CHAT_LINE_BAD to the parser). */
static inline bool chat_next_line(const char **p, const char *end, const char **line, size_t *len)
{
    if (*p >= end)
        return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *e = nl ? nl : end;
    *line = *p;
    *len = (size_t)(e - *p);
    *p = e + 1;
    return true;
}

#endif
