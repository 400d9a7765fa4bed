/* Unit tests for what both daemons send PostgreSQL and read back
 * (chat_sql, chat_members, the long-poll envelope of chat_proto): array
 * literals with quoting and NULL cids, chat_post's answer matched to its
 * sends by idx (a missing or shuffled row is "not stored"), the member
 * list with the asker added, sorted and capped, the poll answer, and the
 * conninfo both connect with (the admin's keywords kept, the deadlines
 * added where missing). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat_db.h"
#include "chat_members.h"
#include "chat_proto.h"
#include "chat_sql.h"

static void test_post_args(void **state)
{
    struct chat_post_args a = {0};
    const char *p[4];

    (void)state;
    assert_int_equal(chat_post_args_add(&a, "lobby", "~bob", "say \"hi\" \\o/", 12, "c1", 2), 0);
    assert_int_equal(chat_post_args_add(&a, "dev", "alice", "x", 1, NULL, 0), 0);
    assert_int_equal(chat_post_args_end(&a, p), 0);
    assert_int_equal(a.n, 2);
    assert_string_equal(p[0], "{\"lobby\",\"dev\"}");
    assert_string_equal(p[1], "{\"~bob\",\"alice\"}");
    assert_string_equal(p[2], "{\"say \\\"hi\\\" \\\\o/\",\"x\"}");
    assert_string_equal(p[3], "{\"c1\",NULL}");
    chat_post_args_free(&a);

    struct chat_post_args none = {0};
    assert_int_equal(chat_post_args_end(&none, p), 0);
    assert_string_equal(p[0], "{}");
    chat_post_args_free(&none);
}

static PGresult *post_result(const char *rows[][4], int n)
{
    PGresAttDesc att[4] = {{0}};
    const char *names[4] = {"idx", "seq", "ts", "dup"};
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);

    for (int k = 0; k < 4; k++) {
        att[k].name = (char *)names[k];
        att[k].format = 0;
        att[k].typlen = -1;
        att[k].atttypmod = -1;
    }
    assert_non_null(res);
    assert_true(PQsetResultAttrs(res, 4, att));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            assert_true(PQsetvalue(res, i, k, (char *)rows[i][k], (int)strlen(rows[i][k])));
    return res;
}

static void test_post_answer(void **state)
{
    const char *rows[][4] = {
        {"1", "41", "2024-01-01T00:00:00.000Z", "f"},
        {"2", "7", "2024-01-01T00:00:00.001Z", "t"},
        {"4", "8", "2024-01-01T00:00:00.002Z", "f"}, /* row 3 is not send 3 */
    };
    PGresult *res = post_result(rows, 3);
    struct chat_post_ack a;

    (void)state;
    assert_int_equal(chat_post_answer(res, 0, &a), 0);
    assert_int_equal(a.seq, 41);
    assert_string_equal(a.ts, "2024-01-01T00:00:00.000Z");
    assert_false(a.dup);
    assert_int_equal(chat_post_answer(res, 1, &a), 0);
    assert_true(a.dup);
    assert_int_equal(chat_post_answer(res, 2, &a), -1);
    assert_int_equal(chat_post_answer(res, 3, &a), -1); /* no row at all */
    PQclear(res);
}

static PGresult *change_result(const char *row[5])
{
    PGresAttDesc att[5] = {{0}};
    const char *names[5] = {"seq", "ts", "dup", "err", "message"};
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);

    for (int k = 0; k < 5; k++) {
        att[k].name = (char *)names[k];
        att[k].typlen = -1;
        att[k].atttypmod = -1;
    }
    assert_non_null(res);
    assert_true(PQsetResultAttrs(res, 5, att));
    for (int k = 0; k < 5; k++)
        assert_true(PQsetvalue(res, 0, k, (char *)row[k], row[k] ? (int)strlen(row[k]) : -1));
    return res;
}

