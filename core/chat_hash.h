/* chat_hash: the one string hash of both daemons (64-bit FNV-1a), for
 * their hash tables (rooms, presence pairs, the seq cache) and keyed
 * slots (rate limits, the typing throttle). Not for anything a peer could
 * use against us beyond longer chains: tables that peers fill are seeded
 * (chat_hash_more from a random start). */
#ifndef CHAT_HASH_H
#define CHAT_HASH_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_HASH_INIT                                                                             \
    14695981039346656037ULL /* the FNV-1a offset basis (the old copies had lost its last digit) */

/* Continues h over s[0..len). */
static inline uint64_t chat_hash_more(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* Continues h over the NUL-terminated s, then a separator byte (so that
 * ("ab", "c") and ("a", "bc") differ). */
static inline uint64_t chat_hash_field(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (h ^ 0xff) * 1099511628211ULL;
}

static inline uint64_t chat_hash(const char *s, size_t len)
{
    return chat_hash_more(CHAT_HASH_INIT, s, len);
}

#endif
