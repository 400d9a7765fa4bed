/* loadgen: the load generator of `make bench` (tests/bench/run.sh).
 *
 * One process, one thread, one epoll set, libc only. It opens WebSocket
 * clients (and, for nchan, HTTP publishers) from several loopback source
 * addresses and speaks one of four dialects over them:
 *
 *   chat   our protocol (PROTOCOL.md): hello, join, send, msg with seq
 *   sio    Socket.IO 4 / Engine.IO v4 over WebSocket: 0{..} open, 40
 *          connect, 42["message",T] events, 2/3 ping/pong
 *   nchan  nchan's WebSocket subscriber; publishing by HTTP POST
 *   bare   plain WebSocket: every text frame is T (tests/bench/bare.c)
 *
 * T, the payload, is "<pub> <ctr> <id> <t_ns>": publisher number, that
 * publisher's counter (1, 2, ...), the message's global number and its send
 * time (CLOCK_MONOTONIC, so several processes on one machine agree).
 * Every subscriber tracks, per publisher, the highest counter seen and a
 * 64-message window behind it: that gives loss, duplicates and order; for
 * chat the room's seq is checked too (gap-free, ascending).
 *
 * Modes:
 *   fanout  closed loop: at most --window messages not yet delivered to
 *           every subscriber; measures the delivery rate the system
 *           sustains (deliveries/s) and the latency it takes to do so
 *   rate    open loop at --rate messages/s: latency p50/p99/max
 *   idle    opens --subs connections (--procs processes), prints one
 *           READY line, holds them until SIGTERM or --hold seconds
 *   sends   chat only: --pubs senders with --depth sends in flight each,
 *           no subscribers: persisted (acked) sends/s and ack latency
 *
 * The result is one JSON line on stdout. Diagnostics go to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum proto { P_CHAT, P_SIO, P_NCHAN, P_BARE };
enum mode { M_FANOUT, M_RATE, M_IDLE, M_SENDS };
enum state { S_CONNECTING, S_HANDSHAKE, S_OPEN, S_READY, S_DEAD };

/* ---- options ---------------------------------------------------------- */
static struct {
    enum proto proto;
    enum mode mode;
    const char *host;
    int port;
    const char *path;     /* WebSocket path (chat: ?name= is appended) */
    const char *pub_path; /* nchan: publisher path prefix (+ room) */
    const char *room, *windows;
    int rooms;            /* idle/sends: rooms room-0 .. room-(rooms-1) */
    int subs, pubs, window, depth, conc, src_ips, procs, src_base;
    double rate, warmup, duration, drain, hold, ramp_timeout;
    int text_pad;         /* extra bytes of text */
    int verbose;
} O = {
    .proto = P_CHAT, .mode = M_FANOUT, .host = "127.0.0.1", .port = 28080,
    .path = NULL, .pub_path = "/pub/", .room = NULL, .rooms = 1,
    .subs = 1000, .pubs = 4, .window = 0, .depth = 1, .conc = 256, .src_ips = 8,
    .procs = 1, .src_base = 0,
    .rate = 200, .warmup = 2, .duration = 5, .drain = 3, .hold = 600, .ramp_timeout = 120,
};

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- histogram: ~3% buckets of microseconds ---------------------------- */
#define HBUCKETS 1200
struct hist {
    uint64_t n, max_ns, sum_us;
    uint32_t b[HBUCKETS];
};
static int hidx(uint64_t us) {
    if (us < 64) return (int)us;
    int msb = 63 - __builtin_clzll(us);
    int shift = msb - 5;
    int i = 64 + (msb - 6) * 32 + (int)((us >> shift) - 32);
    return i < HBUCKETS ? i : HBUCKETS - 1;
}
static double hval_us(int i) { /* upper edge of bucket i */
    if (i < 64) return i + 1;
    int msb = (i - 64) / 32 + 6, sub = (i - 64) % 32 + 32;
    return (double)((uint64_t)(sub + 1) << (msb - 5));
}
static void hadd(struct hist *h, uint64_t ns) {
    uint64_t us = ns / 1000;
    h->b[hidx(us)]++;
    h->n++;
    h->sum_us += us;
    if (ns > h->max_ns) h->max_ns = ns;
}
static double hq_ms(const struct hist *h, double q) {
    if (!h->n) return 0;
    uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
    if (want >= h->n) want = h->n - 1;
    for (int i = 0; i < HBUCKETS; i++) {
        seen += h->b[i];
        if (seen > want) {
            double v = hval_us(i) / 1000.0, mx = (double)h->max_ns / 1e6;
            return v < mx ? v : mx;
        }
    }
    return (double)h->max_ns / 1e6;
}
static void hmerge(struct hist *a, const struct hist *b) {
    a->n += b->n;
    a->sum_us += b->sum_us;
    if (b->max_ns > a->max_ns) a->max_ns = b->max_ns;
    for (int i = 0; i < HBUCKETS; i++) a->b[i] += b->b[i];
}

