/* lp_fcgi: the FastCGI edge of the worker. Requests are read with libfcgi
 * (FCGX_Accept_r in the acceptors, FCGX_GetParam, FCGX_GetStr), copied
 * into a struct lp_req and released from libfcgi at once, so a parked poll
 * costs a file descriptor and a small struct instead of libfcgi's stream
 * buffers. Answers are written here as FastCGI records on that descriptor
 * by whichever thread holds the request, and the connection is closed
 * (fastcgi_keep_conn off: one request per connection). */
#define _GNU_SOURCE
#include "chat_http.h"
#include "lp.h"

#include <errno.h>
#include <stddef.h>
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "chat_log.h"
#include "chat_metrics.h"
#include "chat_origin.h"

#define FCGI_VERSION_1 1
#define FCGI_END_REQUEST 3
#define FCGI_STDOUT 6
#define FCGI_REQUEST_COMPLETE 0
#define LP_RECORD_MAX 65528 /* content bytes per record (multiple of 8) */
#define LP_STDIN_DRAIN_MAX (4 * 1024 * 1024)

static const char *const policy_params[] = {
    "CHAT_USER",         "CHAT_GUESTS", "CHAT_ROOMS",       "CHAT_READONLY",   "CHAT_MAX_TEXT",
    "CHAT_POLL_TIMEOUT", "CHAT_ROLE",   "CHAT_EDIT_WINDOW", "CHAT_FIRST_ROOM", "CHAT_NAMESPACE",
};

static unsigned char *put_record_header(unsigned char *h, int type, int id, size_t clen)
{
    h[0] = FCGI_VERSION_1;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)((id >> 8) & 0xff);
    h[3] = (unsigned char)(id & 0xff);
    h[4] = (unsigned char)((clen >> 8) & 0xff);
    h[5] = (unsigned char)(clen & 0xff);
    h[6] = 0; /* padding */
    h[7] = 0;
    return h + 8;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The CGI-style header block nginx reads from our STDOUT. */
static int format_head(char *out, size_t cap, int status, size_t len)
{
    if (status == 204)
        return snprintf(out, cap, "Status: 204 No Content\r\nCache-Control: no-store\r\n\r\n");
    return snprintf(out, cap,
                    "Status: %d %s\r\nContent-Type: application/json\r\n"
                    "Cache-Control: no-store\r\nContent-Length: %zu\r\n\r\n",
                    status, chat_http_reason(status), len);
}

int lp_reply(struct lp_conn *c, int status, const char *body, size_t len)
{
    char head[256];
    if (status == 204)
        len = 0;
    int hl = format_head(head, sizeof(head), status, len);
    size_t total = (size_t)hl + len;
    size_t nrec = total / LP_RECORD_MAX + 1;
    unsigned char *buf = malloc(total + 8 * (nrec + 2) + 8);
    int rc = -1;

    if (buf == NULL) {
        log_error("out of memory answering request %d; closing it", c->id);
        lp_conn_drop(c);
        return -1;
    }
    unsigned char *w = buf;
    size_t done = 0;
    while (done < total) {
        size_t n = total - done < LP_RECORD_MAX ? total - done : LP_RECORD_MAX;
        w = put_record_header(w, FCGI_STDOUT, c->id, n);
        for (size_t k = 0; k < n; k++, done++)
            *w++ = (unsigned char)(done < (size_t)hl ? head[done] : body[done - (size_t)hl]);
    }
    w = put_record_header(w, FCGI_STDOUT, c->id, 0);
    w = put_record_header(w, FCGI_END_REQUEST, c->id, 8);
    memset(w, 0, 8); /* appStatus 0, FCGI_REQUEST_COMPLETE, reserved */
    w[4] = FCGI_REQUEST_COMPLETE;
    w += 8;
    /* a web server that stops reading must not hold this thread forever */
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    rc = write_all(c->fd, buf, (size_t)(w - buf));
    if (rc < 0)
        log_debug("request %d: web server gone before the answer (%s)", c->id, strerror(errno));
    free(buf);
    lp_conn_drop(c);
    return rc;
}

