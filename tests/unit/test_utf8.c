/* Unit tests for chat_utf8: valid text whole, byte at a time and split at
 * every position; Markus Kuhn's decoder stress cases with the exact index
 * of the first rejected byte; and an exhaustive comparison against an
 * independent reference that reasons about code point intervals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chat_utf8.h"

struct sample {
    const char *name;
    const char *bytes;
    size_t len;
};

/* clang-format off */
#define S(name, lit) {name, lit, sizeof(lit) - 1}
/* clang-format on */

static const struct sample valid_samples[] = {
    S("empty", ""),
    S("ascii", "hello, world\n\t"),
    S("nul byte", "a\0b"),
    S("del", "\x7f"),
    S("U+0080", "\xc2\x80"),
    S("U+00E9", "h\xc3\xa9llo"),
    S("U+07FF", "\xdf\xbf"),
    S("U+0800", "\xe0\xa0\x80"),
    S("euro", "\xe2\x82\xac"),
    S("U+D7FF", "\xed\x9f\xbf"),
    S("U+E000", "\xee\x80\x80"),
    S("U+FFFD", "\xef\xbf\xbd"),
    S("U+FFFE noncharacter", "\xef\xbf\xbe"),
    S("U+FFFF noncharacter", "\xef\xbf\xbf"),
    S("U+10000", "\xf0\x90\x80\x80"),
    S("G clef", "\xf0\x9d\x84\x9e"),
    S("U+FFFFF", "\xf3\xbf\xbf\xbf"),
    S("U+100000", "\xf4\x80\x80\x80"),
    S("U+10FFFF", "\xf4\x8f\xbf\xbf"),
    S("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
    S("mixed", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z\xf4\x8f\xbf\xbf"),
};

#define N_VALID (sizeof(valid_samples) / sizeof(valid_samples[0]))

static int feed(struct chat_utf8 *v, const char *p, size_t len, size_t *bad_at)
{
    return chat_utf8_feed(v, (const uint8_t *)p, len, bad_at);
}

/* True when a prefix of length n ends on a code point boundary. */
static int is_boundary(const char *p, size_t len, size_t n)
{
    return n == len || ((unsigned char)p[n] & 0xc0) != 0x80;
}

static void test_valid_whole(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_VALID; i++) {
        const struct sample *s = &valid_samples[i];
        struct chat_utf8 v;

        chat_utf8_init(&v);
        assert_int_equal(feed(&v, s->bytes, s->len, NULL), CHAT_UTF8_OK);
        assert_int_equal(chat_utf8_valid((const uint8_t *)s->bytes, s->len), 1);
    }
}

static void test_valid_byte_at_a_time(void **state)
{
    size_t i, k;

    (void)state;
    for (i = 0; i < N_VALID; i++) {
        const struct sample *s = &valid_samples[i];
        struct chat_utf8 v;

        chat_utf8_init(&v);
        for (k = 0; k < s->len; k++) {
            int want = is_boundary(s->bytes, s->len, k + 1) ? CHAT_UTF8_OK : CHAT_UTF8_INCOMPLETE;

            assert_int_equal(feed(&v, s->bytes + k, 1, NULL), want);
        }
    }
}

static void test_valid_split_everywhere(void **state)
{
    size_t i, k;

    (void)state;
    for (i = 0; i < N_VALID; i++) {
        const struct sample *s = &valid_samples[i];

        for (k = 0; k <= s->len; k++) {
            int first = is_boundary(s->bytes, s->len, k) ? CHAT_UTF8_OK : CHAT_UTF8_INCOMPLETE;
            struct chat_utf8 v;

            chat_utf8_init(&v);
            assert_int_equal(feed(&v, s->bytes, k, NULL), first);
            assert_int_equal(feed(&v, s->bytes + k, s->len - k, NULL), CHAT_UTF8_OK);
        }
    }
}

static void test_every_prefix_incomplete(void **state)
{
    size_t i, k;

    (void)state;
    for (i = 0; i < N_VALID; i++) {
        const struct sample *s = &valid_samples[i];

        for (k = 0; k < s->len; k++) {
            struct chat_utf8 v;
            int r;

            chat_utf8_init(&v);
            r = feed(&v, s->bytes, k, NULL);
            if (is_boundary(s->bytes, s->len, k)) {
                assert_int_equal(r, CHAT_UTF8_OK);
            } else {
                assert_int_equal(r, CHAT_UTF8_INCOMPLETE);
                /* Incomplete is not valid as a whole message. */
                assert_int_equal(chat_utf8_valid((const uint8_t *)s->bytes, k), 0);
            }
        }
    }
}

struct bad_sample {
    const char *name;
    const char *bytes;
    size_t len;
    size_t bad_at;
};

/* clang-format off */
#define B(name, lit, at) {name, lit, sizeof(lit) - 1, at}
/* clang-format on */

/* Markus Kuhn's UTF-8 decoder capability and stress test, sections 3-5,
 * plus the fail-fast points RFC 6455 cares about. */
static const struct bad_sample bad_samples[] = {
    B("lone continuation 80", "\x80", 0),
    B("lone continuation BF", "\xbf", 0),
    B("continuation after ascii", "ab\x80", 2),
    B("two continuations", "\x80\xbf", 0),
    B("C0 lead", "\xc0\x80", 0),
    B("C1 lead", "\xc1\xbf", 0),
    B("overlong slash C0 AF", "/\xc0\xaf", 1),
    B("overlong slash E0 80 AF", "\xe0\x80\xaf", 1),
    B("overlong slash F0 80 80 AF", "\xf0\x80\x80\xaf", 1),
    B("overlong U+07FF as 3 bytes", "\xe0\x9f\xbf", 1),
    B("overlong U+FFFF as 4 bytes", "\xf0\x8f\xbf\xbf", 1),
    B("overlong NUL 2 bytes", "\xc0\x80", 0),
    B("overlong NUL 3 bytes", "\xe0\x80\x80", 1),
    B("overlong NUL 4 bytes", "\xf0\x80\x80\x80", 1),
    B("surrogate U+D800", "\xed\xa0\x80", 1),
    B("surrogate U+DB7F", "\xed\xad\xbf", 1),
    B("surrogate U+DC00", "\xed\xb0\x80", 1),
    B("surrogate U+DFFF", "\xed\xbf\xbf", 1),
    B("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", 1),
    B("U+110000", "\xf4\x90\x80\x80", 1),
    B("U+13FFFF", "\xf4\xbf\xbf\xbf", 1),
    B("F5 lead", "\xf5\x80\x80\x80", 0),
    B("F7 lead", "\xf7\xbf\xbf\xbf", 0),
    B("5-byte F8", "\xf8\x88\x80\x80\x80", 0),
    B("5-byte FB", "\xfb\xbf\xbf\xbf\xbf", 0),
    B("6-byte FC", "\xfc\x84\x80\x80\x80\x80", 0),
    B("6-byte FD", "\xfd\xbf\xbf\xbf\xbf\xbf", 0),
    B("FE", "\xfe", 0),
    B("FF", "\xff", 0),
    B("FE FE FF FF", "\xfe\xfe\xff\xff", 0),
    B("2-byte lead then space", "\xc2 ", 1),
    B("3-byte lead then ascii", "\xe2\x82z", 2),
    B("4-byte lead then ascii", "\xf0\x9f\x98z", 3),
    B("lead after lead", "\xc2\xe0", 1),
    B("incomplete then new lead", "\xe1\x80\xe2\x82\xac", 2),
    B("valid then bad", "\xe2\x82\xac\xf4\x8f\xbf\xc0", 6),
    B("kosme then overlong", "\xce\xba\xe1\xbd\xb9\xc1\x81", 5),
};

#define N_BAD (sizeof(bad_samples) / sizeof(bad_samples[0]))

static void test_bad_whole(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_BAD; i++) {
        const struct bad_sample *s = &bad_samples[i];
        struct chat_utf8 v;
        size_t at = 999;

        chat_utf8_init(&v);
        assert_int_equal(feed(&v, s->bytes, s->len, &at), CHAT_UTF8_BAD);
        assert_int_equal(at, s->bad_at);
        assert_int_equal(chat_utf8_valid((const uint8_t *)s->bytes, s->len), 0);
        /* Everything before the offending byte was fine. */
        chat_utf8_init(&v);
        assert_int_not_equal(feed(&v, s->bytes, s->bad_at, NULL), CHAT_UTF8_BAD);
    }
}

