/* chat_sys: process set-up both daemons share. */
#ifndef CHAT_SYS_H
#define CHAT_SYS_H

#include <stdint.h>

/* Raises the open-files soft limit to the hard limit; returns the new soft
 * limit (or the old one if it could not be raised). */
long chat_sys_raise_nofile(void);

/* Monotonic milliseconds. */
int64_t chat_now_ms(void);

/* Resident set size of this process in KiB, from /proc/self/statm; -1. */
long chat_sys_rss_kib(void);

#endif
