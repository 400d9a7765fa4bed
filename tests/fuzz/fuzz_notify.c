/* libFuzzer target for chat_notify: any bytes as a NOTIFY payload. Each
 * line the parser accepts must have a valid room key (a namespace prefix
 * "ns\t" ends up in it as "ns:", and raw is the object after it), a seq
 * where its op has one, a head that renders back to the object's own first
 * bytes, and no
 * accepted proper prefix (a truncated line is never whole); a hint or
 * typing line (fully specified) must also be JSON that jansson reads to the
 * same fields. Any violation aborts. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_notify.h"
#include "chat_ns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *op_name(enum chat_line_op op)
{
    switch (op) {
    case CHAT_LINE_MSG:
        return "msg";
    case CHAT_LINE_HINT:
        return "hint";
    case CHAT_LINE_PRESENCE:
        return "presence";
    case CHAT_LINE_TYPING:
        return "typing";
    }
    abort();
}

/* pre: the bytes of the line before its object (a namespace and a tab). */
static void check_json(const struct chat_line *l, size_t pre)
{
    json_t *o = json_loadb(l->raw, l->len, 0, NULL);

    if (!o || strcmp(json_string_value(json_object_get(o, "op")), op_name(l->op)) != 0 ||
        strcmp(json_string_value(json_object_get(o, "room")),
               pre > 0 ? chat_room_local(l->room) : l->room) != 0)
        abort();
    if (l->op == CHAT_LINE_HINT && json_integer_value(json_object_get(o, "seq")) != l->seq)
        abort();
    if (l->op == CHAT_LINE_TYPING &&
        strcmp(json_string_value(json_object_get(o, "user")), l->user) != 0)
        abort();
    json_decref(o);
}

static void check_line(const char *line, size_t n)
{
    struct chat_line l;
    char head[160];

    if (chat_line_parse(line, n, &l) < 0)
        return;
    size_t pre = l.raw > line ? (size_t)(l.raw - line) : 0;
    if (l.raw < line || l.raw + l.len != line + n || !chat_valid_room_key(l.room, strlen(l.room)))
        abort();
    /* a prefix is the key's namespace and a tab; without one the room is
     * plain unless the line is a hint */
    if (pre > 0 && (line[pre - 1] != '\t' || chat_room_ns_len(l.room) != pre - 1 ||
                    memcmp(line, l.room, pre - 1) != 0))
        abort();
    if (pre == 0 && l.op != CHAT_LINE_HINT && chat_room_ns_len(l.room) != 0)
        abort();
    bool has_seq = l.op == CHAT_LINE_MSG || l.op == CHAT_LINE_HINT;
    if (has_seq != (l.seq > 0))
        abort();
    const char *room = pre > 0 ? chat_room_local(l.room) : l.room;
    int hl = has_seq ? snprintf(head, sizeof(head), "{\"op\":\"%s\",\"room\":\"%s\",\"seq\":%lld",
                                op_name(l.op), room, (long long)l.seq)
                     : snprintf(head, sizeof(head), "{\"op\":\"%s\",\"room\":\"%s\"", op_name(l.op),
                                room);
    if ((size_t)hl > l.len || memcmp(head, l.raw, (size_t)hl) != 0)
        abort();
    for (size_t cut = n > 64 ? n - 64 : 0; cut < n; cut++) {
        struct chat_line p;
        if (chat_line_parse(line, cut, &p) == 0)
            abort();
    }
    if (l.op == CHAT_LINE_HINT || l.op == CHAT_LINE_TYPING)
        check_json(&l, pre);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    const char *p, *end, *line;
    size_t n, total = 0;

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    p = copy;
    end = copy + size;
    while (chat_next_line(&p, end, &line, &n)) {
        if (line < copy || line + n > end || memchr(line, '\n', n))
            abort();
        total += n + 1;
        check_line(line, n);
    }
    if (size && total != size + (copy[size - 1] != '\n'))
        abort();
    free(copy);
    return 0;
}
