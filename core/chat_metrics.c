/* chat_metrics: per-process counters in a shared file, and the Prometheus
 * text of their sums (chat_metrics.h says why; docs/operations.md lists
 * the metrics). */
#define _GNU_SOURCE
#include "chat_metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const int64_t chat_metrics_bucket_us[CHAT_METRICS_NBUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000};

static struct chat_metrics_block mem_block; /* before open, or when the file failed */
static struct chat_metrics_block *blk = &mem_block;
static char path[512];

static const char *const daemon_names[CHAT_MD_NUM] = {"ws", "fcgi"};

static void block_init(struct chat_metrics_block *b, const char *daemon)
{
    memset(b, 0, sizeof(*b));
    b->magic = CHAT_METRICS_MAGIC;
    b->version = CHAT_METRICS_VERSION;
    snprintf(b->daemon, sizeof(b->daemon), "%s", daemon);
    b->pid = (int32_t)getpid();
    b->started = (int64_t)time(NULL);
}

static bool pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* "<daemon>-<pid>": the pid, or -1 when the name is not one of ours. */
static pid_t pid_of_name(const char *name)
{
    const char *dash = strrchr(name, '-');
    char *end;

    if (dash == NULL || dash[1] == '\0')
        return -1;
    long pid = strtol(dash + 1, &end, 10);
    return *end == '\0' && pid > 0 ? (pid_t)pid : -1;
}

