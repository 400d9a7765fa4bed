/* chat-fcgi: the long-poll worker. Serves /chat/poll, /chat/send,
 * /chat/history, /chat/typing and /chat/health over FastCGI (libfcgi),
 * on its own socket (--listen) or on the socket spawn-fcgi hands it as
 * fd 0. One process: --threads acceptors, one listener, one writer; with
 * --workers N, N such processes share the socket under a small supervisor.
 * docs/longpoll.md tells the design and how to run it. */
#define _GNU_SOURCE
#include "lp.h"

#include <errno.h>
#include <fcgiapp.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chat_log.h"
#include "chat_metrics.h"
#include "chat_sql.h"
#include "chat_supervise.h"
#include "chat_sys.h"

#define THREADS_MAX 256

/* Filled by the options, then passed down to each part (none reads it
 * from here). */
static struct lp_config lp_cfg = {
    .threads = 4,
    .workers = 1,
    .max_parked = LP_MAX_PARKED_DEFAULT,
    .max_parked_per_addr = LP_MAX_PARKED_PER_ADDR_DEFAULT,
    .max_presence_per_addr = LP_MAX_PRESENCE_PER_ADDR_DEFAULT,
    .send_rate = 10,
    .send_burst = 30,
    .req_rate = 50,
    .req_burst = 100,
    .guest_addr_factor = LP_GUEST_ADDR_FACTOR_DEFAULT,
    .max_guests_per_addr = LP_MAX_GUESTS_PER_ADDR_DEFAULT,
    .rate_table = LP_RATE_TABLE_DEFAULT,
    .db_timeout = CHAT_DB_TIMEOUT_MS,
    .batch_max = CHAT_BATCH_DEFAULT,
};

static int listen_sock = -1;
static int workers = 1;
static int backlog = 4096;
static mode_t socket_mode = 0660;
static const char *log_path;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: chat-fcgi --db CONNINFO [--listen PATH|[HOST]:PORT] [options]\n"
            "  --db CONNINFO      libpq connection string (default: the PG* environment)\n"
            "  --listen ADDR      unix socket path or [host]:port to bind; without it the\n"
            "                     FastCGI socket is fd 0 (spawn-fcgi, or a FastCGI web server)\n"
            "  --socket-mode OCT  permissions of a unix socket it binds (default 0660; never\n"
            "                     writable by others)\n"
            "  --backlog N        listen backlog (default 4096, capped by net.core.somaxconn)\n"
            "  --threads N        acceptor threads per process (default 4)\n"
            "  --workers N        processes sharing the socket (default 1)\n"
            "  --max-parked N     parked polls per process; beyond: 503 (default %d)\n"
            "  --max-parked-per-addr N  of which one client address (IPv6: its /64) may\n"
            "                     hold; beyond: 503; 0: no bound (default %d)\n"
            "  --max-presence-per-addr N  (room, member) entries one address may make\n"
            "                     online; beyond: not shown online; 0: no bound (default %d)\n"
            "  --send-rate R      sends per second per client; 0: no limit (default 10)\n"
            "  --send-burst N     sends a client may make at once (default 3 x --send-rate)\n"
            "  --req-rate R       requests (poll, send, typing, history) per second per\n"
            "                     client; 0: no limit (default 50)\n"
            "  --req-burst N      requests a client may make at once (default 2 x --req-rate)\n"
            "  --guest-addr-factor F  all guests of one address together: F times a client's\n"
            "                     rates and bursts; 0: no such limit (default 10)\n"
            "  --max-guests-per-addr N  guest names new to the rate limits that one\n"
            "                     address may bring a minute (burst N); past it 429;\n"
            "                     0: no bound (default %d)\n"
            "  --rate-table N     clients the rate limits remember (default %d)\n"
            "  --ws-health PATH   the WebSocket daemon's unix socket, probed by /health\n"
            "  --batch N          sends per group commit at most (default %d; 1 = off)\n"
            "  --metrics-dir DIR  the metrics files of this host's daemons (default: the\n"
            "                     socket's folder + /metrics, else " CHAT_METRICS_DIR_DEFAULT ")\n"
            "  --db-timeout MS    a query's deadline: past it the connection is dropped and\n"
            "                     the client gets unavailable (default 5000)\n"
            "  --log-level L      error|warn|info|debug (default info)\n"
            "  --log FILE         log to FILE instead of stderr (reopened on SIGHUP)\n",
            LP_MAX_PARKED_DEFAULT, LP_MAX_PARKED_PER_ADDR_DEFAULT, LP_MAX_PRESENCE_PER_ADDR_DEFAULT,
            LP_MAX_GUESTS_PER_ADDR_DEFAULT, LP_RATE_TABLE_DEFAULT, CHAT_BATCH_DEFAULT);
}

