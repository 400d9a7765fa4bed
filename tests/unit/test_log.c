/* Unit tests for chat_log: level names, filtering, the exact line format in
 * a file opened with chat_log_open(), one line per call whatever the text,
 * truncation, and reopening after logrotate moved the file. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "chat_log.h"

static char dir[64];
static char path[128];
static char rotated[128];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/chat-log-test.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/chat.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/chat.log.1", dir);
    chat_log_init("chat-test", CHAT_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    chat_log_open(NULL);
    unlink(path);
    unlink(rotated);
    rmdir(dir);
    return 0;
}

/* Reads the whole file into a static buffer; "" when it does not exist. */
static const char *slurp(const char *p)
{
    static char buf[16384];
    FILE *f = fopen(p, "r");
    size_t n = 0;

    buf[0] = '\0';
    if (f == NULL)
        return buf;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void truncate_log(void)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fclose(f);
}

static void test_parse_level(void **state)
{
    enum chat_log_level l = CHAT_LOG_INFO;

    (void)state;
    assert_int_equal(chat_log_parse_level("error", &l), 0);
    assert_int_equal(l, CHAT_LOG_ERROR);
    assert_int_equal(chat_log_parse_level("warn", &l), 0);
    assert_int_equal(l, CHAT_LOG_WARN);
    assert_int_equal(chat_log_parse_level("debug", &l), 0);
    assert_int_equal(l, CHAT_LOG_DEBUG);
    assert_int_equal(chat_log_parse_level("info", &l), 0);
    assert_int_equal(l, CHAT_LOG_INFO);
    assert_int_equal(chat_log_parse_level("warning", &l), -1);
    assert_int_equal(chat_log_parse_level("INFO", &l), -1);
    assert_int_equal(chat_log_parse_level("", &l), -1);
    assert_int_equal(chat_log_parse_level("info ", &l), -1);
    assert_int_equal(chat_log_parse_level(NULL, &l), -1);
    assert_int_equal(l, CHAT_LOG_INFO); /* untouched on error */

    chat_log_set_level(CHAT_LOG_DEBUG);
    assert_int_equal(chat_log_get_level(), CHAT_LOG_DEBUG);
    chat_log_set_level(CHAT_LOG_WARN);
    assert_int_equal(chat_log_get_level(), CHAT_LOG_WARN);
    chat_log_set_level(CHAT_LOG_INFO);
}

static void test_line_format(void **state)
{
    char pattern[256];
    regex_t re;
    const char *text;
    char *nl;

    (void)state;
    assert_int_equal(chat_log_open(path), 0);
    truncate_log();
    log_info("client %d joined %s", 12, "lobby");
    text = slurp(path);
    assert_int_equal(count_lines(text), 1);
    snprintf(pattern, sizeof(pattern),
             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
             "chat-test\\[%ld\\] info: client 12 joined lobby\n$",
             (long)getpid());
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    if (regexec(&re, text, 0, NULL, 0) != 0)
        fail_msg("line does not match: %s", text);
    regfree(&re);

    log_warn("w");
    log_error("e");
    text = slurp(path);
    assert_int_equal(count_lines(text), 3);
    nl = strchr(text, '\n');
    assert_non_null(nl);
    assert_non_null(strstr(nl, "] warn: w\n"));
    assert_non_null(strstr(nl, "] error: e\n"));
}

static void test_level_filter(void **state)
{
    (void)state;
    assert_int_equal(chat_log_open(path), 0);
    truncate_log();
    chat_log_set_level(CHAT_LOG_INFO);
    log_debug("hidden %d", 1);
    log_info("shown");
    chat_log_set_level(CHAT_LOG_ERROR);
    log_warn("hidden too");
    log_error("shown too");
    chat_log_set_level(CHAT_LOG_DEBUG);
    log_debug("now shown");
    chat_log_set_level(CHAT_LOG_INFO);
    assert_int_equal(count_lines(slurp(path)), 3);
    assert_null(strstr(slurp(path), "hidden"));
    assert_non_null(strstr(slurp(path), "] debug: now shown\n"));
}

static void test_one_line_per_call(void **state)
{
    char big[5000];
    const char *text;

    (void)state;
    assert_int_equal(chat_log_open(path), 0);
    truncate_log();
    log_info("multi\nline\r\ntext\x1b[31m");
    text = slurp(path);
    assert_int_equal(count_lines(text), 1);
    assert_non_null(strstr(text, "info: multi line  text?[31m\n"));

    truncate_log();
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_info("%s", big);
    text = slurp(path);
    assert_int_equal(count_lines(text), 1);
    assert_true(strlen(text) <= 2048);
    assert_true(strlen(text) > 2000);
    assert_int_equal(text[strlen(text) - 1], '\n');
    assert_int_equal(text[strlen(text) - 2], 'x');
}

static void test_errno_preserved(void **state)
{
    (void)state;
    assert_int_equal(chat_log_open(path), 0);
    errno = EAGAIN;
    log_info("errno must survive");
    assert_int_equal(errno, EAGAIN);
}

static void test_reopen(void **state)
{
    char bad[160];

    (void)state;
    assert_int_equal(chat_log_open(path), 0);
    truncate_log();
    log_info("before rotate");
    assert_int_equal(rename(path, rotated), 0);
    log_info("still old file");
    assert_int_equal(chat_log_open(path), 0);
    log_info("after reopen");
    assert_int_equal(count_lines(slurp(rotated)), 2);
    assert_non_null(strstr(slurp(rotated), "still old file"));
    assert_int_equal(count_lines(slurp(path)), 1);
    assert_non_null(strstr(slurp(path), "after reopen"));

    /* A failed open keeps the current destination. */
    snprintf(bad, sizeof(bad), "%s/no/such/dir.log", dir);
    errno = 0;
    assert_int_equal(chat_log_open(bad), -1);
    assert_int_equal(errno, ENOENT);
    log_info("kept");
    assert_int_equal(count_lines(slurp(path)), 2);

    /* Back to stderr: the file gets nothing more. */
    assert_int_equal(chat_log_open(NULL), 0);
    log_info("to stderr (expected in test output)");
    assert_int_equal(count_lines(slurp(path)), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_level),     cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_level_filter),    cmocka_unit_test(test_one_line_per_call),
        cmocka_unit_test(test_errno_preserved), cmocka_unit_test(test_reopen),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
