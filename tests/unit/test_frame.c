/* Unit tests of ws_frame: the server frame writer, close payloads, and the
 * reader fed whole, in chunks and byte at a time, through every rule of
 * RFC 6455 section 5 that ends in 1002, 1007 or 1009. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws_frame.h"

#define FIN 0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10
#define MAX_EVENTS 16
#define BIG (1u << 20)

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A client frame header: first byte b0, length len written in form 7, 16
 * or 64 (0: the minimal form), mask key when masked. */
static size_t mkhdr(uint8_t *out, uint8_t b0, uint64_t len, int form, bool masked)
{
    size_t n = 2;
    if (form == 0)
        form = len < 126 ? 7 : len <= 0xffff ? 16 : 64;
    out[0] = b0;
    if (form == 7) {
        out[1] = (uint8_t)len;
    } else if (form == 16) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (masked) {
        out[1] |= 0x80;
        memcpy(out + n, mask_key, 4);
        n += 4;
    }
    return n;
}

/* A whole masked client frame in minimal form. */
static size_t mkframe(uint8_t *out, uint8_t b0, const void *payload, size_t len)
{
    size_t n = mkhdr(out, b0, len, 0, true);
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const uint8_t *)payload)[i] ^ mask_key[i & 3];
    return n + len;
}

/* Events of one run, with copies of their data. */
struct run {
    int n;
    int type[MAX_EVENTS];
    unsigned code[MAX_EVENTS];
    size_t len[MAX_EVENTS];
    uint8_t *data[MAX_EVENTS];
    int last_rc; /* -1 after an error */
    size_t used; /* bytes consumed in all */
};

static void run_free(struct run *run)
{
    for (int i = 0; i < run->n; i++)
        free(run->data[i]);
    memset(run, 0, sizeof(*run));
}

/* Feeds a copy of wire[0..len) to r in pieces of chunk bytes, as a
 * connection would: each piece until consumed or an error. */
static void feed(struct ws_reader *r, const uint8_t *wire, size_t len, size_t chunk,
                 struct run *run)
{
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, wire, len);
    memset(run, 0, sizeof(*run));
    size_t pos = 0;
    while (pos < len) {
        size_t end = len - pos < chunk ? len : pos + chunk;
        while (pos < end) {
            struct ws_event ev;
            size_t used = 12345;
            int rc = ws_reader_feed(r, buf + pos, end - pos, &used, &ev);
            assert_true(used <= end - pos);
            pos += used;
            run->used += used;
            run->last_rc = rc;
            if (rc == 0) {
                assert_int_equal(pos, end);
                assert_int_equal(ev.type, WS_EV_NONE);
                continue;
            }
            assert_true(run->n < MAX_EVENTS);
            int i = run->n++;
            run->type[i] = ev.type;
            run->code[i] = ev.code;
            run->len[i] = ev.len;
            run->data[i] = malloc(ev.len + 1);
            assert_non_null(run->data[i]);
            assert_non_null(ev.data);
            memcpy(run->data[i], ev.data, ev.len);
            if (rc < 0) {
                assert_int_equal(ev.type, WS_EV_ERROR);
                free(buf);
                return;
            }
            assert_int_equal(rc, 1);
        }
    }
    free(buf);
}

static const size_t chunks[] = {1, 2, 3, 5, 7, 13, 64, 1000, 70000, SIZE_MAX};
#define NCHUNKS (sizeof(chunks) / sizeof(chunks[0]))