static int int_arg(const char *name, const char *v, long min, long max, int base)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, base);
    if (errno || *end || n < min || n > max) {
        fprintf(stderr, "chat-fcgi: %s must be in %ld..%ld\n", name, min, max);
        exit(2);
    }
    return (int)n;
}

static double num_arg(const char *name, const char *v, double min, double max)
{
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    if (errno || end == v || *end || !(n >= min && n <= max)) {
        fprintf(stderr, "chat-fcgi: %s must be a number in %g..%g\n", name, min, max);
        exit(2);
    }
    return n;
}

enum {
    O_DB = 1,
    O_LISTEN,
    O_THREADS,
    O_WORKERS,
    O_MAX_PARKED,
    O_WS_HEALTH,
    O_LEVEL,
    O_LOG,
    O_BACKLOG,
    O_MODE,
    O_SEND_RATE,
    O_SEND_BURST,
    O_REQ_RATE,
    O_REQ_BURST,
    O_ADDR_FACTOR,
    O_RATE_TABLE,
    O_DB_TIMEOUT,
    O_PARKED_ADDR,
    O_PRESENCE_ADDR,
    O_GUESTS_ADDR,
    O_BATCH,
    O_METRICS,
    O_HELP,
};

/* Options that set a number; false when c is none of them. */
static bool number_option(int c, const char *v, bool *send_burst, bool *req_burst)
{
    switch (c) {
    case O_THREADS:
        lp_cfg.threads = int_arg("--threads", v, 1, THREADS_MAX, 10);
        break;
    case O_WORKERS:
        workers = int_arg("--workers", v, 1, 64, 10);
        lp_cfg.workers = workers;
        break;
    case O_MAX_PARKED:
        lp_cfg.max_parked = int_arg("--max-parked", v, 1, 1000000, 10);
        break;
    case O_DB_TIMEOUT:
        lp_cfg.db_timeout = int_arg("--db-timeout", v, 100, 3600000, 10);
        break;
    case O_BATCH:
        lp_cfg.batch_max = int_arg("--batch", v, 1, CHAT_BATCH_LIMIT, 10);
        break;
    case O_BACKLOG:
        backlog = int_arg("--backlog", v, 1, 65535, 10);
        break;
    case O_MODE:
        socket_mode = (mode_t)int_arg("--socket-mode", v, 0, 0777, 8);
        if (socket_mode & 0002) {
            /* anyone who can connect can speak as any user: only nginx may */
            fprintf(stderr, "chat-fcgi: --socket-mode %s is writable by others; use 0660\n", v);
            exit(2);
        }
        break;
    case O_SEND_RATE:
        lp_cfg.send_rate = num_arg("--send-rate", v, 0, 1e6);
        break;
    case O_SEND_BURST:
        lp_cfg.send_burst = num_arg("--send-burst", v, 1, 1e7);
        *send_burst = true;
        break;
    case O_REQ_RATE:
        lp_cfg.req_rate = num_arg("--req-rate", v, 0, 1e6);
        break;
    case O_REQ_BURST:
        lp_cfg.req_burst = num_arg("--req-burst", v, 1, 1e7);
        *req_burst = true;
        break;
    case O_ADDR_FACTOR:
        lp_cfg.guest_addr_factor = num_arg("--guest-addr-factor", v, 0, 1e6);
        break;
    case O_PARKED_ADDR:
        lp_cfg.max_parked_per_addr = int_arg("--max-parked-per-addr", v, 0, 1000000, 10);
        break;
    case O_PRESENCE_ADDR:
        lp_cfg.max_presence_per_addr = int_arg("--max-presence-per-addr", v, 0, 1000000, 10);
        break;
    case O_GUESTS_ADDR:
        lp_cfg.max_guests_per_addr = int_arg("--max-guests-per-addr", v, 0, 1000000, 10);
        break;
    case O_RATE_TABLE:
        lp_cfg.rate_table = int_arg("--rate-table", v, 64, 1 << 26, 10);
        break;
    default:
        return false;
    }
    return true;
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, 0, O_DB},
        {"listen", required_argument, 0, O_LISTEN},
        {"threads", required_argument, 0, O_THREADS},
        {"workers", required_argument, 0, O_WORKERS},
        {"max-parked", required_argument, 0, O_MAX_PARKED},
        {"ws-health", required_argument, 0, O_WS_HEALTH},
        {"db-timeout", required_argument, 0, O_DB_TIMEOUT},
        {"batch", required_argument, 0, O_BATCH},
        {"log-level", required_argument, 0, O_LEVEL},
        {"log", required_argument, 0, O_LOG},
        {"backlog", required_argument, 0, O_BACKLOG},
        {"socket-mode", required_argument, 0, O_MODE},
        {"send-rate", required_argument, 0, O_SEND_RATE},
        {"send-burst", required_argument, 0, O_SEND_BURST},
        {"req-rate", required_argument, 0, O_REQ_RATE},
        {"req-burst", required_argument, 0, O_REQ_BURST},
        {"guest-addr-factor", required_argument, 0, O_ADDR_FACTOR},
        {"rate-table", required_argument, 0, O_RATE_TABLE},
        {"max-parked-per-addr", required_argument, 0, O_PARKED_ADDR},
        {"max-presence-per-addr", required_argument, 0, O_PRESENCE_ADDR},
        {"max-guests-per-addr", required_argument, 0, O_GUESTS_ADDR},
        {"metrics-dir", required_argument, 0, O_METRICS},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    bool send_burst = false, req_burst = false;
    int c;

    chat_log_init("chat-fcgi", CHAT_LOG_INFO);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (number_option(c, optarg, &send_burst, &req_burst))
            continue;
        switch (c) {
        case O_DB:
            lp_cfg.db = optarg;
            break;
        case O_LISTEN:
            lp_cfg.listen = optarg;
            break;
        case O_WS_HEALTH:
            lp_cfg.ws_health = optarg;
            break;
        case O_METRICS:
            lp_cfg.metrics_dir = optarg;
            break;
        case O_LOG:
        case O_LEVEL:
            if (chat_log_option("chat-fcgi", c == O_LEVEL, optarg, &log_path) < 0)
                exit(2);
            break;
        default:
            chat_sys_usage_exit(usage, c == O_HELP);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
    /* like chat-ws --send-rate: the burst follows the rate unless given */
    if (!send_burst)
        lp_cfg.send_burst = lp_cfg.send_rate * 3 < 1 ? 1 : lp_cfg.send_rate * 3;
    if (!req_burst)
        lp_cfg.req_burst = lp_cfg.req_rate * 2 < 1 ? 1 : lp_cfg.req_rate * 2;
    if (log_path && chat_log_open(log_path) < 0) {
        fprintf(stderr, "chat-fcgi: cannot open log %s: %s\n", log_path, strerror(errno));
        exit(1);
    }
}

