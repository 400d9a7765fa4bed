/* pg_resolve: host names resolved in a thread, handed back to the loop
 * through a socket pair (see pg_resolve.h). The job is shared by the thread and
 * the loop and freed by whichever lets go last. */
#define _GNU_SOURCE
#include "pg_resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chat_db.h"
#include "ev.h"

#define MAX_ADDRS 8  /* per host name */
#define MAX_HOSTS 64 /* entries after expansion */

static bool is_literal(const char *h)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

/* A unix socket directory (absolute path, or @abstract), or empty. */
static bool is_socket(const char *h)
{
    return h[0] == '\0' || h[0] == '/' || h[0] == '@';
}

static const char *opt_val(const PQconninfoOption *o, const char *key)
{
    for (; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val;
    return NULL;
}

bool pg_resolve_needed(const char *conninfo)
{
    PQconninfoOption *o = PQconninfoParse(conninfo ? conninfo : "", NULL);
    bool need = false;

    if (!o)
        return false; /* libpq will say what is wrong with it */
    const char *host = opt_val(o, "host"), *addr = opt_val(o, "hostaddr");
    if (host && (!addr || !*addr)) {
        char *list = strdup(host), *save = NULL;
        for (char *h = list ? strtok_r(list, ",", &save) : NULL; h; h = strtok_r(NULL, ",", &save))
            need |= !is_socket(h) && !is_literal(h);
        free(list);
    }
    PQconninfoFree(o);
    return need;
}

static int lookup_gai(const char *name, char out[][64], int max, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *a;
    int n = 0, rc = getaddrinfo(name, NULL, &hints, &res);

    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", name, gai_strerror(rc));
        return -1;
    }
    for (a = res; a && n < max; a = a->ai_next) {
        const void *p = a->ai_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) &&
            inet_ntop(a->ai_family, p, out[n], 64))
            n++;
    }
    freeaddrinfo(res);
    return n;
}

static int split(char *s, char **v, int max)
{
    int n = 0;
    char *p = s;

    for (;;) { /* empty entries count: "a,,b" is three */
        char *c = strchr(p, ',');
        if (n == max)
            return -1;
        v[n++] = p;
        if (!c)
            return n;
        *c = '\0';
        p = c + 1;
    }
}

static int add(struct chat_sbuf *b, const char *s)
{
    return chat_sbuf_add(b, s, strlen(s));
}

static int add_quoted(struct chat_sbuf *b, const char *key, const char *val)
{
    if ((b->len && add(b, " ") < 0) || add(b, key) < 0 || add(b, "='") < 0)
        return -1;
    for (const char *v = val; *v; v++)
        if (((*v == '\'' || *v == '\\') && add(b, "\\") < 0) || chat_sbuf_add(b, v, 1) < 0)
            return -1;
    return add(b, "'");
}

char *pg_resolve_rewrite(const char *conninfo, pg_lookup_fn *lookup, char *err, size_t errlen)
{
    PQconninfoOption *o = PQconninfoParse(conninfo ? conninfo : "", NULL);
    struct chat_sbuf hosts = {0}, addrs = {0}, ports = {0}, out = {0};
    char *hl = NULL, *pl = NULL, *h[MAX_HOSTS], *p[MAX_HOSTS], a[MAX_ADDRS][64], why[160] = "";
    int nh, np = 0, n = 0;

    if (!lookup)
        lookup = lookup_gai;
    if (!o) {
        snprintf(err, errlen, "bad conninfo");
        return NULL;
    }
    const char *port = opt_val(o, "port");
    hl = strdup(opt_val(o, "host") ? opt_val(o, "host") : "");
    pl = strdup(port ? port : "");
    if (!hl || !pl || (nh = split(hl, h, MAX_HOSTS)) < 0 || (np = split(pl, p, MAX_HOSTS)) < 0)
        goto fail;
    for (int i = 0; i < nh; i++) {
        const char *pi = np > 1 && i < np ? p[i] : p[0];
        int k = 1;
        if (is_socket(h[i]) || is_literal(h[i]))
            a[0][0] = '\0'; /* libpq uses host= as it is */
        else if ((k = lookup(h[i], a, MAX_ADDRS, why, sizeof(why))) <= 0)
            continue;
        for (int j = 0; j < k && n < MAX_HOSTS; j++, n++) {
            if ((n && (add(&hosts, ",") < 0 || add(&addrs, ",") < 0 || add(&ports, ",") < 0)) ||
                add(&hosts, h[i]) < 0 || add(&addrs, a[j]) < 0 || add(&ports, pi) < 0)
                goto fail;
        }
    }
    if (n == 0) {
        snprintf(err, errlen, "%s", why[0] ? why : "no host");
        goto out;
    }
    if (chat_sbuf_add(&hosts, "", 1) < 0 || chat_sbuf_add(&addrs, "", 1) < 0 ||
        chat_sbuf_add(&ports, "", 1) < 0)
        goto fail;
    for (PQconninfoOption *x = o; x->keyword; x++) {
        const char *v = x->val;
        if (strcmp(x->keyword, "host") == 0)
            v = hosts.p;
        else if (strcmp(x->keyword, "hostaddr") == 0)
            v = addrs.p;
        else if (strcmp(x->keyword, "port") == 0)
            v = port ? ports.p : NULL;
        if (v && add_quoted(&out, x->keyword, v) < 0)
            goto fail;
    }
    if (chat_sbuf_add(&out, "", 1) < 0)
        goto fail;
    goto out;
fail:
    snprintf(err, errlen, "out of memory, or more than %d hosts", MAX_HOSTS);
    chat_sbuf_free(&out);
out:
    PQconninfoFree(o);
    free(hl);
    free(pl);
    chat_sbuf_free(&hosts);
    chat_sbuf_free(&addrs);
    chat_sbuf_free(&ports);
    return out.p;
}