static void test_bad_split_everywhere(void **state)
{
    size_t i, k;

    (void)state;
    for (i = 0; i < N_BAD; i++) {
        const struct bad_sample *s = &bad_samples[i];

        for (k = 0; k <= s->len; k++) {
            struct chat_utf8 v;
            size_t at = 999;
            int r;

            chat_utf8_init(&v);
            r = feed(&v, s->bytes, k, &at);
            if (k <= s->bad_at) {
                assert_int_not_equal(r, CHAT_UTF8_BAD);
                r = feed(&v, s->bytes + k, s->len - k, &at);
                assert_int_equal(r, CHAT_UTF8_BAD);
                assert_int_equal(at, s->bad_at - k);
            } else {
                assert_int_equal(r, CHAT_UTF8_BAD);
                assert_int_equal(at, s->bad_at);
            }
        }
    }
}

static void test_bad_is_sticky(void **state)
{
    struct chat_utf8 v;
    size_t at = 999;

    (void)state;
    chat_utf8_init(&v);
    assert_int_equal(feed(&v, "\xff", 1, NULL), CHAT_UTF8_BAD);
    assert_int_equal(feed(&v, "abc", 3, &at), CHAT_UTF8_BAD);
    assert_int_equal(at, 0);
    assert_int_equal(feed(&v, "", 0, NULL), CHAT_UTF8_BAD);
    chat_utf8_init(&v);
    assert_int_equal(feed(&v, "abc", 3, NULL), CHAT_UTF8_OK);
}

