/* Unit tests for chat_metrics: a block counts what it is told, the blocks
 * of a directory are summed per daemon (a dead pid's file skipped), and the
 * exposition prints the sums in the text format 0.0.4 (HELP and TYPE before
 * each family, cumulative histogram buckets ending at +Inf, _sum, _count). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "chat_metrics.h"

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static void test_format(void **state)
{
    struct chat_metrics_sum s[CHAT_MD_NUM] = {{0}};
    size_t len;

    (void)state;
    s[CHAT_MD_WS].procs = 2;
    s[CHAT_MD_WS].v[CHAT_M_CONNECTIONS] = 7;
    s[CHAT_MD_FCGI].v[CHAT_M_MESSAGES_IN] = 12345678901LL;
    s[CHAT_MD_FCGI].refused[CHAT_E_RATE_LIMITED] = 3;
    s[CHAT_MD_WS].db_bucket[0] = 1;                     /* <= 0.5 ms */
    s[CHAT_MD_WS].db_bucket[3] = 2;                     /* <= 5 ms */
    s[CHAT_MD_WS].db_bucket[CHAT_METRICS_NBUCKETS] = 1; /* > 5 s */
    s[CHAT_MD_WS].db_sum_us = 7250000;
    s[CHAT_MD_WS].db_count = 4;
    char *t = chat_metrics_format(s, &len);
    assert_non_null(t);
    assert_int_equal(strlen(t), len);
    assert_true(t[len - 1] == '\n');
    assert_true(has_line(t, "# TYPE chat_connections gauge"));
    assert_true(has_line(t, "chat_connections{daemon=\"ws\"} 7"));
    assert_true(has_line(t, "chat_connections{daemon=\"fcgi\"} 0"));
    assert_true(has_line(t, "chat_processes{daemon=\"ws\"} 2"));
    assert_true(has_line(t, "# TYPE chat_messages_in_total counter"));
    assert_true(has_line(t, "chat_messages_in_total{daemon=\"fcgi\"} 12345678901"));
    assert_true(has_line(t, "chat_refused_total{daemon=\"fcgi\",reason=\"rate_limited\"} 3"));
    assert_true(has_line(t, "chat_refused_total{daemon=\"ws\",reason=\"banned\"} 0"));
    assert_null(strstr(t, "reason=\"ok\""));
    assert_true(has_line(t, "# TYPE chat_db_query_seconds histogram"));
    assert_true(has_line(t, "chat_db_query_seconds_bucket{daemon=\"ws\",le=\"0.0005\"} 1"));
    assert_true(has_line(t, "chat_db_query_seconds_bucket{daemon=\"ws\",le=\"0.0025\"} 1"));
    assert_true(has_line(t, "chat_db_query_seconds_bucket{daemon=\"ws\",le=\"0.005\"} 3"));
    assert_true(has_line(t, "chat_db_query_seconds_bucket{daemon=\"ws\",le=\"5\"} 3"));
    assert_true(has_line(t, "chat_db_query_seconds_bucket{daemon=\"ws\",le=\"+Inf\"} 4"));
    assert_true(has_line(t, "chat_db_query_seconds_sum{daemon=\"ws\"} 7.250000"));
    assert_true(has_line(t, "chat_db_query_seconds_count{daemon=\"ws\"} 4"));
    /* every family announced once, before its samples */
    const char *help = strstr(t, "# HELP chat_joins_total ");
    assert_non_null(help);
    assert_true(help < strstr(t, "chat_joins_total{"));
    assert_null(strstr(help + 1, "# HELP chat_joins_total "));
    free(t);
}

static void count_block(const struct chat_metrics_block *b, int64_t rss, void *arg)
{
    chat_metrics_sum_add(arg, b, rss);
}

static void test_files(void **state)
{
    char dir[] = "/tmp/chat-metrics-XXXXXX", stale[600];
    struct chat_metrics_sum s[CHAT_MD_NUM] = {{0}};

    (void)state;
    assert_non_null(mkdtemp(dir));
    /* a dead process's file (pid 2^22+1 is above any pid_max default) */
    snprintf(stale, sizeof(stale), "%s/ws-4194305", dir);
    FILE *f = fopen(stale, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(chat_metrics_open(dir, "fcgi"), 0);
    assert_int_equal(access(stale, F_OK), -1); /* removed at open */
    chat_metric_inc(CHAT_M_JOINS);
    chat_metric_add(CHAT_M_JOINS, 2);
    chat_metric_set(CHAT_M_PARKED, 5);
    chat_metric_set(CHAT_M_PARKED, 4);
    chat_metric_refused(CHAT_E_FORBIDDEN);
    chat_metric_refused(CHAT_E_NERR); /* out of range: ignored */
    chat_metric_db_us(3000);
    assert_int_equal(chat_metrics_each(dir, count_block, s), 1);
    assert_int_equal(s[CHAT_MD_FCGI].procs, 1);
    assert_true(s[CHAT_MD_FCGI].rss_bytes > 0);
    assert_int_equal(s[CHAT_MD_FCGI].v[CHAT_M_JOINS], 3);
    assert_int_equal(s[CHAT_MD_FCGI].v[CHAT_M_PARKED], 4);
    assert_int_equal(s[CHAT_MD_FCGI].refused[CHAT_E_FORBIDDEN], 1);
    assert_int_equal(s[CHAT_MD_FCGI].db_bucket[3], 1);
    assert_int_equal(s[CHAT_MD_FCGI].db_count, 1);
    assert_int_equal(s[CHAT_MD_WS].procs, 0);
    chat_metrics_close();
    assert_int_equal(chat_metrics_each(dir, count_block, s), 0); /* removed at close */
    chat_metric_inc(CHAT_M_JOINS); /* after close: memory only, no crash */
    assert_int_equal(rmdir(dir), 0);
}

static void test_default_dir(void **state)
{
    char out[64];

    (void)state;
    chat_metrics_default_dir("unix:/run/chat/ws.sock", out, sizeof(out));
    assert_string_equal(out, "/run/chat/metrics");
    chat_metrics_default_dir("/var/x/run/fcgi.sock", out, sizeof(out));
    assert_string_equal(out, "/var/x/run/metrics");
    chat_metrics_default_dir("127.0.0.1:9000", out, sizeof(out));
    assert_string_equal(out, CHAT_METRICS_DIR_DEFAULT);
    chat_metrics_default_dir(NULL, out, sizeof(out));
    assert_string_equal(out, CHAT_METRICS_DIR_DEFAULT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_default_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
