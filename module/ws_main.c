/* chat-ws: the WebSocket daemon. Parses options, checks the database
 * schema, binds the listening socket, then runs --workers processes that
 * share it, each with its own event loop and database connections. The
 * parent is core/chat_supervise.c (the restart policy of both daemons). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netdb.h>
#include <time.h>
#include <unistd.h>

#include "chat_db.h"
#include "chat_log.h"
#include "chat_metrics.h"
#include "chat_supervise.h"
#include "chat_sys.h"
#include "chat_sql.h"
#include "ws.h"

#define WS_LISTEN_BACKLOG 65535
#define WS_STOP_GRACE_MS 3000

static const char *log_path;
static const char *metrics_dir; /* --metrics-dir; NULL: beside the socket */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: chat-ws [options]\n"
            "  --db CONNINFO          libpq conninfo (default $DATABASE_URL, else PG*)\n"
            "  --listen ADDR          unix:/path or host:port (default unix:/run/chat/ws.sock)\n"
            "  --workers N            processes sharing the socket (default: cores)\n"
            "  --socket-mode OCTAL    unix socket mode (default 0660; never o+w)\n"
            "  --heartbeat S          seconds between pings (default 30)\n"
            "  --max-conns N          connections per process (default 10000)\n"
            "  --max-message BYTES    largest client message (default 262144)\n"
            "  --outbox BYTES         queued bytes per client before 1008 (default 1048576)\n"
            "  --max-rooms N          rooms per connection (default 100)\n"
            "  --message-timeout S    seconds a started message may take to finish (default 30)\n"
            "  --max-conns-per-addr N connections per client address (nginx's) per process\n"
            "                         (default a quarter of --max-conns; 0: no limit)\n"
            "  --max-rooms-per-addr N rooms joined by one address's connections per process\n"
            "                         (default 4 x --max-conns-per-addr; 0: no limit)\n"
            "  --send-rate R          sends per second per connection (default 10, burst 3x)\n"
            "  --req-rate R           requests per second per connection (default 50, burst 2x)\n"
            "  --backlog N            messages replayed on join at most (default 500)\n"
            "  --batch N              sends per group commit at most (default %d; 1 = off)\n"
            "  --handshake-timeout MS (default 10000)\n"
            "  --db-timeout MS        a query's deadline: past it the connection is dropped,\n"
            "                         the client gets unavailable (default 5000)\n"
            "  --echo                 conformance mode: echo every message, no database\n"
            "  --metrics-dir DIR      per-process metrics files (default: the socket's folder\n"
            "                         + /metrics, else " CHAT_METRICS_DIR_DEFAULT ")\n"
            "  --log FILE             log to FILE (reopened on SIGHUP; default stderr)\n"
            "  --log-level L          error|warn|info|debug (default info)\n",
            CHAT_BATCH_DEFAULT);
}

/* A unix socket's mode: octal, at most 0777, never writable by others
 * (whoever can connect can speak as any user: only nginx may). */
static int parse_socket_mode(const char *s, unsigned *mode)
{
    char *end;
    unsigned long m = strtoul(s, &end, 8);

    if (*s == '\0' || *end != '\0' || m > 0777 || (m & 0002)) {
        fprintf(stderr, "chat-ws: bad --socket-mode %s: octal, never writable by others\n", s);
        return -1;
    }
    *mode = (unsigned)m;
    return 0;
}

/* --max-message was given: echo mode keeps it (else 16 MiB there) */
static bool max_message_given;
/* --max-conns-per-addr was given (else a quarter of --max-conns) */
static bool per_addr_given;
/* --max-rooms-per-addr was given (else 4 x --max-conns-per-addr) */
static bool rooms_per_addr_given;

