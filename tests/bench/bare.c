/* bare: the ceiling of `make bench`. A minimal epoll WebSocket broadcast
 * server with no nginx, no database, no JSON: every text frame a client
 * sends goes to every connected client (the sender too). Per round of the
 * event loop the frames received are appended to one buffer, framed once,
 * and that buffer is written to every connection with one send() each; a
 * connection that cannot take it all keeps the rest in its own queue.
 *
 *   bare --port 28200 [--procs P]   (P processes on SO_REUSEPORT; each
 *                                    broadcasts to its own connections)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct c {
    bool open, used;
    char *in;
    size_t ilen, icap;
    char *out;
    size_t olen, ocap;
    bool want_out;
};

static struct c *cs;
static int maxfd, ep;
static int *openfds, nopen;
static char *bc;
static size_t bclen, bccap;
static volatile sig_atomic_t stop;

static void onsig(int s) {
    (void)s;
    stop = 1;
}

static void app(char **b, size_t *l, size_t *cap, const void *d, size_t n) {
    if (*l + n > *cap) {
        size_t nc = *cap ? *cap * 2 : 4096;
        while (nc < *l + n) nc *= 2;
        *b = realloc(*b, nc);
        if (!*b) abort();
        *cap = nc;
    }
    memcpy(*b + *l, d, n);
    *l += n;
}

static void drop(int fd) {
    struct c *c = &cs[fd];
    if (!c->used) return;
    if (c->open) {
        for (int i = 0; i < nopen; i++)
            if (openfds[i] == fd) {
                openfds[i] = openfds[--nopen];
                break;
            }
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(c->in);
    free(c->out);
    memset(c, 0, sizeof *c);
}

static void want_out(int fd, bool on) {
    struct c *c = &cs[fd];
    if (c->want_out == on) return;
    c->want_out = on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void put(int fd, const char *d, size_t n) {
    struct c *c = &cs[fd];
    if (!c->olen) {
        ssize_t w = send(fd, d, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == (ssize_t)n) return;
        if (w < 0) {
            if (errno != EAGAIN) {
                drop(fd);
                return;
            }
            w = 0;
        }
        d += w;
        n -= (size_t)w;
    }
    if (c->olen + n > (64u << 20)) { /* hopelessly slow */
        drop(fd);
        return;
    }
    app(&c->out, &c->olen, &c->ocap, d, n);
    want_out(fd, true);
}

static void flush(int fd) {
    struct c *c = &cs[fd];
    while (c->olen) {
        ssize_t w = send(fd, c->out, c->olen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN) break;
            drop(fd);
            return;
        }
        memmove(c->out, c->out + w, c->olen - (size_t)w);
        c->olen -= (size_t)w;
    }
    if (!c->olen) {
        free(c->out);
        c->out = NULL;
        c->ocap = 0;
    }
    want_out(fd, c->olen > 0);
}

static void frame_hdr(char *h, size_t *hl, int op, size_t n) {
    h[0] = (char)(0x80 | op);
    if (n < 126) {
        h[1] = (char)n;
        *hl = 2;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (char)(n >> 8);
        h[3] = (char)n;
        *hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (char)((uint64_t)n >> (56 - 8 * i));
        *hl = 10;
    }
}

static bool handshake(int fd, struct c *c) {
    char *end = memmem(c->in, c->ilen, "\r\n\r\n", 4);
    if (!end) return c->ilen < 8192;
    *end = 0;
    char *k = strcasestr(c->in, "\r\nSec-WebSocket-Key:");
    if (!k) return false;
    k += 20;
    while (*k == ' ') k++;
    size_t kl = strcspn(k, "\r\n ");
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    struct sha1_ctx s;
    uint8_t dig[SHA1_DIGEST_SIZE];
    char acc[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1];
    sha1_init(&s);
    sha1_update(&s, kl, (const uint8_t *)k);
    sha1_update(&s, sizeof guid - 1, (const uint8_t *)guid);
    sha1_digest(&s, SHA1_DIGEST_SIZE, dig);
    base64_encode_raw((char *)acc, SHA1_DIGEST_SIZE, dig);
    acc[sizeof acc - 1] = 0;
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    size_t rest = c->ilen - (size_t)(end + 4 - c->in);
    memmove(c->in, end + 4, rest);
    c->ilen = rest;
    c->open = true;
    openfds[nopen++] = fd;
    put(fd, resp, (size_t)n);
    return true;
}

