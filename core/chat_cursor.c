/* chat_cursor: deliver-if-next-else-catch-up, once (see chat_cursor.h). */
#include "chat_cursor.h"

enum chat_step chat_cursor_load(struct chat_cursor *c, int64_t seq)
{
    c->seq = seq;
    c->loaded = true;
    if (c->target < seq)
        c->target = seq;
    return c->target > c->seq ? CHAT_STEP_CATCHUP : CHAT_STEP_DROP;
}

enum chat_step chat_cursor_heard(struct chat_cursor *c, bool whole, int64_t seq)
{
    if (seq > c->target)
        c->target = seq;
    if (!c->loaded)
        return CHAT_STEP_HOLD;
    if (seq <= c->seq) {
        if (!whole)
            return CHAT_STEP_DROP;
        /* a duplicate, or a room that went back in time: the table says */
        if (c->low == 0 || seq < c->low)
            c->low = seq;
        c->suspect = true;
        return CHAT_STEP_CATCHUP;
    }
    if (whole && seq == c->seq + 1)
        return CHAT_STEP_DELIVER;
    else
        return CHAT_STEP_CATCHUP;
}

void chat_cursor_delivered(struct chat_cursor *c, int64_t seq)
{
    c->seq = seq;
    if (c->target < seq)
        c->target = seq;
}

void chat_cursor_asked(struct chat_cursor *c)
{
    c->asked = c->target;
}

enum chat_step chat_cursor_row(const struct chat_cursor *c, int64_t seq)
{
    return seq > c->seq ? CHAT_STEP_DELIVER : CHAT_STEP_DROP;
}

enum chat_step chat_cursor_read_end(struct chat_cursor *c, size_t rows, size_t page, bool *bogus)
{
    *bogus = false;
    if (rows >= page)
        return CHAT_STEP_CATCHUP;
    if (c->suspect && rows == 0)
        return CHAT_STEP_VERIFY;
    if (rows > 0) { /* the table goes on past the cursor */
        c->suspect = false;
        c->low = 0;
    }
    if (c->target > c->seq && c->target <= c->asked) {
        *bogus = true; /* heard of before the read, yet not in the table */
        c->target = c->seq;
        return CHAT_STEP_DROP;
    }
    return chat_cursor_heard(c, false, c->target);
}

enum chat_step chat_cursor_reconnected(struct chat_cursor *c)
{
    if (!c->loaded)
        return CHAT_STEP_HOLD;
    c->suspect = true;
    return CHAT_STEP_CATCHUP;
}

enum chat_step chat_cursor_verified(struct chat_cursor *c, int64_t last_seq, int64_t *reset_to)
{
    int64_t low = c->low;

    c->suspect = false;
    c->low = 0;
    if (last_seq >= c->seq) /* a plain duplicate */
        return c->target > c->seq ? CHAT_STEP_CATCHUP : CHAT_STEP_DROP;
    int64_t r = last_seq;
    if (low > 0 && low - 1 < r)
        r = low - 1;
    c->seq = r;
    c->target = last_seq;
    c->asked = 0;
    *reset_to = r;
    return CHAT_STEP_RESET;
}
