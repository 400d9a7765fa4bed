/* chat_members: the member list of a room as both daemons answer it (see
 * chat_members.h). */
#define _GNU_SOURCE
#include "chat_members.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chat_hash.h"
#include "chat_sql.h"

int chat_members_parse(const char *json, size_t len, const char *self, const char ***names,
                       size_t *n, size_t *count)
{
    json_t *arr = json_loadb(json, len, 0, NULL);
    size_t i, k = 0, m = json_array_size(arr);
    bool have_self = self == NULL;
    const char **v = json_is_array(arr) ? calloc(m + 2, sizeof(char *)) : NULL;

    if (!v)
        goto err;
    for (i = 0; i < m && k < CHAT_MEMBERS_MAX; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s)
            continue;
        if (self && strcmp(s, self) == 0)
            have_self = true;
        if (!(v[k++] = strdup(s)))
            goto err;
    }
    /* the asker is a member even before this second's presence flush */
    if (!have_self) {
        size_t pos = 0;
        while (pos < k && strcmp(v[pos], self) < 0)
            pos++;
        if (k < CHAT_MEMBERS_MAX || pos < k) {
            const char *copy = strdup(self);
            if (!copy)
                goto err;
            if (k == CHAT_MEMBERS_MAX)
                free((void *)v[--k]); /* the last name makes room */
            memmove(v + pos + 1, v + pos, (k - pos) * sizeof(char *));
            v[pos] = copy;
            k++;
        }
        (*count)++; /* counted whether or not the capped list shows it */
    }
    json_decref(arr);
    *names = v;
    *n = k;
    return 0;
err:
    if (v)
        chat_members_free(v, k);
    json_decref(arr);
    return -1;
}

void chat_members_free(const char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)names[i]);
    free(names);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Is name in the open-addressing set (cap a power of two)? Adds it if not. */
static bool set_add(const char **set, size_t cap, const char *name)
{
    size_t i = (size_t)chat_hash_more(CHAT_HASH_INIT, name, strlen(name)) & (cap - 1);

    for (; set[i]; i = (i + 1) & (cap - 1))
        if (strcmp(set[i], name) == 0)
            return true;
    set[i] = name;
    return false;
}

int chat_members_merge(const char ***names, size_t *n, size_t *count, const char *const *local,
                       size_t nlocal)
{
    size_t cap = 16, added = 0;
    const char **set = NULL, **v;

    if (nlocal == 0)
        return 0;
    while (cap < 2 * (*n + nlocal + 1))
        cap *= 2;
    v = realloc(*names, (*n + nlocal + 1) * sizeof(*v));
    if (!v || !(set = calloc(cap, sizeof(*set))))
        goto err;
    *names = v;
    for (size_t i = 0; i < *n; i++)
        set_add(set, cap, v[i]);
    for (size_t i = 0; i < nlocal; i++) {
        if (set_add(set, cap, local[i]))
            continue;
        if (!(v[*n] = strdup(local[i])))
            goto err;
        (*n)++;
        (*count)++;
        added++;
    }
    free(set);
    if (added) { /* in order again, and capped like the database's */
        qsort(v, *n, sizeof(*v), name_cmp);
        while (*n > CHAT_MEMBERS_MAX)
            free((void *)v[--*n]);
    }
    return 0;
err:
    free(set);
    if (v)
        *names = v;
    chat_members_free(*names, *n);
    *names = NULL;
    *n = 0;
    return -1;
}
