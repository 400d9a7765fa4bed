/* Unit tests for chat_cursor, the per-room delivery rule both daemons
 * drive: each step on its own (next, duplicate, gap, hint, not loaded,
 * reconnect, a cursor ahead of the process, catch-up pages, a target the
 * table never had), then a simulated room under adversarial orders (lost,
 * duplicated and oversized notifications, reconnects, catch-up reads in
 * flight while more is heard) whose subscribers must get 1..N, in order,
 * each once, and nothing held back at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chat_cursor.h"

static struct chat_cursor loaded_at(int64_t seq)
{
    struct chat_cursor c = {0};
    chat_cursor_load(&c, seq);
    return c;
}

static void test_next_is_delivered(void **state)
{
    struct chat_cursor c = loaded_at(5);

    (void)state;
    assert_int_equal(chat_cursor_heard(&c, true, 6), CHAT_STEP_DELIVER);
    assert_int_equal(c.seq, 5); /* moves only when the caller delivered */
    chat_cursor_delivered(&c, 6);
    assert_int_equal(c.seq, 6);
    assert_int_equal(chat_cursor_heard(&c, true, 7), CHAT_STEP_DELIVER);
}

/* A line at or below the cursor is never delivered; a whole one is
 * checked against the table once (it may be a room gone back in time):
 * a read that finds nothing past the cursor asks for last_seq, and a
 * last_seq at or past the cursor makes it a plain duplicate. */
static void test_duplicate_is_dropped(void **state)
{
    struct chat_cursor c = loaded_at(6);
    bool bogus;
    int64_t r = -1;

    (void)state;
    assert_int_equal(chat_cursor_heard(&c, false, 6), CHAT_STEP_DROP);
    assert_int_equal(chat_cursor_heard(&c, true, 6), CHAT_STEP_CATCHUP);
    assert_int_equal(chat_cursor_heard(&c, true, 1), CHAT_STEP_CATCHUP);
    chat_cursor_asked(&c);
    assert_int_equal(chat_cursor_read_end(&c, 0, 10, &bogus), CHAT_STEP_VERIFY);
    assert_int_equal(chat_cursor_verified(&c, 6, &r), CHAT_STEP_DROP);
    assert_int_equal(r, -1);
    assert_int_equal(c.seq, 6);
    /* checked: the next read ends as before */
    chat_cursor_asked(&c);
    assert_int_equal(chat_cursor_read_end(&c, 0, 10, &bogus), CHAT_STEP_DROP);
    assert_int_equal(chat_cursor_heard(&c, true, 7), CHAT_STEP_DELIVER);
}

/* The database went back in time under a live process (restored while
 * connected): delivered up to 10, the table now ends at 6, and the next
 * message is a new 7. Its line is below the cursor: checked, the room is
 * reset to 6 and 7 and 8 are read and delivered, not dropped. */
static void test_back_in_time_live(void **state)
{
    struct chat_cursor c = loaded_at(10);
    bool bogus;
    int64_t r = -1;

    (void)state;
    assert_int_equal(chat_cursor_heard(&c, true, 7), CHAT_STEP_CATCHUP);
    chat_cursor_asked(&c);
    assert_int_equal(chat_cursor_heard(&c, true, 8), CHAT_STEP_CATCHUP); /* read in flight */
    assert_int_equal(chat_cursor_row(&c, 7), CHAT_STEP_DROP);
    assert_int_equal(chat_cursor_read_end(&c, 0, 10, &bogus), CHAT_STEP_VERIFY);
    assert_int_equal(chat_cursor_verified(&c, 8, &r), CHAT_STEP_RESET);
    assert_int_equal(r, 6); /* below the lowest line heard: 7 and 8 are new */
    assert_int_equal(c.seq, 6);
    assert_int_equal(c.target, 8);
    /* then read past it */
    chat_cursor_asked(&c);
    assert_int_equal(chat_cursor_row(&c, 7), CHAT_STEP_DELIVER);
    chat_cursor_delivered(&c, 7);
    chat_cursor_delivered(&c, 8);
    assert_int_equal(chat_cursor_read_end(&c, 2, 10, &bogus), CHAT_STEP_DROP);
    assert_false(bogus);
    assert_int_equal(chat_cursor_heard(&c, true, 9), CHAT_STEP_DELIVER);
}

/* ... or found on reconnecting: reset to the table's end, nothing to read. */
static void test_back_in_time_reconnect(void **state)
{
    struct chat_cursor c = loaded_at(10);
    bool bogus;
    int64_t r = -1;

    (void)state;
    assert_int_equal(chat_cursor_reconnected(&c), CHAT_STEP_CATCHUP);
    chat_cursor_asked(&c);
    assert_int_equal(chat_cursor_read_end(&c, 0, 10, &bogus), CHAT_STEP_VERIFY);
    assert_int_equal(chat_cursor_verified(&c, 6, &r), CHAT_STEP_RESET);
    assert_int_equal(r, 6);
    assert_int_equal(c.target, 6);
    assert_int_equal(chat_cursor_heard(&c, true, 7), CHAT_STEP_DELIVER);
    /* a reconnect that finds the table past the cursor is no reset */
    struct chat_cursor d = loaded_at(10);
    chat_cursor_reconnected(&d);
    chat_cursor_asked(&d);
    assert_int_equal(chat_cursor_read_end(&d, 2, 10, &bogus), CHAT_STEP_DROP);
    assert_int_equal(chat_cursor_read_end(&d, 0, 10, &bogus), CHAT_STEP_DROP);
}

