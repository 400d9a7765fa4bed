/* lp_bans: the process's list of active bans (core/chat_bans.h), shared by
 * the threads: the listener reloads it when it connects and on every ban
 * or unban heard on channel chat_admin; acceptors refuse a banned speaker
 * or address with 403 "banned" from memory, no query per request. */
#define _GNU_SOURCE
#include "lp.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_bans.h"
#include "chat_log.h"
#include "chat_metrics.h"

static pthread_mutex_t bans_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chat_bans bans;

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int lp_bans_reload(PGconn *db)
{
    PGresult *res = PQexec(db, CHAT_SQL_BANS);
    int rc;

    pthread_mutex_lock(&bans_lock);
    rc = chat_bans_load(&bans, res);
    size_t n = bans.n;
    pthread_mutex_unlock(&bans_lock);
    if (rc < 0)
        log_error("cannot load the bans: %s", lp_pgerr(res, db));
    else
        log_info("bans: %zu active", n);
    PQclear(res);
    return rc;
}

bool lp_bans_match(const char *who, const char *addr, const char *ns)
{
    pthread_mutex_lock(&bans_lock);
    bool hit = chat_bans_match(&bans, who, addr, ns, wall_ms()) != NULL;
    pthread_mutex_unlock(&bans_lock);
    return hit;
}

char *lp_bans_answer(const char *who, const char *addr, const char *ns, size_t *len)
{
    char *body = NULL;

    pthread_mutex_lock(&bans_lock);
    const struct chat_ban *ban = chat_bans_match(&bans, who, addr, ns, wall_ms());
    if (ban)
        body = chat_encode_banned(ban->until, ban->reason, NULL, len);
    if (ban)
        chat_metric_refused(CHAT_E_BANNED);
    pthread_mutex_unlock(&bans_lock);
    return body;
}

bool lp_bans_refuse(struct lp_req *r, const char *who)
{
    size_t len;
    char *body = lp_bans_answer(who, r->addr, r->policy.ns, &len);

    if (body == NULL)
        return false;
    log_info("request %d: %s (%s) is banned: refused", r->conn.id, who ? who : "-", r->addr);
    lp_reply(&r->conn, 403, body, len);
    free(body);
    return true;
}

void lp_bans_free(void)
{
    pthread_mutex_lock(&bans_lock);
    chat_bans_free(&bans);
    pthread_mutex_unlock(&bans_lock);
}
