/* lp_health: GET /chat/health and /chat/health/details. Names both
 * backends and the database: this worker, the WebSocket daemon (probed
 * over its unix socket with --ws-health, 1 s timeout; or already probed by
 * nginx through the chat_ws upstream, which it says with the parameter
 * CHAT_HEALTH_WS; else the live chat-ws processes of this host's metrics
 * files), and the database's schema version. 200 when all are up, 503
 * otherwise. The public answer has statuses only; pids, memory, the host
 * and per-process numbers only where nginx passes CHAT_ADMIN on (a
 * location the admin restricts: conf/chat-locations.conf). */
#define _GNU_SOURCE
#include "lp.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "chat_log.h"
#include "chat_metrics.h"
#include "chat_sys.h"
#include "chat_sql.h"

#define PROBE_MAX 16384

static const struct lp_config *conf; /* given at init */
static json_t *ws_down(const char *fmt, const char *arg)
{
    char msg[256];
    snprintf(msg, sizeof(msg), fmt, arg);
    return json_pack("{s:s, s:s}", "status", "down", "error", msg);
}

static int probe_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {1, 0};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Reads until EOF, the body's Content-Length, PROBE_MAX bytes or 1 s. */
static ssize_t probe_read(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    int64_t deadline = chat_now_ms() + 1000;

    while (len + 1 < cap && chat_now_ms() < deadline) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (end && cl && cl < end && len - (size_t)(end + 4 - buf) >= strtoul(cl + 17, NULL, 10))
            break;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

static json_t *probe_ws(int *status)
{
    static const char req[] =
        "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    char *buf;
    json_t *out;
    int fd;

    *status = 0;
    if (conf->ws_health == NULL)
        return json_pack("{s:s}", "status", "unknown");
    if ((fd = probe_connect(conf->ws_health)) < 0)
        return ws_down("cannot connect: %s", strerror(errno));
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1) {
        close(fd);
        return ws_down("cannot send the probe: %s", strerror(errno));
    }
    buf = malloc(PROBE_MAX);
    if (buf == NULL) {
        close(fd);
        return ws_down("%s", "out of memory");
    }
    probe_read(fd, buf, PROBE_MAX);
    close(fd);
    const char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) != 0 || body == NULL) {
        out = ws_down("%s", buf[0] ? "not an HTTP answer" : "no answer within 1 s");
    } else {
        *status = atoi(buf + 9);
        out = json_loads(body + 4, JSON_DISABLE_EOF_CHECK, NULL);
        if (!json_is_object(out)) {
            json_decref(out);
            out = ws_down("answered %s without a JSON object", *status == 200 ? "200" : "an error");
        }
    }
    free(buf);
    return out;
}

static json_t *probe_db(PGconn **db, bool *up)
{
    PGresult *res =
        lp_db_query_within(db, "health", CHAT_SQL_SCHEMA_VERSION, 0, NULL, CHAT_DB_HEALTH_MS);
    json_t *out;

    *up = false;
    if (res == NULL) {
        out = json_pack("{s:s, s:s}", "status", "down", "error", "unreachable");
    } else if (!lp_db_ok(res) || PQntuples(res) != 1) {
        out = json_pack("{s:s, s:s}", "status", "down", "error", lp_pgerr(res, *db));
    } else {
        long v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        *up = v == CHAT_SCHEMA_VERSION;
        out = json_pack("{s:s, s:i}", "status", *up ? "up" : "wrong_schema", "schema", (int)v);
    }
    PQclear(res);
    return out;
}

void lp_health_init(const struct lp_config *cfg)
{
    conf = cfg;
}

static void add_process(const struct chat_metrics_block *b, int64_t rss, void *arg)
{
    json_t *p =
        json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "daemon", b->daemon, "pid",
                  (int)b->pid, "started", (json_int_t)b->started, "rss_bytes", (json_int_t)rss,
                  "connections", (json_int_t)atomic_load(&b->v[CHAT_M_CONNECTIONS]), "rooms",
                  (json_int_t)atomic_load(&b->v[CHAT_M_ROOMS]), "parked",
                  (json_int_t)atomic_load(&b->v[CHAT_M_PARKED]), "queue",
                  (json_int_t)atomic_load(&b->v[CHAT_M_QUEUE]), "outbox_bytes",
                  (json_int_t)atomic_load(&b->v[CHAT_M_OUTBOX_BYTES]));
    json_array_append_new(arg, p);
}

