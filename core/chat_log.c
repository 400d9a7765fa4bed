/* chat_log: owns the process's log destination. Each line is formatted
 * into a stack buffer and written with one write(2) so threads never
 * interleave. A log file keeps one private descriptor number for the life
 * of the process: reopening dup2()s the new file onto it, so a thread
 * logging during a SIGHUP reopen never writes to a closed descriptor. */
#define _POSIX_C_SOURCE 200809L

#include "chat_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static const char *log_prog = "chat";
static atomic_int log_level = CHAT_LOG_INFO;
static atomic_int log_fd = STDERR_FILENO;

static const char *const level_names[] = {
    [CHAT_LOG_ERROR] = "error",
    [CHAT_LOG_WARN] = "warn",
    [CHAT_LOG_INFO] = "info",
    [CHAT_LOG_DEBUG] = "debug",
};

void chat_log_init(const char *prog, enum chat_log_level level)
{
    if (prog != NULL)
        log_prog = prog;
    chat_log_set_level(level);
}

void chat_log_set_level(enum chat_log_level level)
{
    int l = (int)level;

    if (l < CHAT_LOG_ERROR)
        l = CHAT_LOG_ERROR;
    if (l > CHAT_LOG_DEBUG)
        l = CHAT_LOG_DEBUG;
    atomic_store(&log_level, l);
}

enum chat_log_level chat_log_get_level(void)
{
    return (enum chat_log_level)atomic_load(&log_level);
}

int chat_log_parse_level(const char *s, enum chat_log_level *out)
{
    int i;

    if (s == NULL)
        return -1;
    for (i = CHAT_LOG_ERROR; i <= CHAT_LOG_DEBUG; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum chat_log_level)i;
            return 0;
        }
    }
    return -1;
}

int chat_log_option(const char *prog, bool level, const char *arg, const char **path)
{
    enum chat_log_level l;

    if (!level) {
        *path = arg;
        return 0;
    }
    if (chat_log_parse_level(arg, &l) == 0) {
        chat_log_set_level(l);
        return 0;
    }
    fprintf(stderr, "%s: bad --log-level %s (error, warn, info, debug)\n", prog, arg);
    return -1;
}

int chat_log_open(const char *path)
{
    int cur = atomic_load(&log_fd);
    int fd;

    if (path == NULL) {
        /* Keep our private number (if any) but point it at stderr. */
        if (cur != STDERR_FILENO && dup2(STDERR_FILENO, cur) < 0)
            return -1;
        return 0;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (cur == STDERR_FILENO) {
        atomic_store(&log_fd, fd);
        return 0;
    }
    if (dup2(fd, cur) < 0) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    close(fd);
    return 0;
}

/* Writes "2026-11-28T07:50:00.123Z" into buf; returns its length. */
static size_t format_time(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || gmtime_r(&ts.tv_sec, &tm) == NULL)
        return (size_t)snprintf(buf, size, "-");
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, size - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
    return n;
}

/* Control characters would split or forge lines: newlines become spaces,
 * the rest '?'. */
static void sanitize(char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\n' || c == '\r')
            s[i] = ' ';
        else if ((c < 0x20 && c != '\t') || c == 0x7f)
            s[i] = '?';
    }
}

void chat_log(enum chat_log_level level, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    size_t n, room;
    va_list ap;
    int saved = errno, r;

    if ((int)level > atomic_load(&log_level))
        return;
    if ((int)level < CHAT_LOG_ERROR || (int)level > CHAT_LOG_DEBUG)
        level = CHAT_LOG_ERROR;
    n = format_time(line, sizeof(line));
    r = snprintf(line + n, sizeof(line) - n, " %s[%ld] %s: ", log_prog, (long)getpid(),
                 level_names[level]);
    if (r > 0)
        n += (size_t)r;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    room = sizeof(line) - 1 - n; /* keep one byte for the newline */
    va_start(ap, fmt);
    r = vsnprintf(line + n, room, fmt, ap);
    va_end(ap);
    if (r > 0) {
        size_t m = (size_t)r < room ? (size_t)r : room - 1;

        sanitize(line + n, m);
        n += m;
    }
    line[n++] = '\n';
    while (write(atomic_load(&log_fd), line, n) < 0 && errno == EINTR)
        ;
    errno = saved;
}
