/* libFuzzer target for chat_proto: the first byte picks the op an HTTP
 * endpoint implies (or none, as on WebSocket) and the max text size, the
 * rest is the request body. Whatever the parser accepts must satisfy the
 * field rules, and every encoder fed from it must produce JSON that parses
 * back to the same values (ref included). Any violation aborts. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_ns.h"
#include "chat_proto.h"
#include "chat_valid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Parses an encoder's output; checks "op" and, when ref is set, "ref". */
static json_t *reparse(char *text, size_t len, const char *op, const json_t *ref)
{
    json_t *j;

    check(text != NULL && strlen(text) == len);
    j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    check(j != NULL && json_is_object(j));
    check(strcmp(json_string_value(json_object_get(j, "op")), op) == 0);
    if (ref != NULL)
        check(json_equal(json_object_get(j, "ref"), (json_t *)ref));
    else
        check(json_object_get(j, "ref") == NULL);
    return j;
}

static void copy(char *dst, size_t size, struct chat_str s)
{
    size_t n = s.p == NULL ? 0 : s.len;

    check(n < size);
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static void check_field(json_t *j, const char *key, const char *want)
{
    const char *got = json_string_value(json_object_get(j, key));

    check(got != NULL && strcmp(got, want) == 0);
}

static void encode_ok(const struct chat_request *r)
{
    static const char ts[] = "2026-11-28T06:14:16.123Z";
    char room[CHAT_ROOM_MAX + 1], cid[CHAT_CID_MAX + 1];
    char *name;
    const char *members[1];
    struct chat_str msg = {"{\"op\":\"msg\"}", 12};
    size_t len;
    json_t *j;

    copy(room, sizeof(room), r->room);
    copy(cid, sizeof(cid), r->cid);
    name = malloc(r->name.len + 1);
    check(name != NULL);
    copy(name, r->name.len + 1, r->name);
    members[0] = name;

    j = reparse(chat_encode_joined(room, r->since, members, 1, 1, r->ref, &len), len, "joined",
                r->ref);
    check_field(j, "room", room);
    check(strcmp(json_string_value(json_array_get(json_object_get(j, "members"), 0)), name) == 0);
    json_decref(j);
    j = reparse(chat_encode_ack(room, r->cid.p ? cid : NULL, r->before, ts, r->ref, &len), len,
                "ack", r->ref);
    check(json_integer_value(json_object_get(j, "seq")) == r->before);
    json_decref(j);
    json_decref(reparse(chat_encode_history(room, &msg, 1, r->ref, &len), len, "history", r->ref));
    json_decref(reparse(chat_encode_left(room, r->ref, &len), len, "left", r->ref));
    json_decref(
        reparse(chat_encode_members(room, members, 1, 1, r->ref, &len), len, "members", r->ref));
    json_decref(reparse(chat_encode_pong(r->ref, &len), len, "pong", r->ref));
    j = reparse(chat_encode_typing(room, name, &len), len, "typing", NULL);
    check_field(j, "user", name);
    json_decref(j);
    json_decref(
        reparse(chat_encode_presence(room, members, 1, NULL, 0, 3, &len), len, "presence", NULL));
    if (r->op == CHAT_OP_SEND) {
        /* Text round-trips through an error message's escaping. */
        char *text = malloc(r->text.len + 1);

        check(text != NULL);
        copy(text, r->text.len + 1, r->text);
        j = reparse(chat_encode_error(CHAT_E_FORBIDDEN, text, r->ref, &len), len, "error", r->ref);
        check_field(j, "message", text);
        json_decref(j);
        free(text);
    }
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_texts[] = {1, 16, 4096, 65536};
    struct chat_request r;
    const char *why = NULL;
    enum chat_op want;
    enum chat_err e;
    size_t max_text, len;
    json_t *j;

    if (size == 0)
        return 0;
    want = (enum chat_op)(data[0] % 8);
    max_text = max_texts[(data[0] >> 3) % 4];
    /* bit 6 of the first byte: a namespaced location (chat_ns.h) */
    const char *ns = (data[0] & 0x40) ? "site-b" : NULL;
    e = chat_request_parse(&r, (const char *)data + 1, size - 1, want, max_text, ns, &why);
    check(why != NULL);
    check((unsigned)e < CHAT_E_NERR);
    if (e == CHAT_OK) {
        bool ban_op = r.op == CHAT_OP_BAN || r.op == CHAT_OP_UNBAN || r.op == CHAT_OP_BANS;

        check(r.op != CHAT_OP_NONE && (want == CHAT_OP_NONE || r.op == want));
        /* the moderators' ops name no room (the oracle predates them: the
         * first campaign whose crashes make fuzz did not hide found it) */
        if (r.op != CHAT_OP_PING && !ban_op) {
            check(chat_valid_room(r.room.p, r.room.len));
            /* the key is the room in the location's namespace, and back */
            check(chat_valid_room_key(r.key, strlen(r.key)));
            check(strcmp(chat_room_local(r.key), r.room.p) == 0);
            check((chat_room_ns_len(r.key) > 0) == (ns != NULL));
        }
        if (r.op == CHAT_OP_BAN)
            check(r.user.p != NULL || r.addr.p != NULL);
        if (r.op == CHAT_OP_UNBAN)
            check(r.seq >= 1);
        if (r.op == CHAT_OP_SEND)
            check(chat_valid_text(r.text.p, r.text.len, max_text) == CHAT_TEXT_OK);
        if (r.cid.p != NULL)
            check(chat_valid_cid(r.cid.p, r.cid.len));
        check(r.since >= -1 && r.before >= 0 && r.limit >= 1 && r.limit <= CHAT_HISTORY_MAX);
        encode_ok(&r);
    } else {
        check(e == CHAT_E_BAD_JSON || e == CHAT_E_BAD_REQUEST || e == CHAT_E_UNKNOWN_OP ||
              e == CHAT_E_TOO_LARGE);
        if (e == CHAT_E_BAD_JSON)
            check(r.ref == NULL);
        j = reparse(chat_encode_error(e, why, r.ref, &len), len, "error", r.ref);
        check_field(j, "code", chat_err_name(e));
        json_decref(j);
    }
    chat_request_free(&r);
    return 0;
}
