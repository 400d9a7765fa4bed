/* lp_workers: --workers N. The parent opens the socket, forks N worker
 * processes that share it (each its own node, listener and writer), passes
 * SIGTERM on and restarts a worker that dies (at most 10 a minute). */
#define _GNU_SOURCE
#include "lp.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chat_log.h"
#include "chat_sys.h"

#define RESTARTS_PER_MINUTE 10

static bool supervisor;
static pid_t kids[64];

bool lp_is_supervisor(void)
{
    return supervisor;
}

static pid_t spawn(int i, const sigset_t *set, int (*run)(const sigset_t *))
{
    pid_t pid = fork();
    if (pid == 0) {
        supervisor = false;
        _exit(run(set));
    }
    if (pid < 0)
        log_error("cannot fork worker %d: %s", i, strerror(errno));
    else
        log_info("worker %d started (pid %d)", i, (int)pid);
    return pid;
}

static void stop_all(int n)
{
    int64_t deadline = chat_now_ms() + 8000;
    for (int i = 0; i < n; i++)
        if (kids[i] > 0)
            kill(kids[i], SIGTERM);
    for (int i = 0; i < n; i++) {
        while (kids[i] > 0) {
            pid_t r = waitpid(kids[i], NULL, WNOHANG);
            if (r == kids[i] || (r < 0 && errno == ECHILD))
                break;
            if (chat_now_ms() > deadline) {
                kill(kids[i], SIGKILL);
                waitpid(kids[i], NULL, 0);
                break;
            }
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
        kids[i] = 0;
    }
}

static void reap(int n, const sigset_t *set, int (*run)(const sigset_t *), int64_t *window,
                 int *restarts)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < n; i++) {
            if (kids[i] != pid)
                continue;
            log_warn("worker %d (pid %d) exited (status %d)", i, (int)pid, status);
            int64_t now = chat_now_ms();
            if (now - *window > 60000) {
                *window = now;
                *restarts = 0;
            }
            kids[i] = ++*restarts <= RESTARTS_PER_MINUTE ? spawn(i, set, run) : 0;
            if (kids[i] == 0)
                log_error("worker %d keeps dying; not restarting it", i);
        }
    }
}

int lp_supervise(int n, const sigset_t *set, int (*run)(const sigset_t *))
{
    sigset_t all = *set;
    int64_t window = chat_now_ms();
    int restarts = 0;

    if (n > (int)(sizeof(kids) / sizeof(kids[0])))
        n = (int)(sizeof(kids) / sizeof(kids[0]));
    supervisor = true;
    sigaddset(&all, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (int i = 0; i < n; i++)
        kids[i] = spawn(i, set, run);
    for (;;) {
        int sig;
        if (sigwait(&all, &sig) != 0)
            continue;
        if (sig == SIGCHLD) {
            reap(n, set, run, &window, &restarts);
            continue;
        }
        if (sig == SIGHUP)
            continue;
        log_info("stopping %d workers", n);
        stop_all(n);
        return 0;
    }
}
