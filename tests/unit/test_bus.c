/* Unit tests for the small shared policies of core/ (the typing throttle
 * has test_typing.c): the reconnect backoff (jittered within its step,
 * doubling to the cap, reset after a success) and the hash (FNV-1a's
 * published values; fields kept apart by a separator). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "chat_backoff.h"
#include "chat_hash.h"
#include "chat_supervise.h"

static void test_backoff(void **state)
{
    struct chat_backoff b = {0};
    int step = CHAT_BACKOFF_MIN_MS;

    (void)state;
    for (int i = 0; i < 12; i++) {
        int w = chat_backoff_next(&b);
        assert_true(w >= step / 2 && w <= step);
        step = step * 2 > CHAT_BACKOFF_MAX_MS ? CHAT_BACKOFF_MAX_MS : step * 2;
    }
    assert_int_equal(b.ms, CHAT_BACKOFF_MAX_MS);
    chat_backoff_reset(&b);
    int w = chat_backoff_next(&b);
    assert_true(w >= CHAT_BACKOFF_MIN_MS / 2 && w <= CHAT_BACKOFF_MIN_MS);
    /* jitter: 64 draws at the cap are not all the same */
    int first = chat_backoff_next(&b), differ = 0;
    for (int i = 0; i < 64; i++) {
        b.ms = CHAT_BACKOFF_MAX_MS;
        differ |= chat_backoff_next(&b) != first;
    }
    assert_true(differ);
}

static void test_hash(void **state)
{
    (void)state;
    assert_true(chat_hash("", 0) == 0xcbf29ce484222325ULL);
    assert_true(chat_hash("a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(chat_hash("foobar", 6) == 0x85944171f73967e8ULL);
    assert_true(chat_hash_field(chat_hash_field(CHAT_HASH_INIT, "ab"), "c") !=
                chat_hash_field(chat_hash_field(CHAT_HASH_INIT, "a"), "bc"));
}

static int die_at_once(void *arg)
{
    (void)arg;
    return 3;
}

/* Workers that die as soon as they start are a crash loop: restarted up
 * to CHAT_RESTARTS_PER_MINUTE times, then the parent gives up with 1 and
 * leaves no child behind. */
static void test_supervise_gives_up(void **state)
{
    (void)state;
    assert_int_equal(chat_supervise(2, die_at_once, NULL), 1);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* ECHILD: all reaped */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_supervise_gives_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