static void count_ws(const struct chat_metrics_block *b, int64_t rss, void *arg)
{
    (void)rss;
    if (strcmp(b->daemon, "ws") == 0)
        ++*(int *)arg;
}

/* chat-ws as far as this worker can tell: its own probe (--ws-health),
 * else nginx's (CHAT_HEALTH_WS: nginx reached chat_ws's /health before
 * passing the request here), else live chat-ws processes on this host. */
static json_t *ws_state(const struct lp_req *r, bool *ok)
{
    int status, procs = 0;

    if (conf->ws_health != NULL && (r->admin || !r->ws_checked)) {
        json_t *ws = probe_ws(&status);
        *ok = status == 200;
        return ws;
    }
    *ok = true;
    if (r->ws_checked)
        return json_pack("{s:s, s:s}", "status", "ok", "checked_by", "nginx");
    if (conf->metrics_dir && chat_metrics_each(conf->metrics_dir, count_ws, &procs) >= 0 &&
        procs > 0)
        return json_pack("{s:s, s:s, s:i}", "status", "ok", "checked_by", "metrics files",
                         "processes", procs);
    *ok = false;
    return json_pack("{s:s, s:s}", "status", "unknown", "error",
                     "no --ws-health, not probed by nginx, no chat-ws process in the metrics "
                     "directory");
}

static json_t *fcgi_details(void)
{
    return json_pack(
        "{s:s, s:i, s:i, s:b, s:i, s:s, s:I, s:I, s:I, s:I, s:I}", "status", "ok", "pid",
        (int)getpid(), "parked", atomic_load(&lp_parked), "listen", atomic_load(&lp_listen_up),
        "present", (int)lp_presence_count(), "node", conf->node, "rate_limited",
        (json_int_t)lp_rate_refused(), "queued", (json_int_t)lp_writer_queued(), "db_timeouts",
        (json_int_t)atomic_load(&lp_db_timeouts), "resets", (json_int_t)atomic_load(&lp_resets),
        "rss_bytes", (json_int_t)chat_sys_rss_kib() * 1024);
}

/* Only "status" of each part: what a load balancer or the public needs. */
static json_t *status_only(json_t *part)
{
    json_t *st = json_object_get(part, "status");
    json_t *out = json_pack("{s:O}", "status", st ? st : json_string("unknown"));
    json_decref(part);
    return out;
}

void lp_health(struct lp_req *r, PGconn **db)
{
    bool db_up, ws_ok;
    json_t *dbj = probe_db(db, &db_up);
    json_t *ws = ws_state(r, &ws_ok);
    bool ok = db_up && ws_ok;
    json_t *fcgi = r->admin ? fcgi_details() : json_pack("{s:s}", "status", "ok");
    json_t *root;

    if (!r->admin) {
        dbj = status_only(dbj);
        ws = status_only(ws);
    }
    root = json_pack("{s:s, s:{s:o, s:o}, s:o}", "status", ok ? "ok" : "down", "backends", "fcgi",
                     fcgi, "ws", ws, "database", dbj);
    if (root && r->admin) {
        char host[256] = "";
        json_t *procs = json_array();
        gethostname(host, sizeof(host) - 1);
        if (conf->metrics_dir)
            chat_metrics_each(conf->metrics_dir, add_process, procs);
        json_object_set_new(root, "host", json_string(host));
        json_object_set_new(root, "processes", procs);
    }
    char *body = root ? json_dumps(root, JSON_COMPACT) : NULL;

    if (body == NULL)
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
    else
        lp_reply(&r->conn, ok ? 200 : 503, body, strlen(body));
    free(body);
    json_decref(root);
}