static int parse_options(int argc, char **argv, struct ws_config *cfg, unsigned *mode)
{
    enum {
        O_DB = 256,
        O_LISTEN,
        O_WORKERS,
        O_MODE,
        O_HB,
        O_CONNS,
        O_MSG,
        O_OUTBOX,
        O_ROOMS,
        O_RATE,
        O_BACKLOG,
        O_HS,
        O_ECHO,
        O_LOG,
        O_LEVEL,
        O_HELP,
        O_BATCH,
        O_REQRATE,
        O_DBTIMEOUT,
        O_PERADDR,
        O_MSGTIME,
        O_METRICS,
        O_ROOMSADDR
    };
    static const struct option opts[] = {{"db", 1, 0, O_DB},
                                         {"listen", 1, 0, O_LISTEN},
                                         {"workers", 1, 0, O_WORKERS},
                                         {"socket-mode", 1, 0, O_MODE},
                                         {"heartbeat", 1, 0, O_HB},
                                         {"max-conns", 1, 0, O_CONNS},
                                         {"max-message", 1, 0, O_MSG},
                                         {"outbox", 1, 0, O_OUTBOX},
                                         {"max-rooms", 1, 0, O_ROOMS},
                                         {"send-rate", 1, 0, O_RATE},
                                         {"backlog", 1, 0, O_BACKLOG},
                                         {"handshake-timeout", 1, 0, O_HS},
                                         {"echo", 0, 0, O_ECHO},
                                         {"log", 1, 0, O_LOG},
                                         {"log-level", 1, 0, O_LEVEL},
                                         {"help", 0, 0, O_HELP},
                                         {"batch", 1, 0, O_BATCH},
                                         {"req-rate", 1, 0, O_REQRATE},
                                         {"db-timeout", 1, 0, O_DBTIMEOUT},
                                         {"max-conns-per-addr", 1, 0, O_PERADDR},
                                         {"message-timeout", 1, 0, O_MSGTIME},
                                         {"metrics-dir", 1, 0, O_METRICS},
                                         {"max-rooms-per-addr", 1, 0, O_ROOMSADDR},
                                         {0, 0, 0, 0}};
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        long v = optarg ? strtol(optarg, NULL, 10) : 0;
        switch (o) {
        case O_DB:
            cfg->db = optarg;
            break;
        case O_DBTIMEOUT:
            cfg->db_timeout = (int)v;
            break;
        case O_LISTEN:
            cfg->listen = optarg;
            break;
        case O_WORKERS:
            cfg->workers = (int)v;
            break;
        case O_MODE:
            if (parse_socket_mode(optarg, mode) < 0)
                return -1;
            break;
        case O_HB:
            cfg->heartbeat = (int)v;
            break;
        case O_CONNS:
            cfg->max_conns = (size_t)v;
            break;
        case O_MSG:
            cfg->max_message = (size_t)v;
            max_message_given = true;
            break;
        case O_OUTBOX:
            cfg->outbox_max = (size_t)v;
            break;
        case O_ROOMS:
            cfg->max_rooms = (int)v;
            break;
        case O_MSGTIME:
            cfg->message_timeout = (int)v;
            break;
        case O_PERADDR:
            cfg->max_per_addr = v < 0 ? SIZE_MAX : (size_t)v;
            per_addr_given = true;
            break;
        case O_ROOMSADDR:
            cfg->max_rooms_per_addr = v < 0 ? SIZE_MAX : (size_t)v;
            rooms_per_addr_given = true;
            break;
        case O_RATE:
            cfg->send_rate = strtod(optarg, NULL);
            cfg->send_burst = 3 * cfg->send_rate;
            break;
        case O_BACKLOG:
            cfg->backlog_max = (int)v;
            break;
        case O_BATCH:
            cfg->batch_max = (int)v;
            break;
        case O_REQRATE:
            cfg->req_rate = strtod(optarg, NULL);
            cfg->req_burst = 2 * cfg->req_rate;
            break;
        case O_HS:
            cfg->handshake_timeout = (int)v;
            break;
        case O_ECHO:
            cfg->echo = true;
            break;
        case O_METRICS:
            metrics_dir = optarg;
            break;
        case O_LOG:
        case O_LEVEL:
            if (chat_log_option("chat-ws", o == O_LEVEL, optarg, &log_path) < 0)
                return -1;
            break;
        default:
            chat_sys_usage_exit(usage, o == O_HELP);
        }
    }
    if (optind < argc || cfg->workers < 1 || cfg->workers > 64 || cfg->heartbeat < 1 ||
        cfg->message_timeout < 1 || cfg->max_conns < 1 || cfg->max_per_addr == SIZE_MAX ||
        cfg->max_rooms_per_addr == SIZE_MAX || cfg->max_message < 1024 || cfg->outbox_max < 4096 ||
        cfg->max_rooms < 1 || cfg->send_rate <= 0 || cfg->req_rate <= 0 || cfg->backlog_max < 0 ||
        cfg->batch_max < 1 || cfg->batch_max > CHAT_BATCH_LIMIT || cfg->handshake_timeout < 100 ||
        cfg->db_timeout < 100) {
        fprintf(stderr, "chat-ws: bad option value (see --help)\n");
        return -1;
    }
    /* one address may take a quarter of a process: a crowd behind one NAT
     * fits, one client cannot fill it */
    if (!per_addr_given)
        cfg->max_per_addr = cfg->max_conns / 4 ? cfg->max_conns / 4 : 1;
    /* its connections average at most 4 rooms each (one may still join
     * --max-rooms): a crowd behind one NAT in a few rooms each fits, and
     * one address holds 4 x --max-conns-per-addr subscriptions, not
     * --max-rooms times as many (docs/operations.md) */
    if (!rooms_per_addr_given)
        cfg->max_rooms_per_addr = cfg->max_per_addr * 4;
    return 0;
}

