/* ev: the WebSocket daemon's event loop. epoll (level-triggered), a
 * millisecond clock cached per iteration, one-shot timers in a binary heap,
 * and a before-sleep hook where output is flushed and closing connections
 * are reaped (so nothing is freed while epoll events may still point to it).
 * Single-threaded: one loop per worker process. */
#ifndef EV_H
#define EV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct ev_io;
struct ev_timer;

typedef void ev_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events);
typedef void ev_timer_cb(struct ev_loop *loop, struct ev_timer *t);
typedef void ev_hook_cb(struct ev_loop *loop, void *data);

/* Embed in the owner; the loop keeps a pointer to it while registered. */
struct ev_io {
    int fd;
    uint32_t events; /* EPOLLIN | EPOLLOUT ... currently registered; 0 = not */
    ev_io_cb *cb;
    void *data;
};

struct ev_timer {
    int64_t when; /* ms, loop clock */
    size_t slot;  /* private: heap index + 1; 0 = not armed */
    ev_timer_cb *cb;
    void *data;
};

struct ev_loop *ev_loop_new(void);
void ev_loop_free(struct ev_loop *loop);

/* Runs until ev_loop_stop(); 0, or -1 if epoll_wait failed (not EINTR). */
int ev_loop_run(struct ev_loop *loop);
void ev_loop_stop(struct ev_loop *loop);
bool ev_loop_stopping(const struct ev_loop *loop);

/* The loop's clock: monotonic ms, read once per iteration. */
int64_t ev_now(const struct ev_loop *loop);

/* Called once per iteration, before epoll_wait. */
void ev_set_before_sleep(struct ev_loop *loop, ev_hook_cb *cb, void *data);

/* Registers, changes (events 0 = unregister) the fd's interest. 0 or -1. */
int ev_io_set(struct ev_loop *loop, struct ev_io *io, uint32_t events);

/* Arms (or re-arms) t to fire at ev_now() + after_ms. */
int ev_timer_start(struct ev_loop *loop, struct ev_timer *t, int64_t after_ms);
void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t);
static inline bool ev_timer_armed(const struct ev_timer *t)
{
    return t->slot != 0;
}

#endif