/* client frames: masked. Text/binary: append to the broadcast buffer. */
static bool frames(int fd, struct c *c) {
    size_t off = 0;
    while (c->ilen - off >= 6) {
        uint8_t *h = (uint8_t *)c->in + off;
        int op = h[0] & 15;
        uint64_t n = h[1] & 127;
        size_t hl = 2;
        if (n == 126) {
            if (c->ilen - off < 8) break;
            n = (uint64_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (n == 127) {
            if (c->ilen - off < 14) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = n << 8 | h[2 + i];
            hl = 10;
        }
        if (!(h[1] & 0x80)) return false;
        uint8_t *mask = h + hl;
        hl += 4;
        if (c->ilen - off < hl + n) break;
        uint8_t *p = h + hl;
        for (uint64_t i = 0; i < n; i++) p[i] ^= mask[i & 3];
        off += hl + n;
        if (op == 1 || op == 2) {
            char fh[10];
            size_t fl;
            frame_hdr(fh, &fl, op, n);
            app(&bc, &bclen, &bccap, fh, fl);
            app(&bc, &bclen, &bccap, p, n);
        } else if (op == 9) {
            char fh[10];
            size_t fl;
            frame_hdr(fh, &fl, 10, n);
            put(fd, fh, fl);
            if (cs[fd].used) put(fd, (char *)p, n);
        } else if (op == 8) {
            return false;
        }
        if (!cs[fd].used) return true;
    }
    memmove(c->in, c->in + off, c->ilen - off);
    c->ilen -= off;
    return true;
}

static void readable(int fd) {
    struct c *c = &cs[fd];
    char buf[65536];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0) {
            drop(fd);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN) break;
            drop(fd);
            return;
        }
        app(&c->in, &c->ilen, &c->icap, buf, (size_t)r);
        if ((size_t)r < sizeof buf) break;
    }
    if (!c->open && !handshake(fd, c)) {
        drop(fd);
        return;
    }
    if (c->open && c->ilen && !frames(fd, c)) {
        drop(fd);
        return;
    }
    if (cs[fd].used && c->ilen == 0 && c->in) { /* idle: keep nothing */
        free(c->in);
        c->in = NULL;
        c->icap = 0;
    }
}

static int serve(int lfd) {
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[1024];
    while (!stop) {
        int n = epoll_wait(ep, evs, 1024, 500);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break;
                    if (cfd >= maxfd) {
                        close(cfd);
                        continue;
                    }
                    int one = 1;
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    cs[cfd].used = true;
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &e);
                }
                continue;
            }
            if (!cs[fd].used) continue;
            if (evs[i].events & EPOLLOUT) flush(fd);
            if (cs[fd].used && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) readable(fd);
        }
        if (bclen) { /* one write per connection per round */
            for (int i = nopen - 1; i >= 0; i--) {
                if (i >= nopen) continue;
                put(openfds[i], bc, bclen);
            }
            bclen = 0;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    int port = 28200, procs = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--procs")) procs = atoi(argv[i + 1]);
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    maxfd = (int)rl.rlim_cur;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = onsig};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pid_t kids[64];
    int nk = 0;
    for (int p = 0; p < procs && p < 64; p++) {
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
            perror("bare: bind/listen");
            return 1;
        }
        if (procs == 1) {
            cs = calloc((size_t)maxfd, sizeof *cs);
            openfds = calloc((size_t)maxfd, sizeof *openfds);
            return serve(lfd);
        }
        pid_t pid = fork();
        if (pid == 0) {
            cs = calloc((size_t)maxfd, sizeof *cs);
            openfds = calloc((size_t)maxfd, sizeof *openfds);
            _exit(serve(lfd));
        }
        close(lfd);
        kids[nk++] = pid;
    }
    while (!stop) pause();
    for (int i = 0; i < nk; i++) kill(kids[i], SIGTERM);
    for (int i = 0; i < nk; i++) waitpid(kids[i], NULL, 0);
    return 0;
}
