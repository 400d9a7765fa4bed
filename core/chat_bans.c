/* chat_bans: the per-process list of active bans, matched in memory, and
 * the chat_admin line parser (see chat_bans.h). */
#define _GNU_SOURCE
#include "chat_bans.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool in_net(const struct chat_ban *ban, int family, const unsigned char *a)
{
    int full = ban->bits / 8, rest = ban->bits % 8;

    if (family != ban->family)
        return false;
    if (memcmp(ban->net, a, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (ban->net[full] & mask) == (a[full] & mask);
}

static int load_row(struct chat_ban *ban, const PGresult *res, int i)
{
    const char *target = PQgetvalue(res, i, 1), *addr = PQgetvalue(res, i, 2);

    memset(ban, 0, sizeof(*ban));
    ban->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    if (strlen(target) > CHAT_SENDER_MAX)
        return -1;
    strcpy(ban->target, target);
    if (*addr && chat_addr_parse(addr, &ban->family, ban->net, &ban->bits) < 0)
        return -1;
    ban->until_ms = strtoll(PQgetvalue(res, i, 3), NULL, 10);
    snprintf(ban->until, sizeof(ban->until), "%s", PQgetvalue(res, i, 4));
    snprintf(ban->reason, sizeof(ban->reason), "%s", PQgetvalue(res, i, 5));
    snprintf(ban->ns, sizeof(ban->ns), "%s", PQgetvalue(res, i, 6));
    return 0;
}

int chat_bans_load(struct chat_bans *b, const PGresult *res)
{
    struct chat_ban *v;
    int n, k = 0;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 7)
        return -1;
    n = PQntuples(res);
    v = calloc((size_t)n + 1, sizeof(*v));
    if (v == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        if (load_row(&v[k], res, i) == 0)
            k++; /* a row we cannot read (never, by the table's checks) is skipped */
    }
    free(b->v);
    b->v = v;
    b->n = (size_t)k;
    return 0;
}

void chat_bans_free(struct chat_bans *b)
{
    if (b == NULL)
        return;
    free(b->v);
    b->v = NULL;
    b->n = 0;
}

const struct chat_ban *chat_bans_match(const struct chat_bans *b, const char *user,
                                       const char *addr, const char *ns, int64_t now_ms)
{
    unsigned char a[16];
    int family = 0, bits;

    if (addr && *addr && chat_addr_parse(addr, &family, a, &bits) < 0)
        family = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct chat_ban *ban = &b->v[i];
        if (ban->until_ms != 0 && ban->until_ms <= now_ms)
            continue;
        /* another namespace's ban (a moderator's of another site) */
        if (strcmp(ban->ns, CHAT_BAN_EVERY_NS) != 0 && strcmp(ban->ns, ns ? ns : "") != 0)
            continue;
        if (user && *user && ban->target[0] && strcmp(ban->target, user) == 0)
            return ban;
        if (family && ban->family && in_net(ban, family, a))
            return ban;
    }
    return NULL;
}

enum chat_admin_op chat_admin_parse(const char *line, size_t len, char user[CHAT_SENDER_MAX + 1])
{
    json_t *root = json_loadb(line, len, 0, NULL);
    enum chat_admin_op op = CHAT_ADMIN_BAD;
    const char *s;

    user[0] = '\0';
    if (!json_is_object(root))
        goto out;
    s = json_string_value(json_object_get(root, "op"));
    if (s == NULL)
        goto out;
    if (strcmp(s, "ban") == 0) {
        op = CHAT_ADMIN_BAN;
    } else if (strcmp(s, "unban") == 0) {
        op = CHAT_ADMIN_UNBAN;
    } else if (strcmp(s, "kick") == 0) {
        json_t *u = json_object_get(root, "user");
        const char *name = json_string_value(u);
        size_t n = json_string_length(u);
        bool guest = name && n > 1 && name[0] == '~';
        if (name && chat_valid_user(name + guest, n - guest)) {
            memcpy(user, name, n + 1);
            op = CHAT_ADMIN_KICK;
        }
    }
out:
    json_decref(root);
    return op;
}