static void remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[768];

    while (d && (e = readdir(d)) != NULL) {
        pid_t pid = pid_of_name(e->d_name);
        if (pid > 0 && !pid_alive(pid)) {
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
}

int chat_metrics_open(const char *dir, const char *daemon)
{
    chat_metrics_close();
    block_init(&mem_block, daemon);
    blk = &mem_block;
    if (dir == NULL)
        return 0;
    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return -errno;
    remove_stale(dir);
    snprintf(path, sizeof(path), "%s/%s-%d", dir, daemon, (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0 || ftruncate(fd, sizeof(struct chat_metrics_block)) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        path[0] = '\0';
        return -e;
    }
    void *m =
        mmap(NULL, sizeof(struct chat_metrics_block), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        int e = errno;
        unlink(path);
        path[0] = '\0';
        return -e;
    }
    blk = m;
    block_init(blk, daemon);
    return 0;
}

void chat_metrics_close(void)
{
    if (blk != &mem_block) {
        /* only our own file: after fork the child inherits the parent's map */
        if (path[0] && blk->pid == (int32_t)getpid())
            unlink(path);
        munmap(blk, sizeof(*blk));
        blk = &mem_block;
    }
    path[0] = '\0';
}

void chat_metrics_default_dir(const char *socket_path, char *out, size_t cap)
{
    const char *p = socket_path;

    if (p && strncmp(p, "unix:", 5) == 0)
        p += 5;
    const char *slash = p && p[0] == '/' ? strrchr(p, '/') : NULL;
    if (slash == NULL || (size_t)(slash - p) + sizeof("/metrics") > cap)
        snprintf(out, cap, "%s", CHAT_METRICS_DIR_DEFAULT);
    else
        snprintf(out, cap, "%.*s/metrics", (int)(slash - p), p);
}

void chat_metric_add(enum chat_metric m, int64_t n)
{
    if ((unsigned)m < CHAT_M_NUM)
        atomic_fetch_add_explicit(&blk->v[m], n, memory_order_relaxed);
}

void chat_metric_set(enum chat_metric m, int64_t v)
{
    if ((unsigned)m < CHAT_M_NUM)
        atomic_store_explicit(&blk->v[m], v, memory_order_relaxed);
}

void chat_metric_refused(enum chat_err code)
{
    if ((unsigned)code < CHAT_E_NERR)
        atomic_fetch_add_explicit(&blk->refused[code], 1, memory_order_relaxed);
}

void chat_metric_db_us(int64_t us)
{
    int k = 0;

    while (k < CHAT_METRICS_NBUCKETS && us > chat_metrics_bucket_us[k])
        k++;
    atomic_fetch_add_explicit(&blk->db_bucket[k], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&blk->db_sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&blk->db_count, 1, memory_order_relaxed);
}

int64_t chat_metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- reading ---- */

int chat_metrics_sum_add(struct chat_metrics_sum sums[CHAT_MD_NUM],
                         const struct chat_metrics_block *b, int64_t rss_bytes)
{
    int d = -1;

    if (b->magic != CHAT_METRICS_MAGIC || b->version != CHAT_METRICS_VERSION)
        return -1;
    for (int k = 0; k < CHAT_MD_NUM; k++)
        if (strncmp(b->daemon, daemon_names[k], sizeof(b->daemon)) == 0)
            d = k;
    if (d < 0)
        return -1;
    struct chat_metrics_sum *s = &sums[d];
    s->procs++;
    s->rss_bytes += rss_bytes > 0 ? rss_bytes : 0;
    for (int k = 0; k < CHAT_M_NUM; k++)
        s->v[k] += atomic_load(&b->v[k]);
    for (int k = 0; k < CHAT_E_NERR; k++)
        s->refused[k] += atomic_load(&b->refused[k]);
    for (int k = 0; k <= CHAT_METRICS_NBUCKETS; k++)
        s->db_bucket[k] += atomic_load(&b->db_bucket[k]);
    s->db_sum_us += atomic_load(&b->db_sum_us);
    s->db_count += atomic_load(&b->db_count);
    return 0;
}

static int64_t rss_of(pid_t pid)
{
    char p[64];
    long pages = 0, rss = 0;

    snprintf(p, sizeof(p), "/proc/%d/statm", (int)pid);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return (int64_t)rss * sysconf(_SC_PAGESIZE);
}

/* One file into *out (atomic loads through the map); 0 or -1. */
static int read_block(const char *file, struct chat_metrics_block *out)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || st.st_size != (off_t)sizeof(*out)) {
        close(fd);
        return -1;
    }
    struct chat_metrics_block *m = mmap(NULL, sizeof(*m), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -1;
    memcpy(out, m, offsetof(struct chat_metrics_block, v));
    for (int k = 0; k < CHAT_M_NUM; k++)
        atomic_init(&out->v[k], atomic_load(&m->v[k]));
    for (int k = 0; k < CHAT_E_NERR; k++)
        atomic_init(&out->refused[k], atomic_load(&m->refused[k]));
    for (int k = 0; k <= CHAT_METRICS_NBUCKETS; k++)
        atomic_init(&out->db_bucket[k], atomic_load(&m->db_bucket[k]));
    atomic_init(&out->db_sum_us, atomic_load(&m->db_sum_us));
    atomic_init(&out->db_count, atomic_load(&m->db_count));
    munmap(m, sizeof(*m));
    return 0;
}

int chat_metrics_each(const char *dir,
                      void (*each)(const struct chat_metrics_block *, int64_t rss, void *),
                      void *arg)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[768];
    int n = 0;

    if (d == NULL)
        return -errno;
    while ((e = readdir(d)) != NULL) {
        struct chat_metrics_block b;
        pid_t pid = pid_of_name(e->d_name);
        if (pid <= 0 || !pid_alive(pid))
            continue; /* not ours, or stale */
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (read_block(p, &b) < 0 || b.magic != CHAT_METRICS_MAGIC || b.pid != (int32_t)pid)
            continue;
        each(&b, rss_of(pid), arg);
        n++;
    }
    closedir(d);
    return n;
}

/* ---- the exposition ---- */

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void per_daemon(FILE *f, const struct chat_metrics_sum *s, const char *name,
                       const char *type, const char *help, enum chat_metric m)
{
    head(f, name, type, help);
    for (int d = 0; d < CHAT_MD_NUM; d++)
        fprintf(f, "%s{daemon=\"%s\"} %lld\n", name, daemon_names[d], (long long)s[d].v[m]);
}

static void refused(FILE *f, const struct chat_metrics_sum *s)
{
    head(f, "chat_refused_total", "counter",
         "Requests refused with an error, by daemon and reason (the error code sent).");
    for (int d = 0; d < CHAT_MD_NUM; d++)
        for (int k = 1; k < CHAT_E_NERR; k++)
            fprintf(f, "chat_refused_total{daemon=\"%s\",reason=\"%s\"} %lld\n", daemon_names[d],
                    chat_err_name((enum chat_err)k), (long long)s[d].refused[k]);
}

