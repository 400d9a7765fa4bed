/* chat_sys: process set-up both daemons share. */
#ifndef CHAT_SYS_H
#define CHAT_SYS_H

#include <stdint.h>
#include <stdio.h>

/* Raises the open-files soft limit to the hard limit; returns the new soft
 * limit (or the old one if it could not be raised). */
long chat_sys_raise_nofile(void);

/* Monotonic milliseconds. */
int64_t chat_now_ms(void);

/* Resident set size of this process in KiB, from /proc/self/statm; -1. */
long chat_sys_rss_kib(void);

/* The end of an option loop, the same in both daemons: --help prints the
 * usage to stdout and exits 0; an unknown option or a missing argument
 * prints it to stderr and exits 2. */
_Noreturn void chat_sys_usage_exit(void (*usage)(FILE *), int help);

#endif
