/* ev: epoll loop with a timer heap and a before-sleep hook (see ev.h). */
#define _GNU_SOURCE
#include "ev.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "chat_sys.h"

#define EV_BATCH 256

struct ev_loop {
    int epfd;
    bool stop;
    int64_t now;
    ev_hook_cb *before_sleep;
    void *before_sleep_data;
    struct ev_timer **heap;
    size_t nheap, capheap;
};

struct ev_loop *ev_loop_new(void)
{
    struct ev_loop *loop = calloc(1, sizeof(*loop));

    if (!loop)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        free(loop);
        return NULL;
    }
    loop->now = chat_now_ms();
    return loop;
}

void ev_loop_free(struct ev_loop *loop)
{
    if (!loop)
        return;
    close(loop->epfd);
    free(loop->heap);
    free(loop);
}

void ev_loop_stop(struct ev_loop *loop)
{
    loop->stop = true;
}

bool ev_loop_stopping(const struct ev_loop *loop)
{
    return loop->stop;
}

int64_t ev_now(const struct ev_loop *loop)
{
    return loop->now;
}

void ev_set_before_sleep(struct ev_loop *loop, ev_hook_cb *cb, void *data)
{
    loop->before_sleep = cb;
    loop->before_sleep_data = data;
}

int ev_io_set(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    int op;

    if (events == io->events)
        return 0;
    if (events == 0)
        op = EPOLL_CTL_DEL;
    else if (io->events == 0)
        op = EPOLL_CTL_ADD;
    else
        op = EPOLL_CTL_MOD;
    if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0) {
        /* the kernel forgets a registration when the fd is closed: a DEL
         * of a forgotten one is done, a MOD of one is an ADD */
        if (op == EPOLL_CTL_DEL && (errno == EBADF || errno == ENOENT))
            goto done;
        if (op != EPOLL_CTL_MOD || errno != ENOENT ||
            epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0) {
            if (op == EPOLL_CTL_DEL)
                io->events = 0;
            return -1;
        }
    }
done:
    io->events = events;
    return 0;
}

/* ---- timer heap: heap[i]->slot == i + 1 ---- */

static void heap_place(struct ev_loop *loop, size_t i, struct ev_timer *t)
{
    loop->heap[i] = t;
    t->slot = i + 1;
}

static void heap_up(struct ev_loop *loop, size_t i)
{
    struct ev_timer *t = loop->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->when <= t->when)
            break;
        heap_place(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_place(loop, i, t);
}

static void heap_down(struct ev_loop *loop, size_t i)
{
    struct ev_timer *t = loop->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= loop->nheap)
            break;
        if (c + 1 < loop->nheap && loop->heap[c + 1]->when < loop->heap[c]->when)
            c++;
        if (loop->heap[c]->when >= t->when)
            break;
        heap_place(loop, i, loop->heap[c]);
        i = c;
    }
    heap_place(loop, i, t);
}

void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t)
{
    if (!t->slot)
        return;
    size_t i = t->slot - 1;
    struct ev_timer *last = loop->heap[--loop->nheap];
    t->slot = 0;
    if (i == loop->nheap)
        return;
    heap_place(loop, i, last);
    heap_down(loop, i);
    heap_up(loop, last->slot - 1);
}

int ev_timer_start(struct ev_loop *loop, struct ev_timer *t, int64_t after_ms)
{
    ev_timer_stop(loop, t);
    if (loop->nheap == loop->capheap) {
        size_t cap = loop->capheap ? loop->capheap * 2 : 64;
        struct ev_timer **h = realloc(loop->heap, cap * sizeof(*h));
        if (!h)
            return -1;
        loop->heap = h;
        loop->capheap = cap;
    }
    t->when = loop->now + after_ms;
    loop->heap[loop->nheap++] = t;
    heap_up(loop, loop->nheap - 1);
    return 0;
}

static void run_timers(struct ev_loop *loop)
{
    while (loop->nheap > 0 && loop->heap[0]->when <= loop->now) {
        struct ev_timer *t = loop->heap[0];
        ev_timer_stop(loop, t);
        t->cb(loop, t);
    }
}

int ev_loop_run(struct ev_loop *loop)
{
    struct epoll_event evs[EV_BATCH];

    while (!loop->stop) {
        if (loop->before_sleep)
            loop->before_sleep(loop, loop->before_sleep_data);
        if (loop->stop)
            break;
        int timeout = -1;
        if (loop->nheap > 0) {
            int64_t d = loop->heap[0]->when - chat_now_ms();
            timeout = d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
        }
        int n = epoll_wait(loop->epfd, evs, EV_BATCH, timeout);
        int saved = errno;
        loop->now = chat_now_ms();
        if (n < 0) {
            if (saved == EINTR)
                continue;
            errno = saved;
            return -1;
        }
        for (int i = 0; i < n; i++) {
            struct ev_io *io = evs[i].data.ptr;
            /* an earlier callback of this batch may have unregistered it */
            if (io->events == 0)
                continue;
            io->cb(loop, io, evs[i].events);
        }
        run_timers(loop);
    }
    return 0;
}