static void name_node(void)
{
    char host[64] = "localhost";
    unsigned rnd = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);

    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    for (char *p = host; *p; p++)
        if (*p == '.') {
            *p = '\0';
            break;
        }
    if (getentropy(&rnd, sizeof(rnd)) < 0)
        rnd ^= (unsigned)chat_now_ms();
    snprintf(lp_cfg.node, sizeof(lp_cfg.node), "fcgi-%s-%d-%06x", host, (int)getpid(),
             rnd & 0xffffff);
}

static void on_wake(int sig)
{
    (void)sig; /* interrupts a blocked accept() at shutdown (no SA_RESTART) */
}

/* After FCGX_Init (which installs its own SIGPIPE, SIGUSR1 and SIGTERM
 * handlers): SIGPIPE ignored (answers use MSG_NOSIGNAL anyway), SIGUSR1
 * wakes acceptors, and TERM/INT/HUP are blocked everywhere and taken by
 * the main thread with sigwait. */
static void setup_signals(sigset_t *set)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_wake;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    sigdelset(set, SIGUSR1);
}

static int open_socket(void)
{
    if (lp_cfg.listen == NULL) {
        if (FCGX_IsCGI()) {
            log_error("no --listen and fd 0 is not a FastCGI socket (see chat-fcgi --help)");
            return -1;
        }
        log_info("serving the FastCGI socket on fd 0");
        return 0;
    }
    int fd = FCGX_OpenSocket(lp_cfg.listen, backlog);
    if (fd < 0) {
        log_error("cannot listen on %s: %s", lp_cfg.listen, strerror(errno));
        return -1;
    }
    if (lp_cfg.listen[0] == '/' || lp_cfg.listen[0] == '.') {
        if (chmod(lp_cfg.listen, socket_mode) < 0)
            log_warn("chmod %s: %s", lp_cfg.listen, strerror(errno));
    }
    log_info("listening on %s", lp_cfg.listen);
    return fd;
}

