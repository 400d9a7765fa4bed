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
    if (seq <= c->seq)
        return CHAT_STEP_DROP;
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
    if (c->target > c->seq && c->target <= c->asked) {
        *bogus = true; /* heard of before the read, yet not in the table */
        c->target = c->seq;
        return CHAT_STEP_DROP;
    }
    return chat_cursor_heard(c, false, c->target);
}

enum chat_step chat_cursor_reconnected(struct chat_cursor *c)
{
    return c->loaded ? CHAT_STEP_CATCHUP : CHAT_STEP_HOLD;
}