/* Every chunking of wire gives exactly one error with code. */
static void expect_error(const uint8_t *wire, size_t len, size_t max, unsigned code)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        struct ws_reader r;
        struct run run;
        ws_reader_init(&r, max);
        feed(&r, wire, len, chunks[c], &run);
        if (run.last_rc != -1 || run.type[run.n - 1] != WS_EV_ERROR || run.code[run.n - 1] != code)
            fail_msg("chunk %zu: rc %d, want error %u, got type %d code %u", chunks[c], run.last_rc,
                     code, run.n ? run.type[run.n - 1] : -1, run.n ? run.code[run.n - 1] : 0);
        /* sticky */
        struct ws_event ev;
        size_t used = 99;
        uint8_t b[2] = {0x81, 0x80};
        assert_int_equal(ws_reader_feed(&r, b, 2, &used, &ev), -1);
        assert_int_equal(used, 0);
        assert_int_equal(ev.code, code);
        run_free(&run);
        ws_reader_free(&r);
    }
}

/* Every chunking of wire gives one event of type with payload want. */
static void expect_event(const uint8_t *wire, size_t len, size_t max, int type, const void *want,
                         size_t want_len)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        struct ws_reader r;
        struct run run;
        ws_reader_init(&r, max);
        feed(&r, wire, len, chunks[c], &run);
        if (run.n != 1 || run.type[0] != type)
            fail_msg("chunk %zu: %d events, first type %d code %u, want type %d", chunks[c], run.n,
                     run.n ? run.type[0] : -1, run.n ? run.code[0] : 0, type);
        assert_int_equal(run.len[0], want_len);
        assert_memory_equal(run.data[0], want, want_len);
        assert_int_equal(run.used, len);
        run_free(&run);
        ws_reader_free(&r);
    }
}

static void test_header_lengths(void **state)
{
    (void)state;
    uint8_t h[WS_FRAME_HDR_MAX];
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 0), 2);
    assert_memory_equal(h, "\x81\x00", 2);
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 125), 2);
    assert_memory_equal(h, "\x82\x7d", 2);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 126), 4);
    assert_memory_equal(h, "\x81\x7e\x00\x7e", 4);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 65535), 4);
    assert_memory_equal(h, "\x81\x7e\xff\xff", 4);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 65536), 10);
    assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(ws_frame_header(h, WS_OP_PING, 0x0102030405ull), 10);
    assert_memory_equal(h, "\x89\x7f\x00\x00\x00\x01\x02\x03\x04\x05", 10);
    assert_int_equal(ws_frame_header(h, WS_OP_CLOSE, 2), 2);
    assert_memory_equal(h, "\x88\x02", 2);
}

static void test_close_payload(void **state)
{
    (void)state;
    uint8_t p[WS_CONTROL_MAX];
    uint8_t f[WS_CLOSE_FRAME_MAX];
    assert_int_equal(ws_close_payload(p, 0, NULL, 0), 0);
    assert_int_equal(ws_close_payload(p, 1000, NULL, 0), 2);
    assert_memory_equal(p, "\x03\xe8", 2);
    assert_int_equal(ws_close_payload(p, 1009, "too big", 7), 9);
    assert_memory_equal(p, "\x03\xf1too big", 9);
    /* 200 bytes of "é": cut to 122 bytes, whole characters */
    char reason[200];
    for (int i = 0; i < 200; i += 2)
        memcpy(reason + i, "\xc3\xa9", 2);
    size_t n = ws_close_payload(p, 1001, reason, sizeof(reason));
    assert_int_equal(n, 2 + 122);
    assert_true(chat_utf8_valid(p + 2, n - 2));
    /* ASCII: exactly 123 */
    memset(reason, 'x', sizeof(reason));
    assert_int_equal(ws_close_payload(p, 1001, reason, sizeof(reason)), 125);
    assert_int_equal(ws_close_frame(f, 1001, reason, sizeof(reason)), 127);
    assert_memory_equal(f, "\x88\x7d\x03\xe9xx", 6);
    assert_int_equal(ws_close_frame(f, 0, NULL, 0), 2);
    assert_memory_equal(f, "\x88\x00", 2);
}

