/* chat_utf8: incremental, fail-fast UTF-8 validation (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF). Fed in pieces of any
 * size, it reports an error at the first byte that can no longer start or
 * continue a valid sequence, as RFC 6455 section 8.1 asks of endpoints. */
#ifndef CHAT_UTF8_H
#define CHAT_UTF8_H

#include <stddef.h>
#include <stdint.h>

enum {
    CHAT_UTF8_OK = 0,         /* valid, and ends on a code point boundary */
    CHAT_UTF8_INCOMPLETE = 1, /* valid so far, ends inside a code point */
    CHAT_UTF8_BAD = -1,       /* invalid; stays bad until re-initialized */
};

struct chat_utf8 {
    uint32_t state; /* private */
};

void chat_utf8_init(struct chat_utf8 *v);

/* Feed len bytes; returns CHAT_UTF8_OK, CHAT_UTF8_INCOMPLETE or
 * CHAT_UTF8_BAD. If bad_at is not NULL and the result is BAD, *bad_at is
 * the index within p of the first offending byte. */
int chat_utf8_feed(struct chat_utf8 *v, const uint8_t *p, size_t len, size_t *bad_at);

/* One shot: 1 when p[0..len) is complete valid UTF-8, else 0. */
int chat_utf8_valid(const uint8_t *p, size_t len);

#endif