static void histogram(FILE *f, const struct chat_metrics_sum *s)
{
    const char *n = "chat_db_query_seconds";

    head(f, n, "histogram", "Time from sending a statement to PostgreSQL to its answer.");
    for (int d = 0; d < CHAT_MD_NUM; d++) {
        int64_t cum = 0;
        for (int k = 0; k <= CHAT_METRICS_NBUCKETS; k++) {
            cum += s[d].db_bucket[k];
            if (k < CHAT_METRICS_NBUCKETS)
                fprintf(f, "%s_bucket{daemon=\"%s\",le=\"%g\"} %lld\n", n, daemon_names[d],
                        (double)chat_metrics_bucket_us[k] / 1e6, (long long)cum);
            else
                fprintf(f, "%s_bucket{daemon=\"%s\",le=\"+Inf\"} %lld\n", n, daemon_names[d],
                        (long long)cum);
        }
        fprintf(f, "%s_sum{daemon=\"%s\"} %.6f\n", n, daemon_names[d],
                (double)s[d].db_sum_us / 1e6);
        fprintf(f, "%s_count{daemon=\"%s\"} %lld\n", n, daemon_names[d], (long long)s[d].db_count);
    }
}

static void processes(FILE *f, const struct chat_metrics_sum *s)
{
    head(f, "chat_processes", "gauge", "Worker processes of each daemon on this host.");
    for (int d = 0; d < CHAT_MD_NUM; d++)
        fprintf(f, "chat_processes{daemon=\"%s\"} %d\n", daemon_names[d], s[d].procs);
    head(f, "chat_resident_memory_bytes", "gauge", "Resident memory of those processes.");
    for (int d = 0; d < CHAT_MD_NUM; d++)
        fprintf(f, "chat_resident_memory_bytes{daemon=\"%s\"} %lld\n", daemon_names[d],
                (long long)s[d].rss_bytes);
}

char *chat_metrics_format(const struct chat_metrics_sum sums[CHAT_MD_NUM], size_t *len)
{
    static const struct {
        enum chat_metric m;
        const char *name, *type, *help;
    } rows[] = {
        {CHAT_M_CONNECTIONS, "chat_connections", "gauge",
         "Open client connections (WebSockets; Server-Sent Event streams)."},
        {CHAT_M_ROOMS, "chat_rooms", "gauge", "Rooms with a subscriber in these processes."},
        {CHAT_M_PARKED, "chat_parked_polls", "gauge", "Long-polls waiting for news."},
        {CHAT_M_QUEUE, "chat_send_queue", "gauge", "Sends waiting for the database writer."},
        {CHAT_M_OUTBOX_BYTES, "chat_outbox_bytes", "gauge",
         "Bytes queued for clients and not yet written."},
        {CHAT_M_PRESENT, "chat_present_members", "gauge", "Members online through this host."},
        {CHAT_M_JOINS, "chat_joins_total", "counter", "Rooms joined."},
        {CHAT_M_MESSAGES_IN, "chat_messages_in_total", "counter",
         "Messages stored from this host's clients."},
        {CHAT_M_MESSAGES_OUT, "chat_messages_out_total", "counter",
         "Room events (messages, edits, deletes) written to clients."},
        {CHAT_M_DELIVERIES, "chat_deliveries_total", "counter",
         "Answers, frames and stream writes that carried events to clients."},
        {CHAT_M_DB_CONNECTS, "chat_db_connects_total", "counter",
         "Connections made to PostgreSQL; growth after start means reconnects."},
        {CHAT_M_DB_TIMEOUTS, "chat_db_timeouts_total", "counter",
         "Statements given up at their deadline."},
    };
    char *out = NULL;
    FILE *f = open_memstream(&out, len);

    if (f == NULL)
        return NULL;
    processes(f, sums);
    for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++)
        per_daemon(f, sums, rows[k].name, rows[k].type, rows[k].help, rows[k].m);
    refused(f, sums);
    histogram(f, sums);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
