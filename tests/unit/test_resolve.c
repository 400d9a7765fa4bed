/* Unit tests for pg_resolve, chat-ws's resolver of host names off the
 * event loop: which conninfos need it (names do; unix sockets, literal
 * addresses and a given hostaddr do not), and the conninfo handed to
 * libpq (each name expanded to its addresses as hostaddr, ports kept
 * alongside, other keywords untouched, a name that does not resolve left
 * out, none left an error), with a scripted lookup instead of DNS; then
 * one real resolution through the thread and the loop ("localhost"). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "ev.h"
#include "pg_resolve.h"

static char *value(const char *conninfo, const char *key)
{
    PQconninfoOption *o = PQconninfoParse(conninfo, NULL), *p;
    char *v = NULL;

    assert_non_null(o);
    for (p = o; p->keyword; p++)
        if (strcmp(p->keyword, key) == 0 && p->val)
            v = strdup(p->val);
    PQconninfoFree(o);
    return v;
}

static void assert_value(const char *conninfo, const char *key, const char *want)
{
    char *v = value(conninfo, key);

    if (!want) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

/* db1: two addresses; db2: one; anything else: does not resolve */
static int scripted(const char *name, char out[][64], int max, char *err, size_t errlen)
{
    (void)max;
    if (strcmp(name, "db1") == 0) {
        strcpy(out[0], "10.0.0.1");
        strcpy(out[1], "fd00::1");
        return 2;
    }
    if (strcmp(name, "db2") == 0) {
        strcpy(out[0], "10.0.0.2");
        return 1;
    }
    snprintf(err, errlen, "cannot resolve %s", name);
    return -1;
}

static void test_needed(void **state)
{
    (void)state;
    assert_true(pg_resolve_needed("host=db1 dbname=chat"));
    assert_true(pg_resolve_needed("host=/run/postgresql,db2"));
    assert_true(pg_resolve_needed("postgresql://chat@db1/chat"));
    assert_false(pg_resolve_needed(""));
    assert_false(pg_resolve_needed("host=/run/postgresql dbname=chat"));
    assert_false(pg_resolve_needed("host=127.0.0.1,::1 dbname=chat"));
    assert_false(pg_resolve_needed("host=db1 hostaddr=10.0.0.9"));
    assert_false(pg_resolve_needed("host='unterminated"));
}

static void test_rewrite(void **state)
{
    char err[200];
    char *a = pg_resolve_rewrite("host=db1,/run/pg,db2 port=5432,5433,5434 dbname=chat "
                                 "target_session_attrs=read-write password='x y'",
                                 scripted, err, sizeof(err));

    (void)state;
    assert_non_null(a);
    assert_value(a, "host", "db1,db1,/run/pg,db2");
    assert_value(a, "hostaddr", "10.0.0.1,fd00::1,,10.0.0.2");
    assert_value(a, "port", "5432,5432,5433,5434");
    assert_value(a, "dbname", "chat");
    assert_value(a, "target_session_attrs", "read-write");
    assert_value(a, "password", "x y");
    free(a);
    /* one port for all, an unresolvable name left out */
    a = pg_resolve_rewrite("host=nowhere,db2 port=6000", scripted, err, sizeof(err));
    assert_non_null(a);
    assert_value(a, "host", "db2");
    assert_value(a, "hostaddr", "10.0.0.2");
    assert_value(a, "port", "6000");
    free(a);
    a = pg_resolve_rewrite("host=db2", scripted, err, sizeof(err));
    assert_value(a, "port", NULL);
    free(a);
    /* nothing left: libpq would fail too; say which name */
    assert_null(pg_resolve_rewrite("host=nowhere", scripted, err, sizeof(err)));
    assert_non_null(strstr(err, "nowhere"));
}

static char *got;
static char got_err[200];

static void on_resolved(void *data, char *conninfo, const char *err)
{
    got = conninfo;
    snprintf(got_err, sizeof(got_err), "%s", err ? err : "");
    ev_loop_stop(data);
}

/* Through the thread and the loop, with the system's resolver. */
static void test_thread(void **state)
{
    struct ev_loop *loop = ev_loop_new();
    struct pg_resolve r = {.io = {.fd = -1}};
    char err[200];

    (void)state;
    assert_non_null(loop);
    assert_int_equal(pg_resolve_start(&r, loop, "host=localhost dbname=chat", on_resolved, loop,
                                      err, sizeof(err)),
                     0);
    ev_loop_run(loop);
    assert_non_null(got);
    assert_value(got, "dbname", "chat");
    char *addr = value(got, "hostaddr");
    assert_non_null(addr);
    assert_true(strstr(addr, "127.0.0.1") || strstr(addr, "::1"));
    free(addr);
    free(got);
    /* cancelled: never called back, nothing leaks */
    got = NULL;
    assert_int_equal(
        pg_resolve_start(&r, loop, "host=localhost", on_resolved, loop, err, sizeof(err)), 0);
    pg_resolve_cancel(&r);
    assert_null(got);
    ev_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_needed),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
