/* chat_log: leveled, one-line-per-event logging to stderr (or a file
 * reopened on SIGHUP). Each line is written with a single write(2), so
 * lines from several threads never interleave. Message text of chat
 * messages is never logged at info level or above: callers log ids. */
#ifndef CHAT_LOG_H
#define CHAT_LOG_H

#include <stdbool.h>

enum chat_log_level {
    CHAT_LOG_ERROR = 0,
    CHAT_LOG_WARN = 1,
    CHAT_LOG_INFO = 2,
    CHAT_LOG_DEBUG = 3,
};

/* prog: short name shown on every line ("chat-ws"); borrowed, must outlive
 * the process. Default level: info. */
void chat_log_init(const char *prog, enum chat_log_level level);
void chat_log_set_level(enum chat_log_level level);
enum chat_log_level chat_log_get_level(void);

/* "error", "warn", "info", "debug" -> 0 and *out; else -1. */
int chat_log_parse_level(const char *s, enum chat_log_level *out);
/* The logging options of both daemons, as they are parsed: --log-level L
 * (level true: applied at once) or --log FILE (level false: *path = arg,
 * opened by the caller once the options are read). 0, or -1 for a bad
 * level, said on stderr ("prog: bad --log-level x (error, warn, info,
 * debug)"). */
int chat_log_option(const char *prog, bool level, const char *arg, const char **path);

/* Send log lines to path (appending), or back to stderr when path is NULL.
 * Safe to call again on SIGHUP (from the main loop, not the handler):
 * the file is reopened so that logrotate can move it. 0 ok, -1 errno. */
int chat_log_open(const char *path);

/* Line format: "2026-11-28T07:50:00.123Z chat-ws[1234] info: text\n".
 * Lines longer than 2 KiB are truncated. */
void chat_log(enum chat_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) chat_log(CHAT_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) chat_log(CHAT_LOG_WARN, __VA_ARGS__)
#define log_info(...) chat_log(CHAT_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (chat_log_get_level() >= CHAT_LOG_DEBUG)                                                \
            chat_log(CHAT_LOG_DEBUG, __VA_ARGS__);                                                 \
    } while (0)

#endif