/* ---- results (POD: children of --procs send it through a pipe) -------- */
struct results {
    uint64_t published, published_win, delivered_win, delivered_all, unique_all;
    uint64_t dups, late, seq_errors, acks_win, errors, closed, connect_fail, ready;
    uint64_t pub_errors, stalls, rejected;
    double win_s, ramp_s;
    struct hist lat, conn;
};
static struct results R;

/* ---- connections ------------------------------------------------------- */
struct track { /* per (subscriber, publisher) */
    uint32_t last;
    uint64_t bits; /* bit d: counter last-d seen */
};

struct conn {
    int fd;
    uint32_t idx;
    uint8_t state;
    bool http_pub; /* nchan publisher (HTTP keep-alive) */
    bool sub;      /* counts deliveries */
    bool busy;     /* http publisher: a request is out */
    int pubno;     /* >= 0: publishes as this publisher */
    uint32_t pubctr;
    uint32_t inflight; /* sends mode */
    uint64_t t0;
    char *in;
    uint32_t ilen, icap;
    char *out;
    uint32_t olen, ocap;
    bool want_out;
    int64_t last_seq, joined_seq;
    struct track *trk;
    char room[80];
};

static int ep;
static struct conn *conns; /* subs first, then http publishers */
static int nconns;
static int *pubs_list, npubs; /* indices of publishing conns */
static int rr;
static int handshaking, connecting_next;
static struct track *tracks;
static volatile sig_atomic_t stop_flag;

/* message slots of the closed loop */
#define RING (1 << 20)
struct slot {
    uint64_t id;
    uint64_t t;
    uint32_t remaining;
};
static struct slot *ring;
static uint64_t next_id = 1, completed, oldest = 1;
static uint32_t nsubs_expect;

static uint64_t t_win0, t_win1; /* measurement window */
static char sweep_json[2048];
static bool publishing;

static void on_signal(int s) {
    (void)s;
    stop_flag = 1;
}

static void buf_append(char **b, uint32_t *len, uint32_t *cap, const void *data, size_t n) {
    if (*len + n > *cap) {
        uint32_t nc = *cap ? *cap : 256;
        while (nc < *len + n) nc *= 2;
        *b = realloc(*b, nc);
        if (!*b) die("out of memory");
        *cap = nc;
    }
    memcpy(*b + *len, data, n);
    *len += (uint32_t)n;
}

static void conn_close(struct conn *c, bool error) {
    if (c->state == S_DEAD) return;
    if (c->state == S_CONNECTING || c->state == S_HANDSHAKE || c->state == S_OPEN) {
        handshaking--;
        R.connect_fail++;
    } else if (error) {
        R.closed++;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = S_DEAD;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->ilen = c->icap = c->olen = c->ocap = 0;
}

static void set_out(struct conn *c, bool on) {
    if (c->want_out == on) return;
    c->want_out = on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush_out(struct conn *c) {
    while (c->olen) {
        ssize_t w = send(c->fd, c->out, c->olen, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            conn_close(c, true);
            return;
        }
        memmove(c->out, c->out + w, c->olen - (size_t)w);
        c->olen -= (uint32_t)w;
    }
    set_out(c, c->olen > 0);
}

static void conn_write(struct conn *c, const void *data, size_t n) {
    if (c->state == S_DEAD) return;
    if (c->olen == 0) {
        ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
        if (w == (ssize_t)n) return;
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(c, true);
                return;
            }
            w = 0;
        }
        data = (const char *)data + w;
        n -= (size_t)w;
    }
    buf_append(&c->out, &c->olen, &c->ocap, data, n);
    set_out(c, true);
}

/* a masked client frame */
static void ws_send(struct conn *c, int opcode, const char *p, size_t n) {
    char stackbuf[512];
    char *f = n + 14 <= sizeof stackbuf ? stackbuf : malloc(n + 14);
    size_t h = 0;
    f[h++] = (char)(0x80 | opcode);
    if (n < 126) {
        f[h++] = (char)(0x80 | n);
    } else if (n < 65536) {
        f[h++] = (char)(0x80 | 126);
        f[h++] = (char)(n >> 8);
        f[h++] = (char)n;
    } else {
        f[h++] = (char)(0x80 | 127);
        for (int i = 7; i >= 0; i--) f[h++] = (char)((uint64_t)n >> (8 * i));
    }
    static const uint8_t mask[4] = {0x5a, 0x3c, 0x96, 0xe1};
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) f[h + i] = (char)(p[i] ^ mask[i & 3]);
    conn_write(c, f, h + n);
    if (f != stackbuf) free(f);
}

static void ws_text(struct conn *c, const char *s) { ws_send(c, 1, s, strlen(s)); }

/* ---- publishing ------------------------------------------------------ */
static bool pub_ready(struct conn *c) {
    if (c->state != S_READY || c->olen) return false;
    if (c->http_pub && c->busy) return false;
    return true;
}

