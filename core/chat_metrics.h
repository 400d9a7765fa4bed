/* chat_metrics: the numbers both daemons count for Prometheus, one block
 * per process in a file the other processes of the host can read. Each
 * worker process maps <dir>/<daemon>-<pid> (0640) and bumps its counters
 * with C11 atomics: no lock, no I/O on the hot path. chat-fcgi's
 * /chat/metrics reads every block of the directory (a block whose pid is
 * gone is skipped), sums them per daemon and prints the text exposition
 * format 0.0.4 (docs/operations.md, "Metrics", lists every metric). A
 * process whose file cannot be made still counts, in memory only. */
#ifndef CHAT_METRICS_H
#define CHAT_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_proto.h"

#define CHAT_METRICS_MAGIC 0x314d4843u /* "CHM1" */
#define CHAT_METRICS_VERSION 1
#define CHAT_METRICS_DIR_DEFAULT "/run/chat/metrics"

/* Counters only grow; gauges are set (sampled about once a second). */
enum chat_metric {
    /* gauges */
    CHAT_M_CONNECTIONS,  /* open client connections (WebSockets; SSE streams) */
    CHAT_M_ROOMS,        /* rooms this process holds subscribers of */
    CHAT_M_PARKED,       /* long-polls waiting for news */
    CHAT_M_QUEUE,        /* sends waiting for the database writer */
    CHAT_M_OUTBOX_BYTES, /* bytes queued for clients, not yet written */
    CHAT_M_PRESENT,      /* members online through this process */
    /* counters */
    CHAT_M_JOINS,        /* rooms joined */
    CHAT_M_MESSAGES_IN,  /* messages stored from this process's clients */
    CHAT_M_MESSAGES_OUT, /* room events (messages, edits, deletes) written to clients */
    CHAT_M_DELIVERIES,   /* answers and frames written to clients */
    CHAT_M_DB_CONNECTS,  /* connections to PostgreSQL made (the first ones too) */
    CHAT_M_DB_TIMEOUTS,  /* statements given up at their deadline */
    CHAT_M_NUM
};
#define CHAT_M_FIRST_COUNTER CHAT_M_JOINS

/* Bounds (microseconds) of the database latency histogram, then +Inf. */
#define CHAT_METRICS_NBUCKETS 12
extern const int64_t chat_metrics_bucket_us[CHAT_METRICS_NBUCKETS];

/* What one process's file holds (fixed layout: a reader checks magic,
 * version and size before summing). */
struct chat_metrics_block {
    uint32_t magic, version;
    char daemon[8]; /* "ws" or "fcgi" */
    int32_t pid;
    int32_t pad;
    int64_t started; /* unix seconds */
    _Atomic int64_t v[CHAT_M_NUM];
    _Atomic int64_t refused[CHAT_E_NERR];                 /* errors sent to clients, by code */
    _Atomic int64_t db_bucket[CHAT_METRICS_NBUCKETS + 1]; /* not cumulative */
    _Atomic int64_t db_sum_us, db_count;
};

/* Maps this process's block at <dir>/<daemon>-<pid>, making dir (0750)
 * if missing and removing the files of dead processes. Call in each
 * worker process (after fork). 0, or -errno (the counting goes on in
 * memory). dir NULL: memory only. */
int chat_metrics_open(const char *dir, const char *daemon);
/* Unmaps and removes this process's file (clean exit). */
void chat_metrics_close(void);
/* The default directory for a daemon listening on a unix socket: the
 * socket's folder + "/metrics" ("unix:" prefix allowed); else
 * CHAT_METRICS_DIR_DEFAULT. out gets at most cap bytes. */
void chat_metrics_default_dir(const char *socket_path, char *out, size_t cap);

void chat_metric_add(enum chat_metric m, int64_t n);
void chat_metric_set(enum chat_metric m, int64_t v);
static inline void chat_metric_inc(enum chat_metric m)
{
    chat_metric_add(m, 1);
}
void chat_metric_refused(enum chat_err code);
/* A database statement that took us microseconds. */
void chat_metric_db_us(int64_t us);
/* Monotonic microseconds, for timing a statement. */
int64_t chat_metrics_now_us(void);

/* ---- reading (the endpoint) ---- */

enum { CHAT_MD_WS, CHAT_MD_FCGI, CHAT_MD_NUM };

/* Sums of the live blocks of one daemon. */
struct chat_metrics_sum {
    int procs;
    int64_t rss_bytes;
    int64_t v[CHAT_M_NUM];
    int64_t refused[CHAT_E_NERR];
    int64_t db_bucket[CHAT_METRICS_NBUCKETS + 1];
    int64_t db_sum_us, db_count;
};

/* Adds a block into the sum of its daemon; -1 when the block is not one
 * of ours (magic, version, daemon). */
int chat_metrics_sum_add(struct chat_metrics_sum sums[CHAT_MD_NUM],
                         const struct chat_metrics_block *b, int64_t rss_bytes);
/* Calls each(block, rss, arg) for every live block of dir (a copy, read
 * with atomic loads); returns how many, or -errno when dir cannot be read. */
int chat_metrics_each(const char *dir,
                      void (*each)(const struct chat_metrics_block *, int64_t rss, void *),
                      void *arg);
/* The exposition text (format 0.0.4) of the sums: malloc'd, *len set;
 * NULL when out of memory. */
char *chat_metrics_format(const struct chat_metrics_sum sums[CHAT_MD_NUM], size_t *len);

#endif