static int open_listener(const char *addr, unsigned mode)
{
    int fd = -1, one = 1;

    if (strncmp(addr, "unix:", 5) == 0) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        const char *path = addr + 5;
        if (strlen(path) >= sizeof(sun.sun_path)) {
            log_error("socket path too long: %s", path);
            return -1;
        }
        strcpy(sun.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            goto fail;
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, mode) < 0)
            goto fail;
    } else {
        char host[256];
        const char *colon = strrchr(addr, ':');
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
        if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
            log_error("bad --listen %s: want unix:/path or host:port", addr);
            return -1;
        }
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
            log_error("cannot resolve %s", addr);
            return -1;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        int rc = fd < 0 ? -1 : bind(fd, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
        if (rc < 0)
            goto fail;
    }
    if (listen(fd, WS_LISTEN_BACKLOG) < 0)
        goto fail;
    return fd;
fail:
    log_error("cannot listen on %s: %s", addr, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* ---- one worker ---- */

struct worker {
    struct ws_server srv;
    struct ev_io sig_io;
    struct ev_timer stop_timer;
    bool stopping;
};

static void stop_now(struct ev_loop *loop, struct ev_timer *t)
{
    (void)t;
    ev_loop_stop(loop);
}

/* The frames queued since the last turn of the loop (one atomic add per
 * turn, not one per frame of a fan-out), and the gauges of /chat/metrics
 * (core/chat_metrics.h) at most once a second (the 1 s tick wakes the loop
 * at least that often). */
static void publish_gauges(struct ws_server *srv)
{
    static int64_t last;
    static uint64_t frames;
    size_t outbox = 0;

    if (srv->stat_frames_out != frames) {
        chat_metric_add(CHAT_M_DELIVERIES, (int64_t)(srv->stat_frames_out - frames));
        frames = srv->stat_frames_out;
    }
    if (ev_now(srv->loop) - last < 1000)
        return;
    last = ev_now(srv->loop);
    for (const struct ws_conn *c = srv->conns; c; c = c->next)
        outbox += c->out_bytes;
    chat_metric_set(CHAT_M_CONNECTIONS, (int64_t)srv->nconns);
    chat_metric_set(CHAT_M_ROOMS, (int64_t)srv->nrooms);
    chat_metric_set(CHAT_M_QUEUE, (int64_t)srv->nsends);
    chat_metric_set(CHAT_M_OUTBOX_BYTES, (int64_t)outbox);
}

static void worker_before_sleep(struct ev_loop *loop, void *data)
{
    struct worker *w = data;

    ws_server_before_sleep(loop, &w->srv);
    publish_gauges(&w->srv);
    if (w->stopping && w->srv.nconns == 0)
        ev_loop_stop(loop);
}

static void signal_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct worker *w = io->data;
    struct signalfd_siginfo si;
    (void)events;

    while (read(io->fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            if (log_path && chat_log_open(log_path) < 0)
                log_error("cannot reopen log %s: %s", log_path, strerror(errno));
            log_info("SIGHUP: log reopened");
        } else if (!w->stopping) {
            log_info("signal %u: closing %zu connections", si.ssi_signo, w->srv.nconns);
            w->stopping = true;
            ws_server_shutdown(&w->srv);
            ev_timer_start(loop, &w->stop_timer, WS_STOP_GRACE_MS);
        }
    }
}