/* A line past the next one means lines were lost: never delivered at
 * once (that would be a gap), read from the table instead. */
static void test_gap_catches_up(void **state)
{
    struct chat_cursor c = loaded_at(5);

    (void)state;
    assert_int_equal(chat_cursor_heard(&c, true, 7), CHAT_STEP_CATCHUP);
    assert_int_equal(c.target, 7);
    assert_int_equal(c.seq, 5);
}

/* A message over the NOTIFY limit arrives as a hint, even when it is the
 * next one and no other message follows it. */
static void test_hint_catches_up(void **state)
{
    struct chat_cursor c = loaded_at(5);

    (void)state;
    assert_int_equal(chat_cursor_heard(&c, false, 6), CHAT_STEP_CATCHUP);
    assert_int_equal(chat_cursor_heard(&c, false, 9), CHAT_STEP_CATCHUP);
}

static void test_not_loaded_holds(void **state)
{
    struct chat_cursor c = {0};

    (void)state;
    assert_int_equal(chat_cursor_heard(&c, true, 1), CHAT_STEP_HOLD);
    assert_int_equal(chat_cursor_heard(&c, false, 8), CHAT_STEP_HOLD);
    assert_int_equal(chat_cursor_reconnected(&c), CHAT_STEP_HOLD);
    /* loaded at 7 while 8 was heard: read it */
    assert_int_equal(chat_cursor_load(&c, 7), CHAT_STEP_CATCHUP);
    struct chat_cursor d = {0};
    chat_cursor_heard(&d, true, 3);
    assert_int_equal(chat_cursor_load(&d, 3), CHAT_STEP_DROP); /* the load covers it */
}

static void test_reconnect_catches_up(void **state)
{
    struct chat_cursor c = loaded_at(5);

    (void)state;
    assert_int_equal(chat_cursor_reconnected(&c), CHAT_STEP_CATCHUP);
}

/* chat-fcgi: a client that has seen more than this process (it was on
 * another): nothing it has is sent again, the next is delivered. */
static void test_cursor_ahead(void **state)
{
    struct chat_cursor c = chat_cursor_at(10, 8);

    (void)state;
    assert_int_equal(c.target, 10);
    assert_int_equal(chat_cursor_heard(&c, false, 10), CHAT_STEP_DROP);
    assert_int_equal(chat_cursor_heard(&c, true, 9), CHAT_STEP_CATCHUP); /* checked, not sent */
    assert_int_equal(chat_cursor_heard(&c, true, 11), CHAT_STEP_DELIVER);
}

static void test_reads(void **state)
{
    struct chat_cursor c = loaded_at(5);
    bool bogus;

    (void)state;
    chat_cursor_heard(&c, false, 9);
    chat_cursor_asked(&c);
    assert_int_equal(chat_cursor_row(&c, 5), CHAT_STEP_DROP);
    assert_int_equal(chat_cursor_row(&c, 6), CHAT_STEP_DELIVER);
    assert_int_equal(chat_cursor_row(&c, 8), CHAT_STEP_DELIVER); /* the table is the truth */
    chat_cursor_delivered(&c, 6);
    /* a full page: more to read */
    assert_int_equal(chat_cursor_read_end(&c, 2, 2, &bogus), CHAT_STEP_CATCHUP);
    assert_false(bogus);
    chat_cursor_asked(&c);
    chat_cursor_delivered(&c, 9);
    assert_int_equal(chat_cursor_read_end(&c, 3, 10, &bogus), CHAT_STEP_DROP);
    assert_false(bogus);
    /* heard of 12 after the read went out: read again */
    chat_cursor_asked(&c);
    chat_cursor_heard(&c, true, 12);
    assert_int_equal(chat_cursor_read_end(&c, 0, 10, &bogus), CHAT_STEP_CATCHUP);
    assert_false(bogus);
    /* heard of 12 before the read, and the table ends at 9: not asked forever */
    chat_cursor_asked(&c);
    assert_int_equal(chat_cursor_read_end(&c, 0, 10, &bogus), CHAT_STEP_DROP);
    assert_true(bogus);
    assert_int_equal(c.target, 9);
}

/* ---- a simulated room ------------------------------------------------------ */

#define SIM_MAX 400
#define SIM_PAGE 7

struct sim {
    struct chat_cursor c;
    uint64_t rnd;
    int64_t committed;          /* the table holds 1..committed */
    int64_t lines[4 * SIM_MAX]; /* queued NOTIFY lines: seq, negative for a hint */
    size_t nlines, next_line;
    bool reading; /* a catch-up read is in flight */
    int64_t read_from, read_snapshot;
    int64_t delivered[SIM_MAX + 1];
    size_t ndelivered;
};