static void test_close_code_table(void **state)
{
    (void)state;
    for (unsigned c = 0; c < 70000; c++) {
        bool want =
            (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
        assert_int_equal(ws_close_code_valid(c), want);
    }
    assert_false(ws_close_code_valid(1004));
    assert_false(ws_close_code_valid(1005));
    assert_false(ws_close_code_valid(1006));
    assert_false(ws_close_code_valid(1015));
    assert_false(ws_close_code_valid(1012));
    assert_false(ws_close_code_valid(2999));
    assert_false(ws_close_code_valid(5000));
}

/* The same codes through the reader. */
static void test_close_codes_received(void **state)
{
    (void)state;
    static const unsigned codes[] = {0,    999,  1000, 1001, 1002, 1003, 1004, 1005, 1006,
                                     1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015,
                                     1016, 2000, 2999, 3000, 3999, 4000, 4999, 5000, 65535};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        uint8_t pl[4] = {(uint8_t)(codes[i] >> 8), (uint8_t)codes[i], 'o', 'k'};
        uint8_t w[32];
        size_t n = mkframe(w, FIN | WS_OP_CLOSE, pl, 4);
        if (ws_close_code_valid(codes[i])) {
            struct ws_reader r;
            struct run run;
            ws_reader_init(&r, 100);
            feed(&r, w, n, SIZE_MAX, &run);
            assert_int_equal(run.n, 1);
            assert_int_equal(run.type[0], WS_EV_CLOSE);
            assert_int_equal(run.code[0], codes[i]);
            assert_int_equal(run.len[0], 2);
            assert_memory_equal(run.data[0], "ok", 2);
            run_free(&run);
        } else {
            expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
        }
    }
}

static void test_close_frames(void **state)
{
    (void)state;
    uint8_t w[256];
    size_t n = mkframe(w, FIN | WS_OP_CLOSE, "", 0);
    struct ws_reader r;
    struct run run;
    ws_reader_init(&r, 100);
    feed(&r, w, n, SIZE_MAX, &run);
    assert_int_equal(run.n, 1);
    assert_int_equal(run.type[0], WS_EV_CLOSE);
    assert_int_equal(run.code[0], WS_CLOSE_NO_STATUS);
    assert_int_equal(run.len[0], 0);
    run_free(&run);
    /* after a close everything is swallowed */
    uint8_t junk[3] = {0xff, 0xff, 0xff};
    struct ws_event ev;
    size_t used = 0;
    assert_int_equal(ws_reader_feed(&r, junk, 3, &used, &ev), 0);
    assert_int_equal(used, 3);
    ws_reader_free(&r);

    /* 1-byte payload */
    n = mkframe(w, FIN | WS_OP_CLOSE, "\x03", 1);
    expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
    /* bad UTF-8 reason */
    n = mkframe(w, FIN | WS_OP_CLOSE, "\x03\xe8\xc3\x28", 4);
    expect_error(w, n, 100, WS_CLOSE_BAD_DATA);
    n = mkframe(w, FIN | WS_OP_CLOSE, "\x03\xe8\xe2\x82", 4);
    expect_error(w, n, 100, WS_CLOSE_BAD_DATA);
    /* a 125-byte close: code and 123 bytes of reason */
    uint8_t pl[125];
    pl[0] = 0x0f;
    pl[1] = 0xa0; /* 4000 */
    memset(pl + 2, 'r', 123);
    n = mkframe(w, FIN | WS_OP_CLOSE, pl, 125);
    expect_event(w, n, 100, WS_EV_CLOSE, pl + 2, 123);
    /* close with 126 bytes */
    n = mkhdr(w, FIN | WS_OP_CLOSE, 126, 16, true);
    expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
}