/* Tells the database this node's members are gone (blocking: we are
 * exiting and serve nobody). */
static void node_down(const struct ws_config *cfg, const char *node)
{
    PGconn *c = PQconnectdb(cfg->db);
    const char *params[1] = {node};

    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexecParams(c, CHAT_SQL_NODE_DOWN, 1, NULL, params, NULL, NULL, 0);
        PQclear(r);
    }
    PQfinish(c);
}

static void open_metrics(const struct ws_config *cfg)
{
    char dir[400];
    int e;

    if (metrics_dir == NULL)
        chat_metrics_default_dir(cfg->listen, dir, sizeof(dir));
    if ((e = chat_metrics_open(metrics_dir ? metrics_dir : dir, "ws")) < 0)
        log_warn("metrics: cannot make a file in %s: %s (counted in memory only)",
                 metrics_dir ? metrics_dir : dir, strerror(-e));
}

/* the workers' slots (struct ws_peer), shared: mapped before forking */
static struct ws_peer *peers;

static int run_worker(const struct ws_config *cfg, int listen_fd)
{
    struct worker w = {0};
    sigset_t set;
    int rc = 1;

    srand((unsigned)(time(NULL) ^ getpid()));
    open_metrics(cfg);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    w.srv.cfg = *cfg;
    w.srv.h = &ws_chat_handlers;
    w.srv.listen_fd = listen_fd;
    w.srv.peers = peers;
    w.srv.npeers = peers ? cfg->workers : 0;
    w.srv.loop = ev_loop_new();
    w.srv.rbuf_size = 64 * 1024;
    w.srv.rbuf = malloc(w.srv.rbuf_size);
    w.sig_io.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    w.sig_io.cb = signal_cb;
    w.sig_io.data = &w;
    w.stop_timer.cb = stop_now;
    if (!w.srv.loop || !w.srv.rbuf || w.sig_io.fd < 0 ||
        ev_io_set(w.srv.loop, &w.sig_io, EPOLLIN) < 0)
        goto out;
    if (!cfg->echo && ws_chat_init(&w.srv) < 0)
        goto out;
    if (ws_server_listen(&w.srv) < 0)
        goto out;
    ev_set_before_sleep(w.srv.loop, worker_before_sleep, &w);
    log_info("worker %d serving %s (%s mode)", (int)getpid(), cfg->listen,
             cfg->echo ? "echo" : "chat");
    if (ev_loop_run(w.srv.loop) < 0) {
        log_error("event loop failed: %s", strerror(errno));
        goto out;
    }
    rc = 0;
    if (!cfg->echo)
        node_down(cfg, w.srv.node);
    log_info("worker %d stopped", (int)getpid());
out:
    if (!cfg->echo && w.srv.bus)
        ws_chat_free(&w.srv);
    if (w.sig_io.fd >= 0)
        close(w.sig_io.fd);
    free(w.srv.rbuf);
    free(w.srv.addrs); /* empty: every connection was reaped */
    ev_loop_free(w.srv.loop);
    chat_metrics_close();
    return rc;
}

