/* chat_notify: the NOTIFY line parser both daemons use (see chat_notify.h).
 * The head is matched byte by byte against the one format SQL and
 * chat_proto render; the rest of the line is only checked to be one whole
 * object (strings closed, brackets balanced, nothing after the last "}"),
 * which is what tells a truncated line from a whole one. */
#include "chat_notify.h"

/* s[*i..) starts with lit: moves *i past it. */
static bool take(const char *s, size_t len, size_t *i, const char *lit)
{
    size_t n = strlen(lit);

    if (len - *i < n || memcmp(s + *i, lit, n) != 0)
        return false;
    *i += n;
    return true;
}

/* A JSON string body without escapes up to the next '"' (consumed), at
 * most max bytes, copied to out. Its length, or 0. */
static size_t take_plain(const char *s, size_t len, size_t *i, char *out, size_t max)
{
    const char *q = memchr(s + *i, '"', len - *i);
    size_t n = q ? (size_t)(q - (s + *i)) : 0;

    if (!q || n == 0 || n > max)
        return 0;
    memcpy(out, s + *i, n);
    out[n] = '\0';
    *i += n + 1;
    return n;
}

/* 1..INT64_MAX in decimal, no sign, no leading zero. */
static bool take_seq(const char *s, size_t len, size_t *i, int64_t *seq)
{
    int64_t v = 0;
    size_t start = *i;

    if (*i >= len || s[*i] < '1' || s[*i] > '9')
        return false;
    for (; *i < len && s[*i] >= '0' && s[*i] <= '9'; (*i)++) {
        int d = s[*i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *seq = v;
    return *i > start;
}

/* s[0..len) is one object: '{' first, its strings closed (no raw control
 * byte inside), brackets matched (nested at most 64 deep: ours nest 2),
 * the closing '}' last. */
static bool whole_object(const char *s, size_t len)
{
    uint64_t braces = 0; /* bit k: level k+1 opened with '{' (else '[') */
    size_t depth = 0;
    bool in_str = false;

    if (len < 2 || s[0] != '{')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (in_str) {
            if (c < 0x20)
                return false;
            if (c == '\\')
                i++; /* the escaped byte; a lone trailing "\" ends unclosed */
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (depth == 64)
                return false;
            braces = c == '{' ? braces | (UINT64_C(1) << depth) : braces & ~(UINT64_C(1) << depth);
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0 || ((braces >> (depth - 1)) & 1) != (c == '}'))
                return false;
            if (--depth == 0)
                return i == len - 1;
        }
    }
    return false;
}

static int parse_op(const char *s, size_t len, size_t *i, enum chat_line_op *op)
{
    static const struct {
        const char *lit;
        enum chat_line_op op;
    } ops[] = {
        {"msg\"", CHAT_LINE_MSG},
        {"hint\"", CHAT_LINE_HINT},
        {"presence\"", CHAT_LINE_PRESENCE},
        {"typing\"", CHAT_LINE_TYPING},
    };

    if (!take(s, len, i, "{\"op\":\""))
        return CHAT_LINE_BAD;
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        if (take(s, len, i, ops[k].lit)) {
            *op = ops[k].op;
            return 0;
        }
    }
    return CHAT_LINE_BAD;
}

static bool valid_sender(const char *u, size_t n)
{
    return u[0] == '~' ? chat_valid_user(u + 1, n - 1) : chat_valid_user(u, n);
}

/* "ns\t" before the object: the namespace of its room (chat_ns.h), copied
 * to out->room with its ':'. Moves *p and *len past it; false when the
 * prefix is there but not a namespace. */
static bool take_ns(const char **p, size_t *len, struct chat_line *out)
{
    size_t n = *len < CHAT_NS_MAX + 1 ? *len : CHAT_NS_MAX + 1;

    if (n > 0 && (*p)[0] == '{')
        return true;
    const char *tab = memchr(*p, '\t', n);
    if (!tab || !chat_valid_ns(*p, (size_t)(tab - *p)))
        return false;
    n = (size_t)(tab - *p);
    memcpy(out->room, *p, n);
    out->room[n] = ':';
    *len -= n + 1;
    *p = tab + 1;
    return true;
}

/* The room: a room in the prefix's namespace, or (hints only: never shown to
 * a client) a whole key, appended to out->room. */
static bool take_room(const char *p, size_t len, size_t *i, struct chat_line *out)
{
    size_t pre = strlen(out->room), n;

    if (!take(p, len, i, ",\"room\":\"") ||
        !(n = take_plain(p, len, i, out->room + pre, CHAT_ROOM_KEY_MAX - pre)))
        return false;
    if (out->op == CHAT_LINE_HINT && pre == 0)
        return chat_valid_room_key(out->room, n);
    return chat_valid_room(out->room + pre, n);
}

int chat_line_parse(const char *p, size_t len, struct chat_line *out)
{
    size_t i = 0, n;

    memset(out, 0, sizeof(*out));
    if (!take_ns(&p, &len, out) || !whole_object(p, len) || parse_op(p, len, &i, &out->op) < 0 ||
        !take_room(p, len, &i, out))
        return CHAT_LINE_BAD;
    switch (out->op) {
    case CHAT_LINE_MSG:
        if (!take(p, len, &i, ",\"seq\":") || !take_seq(p, len, &i, &out->seq) || p[i] != ',')
            return CHAT_LINE_BAD;
        break;
    case CHAT_LINE_HINT:
        if (!take(p, len, &i, ",\"seq\":") || !take_seq(p, len, &i, &out->seq) || i != len - 1)
            return CHAT_LINE_BAD;
        break;
    case CHAT_LINE_TYPING:
        if (!take(p, len, &i, ",\"user\":\"") ||
            !(n = take_plain(p, len, &i, out->user, CHAT_SENDER_MAX)) ||
            !valid_sender(out->user, n) || i != len - 1)
            return CHAT_LINE_BAD;
        break;
    case CHAT_LINE_PRESENCE:
        if (p[i] != ',')
            return CHAT_LINE_BAD;
        break;
    }
    out->raw = p;
    out->len = len;
    return 0;
}