static bool publish_one(uint64_t t) {
    int tries = npubs;
    struct conn *c = NULL;
    while (tries--) {
        struct conn *k = &conns[pubs_list[rr]];
        rr = (rr + 1) % npubs;
        if (pub_ready(k)) {
            c = k;
            break;
        }
    }
    if (!c) return false;
    uint64_t id = next_id++;
    uint32_t ctr = ++c->pubctr;
    char text[160], pad[1024];
    int pl = O.text_pad < (int)sizeof pad - 1 ? O.text_pad : (int)sizeof pad - 1;
    memset(pad, 'x', (size_t)pl);
    pad[pl] = 0;
    snprintf(text, sizeof text, "%d %" PRIu32 " %" PRIu64 " %" PRIu64, c->pubno, ctr, id, t);
    char msg[1400];
    int n = 0;
    switch (O.proto) {
    case P_CHAT:
        n = snprintf(msg, sizeof msg, "{\"op\":\"send\",\"room\":\"%s\",\"text\":\"%s%s%s\",\"cid\":\"c%" PRIu64 "\",\"ref\":%" PRIu64 "}",
                     c->room, text, pl ? " " : "", pad, id, id);
        ws_send(c, 1, msg, (size_t)n);
        break;
    case P_SIO:
        n = snprintf(msg, sizeof msg, "42[\"message\",\"%s%s%s\"]", text, pl ? " " : "", pad);
        ws_send(c, 1, msg, (size_t)n);
        break;
    case P_BARE:
        n = snprintf(msg, sizeof msg, "%s%s%s", text, pl ? " " : "", pad);
        ws_send(c, 1, msg, (size_t)n);
        break;
    case P_NCHAN: {
        char body[1200];
        int bl = snprintf(body, sizeof body, "%s%s%s", text, pl ? " " : "", pad);
        n = snprintf(msg, sizeof msg,
                     "POST %s%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     O.pub_path, c->room, O.host, O.port, bl, body);
        c->busy = true;
        conn_write(c, msg, (size_t)n);
        break;
    }
    }
    struct slot *s = &ring[id & (RING - 1)];
    s->id = id;
    s->t = t;
    s->remaining = nsubs_expect;
    R.published++;
    if (t >= t_win0 && t < t_win1) R.published_win++;
    return true;
}

static void complete_slot(struct slot *s) {
    s->remaining = 0;
    completed++;
    while (oldest < next_id && ring[oldest & (RING - 1)].remaining == 0) oldest++;
}

/* ---- deliveries ------------------------------------------------------- */
static bool parse_u64(const char **p, const char *end, uint64_t *v) {
    const char *s = *p;
    uint64_t x = 0;
    if (s >= end || *s < '0' || *s > '9') return false;
    while (s < end && *s >= '0' && *s <= '9') x = x * 10 + (uint64_t)(*s++ - '0');
    *v = x;
    *p = s;
    return true;
}

static void deliver(struct conn *c, const char *t, const char *end, uint64_t now) {
    uint64_t pub, ctr, id, ts;
    const char *p = t;
    if (!parse_u64(&p, end, &pub) || *p++ != ' ' || !parse_u64(&p, end, &ctr) || *p++ != ' ' ||
        !parse_u64(&p, end, &id) || *p++ != ' ' || !parse_u64(&p, end, &ts)) {
        R.errors++;
        return;
    }
    if (!c->sub || pub >= (uint64_t)O.pubs) return;
    bool in_win = now >= t_win0 && now < t_win1;
    R.delivered_all++;
    if (in_win) {
        R.delivered_win++;
        hadd(&R.lat, now - ts);
    }
    struct track *k = &c->trk[pub];
    bool unique = true;
    if (ctr > k->last) {
        uint64_t s = ctr - k->last;
        k->bits = (s >= 64 ? 0 : k->bits << s) | 1;
        k->last = (uint32_t)ctr;
    } else {
        uint64_t d = k->last - ctr;
        if (d < 64 && (k->bits >> d & 1)) {
            R.dups++;
            unique = false;
        } else {
            R.late++;
            if (d < 64) k->bits |= 1ull << d;
        }
    }
    if (!unique) return;
    R.unique_all++;
    struct slot *s = &ring[id & (RING - 1)];
    if (s->id == id && s->remaining > 0 && --s->remaining == 0) complete_slot(s);
}

/* the value of "key": in a JSON object (flat scan, our fields only) */
static const char *json_field(const char *p, const char *end, const char *key) {
    size_t kl = strlen(key);
    const char *q = memmem(p, (size_t)(end - p), key, kl);
    return q ? q + kl : NULL;
}

static void chat_frame(struct conn *c, const char *p, size_t n, uint64_t now) {
    const char *end = p + n;
    if (n > 12 && memcmp(p, "{\"op\":\"msg\"", 11) == 0) {
        if (c->state != S_READY) return;
        const char *s = json_field(p, end, "\"seq\":");
        uint64_t seq = 0;
        if (s) parse_u64(&s, end, &seq);
        if ((int64_t)seq <= c->joined_seq) return; /* backlog */
        if (c->sub && (int64_t)seq != c->last_seq + 1) R.seq_errors++;
        if ((int64_t)seq > c->last_seq) c->last_seq = (int64_t)seq;
        const char *t = json_field(p, end, "\"text\":\"");
        if (t) deliver(c, t, end, now);
        return;
    }
    if (n > 12 && memcmp(p, "{\"op\":\"ack\"", 11) == 0) {
        if (c->inflight) c->inflight--;
        const char *s = json_field(p, end, "\"cid\":\"s");
        uint64_t ts = 0;
        if (s && parse_u64(&s, end, &ts) && now >= t_win0 && now < t_win1) {
            R.acks_win++;
            hadd(&R.lat, now - ts);
        }
        return;
    }
    if (memmem(p, n, "\"op\":\"hello\"", 12)) {
        if (O.mode == M_SENDS) {
            c->state = S_READY;
            return;
        }
        char j[160];
        snprintf(j, sizeof j, "{\"op\":\"join\",\"room\":\"%s\"}", c->room);
        ws_text(c, j);
        return;
    }
    if (memmem(p, n, "\"op\":\"joined\"", 13)) {
        const char *s = json_field(p, end, "\"seq\":");
        uint64_t seq = 0;
        if (s) parse_u64(&s, end, &seq);
        c->joined_seq = c->last_seq = (int64_t)seq;
        c->state = S_READY;
        return;
    }
    if (memmem(p, n, "\"op\":\"error\"", 12)) {
        if (R.errors++ < 5) fprintf(stderr, "loadgen: conn %u: %.*s\n", c->idx, (int)(n > 300 ? 300 : n), p);
        if (c->inflight) c->inflight--;
        const char *s = json_field(p, end, "\"ref\":");
        uint64_t id = 0;
        if (s && parse_u64(&s, end, &id)) { /* a send refused: nothing to deliver */
            struct slot *sl = &ring[id & (RING - 1)];
            if (sl->id == id && sl->remaining) {
                R.rejected++;
                complete_slot(sl);
            }
        }
    }
    /* presence, typing, pong: ignored */
}

static void sio_frame(struct conn *c, const char *p, size_t n, uint64_t now) {
    if (n >= 2 && p[0] == '4' && p[1] == '2') {
        const char *t = memmem(p, n, "[\"message\",\"", 12);
        if (t && c->state == S_READY) deliver(c, t + 12, p + n, now);
        return;
    }
    if (n >= 1 && p[0] == '2') {
        ws_send(c, 1, "3", 1);
        return;
    }
    if (n >= 1 && p[0] == '0') { /* Engine.IO open */
        ws_send(c, 1, "40", 2);
        return;
    }
    if (n >= 2 && p[0] == '4' && p[1] == '0') {
        c->state = S_READY;
        return;
    }
    if (n >= 2 && p[0] == '4' && p[1] == '4') R.errors++; /* connect_error */
}

/* returns bytes consumed (0: need more) */
static size_t ws_frames(struct conn *c, const char *buf, size_t len, uint64_t now) {
    size_t off = 0;
    while (len - off >= 2) {
        const uint8_t *h = (const uint8_t *)buf + off;
        int op = h[0] & 0x0f;
        uint64_t pl = h[1] & 0x7f;
        size_t hl = 2;
        if (pl == 126) {
            if (len - off < 4) break;
            pl = (uint64_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (pl == 127) {
            if (len - off < 10) break;
            pl = 0;
            for (int i = 0; i < 8; i++) pl = pl << 8 | h[2 + i];
            hl = 10;
        }
        if (h[1] & 0x80) hl += 4; /* servers do not mask; tolerate */
        if (len - off < hl + pl) break;
        const char *p = buf + off + hl;
        off += hl + pl;
        switch (op) {
        case 1:
        case 2:
        case 0:
            if (O.proto == P_CHAT) chat_frame(c, p, pl, now);
            else if (O.proto == P_SIO) sio_frame(c, p, pl, now);
            else if (c->state == S_READY) deliver(c, p, p + pl, now);
            break;
        case 8:
            ws_send(c, 8, p, pl > 2 ? 2 : pl);
            conn_close(c, true);
            return off;
        case 9:
            ws_send(c, 10, p, pl);
            break;
        default:
            break;
        }
        if (c->state == S_DEAD) return off;
    }
    return off;
}

static void became_ready(struct conn *c, uint64_t now) {
    handshaking--;
    if (c->http_pub) return;
    R.ready++;
    hadd(&R.conn, now - c->t0);
}

/* HTTP response of a publisher; returns bytes consumed */
static size_t http_responses(struct conn *c, const char *buf, size_t len) {
    size_t off = 0;
    for (;;) {
        const char *b = buf + off;
        size_t l = len - off;
        const char *he = memmem(b, l, "\r\n\r\n", 4);
        if (!he) break;
        size_t hlen = (size_t)(he - b) + 4;
        long cl = 0;
        const char *q = memmem(b, hlen, "\r\nContent-Length:", 17);
        if (!q) q = memmem(b, hlen, "\r\ncontent-length:", 17);
        if (q) cl = strtol(q + 17, NULL, 10);
        if (l < hlen + (size_t)cl) break;
        int status = (l > 12) ? atoi(b + 9) : 0;
        if (status < 200 || status > 299) {
            if (R.pub_errors++ < 5) fprintf(stderr, "loadgen: publisher got %.*s\n", (int)(hlen > 200 ? 200 : hlen), b);
        }
        c->busy = false;
        off += hlen + (size_t)cl;
    }
    return off;
}

static char rbuf[1 << 18];

static void on_readable(struct conn *c, uint64_t now) {
    for (int rounds = 0; rounds < 4; rounds++) {
        size_t have = c->ilen;
        if (have) memcpy(rbuf, c->in, have);
        if (have >= sizeof rbuf) {
            R.errors++;
            conn_close(c, true);
            return;
        }
        ssize_t r = recv(c->fd, rbuf + have, sizeof rbuf - have, 0);
        if (r == 0) {
            conn_close(c, c->state == S_READY || c->state == S_OPEN);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            conn_close(c, true);
            return;
        }
        size_t len = have + (size_t)r, off = 0;
        if (c->http_pub) {
            off = http_responses(c, rbuf, len);
        } else {
            if (c->state == S_HANDSHAKE) {
                const char *he = memmem(rbuf, len, "\r\n\r\n", 4);
                if (!he) goto keep;
                if (len < 12 || memcmp(rbuf + 9, "101", 3) != 0) {
                    if (R.connect_fail < 5)
                        fprintf(stderr, "loadgen: conn %u: handshake refused: %.*s\n", c->idx,
                                (int)(he - rbuf > 200 ? 200 : he - rbuf), rbuf);
                    conn_close(c, true);
                    return;
                }
                off = (size_t)(he - rbuf) + 4;
                if (O.proto == P_NCHAN || O.proto == P_BARE) {
                    c->state = S_READY;
                    became_ready(c, now);
                } else {
                    c->state = S_OPEN;
                }
            }
            bool was_ready = c->state == S_READY;
            off += ws_frames(c, rbuf + off, len - off, now);
            if (c->state == S_DEAD) return;
            if (!was_ready && c->state == S_READY) became_ready(c, now);
        }
    keep:
        c->ilen = 0;
        if (off < len) {
            c->ilen = 0;
            buf_append(&c->in, &c->ilen, &c->icap, rbuf + off, len - off);
        }
        if ((size_t)r < sizeof rbuf - have) return; /* drained */
    }
}

/* ---- connecting ------------------------------------------------------- */
static void start_connect(struct conn *c, uint64_t now) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    int ipn = O.src_base + (int)(c->idx % (uint32_t)O.src_ips);
    /* 127.0.1.x, 127.0.2.x ...: any 127/8 address is local */
    src.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(1 + ipn / 250) << 8 | (uint32_t)(1 + ipn % 250));
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind: %s", strerror(errno));
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)O.port)};
    inet_pton(AF_INET, O.host, &dst.sin_addr);
    c->fd = fd;
    c->t0 = now;
    c->state = S_CONNECTING;
    handshaking++;
    int r = connect(fd, (struct sockaddr *)&dst, sizeof dst);
    if (r < 0 && errno != EINPROGRESS) {
        if (R.connect_fail < 5) fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
        c->state = S_HANDSHAKE;
        close(fd);
        c->fd = -1;
        handshaking--;
        R.connect_fail++;
        c->state = S_DEAD;
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = true;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void on_connected(struct conn *c, uint64_t now) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        if (R.connect_fail < 5) fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
        conn_close(c, true);
        return;
    }
    set_out(c, false);
    if (c->http_pub) {
        c->state = S_READY;
        became_ready(c, now);
        return;
    }
    char req[600], path[300];
    switch (O.proto) {
    case P_CHAT:
        snprintf(path, sizeof path, "%s%cname=b%u", O.path, strchr(O.path, '?') ? '&' : '?', c->idx);
        break;
    case P_NCHAN:
        snprintf(path, sizeof path, "%s%s", O.path, c->room);
        break;
    default:
        snprintf(path, sizeof path, "%s", O.path);
    }
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, O.host, O.port);
    c->state = S_HANDSHAKE;
    conn_write(c, req, (size_t)n);
}