/* ---- the parent of several workers: core/chat_supervise.c ---- */

struct worker_args {
    const struct ws_config *cfg;
    int fd;
};

static int run_worker_args(void *arg)
{
    const struct worker_args *a = arg;
    return run_worker(a->cfg, a->fd);
}

/* the conninfo with its deadlines: reachable until exit (volatile: a store
 * nobody reads would be optimised away, and LSan would call it a leak) */
static char *volatile db_owned;

int main(int argc, char **argv)
{
    struct ws_config cfg = {
        .db = "",
        .listen = "unix:/run/chat/ws.sock",
        .workers = (int)sysconf(_SC_NPROCESSORS_ONLN),
        .heartbeat = 30,
        .message_timeout = 30,
        .max_conns = 10000,
        .handshake_timeout = 10000,
        .max_message = 256 * 1024,
        .outbox_max = 1024 * 1024,
        .max_rooms = 100,
        .send_rate = 10,
        .send_burst = 30,
        .req_rate = 50,
        .req_burst = 100,
        .backlog_max = 500,
        .batch_max = CHAT_BATCH_DEFAULT,
        .db_timeout = CHAT_DB_TIMEOUT_MS,
    };
    unsigned mode = 0660;
    char err[512];

    chat_log_init("chat-ws", CHAT_LOG_INFO);
    if (cfg.workers < 1)
        cfg.workers = 1;
    if (parse_options(argc, argv, &cfg, &mode) < 0)
        return 2;
    if (log_path && chat_log_open(log_path) < 0) {
        fprintf(stderr, "chat-ws: cannot open log %s: %s\n", log_path, strerror(errno));
        return 1;
    }
    if (cfg.echo && !max_message_given)
        cfg.max_message = 16 * 1024 * 1024; /* conformance suites send big messages */
    signal(SIGPIPE, SIG_IGN);
    long nofile = chat_sys_raise_nofile();
    if (!cfg.echo) {
        const char *db_source;
        cfg.db = chat_db_conninfo(cfg.db, &db_source);
        char *db = chat_db_conninfo_deadlines(cfg.db, err, sizeof(err));
        if (!db) {
            log_error("%s (database from %s)", err, db_source);
            return 1;
        }
        cfg.db = db_owned = db; /* for the life of the process */
        PGconn *c = chat_db_open(cfg.db, err, sizeof(err));
        if (!c) {
            log_error("%s (database from %s)", err, db_source);
            return 1;
        }
        log_info("database %s as %s on %s (from %s)", PQdb(c), PQuser(c), PQhost(c), db_source);
        PQfinish(c);
    }
    int fd = open_listener(cfg.listen, mode);
    if (fd < 0)
        return 1;
    log_info("listening on %s: %d worker(s), open files %ld, heartbeat %d s, %zu connections "
             "per worker",
             cfg.listen, cfg.workers, nofile, cfg.heartbeat, cfg.max_conns);
    if (cfg.workers > 1) {
        /* each worker says whether it is full: a full one leaves new
         * connections to the others (ws_conn.c, listen_update) */
        void *m = mmap(NULL, sizeof(*peers) * (size_t)cfg.workers, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            log_error("mmap: %s", strerror(errno));
            return 1;
        }
        peers = m;
    }
    struct worker_args wa = {&cfg, fd};
    int rc =
        cfg.workers == 1 ? run_worker(&cfg, fd) : chat_supervise(cfg.workers, run_worker_args, &wa);
    close(fd);
    if (strncmp(cfg.listen, "unix:", 5) == 0)
        unlink(cfg.listen + 5);
    return rc;
}
