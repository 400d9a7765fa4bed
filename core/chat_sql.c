/* chat_sql: the array parameters of the statements both daemons send and
 * the decoding of chat_post's answer (see chat_sql.h). */
#include "chat_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_policy.h"

static int add_str(struct chat_sbuf *b, const char *s)
{
    return chat_db_array_add(b, s, strlen(s));
}

static int add_bool(struct chat_sbuf *b, bool v)
{
    return chat_db_array_add(b, v ? "t" : "f", 1);
}

int chat_post_args_add(struct chat_post_args *a, const char *room, const char *sender,
                       const char *text, size_t text_len, const char *cid, size_t cid_len)
{
    if (add_str(&a->room, room) < 0 || add_str(&a->sender, sender) < 0 ||
        chat_db_array_add(&a->text, text, text_len) < 0 ||
        chat_db_array_add(&a->cid, cid, cid ? cid_len : 0) < 0)
        return -1;
    a->n++;
    return 0;
}

int chat_post_args_end(struct chat_post_args *a, const char *params[4])
{
    if (chat_db_array_end(&a->room) < 0 || chat_db_array_end(&a->sender) < 0 ||
        chat_db_array_end(&a->text) < 0 || chat_db_array_end(&a->cid) < 0)
        return -1;
    params[0] = a->room.p;
    params[1] = a->sender.p;
    params[2] = a->text.p;
    params[3] = a->cid.p;
    return 0;
}

void chat_post_args_free(struct chat_post_args *a)
{
    chat_sbuf_free(&a->room);
    chat_sbuf_free(&a->sender);
    chat_sbuf_free(&a->text);
    chat_sbuf_free(&a->cid);
    a->n = 0;
}

int chat_post_answer(const PGresult *res, size_t k, struct chat_post_ack *out)
{
    /* one row per send, ORDER BY idx: row k is send k when idx says so */
    if (k >= (size_t)PQntuples(res) || PQnfields(res) < 4 ||
        strtoll(PQgetvalue(res, (int)k, 0), NULL, 10) != (long long)k + 1)
        return -1;
    out->seq = strtoll(PQgetvalue(res, (int)k, 1), NULL, 10);
    out->ts = PQgetvalue(res, (int)k, 2);
    out->dup = PQgetvalue(res, (int)k, 3)[0] == 't';
    return out->seq > 0 ? 0 : -1;
}

static bool class_of(const char *sqlstate, const char *cls)
{
    return sqlstate && sqlstate[0] == cls[0] && sqlstate[1] == cls[1];
}

enum chat_post_fail chat_post_failed(size_t n, bool connected, const char *sqlstate)
{
    /* 08 connection, 53 resources, 57 shutdown or cancel, 58 system: not
     * the data's fault, and a split would only fail n times */
    if (!connected || !sqlstate || class_of(sqlstate, "08") || class_of(sqlstate, "53") ||
        class_of(sqlstate, "57") || class_of(sqlstate, "58"))
        return CHAT_POST_UNAVAILABLE;
    if (n > 1)
        return CHAT_POST_SPLIT;
    return class_of(sqlstate, "22") || class_of(sqlstate, "23") ? CHAT_POST_REJECTED
                                                                : CHAT_POST_UNAVAILABLE;
}

int chat_presence_args_add(struct chat_presence_args *a, const char *room, const char *member,
                           bool online)
{
    if (add_str(&a->room, room) < 0 || add_str(&a->member, member) < 0 ||
        add_bool(&a->online, online) < 0)
        return -1;
    a->n++;
    return 0;
}

int chat_presence_args_end(struct chat_presence_args *a, const char *node, const char *params[4])
{
    if (chat_db_array_end(&a->room) < 0 || chat_db_array_end(&a->member) < 0 ||
        chat_db_array_end(&a->online) < 0)
        return -1;
    params[0] = node;
    params[1] = a->room.p;
    params[2] = a->member.p;
    params[3] = a->online.p;
    return 0;
}

void chat_presence_args_free(struct chat_presence_args *a)
{
    chat_sbuf_free(&a->room);
    chat_sbuf_free(&a->member);
    chat_sbuf_free(&a->online);
    a->n = 0;
}

int chat_seen_args_add(struct chat_seen_args *a, const char *name, bool authenticated)
{
    if (add_str(&a->name, name) < 0 || add_bool(&a->auth, authenticated) < 0)
        return -1;
    a->n++;
    return 0;
}

int chat_seen_args_end(struct chat_seen_args *a, const char *params[2])
{
    if (chat_db_array_end(&a->name) < 0 || chat_db_array_end(&a->auth) < 0)
        return -1;
    params[0] = a->name.p;
    params[1] = a->auth.p;
    return 0;
}