static void pump_connects(uint64_t now) {
    while (connecting_next < nconns && handshaking < O.conc) {
        start_connect(&conns[connecting_next++], now);
    }
}

static void poll_once(int timeout_ms) {
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint64_t now = now_ns();
        struct conn *c = evs[i].data.ptr;
        if (c->state == S_DEAD) continue;
        if (c->state == S_CONNECTING) {
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c, now);
            continue;
        }
        if (evs[i].events & EPOLLOUT) flush_out(c);
        if (c->state == S_DEAD) continue;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, now);
    }
}

static int all_settled(void) { /* every connection ready or dead */
    return connecting_next == nconns && handshaking == 0;
}

static void ramp(void) {
    uint64_t t0 = now_ns(), limit = t0 + (uint64_t)(O.ramp_timeout * 1e9);
    while (!all_settled() && !stop_flag) {
        pump_connects(now_ns());
        poll_once(5);
        if (now_ns() > limit) {
            fprintf(stderr, "loadgen: ramp timed out: %d of %d ready\n", (int)R.ready, nconns);
            break;
        }
    }
    R.ramp_s = (double)(now_ns() - t0) / 1e9;
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void setup_conns(int first, int count, int nhttp) {
    nconns = count + nhttp;
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) die("out of memory");
    int pubs_as_subs = (O.proto == P_NCHAN) ? 0 : O.pubs;
    if (O.mode == M_FANOUT || O.mode == M_RATE) {
        tracks = calloc((size_t)count * (size_t)O.pubs, sizeof *tracks);
        if (!tracks) die("out of memory");
    }
    pubs_list = calloc((size_t)(O.pubs > 0 ? O.pubs : 1), sizeof *pubs_list);
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->fd = -1;
        c->idx = (uint32_t)(first + i);
        c->pubno = -1;
        c->last_seq = c->joined_seq = -1;
        c->state = S_DEAD;
        if (i < count) {
            c->sub = (O.mode == M_FANOUT || O.mode == M_RATE);
            if (tracks) c->trk = tracks + (size_t)i * (size_t)O.pubs;
            if (O.rooms > 1)
                snprintf(c->room, sizeof c->room, "%s-%d", O.room, (first + i) % O.rooms);
            else
                snprintf(c->room, sizeof c->room, "%s", O.room);
            if (i < pubs_as_subs || O.mode == M_SENDS) {
                c->pubno = npubs;
                pubs_list[npubs++] = i;
            }
        } else {
            c->http_pub = true;
            snprintf(c->room, sizeof c->room, "%s", O.room);
            c->pubno = npubs;
            pubs_list[npubs++] = i;
        }
    }
}