struct acceptor_slot {
    struct lp_acceptor a;
    pthread_t thread;
    atomic_bool done;
};

static void *acceptor_entry(void *arg)
{
    struct acceptor_slot *s = arg;
    lp_acceptor_main(&s->a);
    atomic_store(&s->done, true);
    return NULL;
}

/* Interrupts every acceptor until it has left accept(), for at most ms. */
static void stop_acceptors(struct acceptor_slot *slots, int n, int ms)
{
    int64_t deadline = chat_now_ms() + ms;
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++) {
            if (!atomic_load(&slots[i].done)) {
                pthread_kill(slots[i].thread, SIGUSR1);
                left++;
            }
        }
        if (left == 0 || chat_now_ms() >= deadline) {
            if (left)
                log_warn("%d acceptors still busy at exit (database calls); leaving them", left);
            break;
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < n; i++)
        if (atomic_load(&slots[i].done))
            pthread_join(slots[i].thread, NULL);
}

/* The gauges of /chat/metrics (core/chat_metrics.h), sampled each second. */
static void publish_gauges(void)
{
    int parked = atomic_load(&lp_parked);

    chat_metric_set(CHAT_M_PARKED, parked);
    chat_metric_set(CHAT_M_CONNECTIONS, parked); /* polls and streams held open */
    chat_metric_set(CHAT_M_QUEUE, (int64_t)lp_writer_queued());
    chat_metric_set(CHAT_M_PRESENT, (int64_t)lp_presence_count());
}

