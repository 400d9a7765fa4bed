/* chat_http: small HTTP pieces both front doors share. Query strings are
 * parsed in place: (buf, len) in, no allocation, no NUL terminator needed,
 * values percent-decoded ("+" is a space) into the caller's buffer. */
#ifndef CHAT_HTTP_H
#define CHAT_HTTP_H

#include <stddef.h>
#include <stdint.h>

enum {
    CHAT_QUERY_ABSENT = -1, /* no such name in the query string */
    CHAT_QUERY_BAD = -2,    /* bad %-escape, NUL byte, or longer than the buffer */
};

/* Percent-decodes in[0..len) into out (cap bytes, cap >= 1; a NUL is
 * added). Returns the decoded length, or CHAT_QUERY_BAD for a bad escape, a
 * decoded NUL byte, or a value that does not fit in cap - 1 bytes. */
int chat_query_decode(const char *in, size_t len, char *out, size_t cap);

/* Decodes the value of the first pair named name (compared after decoding
 * the pair's name) into out, as chat_query_decode. A pair without "=" has
 * an empty value; pairs whose name cannot decode to name (by length) are
 * skipped unparsed. Returns the value's length, CHAT_QUERY_ABSENT or
 * CHAT_QUERY_BAD (bad value, or a bad escape in a name that was decoded). */
int chat_query_get(const char *qs, size_t len, const char *name, char *out, size_t cap);

/* Whole of s[0..len) as a decimal integer in [min, max] (digits only, an
 * optional leading "-" when min < 0): 0 and *out, or -1. */
int chat_query_int(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

/* The standard reason phrase of an HTTP status ("Bad Request"), or
 * "Unknown". */
const char *chat_http_reason(int status);

#endif