void chat_seen_args_free(struct chat_seen_args *a)
{
    chat_sbuf_free(&a->name);
    chat_sbuf_free(&a->auth);
    a->n = 0;
}

void chat_change_params(struct chat_change_params *a, const struct chat_request *r,
                        const char *actor, const struct chat_policy *p)
{
    snprintf(a->seq, sizeof(a->seq), "%lld", (long long)r->seq);
    snprintf(a->window, sizeof(a->window), "%u", p->edit_window);
    a->params[0] = r->key;
    a->params[1] = actor;
    a->params[2] = a->seq;
    a->params[3] = r->op == CHAT_OP_EDIT ? "edit" : "delete";
    a->params[4] = r->op == CHAT_OP_EDIT ? r->text.p : NULL;
    a->params[5] = r->cid.p;
    a->params[6] = p->moderator ? "t" : "f";
    a->params[7] = a->window;
}

enum chat_err chat_change_answer(const PGresult *res, struct chat_post_ack *out, const char **why)
{
    static const struct {
        const char *err;
        enum chat_err code;
    } errs[] = {
        {"not_found", CHAT_E_NOT_FOUND},
        {"forbidden", CHAT_E_FORBIDDEN},
        {"too_late", CHAT_E_TOO_LATE},
        {"bad_request", CHAT_E_BAD_REQUEST},
    };

    *why = "the database is unavailable; nothing was changed: retry with the same cid";
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        PQnfields(res) < 5)
        return CHAT_E_UNAVAILABLE;
    if (!PQgetisnull(res, 0, 3)) {
        const char *err = PQgetvalue(res, 0, 3);
        *why = PQgetisnull(res, 0, 4) ? err : PQgetvalue(res, 0, 4);
        for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
            if (strcmp(err, errs[i].err) == 0)
                return errs[i].code;
        return CHAT_E_BAD_REQUEST; /* a refusal we do not know: not worth a retry */
    }
    out->seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    out->ts = PQgetvalue(res, 0, 1);
    out->dup = PQgetvalue(res, 0, 2)[0] == 't';
    if (out->seq <= 0)
        return CHAT_E_UNAVAILABLE;
    *why = "ok";
    return CHAT_OK;
}

void chat_ban_params(struct chat_ban_params *a, const struct chat_request *r, const char *by,
                     const char *ns)
{
    ns = ns ? ns : "";
    if (r->op == CHAT_OP_BANS) {
        a->sql = CHAT_SQL_BANS_LIST;
        a->n = 1;
        a->params[0] = ns;
        return;
    }
    if (r->op == CHAT_OP_UNBAN) {
        snprintf(a->num, sizeof(a->num), "%lld", (long long)r->seq);
        a->sql = CHAT_SQL_UNBAN;
        a->n = 3;
        a->params[0] = a->num;
        a->params[1] = by;
        a->params[2] = ns;
        return;
    }
    snprintf(a->num, sizeof(a->num), "%lld", (long long)r->ban_for);
    a->sql = CHAT_SQL_BAN;
    a->n = 6;
    a->params[0] = r->user.p ? r->user.p : "";
    a->params[1] = r->addr.p ? r->addr.p : "";
    a->params[2] = a->num;
    a->params[3] = by;
    a->params[4] = r->reason.p ? r->reason.p : "";
    a->params[5] = ns;
}

size_t chat_history_rows(const PGresult *res, struct chat_str *msgs, size_t cap, int64_t *horizon)
{
    int64_t first = 0, h = 0;
    size_t n = 0;

    for (int i = 0; i < PQntuples(res); i++) {
        if (!PQgetisnull(res, i, 2))
            h = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        if (PQgetisnull(res, i, 0) || n >= cap)
            continue;
        if (n == 0)
            first = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        msgs[n].p = PQgetvalue(res, i, 1);
        msgs[n].len = (size_t)PQgetlength(res, i, 1);
        n++;
    }
    *horizon = h > 0 && (n == 0 || first <= h + 1) ? h : -1;
    return n;
}

size_t chat_page_rows(const char *op, const PGresult *res, struct chat_str *msgs, size_t cap,
                      int64_t *horizon)
{
    size_t n = 0;

    if (strcmp(op, "history") == 0)
        return chat_history_rows(res, msgs, cap, horizon);
    for (int i = 0; i < PQntuples(res) && n < cap; i++, n++) {
        msgs[n].p = PQgetvalue(res, i, 1);
        msgs[n].len = (size_t)PQgetlength(res, i, 1);
    }
    *horizon = -1;
    return n;
}
