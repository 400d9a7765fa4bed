/* chat_ns: room keys of namespaces (see chat_ns.h). */
#include "chat_ns.h"

#include <string.h>

bool chat_valid_ns(const char *s, size_t len)
{
    /* the alphabet and first-character rule of rooms, shorter */
    return len <= CHAT_NS_MAX && chat_valid_room(s, len);
}

bool chat_valid_room_key(const char *s, size_t len)
{
    const char *colon = s ? memchr(s, ':', len) : NULL;

    if (colon == NULL)
        return chat_valid_room(s, len);
    size_t n = (size_t)(colon - s);
    return chat_valid_ns(s, n) && chat_valid_room(colon + 1, len - n - 1);
}

size_t chat_room_key(const char *ns, const char *room, size_t len, char *out)
{
    size_t n = ns ? strlen(ns) : 0;

    out[0] = '\0';
    if ((n > 0 && !chat_valid_ns(ns, n)) || !chat_valid_room(room, len))
        return 0;
    if (n > 0) {
        memcpy(out, ns, n);
        out[n++] = ':';
    }
    memcpy(out + n, room, len);
    out[n + len] = '\0';
    return n + len;
}

const char *chat_room_local(const char *key)
{
    const char *colon = strchr(key, ':');

    return colon ? colon + 1 : key;
}

size_t chat_room_ns_len(const char *key)
{
    const char *colon = strchr(key, ':');

    return colon ? (size_t)(colon - key) : 0;
}

char *chat_room_ns(const char *key, char out[CHAT_NS_MAX + 1])
{
    size_t n = chat_room_ns_len(key);

    if (n > CHAT_NS_MAX)
        n = 0; /* not a key */
    memcpy(out, key, n);
    out[n] = '\0';
    return out;
}