static void test_incomplete_at_end(void **state)
{
    static const char *const cuts[] = {"\xc2",         "\xdf",         "\xe0\xa0",   "\xef\xbf",
                                       "\xf0\x90\x80", "\xf4\x8f\xbf", "abc\xe2\x82"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        struct chat_utf8 v;

        chat_utf8_init(&v);
        assert_int_equal(feed(&v, cuts[i], strlen(cuts[i]), NULL), CHAT_UTF8_INCOMPLETE);
        assert_int_equal(chat_utf8_valid((const uint8_t *)cuts[i], strlen(cuts[i])), 0);
        /* Feeding nothing keeps the state. */
        assert_int_equal(feed(&v, "", 0, NULL), CHAT_UTF8_INCOMPLETE);
    }
}

/* ---- reference: the completions of a partial sequence form an interval
 * of code points; the prefix is viable iff that interval meets the range
 * its length may encode, outside the surrogates. -1: no bad byte. */
static int feasible(uint32_t lo, uint32_t hi, int n)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint32_t max[] = {0, 0, 0x7ff, 0xffff, 0x10ffff};

    if (lo < min[n])
        lo = min[n];
    if (hi > max[n])
        hi = max[n];
    if (lo > hi)
        return 0;
    return !(lo >= 0xd800 && hi <= 0xdfff);
}

static long ref_first_bad(const uint8_t *p, size_t len, int *complete)
{
    size_t i = 0;

    *complete = 1;
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
        if (n == 0)
            return (long)i;
        cp = b & (0x7fu >> n);
        for (k = 0; k < n; k++) {
            int rem = n - 1 - k;

            if (k > 0) {
                if (i + (size_t)k == len) {
                    *complete = 0;
                    return -1;
                }
                if ((p[i + k] & 0xc0) != 0x80)
                    return (long)(i + k);
                cp = (cp << 6) | (p[i + k] & 0x3fu);
            }
            if (!feasible(cp << (6 * rem), (cp << (6 * rem)) | ((1u << (6 * rem)) - 1), n))
                return (long)(i + k);
        }
        i += (size_t)n;
    }
    return -1;
}

static void check_against_ref(const uint8_t *p, size_t len)
{
    struct chat_utf8 v;
    size_t at = 999;
    int complete, r;
    long want;

    want = ref_first_bad(p, len, &complete);
    chat_utf8_init(&v);
    r = chat_utf8_feed(&v, p, len, &at);
    if (want >= 0) {
        if (r != CHAT_UTF8_BAD || at != (size_t)want)
            fail_msg("%02x %02x %02x %02x len %zu: got %d at %zu, want bad at %ld", p[0],
                     len > 1 ? p[1] : 0, len > 2 ? p[2] : 0, len > 3 ? p[3] : 0, len, r, at, want);
    } else if (r != (complete ? CHAT_UTF8_OK : CHAT_UTF8_INCOMPLETE)) {
        fail_msg("%02x %02x %02x %02x len %zu: got %d, want %s", p[0], len > 1 ? p[1] : 0,
                 len > 2 ? p[2] : 0, len > 3 ? p[3] : 0, len, r, complete ? "ok" : "incomplete");
    }
}

static void test_exhaustive_short(void **state)
{
    static const uint8_t last[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
                                   0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xf4, 0xf5, 0xff};
    uint8_t p[4];
    unsigned a, b, c, d;

    (void)state;
    for (a = 0; a < 256; a++) {
        p[0] = (uint8_t)a;
        check_against_ref(p, 1);
        for (b = 0; b < 256; b++) {
            p[1] = (uint8_t)b;
            check_against_ref(p, 2);
            if (a < 0xc0)
                continue;
            for (c = 0; c < 256; c++) {
                p[2] = (uint8_t)c;
                check_against_ref(p, 3);
                if (a < 0xf0)
                    continue;
                for (d = 0; d < sizeof(last); d++) {
                    p[3] = last[d];
                    check_against_ref(p, 4);
                }
            }
        }
    }
    /* The reference itself agrees with the hand-picked cases. */
    for (a = 0; a < N_BAD; a++) {
        int complete;

        assert_int_equal(
            ref_first_bad((const uint8_t *)bad_samples[a].bytes, bad_samples[a].len, &complete),
            (long)bad_samples[a].bad_at);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_whole),
        cmocka_unit_test(test_valid_byte_at_a_time),
        cmocka_unit_test(test_valid_split_everywhere),
        cmocka_unit_test(test_every_prefix_incomplete),
        cmocka_unit_test(test_bad_whole),
        cmocka_unit_test(test_bad_split_everywhere),
        cmocka_unit_test(test_bad_is_sticky),
        cmocka_unit_test(test_incomplete_at_end),
        cmocka_unit_test(test_exhaustive_short),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
