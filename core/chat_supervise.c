/* chat_supervise: the one supervisor of --workers (see chat_supervise.h).
 * Signals are blocked in the parent and taken with sigwait, so nothing
 * runs in a handler and no death is missed between two waits. */
#define _GNU_SOURCE
#include "chat_supervise.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chat_log.h"
#include "chat_sys.h"

static pid_t spawn(int i, const sigset_t *mask, int (*run)(void *), void *arg)
{
    pid_t pid = fork();

    if (pid == 0) {
        sigprocmask(SIG_SETMASK, mask, NULL);
        _exit(run(arg));
    }
    if (pid < 0)
        log_error("cannot fork worker %d: %s", i, strerror(errno));
    else
        log_info("worker %d started (pid %d)", i, (int)pid);
    return pid;
}

static int forget(pid_t *kids, int n, pid_t pid)
{
    for (int i = 0; i < n; i++) {
        if (kids[i] == pid) {
            kids[i] = 0;
            return i;
        }
    }
    return -1;
}

static int alive(const pid_t *kids, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += kids[i] > 0;
    return k;
}

/* Sends sig to every worker and waits for them, SIGKILL past the grace. */
static void stop_all(pid_t *kids, int n, int sig)
{
    int64_t deadline = chat_now_ms() + CHAT_STOP_GRACE_MS;
    sigset_t chld;
    pid_t pid;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    log_info("stopping %d workers", alive(kids, n));
    for (int i = 0; i < n; i++)
        if (kids[i] > 0)
            kill(kids[i], sig);
    for (;;) {
        while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
            forget(kids, n, pid);
        if (alive(kids, n) == 0)
            return;
        int64_t left = deadline - chat_now_ms();
        if (left <= 0)
            break;
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000};
        sigtimedwait(&chld, NULL, &ts);
    }
    log_warn("workers still running after %d ms: killing them", CHAT_STOP_GRACE_MS);
    for (int i = 0; i < n; i++)
        if (kids[i] > 0)
            kill(kids[i], SIGKILL);
    while ((pid = waitpid(-1, NULL, 0)) > 0 || (pid < 0 && errno == EINTR))
        if (pid > 0)
            forget(kids, n, pid);
}

/* Restarts the workers that died. false: give up (a crash loop). */
static bool reap(pid_t *kids, int n, const sigset_t *mask, int (*run)(void *), void *arg,
                 int64_t *window, int *deaths)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i = forget(kids, n, pid);
        if (i < 0)
            continue;
        log_warn("worker %d (pid %d) exited (status %d)", i, (int)pid, status);
        int64_t now = chat_now_ms();
        if (now - *window > 60000) {
            *window = now;
            *deaths = 0;
        }
        if (++*deaths > CHAT_RESTARTS_PER_MINUTE) {
            log_error("workers died %d times within a minute: giving up", *deaths);
            return false;
        }
        kids[i] = spawn(i, mask, run, arg);
    }
    if (alive(kids, n) == 0) {
        log_error("no worker is running: giving up");
        return false;
    }
    return true;
}

int chat_supervise(int n, int (*run)(void *arg), void *arg)
{
    sigset_t waited, mask;
    pid_t *kids = calloc((size_t)(n > 0 ? n : 1), sizeof(*kids));
    int64_t window = chat_now_ms();
    int deaths = 0, sig, rc = 0;

    if (!kids)
        return 1;
    sigemptyset(&waited);
    sigaddset(&waited, SIGTERM);
    sigaddset(&waited, SIGINT);
    sigaddset(&waited, SIGHUP);
    sigaddset(&waited, SIGCHLD);
    sigprocmask(SIG_BLOCK, &waited, &mask);
    for (int i = 0; i < n; i++)
        kids[i] = spawn(i, &mask, run, arg);
    if (alive(kids, n) == 0) {
        log_error("no worker could be started");
        rc = 1;
    }
    while (rc == 0) {
        if (sigwait(&waited, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            for (int i = 0; i < n; i++)
                if (kids[i] > 0)
                    kill(kids[i], SIGHUP);
        } else if (sig == SIGCHLD) {
            if (!reap(kids, n, &mask, run, arg, &window, &deaths)) {
                stop_all(kids, n, SIGTERM);
                rc = 1;
                break;
            }
        } else {
            stop_all(kids, n, sig);
            break;
        }
    }
    free(kids);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    return rc;
}