/* chat_change's answer: the ack, or its refusal as the client's error. */
static void test_change_answer(void **state)
{
    static const struct {
        const char *err;
        enum chat_err want;
    } refusals[] = {
        {"not_found", CHAT_E_NOT_FOUND},       {"forbidden", CHAT_E_FORBIDDEN},
        {"too_late", CHAT_E_TOO_LATE},         {"bad_request", CHAT_E_BAD_REQUEST},
        {"something_new", CHAT_E_BAD_REQUEST},
    };
    const char *ok[5] = {"15", "2024-01-01T00:00:00.000Z", "f", NULL, NULL};
    struct chat_post_ack a;
    const char *why;
    PGresult *res = change_result(ok);

    (void)state;
    assert_int_equal(chat_change_answer(res, &a, &why), CHAT_OK);
    assert_int_equal(a.seq, 15);
    assert_string_equal(a.ts, "2024-01-01T00:00:00.000Z");
    PQclear(res);
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        const char *row[5] = {NULL, NULL, "f", refusals[i].err, "why not"};
        res = change_result(row);
        assert_int_equal(chat_change_answer(res, &a, &why), refusals[i].want);
        assert_string_equal(why, "why not");
        PQclear(res);
    }
    assert_int_equal(chat_change_answer(NULL, &a, &why), CHAT_E_UNAVAILABLE);
    res = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
    assert_int_equal(chat_change_answer(res, &a, &why), CHAT_E_UNAVAILABLE);
    PQclear(res);
}

/* One answer to a failed batch: split when the data may be at fault,
 * bad_request for a lone send refused as data, else unavailable. */
static void test_post_failed(void **state)
{
    (void)state;
    assert_int_equal(chat_post_failed(5, true, "23514"), CHAT_POST_SPLIT);
    assert_int_equal(chat_post_failed(5, true, "22P02"), CHAT_POST_SPLIT);
    assert_int_equal(chat_post_failed(5, true, "40P01"), CHAT_POST_SPLIT);
    assert_int_equal(chat_post_failed(1, true, "23514"), CHAT_POST_REJECTED);
    assert_int_equal(chat_post_failed(1, true, "22001"), CHAT_POST_REJECTED);
    assert_int_equal(chat_post_failed(1, true, "40P01"), CHAT_POST_UNAVAILABLE);
    assert_int_equal(chat_post_failed(5, false, "23514"), CHAT_POST_UNAVAILABLE);
    assert_int_equal(chat_post_failed(5, true, NULL), CHAT_POST_UNAVAILABLE);
    assert_int_equal(chat_post_failed(5, true, "57P01"), CHAT_POST_UNAVAILABLE); /* shutdown */
    assert_int_equal(chat_post_failed(5, true, "08006"), CHAT_POST_UNAVAILABLE);
    assert_int_equal(chat_post_failed(5, true, "53300"), CHAT_POST_UNAVAILABLE);
}

static void test_presence_and_seen_args(void **state)
{
    struct chat_presence_args a = {0};
    struct chat_seen_args s = {0};
    const char *p[4], *q[2];

    (void)state;
    assert_int_equal(chat_presence_args_add(&a, "lobby", "~eve", true), 0);
    assert_int_equal(chat_presence_args_add(&a, "dev", "bob", false), 0);
    assert_int_equal(chat_presence_args_end(&a, "node-1", p), 0);
    assert_string_equal(p[0], "node-1");
    assert_string_equal(p[1], "{\"lobby\",\"dev\"}");
    assert_string_equal(p[2], "{\"~eve\",\"bob\"}");
    assert_string_equal(p[3], "{\"t\",\"f\"}");
    chat_presence_args_free(&a);

    assert_int_equal(chat_seen_args_add(&s, "bob", true), 0);
    assert_int_equal(chat_seen_args_add(&s, "~eve", false), 0);
    assert_int_equal(chat_seen_args_end(&s, q), 0);
    assert_string_equal(q[0], "{\"bob\",\"~eve\"}");
    assert_string_equal(q[1], "{\"t\",\"f\"}");
    chat_seen_args_free(&s);
}

