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

/* Adds to *names (n sorted strings from chat_members_parse) every name of
 * local[0..nlocal) it lacks (this process's own members, whose presence
 * reaches the database at its next flush), raising *count for each; then
 * sorted and capped at CHAT_MEMBERS_MAX again. The caller passes no more
 * than CHAT_MEMBERS_MAX local names (more could not show anyway, and
 * would cost a sort of them all per answer). O(n + nlocal) with a set of
 * the names, a sort only when one was added. 0, or -1 out of memory (then
 * *names is freed and NULL, *n 0). */
int chat_members_merge(const char ***names, size_t *n, size_t *count, const char *const *local,
                       size_t nlocal);

#endif
