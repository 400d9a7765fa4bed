/* libFuzzer target for chat_notify: any bytes as a NOTIFY payload. Each
 * line the parser accepts must have a valid room, a seq where its op has
 * one, a head that renders back to the line's own first bytes, and no
 * accepted proper prefix (a truncated line is never whole); a hint or
 * typing line (fully specified) must also be JSON that jansson reads to the
 * same fields. Any violation aborts. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_notify.h"

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

static void check_json(const struct chat_line *l)
{
    json_t *o = json_loadb(l->raw, l->len, 0, NULL);

    if (!o || strcmp(json_string_value(json_object_get(o, "op")), op_name(l->op)) != 0 ||
        strcmp(json_string_value(json_object_get(o, "room")), l->room) != 0)
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
    if (l.raw != line || l.len != n || !chat_valid_room(l.room, strlen(l.room)))
        abort();
    bool has_seq = l.op == CHAT_LINE_MSG || l.op == CHAT_LINE_HINT;
    if (has_seq != (l.seq > 0))
        abort();
    int hl = has_seq ? snprintf(head, sizeof(head), "{\"op\":\"%s\",\"room\":\"%s\",\"seq\":%lld",
                                op_name(l.op), l.room, (long long)l.seq)
                     : snprintf(head, sizeof(head), "{\"op\":\"%s\",\"room\":\"%s\"", op_name(l.op),
                                l.room);
    if ((size_t)hl > n || memcmp(head, line, (size_t)hl) != 0)
        abort();
    for (size_t cut = n > 64 ? n - 64 : 0; cut < n; cut++) {
        struct chat_line p;
        if (chat_line_parse(line, cut, &p) == 0)
            abort();
    }
    if (l.op == CHAT_LINE_HINT || l.op == CHAT_LINE_TYPING)
        check_json(&l);
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
