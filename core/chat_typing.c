/* chat_typing: one typing event per (room, sender) per second (see
 * chat_typing.h). */
#include "chat_typing.h"

#include "chat_hash.h"

bool chat_typing_due(struct chat_typing *t, const char *room, const char *sender, int64_t now)
{
    uint64_t h = chat_hash_field(chat_hash_field(CHAT_HASH_INIT, room), sender);
    size_t i = (size_t)(h % CHAT_TYPING_SLOTS);

    if (t->slot[i].key == h && now - t->slot[i].at < CHAT_TYPING_EVERY_MS)
        return false;
    t->slot[i].key = h;
    t->slot[i].at = now;
    return true;
}