static uint32_t rnd(struct sim *s, uint32_t n)
{
    s->rnd ^= s->rnd << 13;
    s->rnd ^= s->rnd >> 7;
    s->rnd ^= s->rnd << 17;
    return (uint32_t)(s->rnd % n);
}

static void sim_deliver(struct sim *s, int64_t seq)
{
    int64_t want = (int64_t)s->ndelivered + 1;
    if (seq != want)
        fail_msg("delivered seq %lld, expected %lld (seed %llu)", (long long)seq, (long long)want,
                 (unsigned long long)s->rnd);
    s->delivered[s->ndelivered++] = seq;
    chat_cursor_delivered(&s->c, seq);
}

static void sim_ask(struct sim *s)
{
    if (s->reading)
        return; /* as the daemons: one read at a time, its end decides */
    s->reading = true;
    s->read_from = s->c.seq;
    s->read_snapshot = s->committed;
    chat_cursor_asked(&s->c);
}

static void sim_act(struct sim *s, enum chat_step st, int64_t seq)
{
    if (st == CHAT_STEP_DELIVER)
        sim_deliver(s, seq);
    else if (st == CHAT_STEP_CATCHUP)
        sim_ask(s);
    else if (st == CHAT_STEP_VERIFY) { /* the table never goes back here */
        int64_t r;
        st = chat_cursor_verified(&s->c, s->committed, &r);
        assert_int_not_equal(st, CHAT_STEP_RESET);
        sim_act(s, st, 0);
    }
}

static void sim_read_done(struct sim *s)
{
    size_t rows = 0;
    bool bogus;

    s->reading = false;
    for (int64_t q = s->read_from + 1; q <= s->read_snapshot && rows < SIM_PAGE; q++, rows++)
        if (chat_cursor_row(&s->c, q) == CHAT_STEP_DELIVER)
            sim_deliver(s, q);
    sim_act(s, chat_cursor_read_end(&s->c, rows, SIM_PAGE, &bogus), 0);
    assert_false(bogus);
}

static void sim_commit(struct sim *s, bool lost, bool hint, bool twice)
{
    int64_t seq = ++s->committed;
    if (lost)
        return;
    s->lines[s->nlines++] = hint ? -seq : seq;
    if (twice)
        s->lines[s->nlines++] = hint ? -seq : seq;
}

static void sim_hear(struct sim *s)
{
    int64_t l = s->lines[s->next_line++];
    int64_t seq = l < 0 ? -l : l;
    sim_act(s, chat_cursor_heard(&s->c, l > 0, seq), seq);
}

static void sim_drain(struct sim *s)
{
    while (s->next_line < s->nlines || s->reading) {
        if (s->next_line < s->nlines && (!s->reading || rnd(s, 2)))
            sim_hear(s);
        else
            sim_read_done(s);
    }
}

static void sim_run(uint64_t seed, bool last_is_hint)
{
    struct sim s;

    memset(&s, 0, sizeof(s));
    s.rnd = seed;
    /* the room is loaded while lines arrive */
    sim_commit(&s, false, false, false);
    sim_hear(&s); /* held: not loaded */
    assert_int_equal(chat_cursor_load(&s.c, 0), CHAT_STEP_CATCHUP);
    sim_ask(&s);
    while (s.committed < SIM_MAX - 1) {
        switch (rnd(&s, 10)) {
        case 0: /* PostgreSQL away: queued lines are lost; back, then catch up */
            s.next_line = s.nlines;
            sim_act(&s, chat_cursor_reconnected(&s.c), 0);
            break;
        case 1:
        case 2:
            if (s.reading)
                sim_read_done(&s);
            break;
        case 3:
        case 4:
        case 5:
            if (s.next_line < s.nlines)
                sim_hear(&s);
            break;
        default: {
            uint32_t k = rnd(&s, 20);
            sim_commit(&s, k == 0, k == 1 || k == 2, k == 3);
        }
        }
    }
    /* the last message comes alone: whole or over the limit (a hint) */
    sim_drain(&s);
    sim_commit(&s, false, last_is_hint, false);
    sim_drain(&s);
    if ((int64_t)s.ndelivered != s.committed)
        fail_msg("delivered %zu of %lld (seed %llu)", s.ndelivered, (long long)s.committed,
                 (unsigned long long)seed);
}

static void test_adversarial_orders(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        sim_run(seed * 0x9e3779b97f4a7c15ULL, false);
        sim_run(seed * 0x9e3779b97f4a7c15ULL + 1, true);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_is_delivered),      cmocka_unit_test(test_duplicate_is_dropped),
        cmocka_unit_test(test_gap_catches_up),         cmocka_unit_test(test_hint_catches_up),
        cmocka_unit_test(test_not_loaded_holds),       cmocka_unit_test(test_reconnect_catches_up),
        cmocka_unit_test(test_cursor_ahead),           cmocka_unit_test(test_reads),
        cmocka_unit_test(test_adversarial_orders),     cmocka_unit_test(test_back_in_time_live),
        cmocka_unit_test(test_back_in_time_reconnect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