static int wait_for_stop(const sigset_t *set)
{
    const struct timespec second = {1, 0};

    for (;;) {
        publish_gauges();
        int sig = sigtimedwait(set, NULL, &second);
        if (sig < 0)
            continue;
        if (sig == SIGHUP) {
            if (log_path && chat_log_open(log_path) < 0)
                log_error("cannot reopen log %s", log_path);
            continue;
        }
        log_info("%s: stopping (%d parked polls answered with events: [])",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT", atomic_load(&lp_parked));
        return 0;
    }
}

/* This process's metrics file: --metrics-dir, else beside the socket. */
static void open_metrics(void)
{
    static char dir[400];
    struct sockaddr_un sa = {0};
    socklen_t sl = sizeof(sa);
    int e;

    if (lp_cfg.metrics_dir == NULL) {
        /* spawn-fcgi: the socket on fd 0 has a path too */
        if (lp_cfg.listen == NULL && getsockname(listen_sock, (struct sockaddr *)&sa, &sl) == 0 &&
            sa.sun_family == AF_UNIX)
            sa.sun_path[sizeof(sa.sun_path) - 1] = '\0';
        chat_metrics_default_dir(lp_cfg.listen ? lp_cfg.listen : sa.sun_path, dir, sizeof(dir));
        lp_cfg.metrics_dir = dir;
    }
    if ((e = chat_metrics_open(lp_cfg.metrics_dir, "fcgi")) < 0)
        log_warn("metrics: cannot make a file in %s: %s (counted in memory only)",
                 lp_cfg.metrics_dir, strerror(-e));
}

/* One worker process: threads up, serve until SIGTERM, clean exit. */
static int run_worker(const sigset_t *set);

static int run_worker_args(void *arg)
{
    return run_worker(arg);
}

static int run_worker(const sigset_t *set)
{
    static struct acceptor_slot slots[THREADS_MAX];
    int started = 0, rc = 1;

    name_node();
    open_metrics();
    lp_db_init(&lp_cfg);
    lp_poll_init(&lp_cfg);
    lp_health_init(&lp_cfg);
    lp_metrics_init(&lp_cfg);
    if (lp_rate_init(&lp_cfg) < 0 || lp_addr_init(&lp_cfg) < 0 || lp_presence_init(&lp_cfg) < 0 ||
        lp_listener_start() < 0 || lp_writer_start(&lp_cfg) < 0)
        goto out;
    for (; started < lp_cfg.threads; started++) {
        slots[started].a.index = started;
        slots[started].a.listen_sock = listen_sock;
        if (pthread_create(&slots[started].thread, NULL, acceptor_entry, &slots[started]) != 0) {
            log_error("cannot start acceptor thread %d", started);
            break;
        }
    }
    log_info("node %s up: %d acceptor threads, max %d parked polls, open files %ld", lp_cfg.node,
             started, lp_cfg.max_parked, chat_sys_raise_nofile());
    log_info("rate limits per client: sends %g/s (burst %g), requests %g/s (burst %g),"
             " guests per address x%g, new guest names per address %d a minute (0: off)",
             lp_cfg.send_rate, lp_cfg.send_burst, lp_cfg.req_rate, lp_cfg.req_burst,
             lp_cfg.guest_addr_factor, lp_cfg.max_guests_per_addr);
    if (started > 0) {
        wait_for_stop(set);
        rc = 0;
    }
out:
    atomic_store(&lp_stopping, true);
    stop_acceptors(slots, started, 2500);
    lp_listener_stop();
    lp_writer_stop();
    lp_presence_free();
    lp_addr_free();
    lp_members_free();
    lp_bans_free();
    chat_metrics_close();
    log_info("stopped");
    return rc;
}

int main(int argc, char **argv)
{
    sigset_t set;
    char err[512];

    parse_args(argc, argv);
    chat_sys_raise_nofile();
    const char *db_source;
    lp_cfg.db = chat_db_conninfo(lp_cfg.db, &db_source);
    char *db = chat_db_conninfo_deadlines(lp_cfg.db, err, sizeof(err));
    if (db == NULL) {
        log_error("refusing to start: %s (database from %s)", err, db_source);
        return 1;
    }
    lp_cfg.db = db; /* for the life of the process */
    PGconn *check = chat_db_open(lp_cfg.db, err, sizeof(err));
    if (check == NULL) {
        log_error("refusing to start: %s (database from %s)", err, db_source);
        return 1;
    }
    log_info("database %s as %s on %s (from %s)", PQdb(check), PQuser(check), PQhost(check),
             db_source);
    PQfinish(check);
    if (FCGX_Init() != 0) {
        log_error("FCGX_Init failed");
        return 1;
    }
    setup_signals(&set);
    if ((listen_sock = open_socket()) < 0)
        return 1;
    /* --workers: core/chat_supervise.c, the restart policy of both daemons;
     * the workers exit inside it, so only the parent gets here */
    int rc = workers > 1 ? chat_supervise(workers, run_worker_args, &set) : run_worker(&set);
    if (lp_cfg.listen && lp_cfg.listen[0] == '/')
        unlink(lp_cfg.listen);
    return rc;
}
