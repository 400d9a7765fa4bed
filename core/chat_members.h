/* chat_members: the member list of a room as both daemons answer it:
 * chat_members()'s JSON array (CHAT_SQL_MEMBERS, sorted, capped), with the
 * asker added when the database does not list it yet (a joiner or poller
 * is a member from its first request, before this second's presence
 * flush), still sorted and capped at CHAT_MEMBERS_MAX names; count is
 * raised by one then. */
#ifndef CHAT_MEMBERS_H
#define CHAT_MEMBERS_H

#include <stddef.h>

/* Parses json[0..len) into *names (n strings, new, sorted; free with
 * chat_members_free), adding self (NULL: nobody) where it sorts when it is
 * absent and raising *count. 0, or -1 (not a JSON array, out of memory). */
int chat_members_parse(const char *json, size_t len, const char *self, const char ***names,
                       size_t *n, size_t *count);
void chat_members_free(const char **names, size_t n);

#endif