/* ---- output ------------------------------------------------------------ */
static const char *proto_name(void) {
    static const char *n[] = {"chat", "sio", "nchan", "bare"};
    return n[O.proto];
}
static const char *mode_name(void) {
    static const char *n[] = {"fanout", "rate", "idle", "sends"};
    return n[O.mode];
}

static void print_results(const char *prefix) {
    uint64_t expected = (R.published - R.rejected) * nsubs_expect;
    uint64_t lost = expected > R.unique_all ? expected - R.unique_all : 0;
    double win = R.win_s > 0 ? R.win_s : 1;
    printf("%s{\"proto\":\"%s\",\"mode\":\"%s\",\"subs\":%d,\"pubs\":%d,\"ready\":%" PRIu64
           ",\"connect_fail\":%" PRIu64 ",\"ramp_s\":%.2f,\"connect_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}",
           prefix, proto_name(), mode_name(), O.subs, O.pubs, R.ready, R.connect_fail, R.ramp_s,
           hq_ms(&R.conn, 0.5), hq_ms(&R.conn, 0.99), (double)R.conn.max_ns / 1e6);
    if (O.mode == M_FANOUT || O.mode == M_RATE) {
        printf(",\"window_s\":%.2f,\"published\":%" PRIu64 ",\"msgs_per_s\":%.1f,\"deliveries_per_s\":%.0f"
               ",\"expected\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"dups\":%" PRIu64 ",\"late\":%" PRIu64
               ",\"seq_errors\":%" PRIu64 ",\"stalls\":%" PRIu64 ",\"rejected\":%" PRIu64,
               R.win_s, R.published, (double)R.published_win / win, (double)R.delivered_win / win,
               expected, lost, R.dups, R.late, R.seq_errors, R.stalls, R.rejected);
    }
    if (O.mode == M_SENDS) printf(",\"window_s\":%.2f,\"acks_per_s\":%.0f", R.win_s, (double)R.acks_win / win);
    if (O.mode != M_IDLE)
        printf(",\"latency_ms\":{\"n\":%" PRIu64 ",\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}", R.lat.n,
               hq_ms(&R.lat, 0.5), hq_ms(&R.lat, 0.99), (double)R.lat.max_ns / 1e6);
    printf("%s,\"errors\":%" PRIu64 ",\"pub_errors\":%" PRIu64 ",\"closed\":%" PRIu64 "}\n", sweep_json, R.errors,
           R.pub_errors, R.closed);
    fflush(stdout);
}