static void test_members_self(void **state)
{
    const char **v;
    size_t n, count = 2;

    (void)state;
    assert_int_equal(chat_members_parse("[\"alice\",\"carol\"]", 17, "bob", &v, &n, &count), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0], "alice");
    assert_string_equal(v[1], "bob");
    assert_string_equal(v[2], "carol");
    assert_int_equal(count, 3);
    chat_members_free(v, n);

    count = 2; /* already listed: nothing added */
    assert_int_equal(chat_members_parse("[\"alice\",\"bob\"]", 15, "bob", &v, &n, &count), 0);
    assert_int_equal(n, 2);
    assert_int_equal(count, 2);
    chat_members_free(v, n);

    assert_int_equal(chat_members_parse("{}", 2, "bob", &v, &n, &count), -1);
    assert_int_equal(chat_members_parse("[", 1, "bob", &v, &n, &count), -1);
}

/* A full list: the asker shows where it sorts, the last name makes room;
 * past the end it is counted but not listed. */
static void test_members_capped(void **state)
{
    size_t cap = 64 + 12 * CHAT_MEMBERS_MAX, len = 0, n, count;
    char *json = malloc(cap);
    const char **v;

    (void)state;
    json[len++] = '[';
    for (int i = 0; i < CHAT_MEMBERS_MAX; i++)
        len += (size_t)snprintf(json + len, cap - len, "%s\"m%05d\"", i ? "," : "", i * 2);
    json[len++] = ']';

    count = 5000;
    assert_int_equal(chat_members_parse(json, len, "m00001", &v, &n, &count), 0);
    assert_int_equal(n, CHAT_MEMBERS_MAX);
    assert_int_equal(count, 5001);
    assert_string_equal(v[0], "m00000");
    assert_string_equal(v[1], "m00001");
    assert_string_equal(v[CHAT_MEMBERS_MAX - 1], "m01996"); /* m01998 made room */
    chat_members_free(v, n);

    count = 5000;
    assert_int_equal(chat_members_parse(json, len, "zed", &v, &n, &count), 0);
    assert_int_equal(n, CHAT_MEMBERS_MAX);
    assert_int_equal(count, 5001);
    assert_string_equal(v[CHAT_MEMBERS_MAX - 1], "m01998");
    chat_members_free(v, n);
    free(json);
}

/* This process's own members join the database's list: each name once,
 * sorted, counted once; capped like the database's. */
static void test_members_merge(void **state)
{
    const char *local[] = {"dave", "bob", "alice", "dave"};
    const char **v;
    size_t n, count = 2;

    (void)state;
    assert_int_equal(chat_members_parse("[\"bob\",\"carol\"]", 15, "erin", &v, &n, &count), 0);
    assert_int_equal(chat_members_merge(&v, &n, &count, local, 4), 0);
    assert_int_equal(n, 5);
    assert_int_equal(count, 5); /* 2 + erin + alice + dave */
    assert_string_equal(v[0], "alice");
    assert_string_equal(v[1], "bob");
    assert_string_equal(v[2], "carol");
    assert_string_equal(v[3], "dave");
    assert_string_equal(v[4], "erin");
    assert_int_equal(chat_members_merge(&v, &n, &count, local, 4), 0); /* nothing new */
    assert_int_equal(n, 5);
    assert_int_equal(count, 5);
    assert_int_equal(chat_members_merge(&v, &n, &count, NULL, 0), 0);
    assert_int_equal(n, 5);
    chat_members_free(v, n);

    /* a full list: counted, the list stays CHAT_MEMBERS_MAX long */
    size_t cap = 64 + 12 * CHAT_MEMBERS_MAX, len = 0;
    char *json = malloc(cap);
    json[len++] = '[';
    for (int i = 0; i < CHAT_MEMBERS_MAX; i++)
        len += (size_t)snprintf(json + len, cap - len, "%s\"m%05d\"", i ? "," : "", i * 2);
    json[len++] = ']';
    const char *more[] = {"a", "m00003", "zz"};
    count = 1000;
    assert_int_equal(chat_members_parse(json, len, NULL, &v, &n, &count), 0);
    assert_int_equal(chat_members_merge(&v, &n, &count, more, 3), 0);
    assert_int_equal(n, CHAT_MEMBERS_MAX);
    assert_int_equal(count, 1003);
    assert_string_equal(v[0], "a");
    assert_string_equal(v[3], "m00003");
    chat_members_free(v, n);
    free(json);
}

