/* chat_ns: namespaces (docs/nginx.md, "Namespaces"). Sites served by the
 * same daemons and database stay apart by a per-location $chat_namespace:
 * inside the daemons and the database a room is known by its key, "ns:room",
 * or the room alone in the default (empty) namespace; clients only ever see
 * the room. ':' occurs in neither a room nor a namespace, so a key splits
 * back without ambiguity. On the bus (channel 'chat') the line of a
 * namespaced room is "ns\t" and then the event as clients get it
 * (chat_notify.h). Pure functions; no allocation. */
#ifndef CHAT_NS_H
#define CHAT_NS_H

#include <stdbool.h>
#include <stddef.h>

#include "chat_valid.h"

#define CHAT_NS_MAX 32 /* namespaces: ^[a-z0-9][a-z0-9_-]{0,31}$ */
#define CHAT_ROOM_KEY_MAX (CHAT_NS_MAX + 1 + CHAT_ROOM_MAX)

/* A namespace name: the alphabet of rooms, at most CHAT_NS_MAX bytes. */
bool chat_valid_ns(const char *s, size_t len);

/* A room key: a valid room, or a valid namespace, ':' and a valid room. */
bool chat_valid_room_key(const char *s, size_t len);

/* Writes the key of room (len bytes) in namespace ns ("" or NULL: the
 * default one), NUL-terminated, to out (size >= CHAT_ROOM_KEY_MAX + 1).
 * Returns its length; 0 (out "") when ns or the room is not valid. */
size_t chat_room_key(const char *ns, const char *room, size_t len, char *out);

/* The room of a key as clients know it (a pointer into key). */
const char *chat_room_local(const char *key);

/* The bytes of the key's namespace at its start; 0 for the default one. */
size_t chat_room_ns_len(const char *key);

/* The key's namespace, NUL-terminated, into out ("" for the default one);
 * returns out. */
char *chat_room_ns(const char *key, char out[CHAT_NS_MAX + 1]);

#endif