/* ---- modes ------------------------------------------------------------- */
static void traffic_loop(int window, uint64_t t_start, uint64_t *sched) {
    while (!stop_flag) {
        uint64_t now = now_ns();
        if (now >= t_win1) break;
        if (O.mode == M_FANOUT) {
            while (next_id - 1 - completed < (uint64_t)window && publish_one(now)) {}
            /* a message nobody finishes within 5 s: count as lost, move on */
            if (oldest < next_id) {
                struct slot *s = &ring[oldest & (RING - 1)];
                if (s->remaining && now - s->t > 5000000000ull) {
                    R.stalls++;
                    complete_slot(s);
                }
            }
            poll_once(1);
        } else if (O.mode == M_RATE) {
            uint64_t due = (uint64_t)((double)(now - t_start) / 1e9 * O.rate);
            while (*sched < due) {
                if (!publish_one(now)) break; /* publishers blocked: catch up later */
                (*sched)++;
            }
            poll_once(1);
        } else { /* sends */
            for (int i = 0; i < npubs; i++) {
                struct conn *c = &conns[pubs_list[i]];
                while (c->state == S_READY && c->inflight < (uint32_t)O.depth && !c->olen) {
                    char m[200];
                    uint64_t id = next_id++;
                    int n = snprintf(m, sizeof m,
                                     "{\"op\":\"send\",\"room\":\"%s\",\"text\":\"persisted %" PRIu64
                                     "\",\"cid\":\"s%" PRIu64 "-%" PRIu64 "\"}",
                                     c->room, id, now, id);
                    ws_send(c, 1, m, (size_t)n);
                    c->inflight++;
                    R.published++;
                }
            }
            poll_once(1);
        }
    }
}