static void test_poll_envelope(void **state)
{
    const char *rooms[2] = {"lobby", "dev"};
    const int64_t cur[2] = {12, 0};
    size_t len;
    char *a = chat_encode_poll("{\"op\":\"x\"}", 10, rooms, cur, 2, NULL, &len);
    char *b = chat_encode_poll(NULL, 0, rooms, cur, 1, "{\"lobby\":{}}", &len);

    (void)state;
    assert_string_equal(a, "{\"events\":[{\"op\":\"x\"}],\"cursor\":\"lobby:12,dev:0\"}");
    assert_string_equal(b, "{\"events\":[],\"cursor\":\"lobby:12\",\"members\":{\"lobby\":{}}}");
    assert_int_equal(len, strlen(b));
    free(a);
    free(b);
}

/* The value of key in a conninfo, as libpq reads it (NULL: not set). */
static char *conninfo_value(const char *conninfo, const char *key)
{
    PQconninfoOption *o = PQconninfoParse(conninfo, NULL), *p;
    char *v = NULL;

    assert_non_null(o);
    for (p = o; p->keyword; p++) {
        if (strcmp(p->keyword, key) == 0 && p->val)
            v = strdup(p->val);
    }
    PQconninfoFree(o);
    return v;
}

static void assert_value(const char *conninfo, const char *key, const char *want)
{
    char *v = conninfo_value(conninfo, key);

    if (want == NULL) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static void test_conninfo_deadlines(void **state)
{
    char err[200];
    char *a = chat_db_conninfo_deadlines("", err, sizeof(err));
    char *b = chat_db_conninfo_deadlines(
        "host=db1,db2 dbname=chat password='it\\'s \\\\x' keepalives_idle=30 connect_timeout=9",
        err, sizeof(err));
    char *c = chat_db_conninfo_deadlines("postgresql://chat@db1:5433/chat?tcp_user_timeout=100",
                                         err, sizeof(err));

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    /* nothing given: every deadline, nothing else (the PG* environment
     * still fills in the rest at connect time) */
    assert_value(a, "connect_timeout", "3");
    assert_value(a, "keepalives", "1");
    assert_value(a, "keepalives_idle", "5");
    assert_value(a, "keepalives_interval", "2");
    assert_value(a, "keepalives_count", "2");
    assert_value(a, "tcp_user_timeout", "5000");
    assert_value(a, "host", NULL);
    assert_value(a, "dbname", NULL);
    /* the admin's values win; quoting survives the round trip */
    assert_value(b, "host", "db1,db2");
    assert_value(b, "password", "it's \\x");
    assert_value(b, "keepalives_idle", "30");
    assert_value(b, "connect_timeout", "9");
    assert_value(b, "keepalives_count", "2");
    /* a URI too */
    assert_value(c, "host", "db1");
    assert_value(c, "port", "5433");
    assert_value(c, "user", "chat");
    assert_value(c, "tcp_user_timeout", "100");
    assert_value(c, "keepalives", "1");
    free(a);
    free(b);
    free(c);
    assert_null(chat_db_conninfo_deadlines("host='unterminated", err, sizeof(err)));
    assert_non_null(strstr(err, "bad conninfo"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_args),     cmocka_unit_test(test_post_failed),
        cmocka_unit_test(test_post_answer),   cmocka_unit_test(test_presence_and_seen_args),
        cmocka_unit_test(test_members_self),  cmocka_unit_test(test_members_capped),
        cmocka_unit_test(test_members_merge), cmocka_unit_test(test_poll_envelope),
        cmocka_unit_test(test_change_answer), cmocka_unit_test(test_conninfo_deadlines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