/* Text messages of the lengths at every length-form boundary. */
static void test_length_forms(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t len = lens[i];
        uint8_t *pl = malloc(len + 1);
        uint8_t *w = malloc(len + 16);
        assert_non_null(pl);
        assert_non_null(w);
        for (size_t j = 0; j < len; j++)
            pl[j] = (uint8_t)('a' + j % 26);
        size_t n = mkframe(w, FIN | WS_OP_TEXT, pl, len);
        assert_int_equal(n, len + (len < 126 ? 6 : len < 65536 ? 8 : 14));
        expect_event(w, n, BIG, WS_EV_TEXT, pl, len);
        n = mkframe(w, FIN | WS_OP_BINARY, pl, len);
        expect_event(w, n, BIG, WS_EV_BINARY, pl, len);
        /* exactly at the limit is fine, one over is 1009 */
        expect_event(w, n, len, WS_EV_BINARY, pl, len);
        if (len > 0)
            expect_error(w, n, len - 1, WS_CLOSE_TOO_BIG);
        free(pl);
        free(w);
    }
}

/* RFC 6455 section 5.7: a masked "Hello". */
static void test_rfc_masked_hello(void **state)
{
    (void)state;
    static const uint8_t w[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    expect_event(w, sizeof(w), 100, WS_EV_TEXT, "Hello", 5);

    /* whole in the buffer: delivered from the buffer, unmasked in place */
    uint8_t buf[sizeof(w)];
    memcpy(buf, w, sizeof(w));
    struct ws_reader r;
    struct ws_event ev;
    size_t used;
    ws_reader_init(&r, 100);
    assert_int_equal(ws_reader_feed(&r, buf, sizeof(buf), &used, &ev), 1);
    assert_int_equal(used, sizeof(buf));
    assert_ptr_equal(ev.data, buf + 6);
    assert_memory_equal(buf + 6, "Hello", 5);
    ws_reader_free(&r);
}

static void test_unmasked_refused(void **state)
{
    (void)state;
    static const uint8_t w[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    expect_error(w, sizeof(w), 100, WS_CLOSE_PROTOCOL);
    /* fails on the second byte, before any payload */
    expect_error(w, 2, 100, WS_CLOSE_PROTOCOL);
}

/* RFC 6455 section 5.7's fragmented "Hello", a ping in the middle. */
static void test_fragments_with_ping(void **state)
{
    (void)state;
    uint8_t w[64];
    size_t n = mkframe(w, WS_OP_TEXT, "Hel", 3);
    n += mkframe(w + n, FIN | WS_OP_PING, "p!", 2);
    n += mkframe(w + n, WS_OP_CONT, "", 0);
    n += mkframe(w + n, FIN | WS_OP_PONG, "", 0);
    n += mkframe(w + n, FIN | WS_OP_CONT, "lo", 2);
    n += mkframe(w + n, FIN | WS_OP_BINARY, "\x00\xff", 2);
    for (size_t c = 0; c < NCHUNKS; c++) {
        struct ws_reader r;
        struct run run;
        ws_reader_init(&r, 5);
        feed(&r, w, n, chunks[c], &run);
        assert_int_equal(run.last_rc, 1);
        assert_int_equal(run.n, 4);
        assert_int_equal(run.type[0], WS_EV_PING);
        assert_int_equal(run.len[0], 2);
        assert_memory_equal(run.data[0], "p!", 2);
        assert_int_equal(run.type[1], WS_EV_PONG);
        assert_int_equal(run.len[1], 0);
        assert_int_equal(run.type[2], WS_EV_TEXT);
        assert_int_equal(run.len[2], 5);
        assert_memory_equal(run.data[2], "Hello", 5);
        assert_int_equal(run.type[3], WS_EV_BINARY);
        assert_memory_equal(run.data[3], "\x00\xff", 2);
        assert_int_equal(run.used, n);
        run_free(&run);
        ws_reader_free(&r);
    }
}

static void test_control_frames(void **state)
{
    (void)state;
    uint8_t pl[126];
    uint8_t w[160];
    memset(pl, 'p', sizeof(pl));
    size_t n = mkframe(w, FIN | WS_OP_PING, pl, 125);
    expect_event(w, n, 1, WS_EV_PING, pl, 125); /* max_message does not bound control */
    n = mkframe(w, FIN | WS_OP_PONG, pl, 125);
    expect_event(w, n, 1, WS_EV_PONG, pl, 125);
    n = mkframe(w, FIN | WS_OP_PING, pl, 126);
    expect_error(w, n, BIG, WS_CLOSE_PROTOCOL);
    n = mkframe(w, WS_OP_PING, "x", 1); /* fragmented control */
    expect_error(w, n, BIG, WS_CLOSE_PROTOCOL);
    n = mkframe(w, WS_OP_CLOSE, "", 0);
    expect_error(w, n, BIG, WS_CLOSE_PROTOCOL);
    /* 16-bit form of a short ping: also refused */
    n = mkhdr(w, FIN | WS_OP_PING, 5, 16, true);
    expect_error(w, n, BIG, WS_CLOSE_PROTOCOL);
}

static void test_reserved_bits_and_opcodes(void **state)
{
    (void)state;
    uint8_t w[32];
    static const uint8_t rsv[] = {RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3};
    for (size_t i = 0; i < sizeof(rsv); i++) {
        size_t n = mkframe(w, FIN | rsv[i] | WS_OP_TEXT, "hi", 2);
        expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
        n = mkframe(w, FIN | rsv[i] | WS_OP_PING, "", 0);
        expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
        /* the first byte alone is enough */
        expect_error(w, 1, 100, WS_CLOSE_PROTOCOL);
    }
    static const uint8_t ops[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
    for (size_t i = 0; i < sizeof(ops); i++) {
        size_t n = mkframe(w, FIN | ops[i], "", 0);
        expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
        n = mkframe(w, ops[i], "", 0);
        expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
    }
}

static void test_non_minimal_lengths(void **state)
{
    (void)state;
    uint8_t w[32];
    size_t n = mkhdr(w, FIN | WS_OP_TEXT, 0, 16, true);
    expect_error(w, n, BIG, WS_CLOSE_PROTOCOL);
    n = mkhdr(w, FIN | WS_OP_TEXT, 125, 16, true);
    expect_error(w, n, BIG, WS_CLOSE_PROTOCOL);
    n = mkhdr(w, FIN | WS_OP_TEXT, 126, 64, true);
    expect_error(w, n, BIG, WS_CLOSE_PROTOCOL);
    n = mkhdr(w, FIN | WS_OP_TEXT, 65535, 64, true);
    expect_error(w, n, BIG, WS_CLOSE_PROTOCOL);
    n = mkhdr(w, FIN | WS_OP_TEXT, 1ull << 63, 64, true);
    expect_error(w, n, BIG, WS_CLOSE_PROTOCOL);
    n = mkhdr(w, FIN | WS_OP_TEXT, UINT64_MAX, 64, true);
    expect_error(w, n, BIG, WS_CLOSE_PROTOCOL);
    /* valid but huge: 1009 from the header alone, before any payload */
    n = mkhdr(w, FIN | WS_OP_TEXT, (1ull << 63) - 1, 64, true);
    expect_error(w, n, BIG, WS_CLOSE_TOO_BIG);
    n = mkhdr(w, FIN | WS_OP_BINARY, 65536, 64, true);
    expect_error(w, n - 4, 65535, WS_CLOSE_TOO_BIG); /* before the mask key */
    n = mkhdr(w, FIN | WS_OP_TEXT, 100, 7, true);
    expect_error(w, 2, 99, WS_CLOSE_TOO_BIG);
}

static void test_fragment_sequence_errors(void **state)
{
    (void)state;
    uint8_t w[64];
    /* continuation with nothing started */
    size_t n = mkframe(w, FIN | WS_OP_CONT, "x", 1);
    expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
    n = mkframe(w, WS_OP_CONT, "x", 1);
    expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
    /* after a finished message, again nothing is started */
    n = mkframe(w, FIN | WS_OP_TEXT, "a", 1);
    n += mkframe(w + n, FIN | WS_OP_CONT, "b", 1);
    expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
    /* a new data frame inside a fragmented message */
    n = mkframe(w, WS_OP_TEXT, "a", 1);
    n += mkframe(w + n, FIN | WS_OP_TEXT, "b", 1);
    expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
    n = mkframe(w, WS_OP_BINARY, "a", 1);
    n += mkframe(w + n, WS_OP_CONT, "b", 1);
    n += mkframe(w + n, WS_OP_BINARY, "c", 1);
    expect_error(w, n, 100, WS_CLOSE_PROTOCOL);
}

static void test_message_too_big_fragments(void **state)
{
    (void)state;
    uint8_t w[64];
    /* 4 + 4 + 2 = 10 fits max 10; 4 + 4 + 3 is 1009 at the third header */
    size_t n = mkframe(w, WS_OP_BINARY, "abcd", 4);
    n += mkframe(w + n, WS_OP_CONT, "efgh", 4);
    size_t third = n;
    n += mkframe(w + n, FIN | WS_OP_CONT, "ij", 2);
    expect_event(w, n, 10, WS_EV_BINARY, "abcdefghij", 10);
    n = third + mkframe(w + third, FIN | WS_OP_CONT, "ijk", 3);
    expect_error(w, n, 10, WS_CLOSE_TOO_BIG);
    expect_error(w, third + 2, 10, WS_CLOSE_TOO_BIG);
}

static void test_utf8(void **state)
{
    (void)state;
    uint8_t w[64];
    /* U+20AC split inside the code point across fragments */
    size_t n = mkframe(w, WS_OP_TEXT, "a\xe2", 2);
    n += mkframe(w + n, WS_OP_CONT, "\x82", 1);
    n += mkframe(w + n, FIN | WS_OP_CONT, "\xac!", 2);
    expect_event(w, n, 100, WS_EV_TEXT, "a\xe2\x82\xac!", 5);
    /* U+1F600 one byte per fragment, ping in between */
    n = mkframe(w, WS_OP_TEXT, "\xf0", 1);
    n += mkframe(w + n, WS_OP_CONT, "\x9f", 1);
    n += mkframe(w + n, WS_OP_CONT, "\x98", 1);
    n += mkframe(w + n, FIN | WS_OP_CONT, "\x80", 1);
    expect_event(w, n, 100, WS_EV_TEXT, "\xf0\x9f\x98\x80", 4);
    /* binary is not checked */
    n = mkframe(w, FIN | WS_OP_BINARY, "\xff\xfe", 2);
    expect_event(w, n, 100, WS_EV_BINARY, "\xff\xfe", 2);
    /* invalid in a single frame */
    static const char *bad[] = {"\xff",  "\xc0\xaf",    "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                "a\x80", "\xe2\x28\xa1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = mkframe(w, FIN | WS_OP_TEXT, bad[i], strlen(bad[i]));
        expect_error(w, n, 100, WS_CLOSE_BAD_DATA);
    }
    /* ends inside a code point */
    n = mkframe(w, FIN | WS_OP_TEXT, "ok\xe2\x82", 4);
    expect_error(w, n, 100, WS_CLOSE_BAD_DATA);
    n = mkframe(w, WS_OP_TEXT, "ok\xe2", 3);
    n += mkframe(w + n, FIN | WS_OP_CONT, "", 0);
    expect_error(w, n, 100, WS_CLOSE_BAD_DATA);
    /* bad across the fragment boundary */
    n = mkframe(w, WS_OP_TEXT, "\xe2", 1);
    n += mkframe(w + n, FIN | WS_OP_CONT, "(", 1);
    expect_error(w, n, 100, WS_CLOSE_BAD_DATA);
}

/* A bad byte in the first fragment of a message whose end never comes:
 * 1007 as soon as the byte is there. */
static void test_utf8_fail_fast(void **state)
{
    (void)state;
    uint8_t w[64];
    size_t n = mkhdr(w, WS_OP_TEXT, 40, 0, true); /* 40 declared, 6 sent */
    memcpy(w + n, "ab\xc0xy", 5);
    for (size_t i = 0; i < 5; i++)
        w[n + i] ^= mask_key[i & 3];
    expect_error(w, n + 5, 100, WS_CLOSE_BAD_DATA);
    expect_error(w, n + 3, 100, WS_CLOSE_BAD_DATA);
    /* and nothing before the bad byte is an error */
    struct ws_reader r;
    struct run run;
    ws_reader_init(&r, 100);
    feed(&r, w, n + 2, 1, &run);
    assert_int_equal(run.n, 0);
    assert_int_equal(run.last_rc, 0);
    ws_reader_free(&r);
    /* a full first fragment without FIN, bad at its end */
    n = mkframe(w, WS_OP_TEXT, "hello\xf5", 6);
    expect_error(w, n, 100, WS_CLOSE_BAD_DATA);
}

static void test_empty_messages(void **state)
{
    (void)state;
    uint8_t w[64];
    size_t n = mkframe(w, FIN | WS_OP_TEXT, "", 0);
    expect_event(w, n, 0, WS_EV_TEXT, "", 0);
    n = mkframe(w, WS_OP_TEXT, "", 0);
    n += mkframe(w + n, WS_OP_CONT, "", 0);
    n += mkframe(w + n, FIN | WS_OP_CONT, "", 0);
    expect_event(w, n, 0, WS_EV_TEXT, "", 0);
    n = mkframe(w, FIN | WS_OP_TEXT, "x", 1);
    expect_error(w, n, 0, WS_CLOSE_TOO_BIG);
}

/* Several frames in one buffer: one event per call, consumed tells where
 * the next frame starts; a large message's buffer is released later. */
static void test_many_frames_and_memory(void **state)
{
    (void)state;
    size_t big = 20000;
    uint8_t *w = malloc(big + 64);
    uint8_t *pl = malloc(big);
    assert_non_null(w);
    assert_non_null(pl);
    memset(pl, 'z', big);
    size_t n = mkframe(w, WS_OP_TEXT, pl, big / 2);
    n += mkframe(w + n, FIN | WS_OP_CONT, pl, big / 2);
    size_t first = n;
    n += mkframe(w + n, FIN | WS_OP_TEXT, "x", 1);
    struct ws_reader r;
    struct ws_event ev;
    size_t used;
    ws_reader_init(&r, BIG);
    assert_int_equal(ws_reader_feed(&r, w, n, &used, &ev), 1);
    assert_int_equal(used, first);
    assert_int_equal(ev.type, WS_EV_TEXT);
    assert_int_equal(ev.len, big);
    assert_true(r.msg_cap >= big);
    assert_int_equal(ws_reader_feed(&r, w + used, n - used, &used, &ev), 1);
    assert_int_equal(ev.len, 1);
    assert_int_equal(r.msg_cap, 0);
    ws_reader_free(&r);
    free(w);
    free(pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_lengths),
        cmocka_unit_test(test_close_payload),
        cmocka_unit_test(test_close_code_table),
        cmocka_unit_test(test_close_codes_received),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_length_forms),
        cmocka_unit_test(test_rfc_masked_hello),
        cmocka_unit_test(test_unmasked_refused),
        cmocka_unit_test(test_fragments_with_ping),
        cmocka_unit_test(test_control_frames),
        cmocka_unit_test(test_reserved_bits_and_opcodes),
        cmocka_unit_test(test_non_minimal_lengths),
        cmocka_unit_test(test_fragment_sequence_errors),
        cmocka_unit_test(test_message_too_big_fragments),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_utf8_fail_fast),
        cmocka_unit_test(test_empty_messages),
        cmocka_unit_test(test_many_frames_and_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
