/* chat_sys: rlimits, clocks, memory readings, the end of option loops
 * (see chat_sys.h). */
#define _GNU_SOURCE
#include "chat_sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

long chat_sys_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    return (long)rl.rlim_cur;
}

int64_t chat_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long chat_sys_rss_kib(void)
{
    long size, rss;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f)
        return -1;
    int n = fscanf(f, "%ld %ld", &size, &rss);
    fclose(f);
    return n == 2 ? rss * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

void chat_sys_usage_exit(void (*usage)(FILE *), int help)
{
    usage(help ? stdout : stderr);
    exit(help ? 0 : 2);
}