int lp_stream_records(struct lp_conn *c, const char *data, size_t len, bool end, bool wait)
{
    size_t nrec = len / LP_RECORD_MAX + 1;
    unsigned char *buf = malloc(len + 8 * (nrec + 2) + 8);
    unsigned char *w = buf;
    size_t done = 0;
    int rc = 0;

    if (buf == NULL)
        return -1;
    while (done < len) {
        size_t n = len - done < LP_RECORD_MAX ? len - done : LP_RECORD_MAX;
        w = put_record_header(w, FCGI_STDOUT, c->id, n);
        memcpy(w, data + done, n);
        w += n;
        done += n;
    }
    if (end) {
        w = put_record_header(w, FCGI_STDOUT, c->id, 0);
        w = put_record_header(w, FCGI_END_REQUEST, c->id, 8);
        memset(w, 0, 8);
        w[4] = FCGI_REQUEST_COMPLETE;
        w += 8;
    }
    size_t total = (size_t)(w - buf);
    if (wait) {
        struct timeval tv = {5, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        rc = write_all(c->fd, buf, total);
    } else if (total > 0) {
        ssize_t n;
        do
            n = send(c->fd, buf, total, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        rc = n == (ssize_t)total ? 0 : -1;
    }
    free(buf);
    return rc;
}

int lp_reply_error_status(struct lp_conn *c, int status, enum chat_err code, const char *message)
{
    size_t len;
    char *body = chat_encode_error(code, message, NULL, &len);
    int rc;

    chat_metric_refused(code);
    if (body == NULL) {
        static const char oom[] = "{\"op\":\"error\",\"code\":\"unavailable\","
                                  "\"message\":\"out of memory\"}";
        return lp_reply(c, 503, oom, sizeof(oom) - 1);
    }
    rc = lp_reply(c, status, body, len);
    free(body);
    return rc;
}

int lp_reply_error(struct lp_conn *c, enum chat_err code, const char *message)
{
    return lp_reply_error_status(c, chat_err_http_status(code), code, message);
}

void lp_conn_drop(struct lp_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* ---- reading a request ---------------------------------------------------- */

static enum lp_endpoint endpoint_of(const char *uri)
{
    static const struct {
        const char *name;
        enum lp_endpoint ep;
    } eps[] = {
        {"poll", LP_EP_POLL},      {"send", LP_EP_SEND},       {"history", LP_EP_HISTORY},
        {"typing", LP_EP_TYPING},  {"health", LP_EP_HEALTH},   {"events", LP_EP_EVENTS},
        {"edit", LP_EP_EDIT},      {"delete", LP_EP_DELETE},   {"ban", LP_EP_BAN},
        {"unban", LP_EP_UNBAN},    {"bans", LP_EP_BANS},       {"search", LP_EP_SEARCH},
        {"details", LP_EP_HEALTH}, {"metrics", LP_EP_METRICS},
    };
    const char *slash;

    if (uri == NULL)
        return LP_EP_UNKNOWN;
    if (strstr(uri, "/basic/") != NULL)
        return LP_EP_BASIC;
    slash = strrchr(uri, '/');
    const char *last = slash ? slash + 1 : uri;
    for (size_t k = 0; k < sizeof(eps) / sizeof(eps[0]); k++)
        if (strcmp(last, eps[k].name) == 0)
            return eps[k].ep;
    return LP_EP_UNKNOWN;
}

/* "application/json" with optional parameters (";charset=utf-8"). */
static bool is_json_type(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    if (ct == NULL)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

static void read_policy(FCGX_Request *fr, struct lp_req *r)
{
    chat_policy_init(&r->policy);
    for (size_t k = 0; k < sizeof(policy_params) / sizeof(policy_params[0]); k++) {
        const char *name = policy_params[k];
        const char *v = FCGX_GetParam(name, fr->envp);
        const char *why = NULL;
        int key = chat_policy_key_from_param(name, strlen(name));

        if (v == NULL || key < 0)
            continue;
        if (chat_policy_set(&r->policy, (enum chat_policy_key)key, v, strlen(v), &why) < 0) {
            if (r->policy_err == NULL) {
                r->policy_err = why ? why : "bad value";
                log_error("nginx passed a bad %s (%s): fix the chat_* settings in nginx.conf", name,
                          r->policy_err);
            }
        }
    }
}

/* Reads stdin to its end: up to LP_BODY_MAX bytes kept, the rest (if a web
 * server sent more than we take) read and dropped so that the connection
 * is clean when we answer. */
static void read_body(FCGX_Request *fr, struct lp_req *r, long declared)
{
    char sink[4096];
    size_t dropped = 0;

    if (declared > LP_BODY_MAX) {
        r->body_too_large = true;
    } else if (declared > 0) {
        r->body = malloc((size_t)declared + 1);
        if (r->body == NULL) {
            r->body_too_large = true; /* answered 413: the client may retry smaller */
        } else {
            int n = FCGX_GetStr(r->body, (int)declared, fr->in);
            r->body_len = n > 0 ? (size_t)n : 0;
            r->body[r->body_len] = '\0';
            r->body_short = r->body_len < (size_t)declared;
        }
    }
    for (;;) {
        int n = FCGX_GetStr(sink, sizeof(sink), fr->in);
        if (n <= 0)
            break;
        dropped += (size_t)n;
        if (dropped > LP_STDIN_DRAIN_MAX)
            break;
        if (!r->body_too_large)
            r->body_too_large = true; /* more than CONTENT_LENGTH said */
    }
}

/* A parameter only nginx's configuration sets (a client's headers arrive
 * as HTTP_*): "on" or not. */
static bool param_on(FCGX_Request *fr, const char *name)
{
    const char *v = FCGX_GetParam(name, fr->envp);
    return v != NULL && strcmp(v, "on") == 0;
}

static void copy_param(FCGX_Request *fr, const char *name, char *out, size_t cap)
{
    const char *v = FCGX_GetParam(name, fr->envp);
    if (v == NULL || strlen(v) >= cap)
        v = ""; /* absent, or too long to be ours */
    memcpy(out, v, strlen(v) + 1);
}

/* basic/...: the page name, the base path, and the headers a form check needs. */
static void read_basic(FCGX_Request *fr, struct lp_req *r, const char *uri)
{
    const char *b = strstr(uri, "/basic/") + 7;
    const char *ct = FCGX_GetParam("CONTENT_TYPE", fr->envp);
    size_t blen = (size_t)(b - uri);

    if (strlen(b) < sizeof(r->basic_page) && strchr(b, '/') == NULL)
        memcpy(r->basic_page, b, strlen(b) + 1);
    else
        memcpy(r->basic_page, "?", 2);
    if (blen >= sizeof(r->base))
        blen = 0;
    memcpy(r->base, uri, blen);
    r->base[blen] = '\0';
    r->form = ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 &&
              (ct[33] == '\0' || ct[33] == ';');
    copy_param(fr, "HTTP_REFERER", r->referer, sizeof(r->referer));
    copy_param(fr, "HTTP_HOST", r->host, sizeof(r->host));
}

/* What tells a cross-site request (lp_req_cross_site), on every endpoint. */
static void read_site(FCGX_Request *fr, struct lp_req *r)
{
    const char *x = FCGX_GetParam("HTTP_X_CHAT_REQUEST", fr->envp);

    copy_param(fr, "HTTP_COOKIE", r->cookie, sizeof(r->cookie));
    copy_param(fr, "HTTP_ORIGIN", r->origin, sizeof(r->origin));
    copy_param(fr, "HTTP_SEC_FETCH_SITE", r->fetch_site, sizeof(r->fetch_site));
    copy_param(fr, "CHAT_SCHEME", r->scheme, sizeof(r->scheme));
    copy_param(fr, "CHAT_HOST", r->site_host, sizeof(r->site_host));
    copy_param(fr, "CHAT_SERVER_NAME", r->server_name, sizeof(r->server_name));
    copy_param(fr, "CHAT_SERVER_ADDR", r->server_addr, sizeof(r->server_addr));
    copy_param(fr, "CHAT_ORIGINS", r->origins, sizeof(r->origins));
    r->xreq = x != NULL && x[0] != '\0';
    if (FCGX_GetParam("HTTP_ORIGIN", fr->envp) && r->origin[0] == '\0')
        memcpy(r->origin, "null", 5); /* too long to be a site's: never allowed */
}

bool lp_req_cross_site(const struct lp_req *r)
{
    if (r->origin[0]) {
        struct chat_site site = {
            .scheme = r->scheme[0] ? r->scheme : NULL, /* no scheme: not through nginx */
            .scheme_len = strlen(r->scheme),
            .host = r->site_host[0] ? r->site_host : NULL,
            .host_len = strlen(r->site_host),
            .server_name = r->server_name,
            .server_name_len = strlen(r->server_name),
            .server_addr = r->server_addr,
            .server_addr_len = strlen(r->server_addr),
            .allowed = r->origins,
            .allowed_len = strlen(r->origins),
        };
        return !chat_origin_allowed(r->origin, strlen(r->origin), &site);
    }
    return strcmp(r->fetch_site, "cross-site") == 0 || strcmp(r->fetch_site, "same-site") == 0;
}

void lp_req_read(FCGX_Request *fr, struct lp_req *r)
{
    const char *method = FCGX_GetParam("REQUEST_METHOD", fr->envp);
    const char *uri = FCGX_GetParam("DOCUMENT_URI", fr->envp);
    const char *qs = FCGX_GetParam("QUERY_STRING", fr->envp);
    const char *cl = FCGX_GetParam("CONTENT_LENGTH", fr->envp);
    long declared = 0;

    memset(r, 0, offsetof(struct lp_req, query));
    r->query[0] = '\0';
    r->query_len = 0;
    r->query_too_long = false;
    r->json = false;
    r->body = NULL;
    r->body_len = 0;
    r->body_too_large = r->body_short = false;
    r->conn.fd = fr->ipcFd;
    r->conn.id = fr->requestId;
    if (uri == NULL)
        uri = FCGX_GetParam("SCRIPT_NAME", fr->envp);
    r->ep = endpoint_of(uri);
    r->get = method && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
    r->post = method && strcmp(method, "POST") == 0;
    read_policy(fr, r);
    r->admin = param_on(fr, "CHAT_ADMIN");
    r->ws_checked = param_on(fr, "CHAT_HEALTH_WS");
    const char *addr = FCGX_GetParam("REMOTE_ADDR", fr->envp);
    snprintf(r->addr, sizeof(r->addr), "%s", addr ? addr : "");
    if (qs) {
        size_t n = strlen(qs);
        if (n > LP_QUERY_MAX) {
            r->query_too_long = true;
        } else {
            memcpy(r->query, qs, n + 1);
            r->query_len = n;
        }
    }
    r->json = is_json_type(FCGX_GetParam("CONTENT_TYPE", fr->envp));
    /* GET events: Accept and Last-Event-ID (nginx passes request headers as HTTP_*) */
    const char *acc = FCGX_GetParam("HTTP_ACCEPT", fr->envp);
    r->accept_sse = acc && strcasestr(acc, "text/event-stream") != NULL;
    read_site(fr, r);
    if (r->ep == LP_EP_BASIC)
        read_basic(fr, r, uri);
    const char *lei = FCGX_GetParam("HTTP_LAST_EVENT_ID", fr->envp);
    r->last_event_id[0] = '\0';
    r->last_event_id_too_long = lei && strlen(lei) >= sizeof(r->last_event_id);
    if (lei && !r->last_event_id_too_long)
        memcpy(r->last_event_id, lei, strlen(lei) + 1);
    if (cl && *cl) {
        char *end;
        errno = 0;
        declared = strtol(cl, &end, 10);
        if (errno || *end || declared < 0)
            declared = LP_BODY_MAX + 1;
    }
    read_body(fr, r, declared);
    FCGX_Free(fr, 0); /* streams and params; the connection stays open */
}

void lp_req_free(struct lp_req *r)
{
    free(r->body);
    r->body = NULL;
    lp_conn_drop(&r->conn);
}