static void run_traffic(void) {
    int nhttp = O.proto == P_NCHAN ? O.pubs : 0;
    if (O.mode == M_SENDS) O.subs = O.pubs;
    setup_conns(0, O.subs, nhttp);
    nsubs_expect = (O.mode == M_SENDS) ? 0 : (uint32_t)O.subs;
    ring = calloc(RING, sizeof *ring);
    if (!ring) die("out of memory");
    t_win0 = t_win1 = UINT64_MAX;
    ramp();
    if (R.ready < (uint64_t)(nconns - nhttp)) {
        fprintf(stderr, "loadgen: only %" PRIu64 " of %d connections ready\n", R.ready, nconns - nhttp);
        if (R.ready == 0) {
            print_results("");
            exit(1);
        }
    }
    /* fanout: one run per window of the sweep (--windows), each with its
     * own warm-up and measurement; the best one is the result */
    int wins[16], nw = 0;
    for (const char *p = O.windows; p && *p && nw < 16;) {
        wins[nw++] = atoi(p);
        p = strchr(p, ',');
        if (p) p++;
    }
    if (nw == 0 || O.mode != M_FANOUT) {
        wins[0] = O.window > 0 ? O.window : 16;
        nw = 1;
    }
    struct {
        int w;
        double dps, mps, p50, p99, max;
    } sw[16];
    struct results best = {0};
    int best_w = 0;
    for (int k = 0; k < nw && !stop_flag; k++) {
        uint64_t t = now_ns();
        uint64_t t_start = t;
        t_win0 = t + (uint64_t)((k == 0 ? O.warmup : (O.warmup < 1 ? O.warmup : 1)) * 1e9);
        t_win1 = t_win0 + (uint64_t)(O.duration * 1e9);
        R.delivered_win = R.published_win = R.acks_win = 0;
        memset(&R.lat, 0, sizeof R.lat);
        publishing = true;
        uint64_t sched = 0; /* rate mode: messages due */
        int window = wins[k];
        traffic_loop(window, t_start, &sched);
        R.win_s = (double)(t_win1 - t_win0) / 1e9;
        double win = R.win_s;
        sw[k].w = window;
        sw[k].dps = (double)R.delivered_win / win;
        sw[k].mps = (double)R.published_win / win;
        sw[k].p50 = hq_ms(&R.lat, 0.5);
        sw[k].p99 = hq_ms(&R.lat, 0.99);
        sw[k].max = (double)R.lat.max_ns / 1e6;
        if (k == 0 || sw[k].dps > (double)best.delivered_win / best.win_s) {
            best = R;
            best_w = window;
        }
    }
    R.delivered_win = best.delivered_win;
    R.published_win = best.published_win;
    R.acks_win = best.acks_win;
    R.lat = best.lat;
    R.win_s = best.win_s;
    if (nw > 1) {
        int l = 0;
        l += snprintf(sweep_json + l, sizeof sweep_json - (size_t)l, ",\"window\":%d,\"sweep\":[", best_w);
        for (int k = 0; k < nw; k++)
            l += snprintf(sweep_json + l, sizeof sweep_json - (size_t)l,
                          "%s{\"window\":%d,\"deliveries_per_s\":%.0f,\"msgs_per_s\":%.1f,\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}",
                          k ? "," : "", sw[k].w, sw[k].dps, sw[k].mps, sw[k].p50, sw[k].p99, sw[k].max);
        snprintf(sweep_json + l, sizeof sweep_json - (size_t)l, "]");
    }
    /* drain: wait for the deliveries of what was published */
    publishing = false;
    /* until everything arrived, or nothing came for --drain seconds (at
     * most 60 s in all): what is missing then is lost */
    uint64_t hard = now_ns() + 60000000000ull, last_progress = now_ns(), seen = R.unique_all;
    while (!stop_flag && R.unique_all < (R.published - R.rejected) * nsubs_expect) {
        uint64_t t = now_ns();
        if (t > hard || t - last_progress > (uint64_t)(O.drain * 1e9)) break;
        poll_once(10);
        if (R.unique_all != seen) {
            seen = R.unique_all;
            last_progress = now_ns();
        }
    }
    print_results("");
}

/* idle: children report through a pipe; the parent prints READY */
static void idle_child(int first, int count, int fdout) {
    setup_conns(first, count, 0);
    ramp();
    if (write(fdout, &R, sizeof R) != (ssize_t)sizeof R) _exit(3);
    uint64_t end = now_ns() + (uint64_t)(O.hold * 1e9);
    while (!stop_flag && now_ns() < end) poll_once(200);
    _exit(0);
}

