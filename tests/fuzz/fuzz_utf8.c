/* libFuzzer target for chat_utf8: the input fed in one piece, byte at a
 * time and in pseudo-random pieces must give the same verdict and the same
 * first bad byte, and agree with an independent reference that reasons
 * about the code point interval a partial sequence can still reach.
 * Any disagreement aborts. */
#include <stdint.h>
#include <stdlib.h>

#include "chat_utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds data in pieces of the given sizes (cycled); returns the final
 * verdict and the absolute index of the bad byte. */
static int feed_pieces(const uint8_t *data, size_t size, uint32_t seed, size_t max_piece,
                       size_t *bad_abs)
{
    struct chat_utf8 v;
    size_t off = 0, at;
    int r = CHAT_UTF8_OK;

    chat_utf8_init(&v);
    while (off < size) {
        size_t n = 1;

        if (max_piece > 1) {
            seed = seed * 1103515245u + 12345u;
            n = (seed >> 16) % max_piece; /* zero-length pieces too */
        }
        if (n > size - off)
            n = size - off;
        r = chat_utf8_feed(&v, data + off, n, &at);
        if (r == CHAT_UTF8_BAD) {
            *bad_abs = off + at;
            /* Bad is sticky. */
            if (chat_utf8_feed(&v, (const uint8_t *)"a", 1, NULL) != CHAT_UTF8_BAD)
                abort();
            return r;
        }
        off += n;
    }
    return r;
}

static int feasible(uint32_t lo, uint32_t hi, int n)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint32_t max[] = {0, 0, 0x7ff, 0xffff, 0x10ffff};

    if (lo < min[n])
        lo = min[n];
    if (hi > max[n])
        hi = max[n];
    return lo <= hi && !(lo >= 0xd800 && hi <= 0xdfff);
}

/* Reference: CHAT_UTF8_* verdict, *bad_abs set when BAD. */
static int reference(const uint8_t *p, size_t len, size_t *bad_abs)
{
    size_t i = 0;

    while (i < len) {
        uint8_t b = p[i];
        int n = b < 0x80                 ? 1
                : b >= 0xf0 && b <= 0xf7 ? 4
                : b >= 0xe0 && b < 0xf0  ? 3
                : b >= 0xc0 && b < 0xe0  ? 2
                                         : 0;
        uint32_t cp;
        int k;

        if (n == 1) {
            i++;
            continue;
        }
        if (n == 0) {
            *bad_abs = i;
            return CHAT_UTF8_BAD;
        }
        cp = b & (0x7fu >> n);
        for (k = 0; k < n; k++) {
            int rem = n - 1 - k;

            if (k > 0) {
                if (i + (size_t)k == len)
                    return CHAT_UTF8_INCOMPLETE;
                if ((p[i + k] & 0xc0) != 0x80) {
                    *bad_abs = i + (size_t)k;
                    return CHAT_UTF8_BAD;
                }
                cp = (cp << 6) | (p[i + k] & 0x3fu);
            }
            if (!feasible(cp << (6 * rem), (cp << (6 * rem)) | ((1u << (6 * rem)) - 1), n)) {
                *bad_abs = i + (size_t)k;
                return CHAT_UTF8_BAD;
            }
        }
        i += (size_t)n;
    }
    return CHAT_UTF8_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct chat_utf8 v;
    size_t bad_one = 0, bad_ref = 0, bad_split = 0;
    uint32_t seed = 2166136261u;
    int one, ref, split, i;

    chat_utf8_init(&v);
    one = chat_utf8_feed(&v, data, size, &bad_one);
    ref = reference(data, size, &bad_ref);
    if (one != ref || (one == CHAT_UTF8_BAD && bad_one != bad_ref))
        abort();
    if (chat_utf8_valid(data, size) != (one == CHAT_UTF8_OK))
        abort();
    for (i = 0; i < (int)size && i < 16; i++)
        seed = (seed ^ data[i]) * 16777619u;
    for (i = 0; i < 4; i++) {
        static const size_t max_piece[] = {1, 3, 8, 64};

        split = feed_pieces(data, size, seed + (uint32_t)i, max_piece[i], &bad_split);
        if (split != one || (one == CHAT_UTF8_BAD && bad_split != bad_one))
            abort();
    }
    /* Everything before the first bad byte is a viable prefix. */
    if (one == CHAT_UTF8_BAD) {
        chat_utf8_init(&v);
        if (chat_utf8_feed(&v, data, bad_one, NULL) == CHAT_UTF8_BAD)
            abort();
    }
    return 0;
}