/* ---- the thread and the loop ---- */

struct job {
    atomic_int refs; /* the thread and the loop */
    char *in, *out;
    char err[200];
    int wfd;
};

static void job_unref(struct job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1) {
        free(j->in);
        free(j->out);
        free(j);
    }
}

static void *resolve_main(void *arg)
{
    struct job *j = arg;
    char one = 1;

    j->out = pg_resolve_rewrite(j->in, NULL, j->err, sizeof(j->err));
    /* MSG_NOSIGNAL: when the loop cancelled, nobody reads, and that is fine */
    if (send(j->wfd, &one, 1, MSG_NOSIGNAL) < 0) {
    }
    close(j->wfd);
    job_unref(j);
    return NULL;
}

static void done_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct pg_resolve *r = io->data;
    struct job *j = r->job;
    char *out = j->out, err[200];
    (void)events;

    j->out = NULL;
    snprintf(err, sizeof(err), "%s", j->err);
    ev_io_set(loop, &r->io, 0);
    close(r->io.fd);
    r->io.fd = -1;
    r->job = NULL;
    job_unref(j);
    r->cb(r->data, out, out ? NULL : err);
}

int pg_resolve_start(struct pg_resolve *r, struct ev_loop *loop, const char *conninfo,
                     pg_resolved_cb *cb, void *data, char *err, size_t errlen)
{
    struct job *j = calloc(1, sizeof(*j));
    int fds[2] = {-1, -1};
    pthread_t t;
    pthread_attr_t attr;

    if (!j || !(j->in = strdup(conninfo)) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0) {
        snprintf(err, errlen, "cannot start resolving: %s", strerror(errno));
        goto fail;
    }
    atomic_init(&j->refs, 2);
    j->wfd = fds[1];
    r->loop = loop;
    r->cb = cb;
    r->data = data;
    r->io.fd = fds[0];
    r->io.cb = done_cb;
    r->io.data = r;
    if (ev_io_set(loop, &r->io, EPOLLIN) < 0) {
        snprintf(err, errlen, "cannot watch the resolver");
        goto fail;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, resolve_main, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        ev_io_set(loop, &r->io, 0);
        snprintf(err, errlen, "cannot start the resolver thread: %s", strerror(rc));
        goto fail;
    }
    r->job = j;
    return 0;
fail:
    if (fds[0] >= 0) {
        close(fds[0]);
        close(fds[1]);
    }
    r->io.fd = -1;
    if (j)
        free(j->in);
    free(j);
    return -1;
}

void pg_resolve_cancel(struct pg_resolve *r)
{
    if (!r->job)
        return;
    ev_io_set(r->loop, &r->io, 0);
    close(r->io.fd); /* the thread's send fails, without SIGPIPE */
    r->io.fd = -1;
    job_unref(r->job);
    r->job = NULL;
}