static void run_idle(void) {
    int P = O.procs < 1 ? 1 : O.procs;
    pid_t pids[64];
    int fds[64];
    if (P > 64) P = 64;
    for (int i = 0; i < P; i++) {
        int pf[2];
        if (pipe(pf) < 0) die("pipe");
        int first = (int)((int64_t)O.subs * i / P), last = (int)((int64_t)O.subs * (i + 1) / P);
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            close(pf[0]);
            ep = epoll_create1(EPOLL_CLOEXEC);
            idle_child(first, last - first, pf[1]);
        }
        close(pf[1]);
        pids[i] = pid;
        fds[i] = pf[0];
    }
    struct results agg = {0}, one;
    for (int i = 0; i < P; i++) {
        size_t got = 0;
        while (got < sizeof one) {
            ssize_t r = read(fds[i], (char *)&one + got, sizeof one - got);
            if (r <= 0) {
                if (r < 0 && errno == EINTR) continue;
                break;
            }
            got += (size_t)r;
        }
        if (got != sizeof one) {
            fprintf(stderr, "loadgen: child %d gave no result\n", i);
            continue;
        }
        agg.ready += one.ready;
        agg.connect_fail += one.connect_fail;
        agg.errors += one.errors;
        agg.closed += one.closed;
        if (one.ramp_s > agg.ramp_s) agg.ramp_s = one.ramp_s;
        hmerge(&agg.conn, &one.conn);
    }
    R = agg;
    print_results("READY ");
    /* hold until told to stop */
    uint64_t end = now_ns() + (uint64_t)(O.hold * 1e9);
    while (!stop_flag && now_ns() < end) usleep(100000);
    for (int i = 0; i < P; i++) kill(pids[i], SIGTERM);
    for (int i = 0; i < P; i++) waitpid(pids[i], NULL, 0);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --proto chat|sio|nchan|bare --mode fanout|rate|idle|sends\n"
            "  --host H --port P --path WSPATH [--pub-path PREFIX] --room R [--rooms M]\n"
            "  --subs N --pubs K [--window W | --windows W1,W2,..] [--rate MSGS] [--depth D]\n"
            "  [--warmup S] [--duration S] [--drain S] [--hold S] [--conc C]\n"
            "  [--src-ips M] [--src-base B] [--procs P] [--pad BYTES]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (OPT("--proto")) {
            if (!strcmp(v, "chat")) O.proto = P_CHAT;
            else if (!strcmp(v, "sio")) O.proto = P_SIO;
            else if (!strcmp(v, "nchan")) O.proto = P_NCHAN;
            else if (!strcmp(v, "bare")) O.proto = P_BARE;
            else usage();
        } else if (OPT("--mode")) {
            if (!strcmp(v, "fanout")) O.mode = M_FANOUT;
            else if (!strcmp(v, "rate")) O.mode = M_RATE;
            else if (!strcmp(v, "idle")) O.mode = M_IDLE;
            else if (!strcmp(v, "sends")) O.mode = M_SENDS;
            else usage();
        } else if (OPT("--host")) O.host = v;
        else if (OPT("--port")) O.port = atoi(v);
        else if (OPT("--path")) O.path = v;
        else if (OPT("--pub-path")) O.pub_path = v;
        else if (OPT("--room")) O.room = v;
        else if (OPT("--rooms")) O.rooms = atoi(v);
        else if (OPT("--subs")) O.subs = atoi(v);
        else if (OPT("--pubs")) O.pubs = atoi(v);
        else if (OPT("--window")) O.window = atoi(v);
        else if (OPT("--windows")) O.windows = v;
        else if (OPT("--depth")) O.depth = atoi(v);
        else if (OPT("--rate")) O.rate = atof(v);
        else if (OPT("--warmup")) O.warmup = atof(v);
        else if (OPT("--duration")) O.duration = atof(v);
        else if (OPT("--drain")) O.drain = atof(v);
        else if (OPT("--hold")) O.hold = atof(v);
        else if (OPT("--conc")) O.conc = atoi(v);
        else if (OPT("--src-ips")) O.src_ips = atoi(v);
        else if (OPT("--src-base")) O.src_base = atoi(v);
        else if (OPT("--procs")) O.procs = atoi(v);
        else if (OPT("--pad")) O.text_pad = atoi(v);
        else if (OPT("--ramp-timeout")) O.ramp_timeout = atof(v);
        else usage();
#undef OPT
    }
    if (!O.path) {
        static const char *def[] = {"/chat/ws", "/socket.io/?EIO=4&transport=websocket", "/sub/", "/"};
        O.path = def[O.proto];
    }
    if (!O.room) {
        static char room[64];
        snprintf(room, sizeof room, "bench-%d-%lx", (int)getpid(), (unsigned long)time(NULL));
        O.room = room;
    }
    if (O.pubs < 1 || O.subs < 1 || O.src_ips < 1) usage();
    if (O.proto != P_NCHAN && O.pubs > O.subs && O.mode != M_SENDS) O.pubs = O.subs;
    if (O.mode == M_SENDS && O.proto != P_CHAT) die("--mode sends is for --proto chat");
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (O.mode == M_IDLE) {
        run_idle();
        return 0;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    run_traffic();
    return 0;
}
