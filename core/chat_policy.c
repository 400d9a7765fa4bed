/* chat_policy: parses the per-location policy nginx passes (X-Chat-*
 * headers, CHAT_* fastcgi params) into struct chat_policy and answers the
 * two questions the front doors ask: may this room be used, and who is
 * speaking. A bad value is reported with a reason, never guessed around. */
#include "chat_policy.h"

#include <string.h>

struct policy_name {
    const char *header; /* NULL: no header for this key */
    const char *param;
};

static const struct policy_name policy_names[CHAT_POLICY_NKEYS] = {
    [CHAT_POLICY_USER] = {"x-chat-user", "CHAT_USER"},
    [CHAT_POLICY_GUESTS] = {"x-chat-guests", "CHAT_GUESTS"},
    [CHAT_POLICY_ROOMS] = {"x-chat-rooms", "CHAT_ROOMS"},
    [CHAT_POLICY_READONLY] = {"x-chat-readonly", "CHAT_READONLY"},
    [CHAT_POLICY_MAX_TEXT] = {"x-chat-max-text", "CHAT_MAX_TEXT"},
    [CHAT_POLICY_POLL_TIMEOUT] = {NULL, "CHAT_POLL_TIMEOUT"},
    [CHAT_POLICY_ROLE] = {"x-chat-role", "CHAT_ROLE"},
    [CHAT_POLICY_EDIT_WINDOW] = {"x-chat-edit-window", "CHAT_EDIT_WINDOW"},
    [CHAT_POLICY_FIRST_ROOM] = {"x-chat-first-room", "CHAT_FIRST_ROOM"},
    [CHAT_POLICY_NAMESPACE] = {"x-chat-namespace", "CHAT_NAMESPACE"},
};

void chat_policy_init(struct chat_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->guests = true;
    p->readonly = false;
    p->max_text = CHAT_TEXT_DEFAULT;
    p->poll_timeout = CHAT_POLL_TIMEOUT_DEFAULT;
    p->moderator = false;
    p->edit_window = CHAT_EDIT_WINDOW_DEFAULT;
    p->rooms[0] = '*';
    p->rooms[1] = '\0';
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool name_eq_nocase(const char *name, size_t len, const char *want)
{
    size_t i;

    if (strlen(want) != len)
        return false;
    for (i = 0; i < len; i++) {
        if (ascii_lower(name[i]) != want[i])
            return false;
    }
    return true;
}

bool chat_policy_same(const struct chat_policy *a, const struct chat_policy *b)
{
    return strcmp(a->user, b->user) == 0 && a->guests == b->guests && a->readonly == b->readonly &&
           a->max_text == b->max_text && a->poll_timeout == b->poll_timeout &&
           a->moderator == b->moderator && a->edit_window == b->edit_window &&
           strcmp(a->rooms, b->rooms) == 0 && strcmp(a->first_room, b->first_room) == 0 &&
           strcmp(a->ns, b->ns) == 0;
}

int chat_policy_key_from_header(const char *name, size_t len)
{
    int k;

    if (name == NULL)
        return -1;
    for (k = 0; k < CHAT_POLICY_NKEYS; k++) {
        if (policy_names[k].header && name_eq_nocase(name, len, policy_names[k].header))
            return k;
    }
    return -1;
}

int chat_policy_key_from_param(const char *name, size_t len)
{
    int k;

    if (name == NULL)
        return -1;
    for (k = 0; k < CHAT_POLICY_NKEYS; k++) {
        if (strlen(policy_names[k].param) == len && memcmp(name, policy_names[k].param, len) == 0)
            return k;
    }
    return -1;
}

static int parse_on_off(const char *v, size_t len, bool *out)
{
    if (len == 2 && memcmp(v, "on", 2) == 0) {
        *out = true;
        return 0;
    }
    if (len == 3 && memcmp(v, "off", 3) == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

/* Decimal digits only (no sign, no spaces), value in [min, max]. */
static int parse_uint_range(const char *v, size_t len, unsigned long min, unsigned long max,
                            unsigned long *out)
{
    unsigned long n = 0;
    size_t i;

    if (len == 0)
        return -1;
    for (i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (unsigned long)(v[i] - '0');
        if (n > max)
            return -1;
    }
    if (n < min)
        return -1;
    *out = n;
    return 0;
}

/* One rooms pattern: a valid room name, a valid room name followed by
 * '*', or "*" alone. */
static bool valid_room_pattern(const char *s, size_t len)
{
    if (len == 1 && s[0] == '*')
        return true;
    if (len > 1 && s[len - 1] == '*')
        return chat_valid_room(s, len - 1);
    return chat_valid_room(s, len);
}

static int set_rooms(struct chat_policy *p, const char *v, size_t len, const char **why)
{
    size_t i = 0, n = 0;

    if (len > CHAT_ROOMS_SPEC_MAX) {
        *why = "rooms list too long";
        return -1;
    }
    while (i < len) {
        size_t start;

        if (v[i] == ' ') {
            i++;
            continue;
        }
        start = i;
        while (i < len && v[i] != ' ')
            i++;
        if (!valid_room_pattern(v + start, i - start)) {
            *why = "bad room pattern in rooms list";
            return -1;
        }
        n++;
    }
    if (n == 0) {
        *why = "rooms list has no pattern";
        return -1;
    }
    memcpy(p->rooms, v, len);
    p->rooms[len] = '\0';
    return 0;
}

int chat_policy_set(struct chat_policy *p, enum chat_policy_key key, const char *v, size_t len,
                    const char **why)
{
    const char *dummy;
    unsigned long n;

    if (why == NULL)
        why = &dummy;
    if (v == NULL)
        len = 0;
    if (key == CHAT_POLICY_USER) {
        if (len != 0 && !chat_valid_user(v, len)) {
            *why = "bad user name";
            return -1;
        }
        memcpy(p->user, v ? v : "", len);
        p->user[len] = '\0';
        return 0;
    }
    if (len == 0)
        return 0;
    switch (key) {
    case CHAT_POLICY_GUESTS:
    case CHAT_POLICY_READONLY:
        if (parse_on_off(v, len, key == CHAT_POLICY_GUESTS ? &p->guests : &p->readonly) < 0) {
            *why = "expected on or off";
            return -1;
        }
        return 0;
    case CHAT_POLICY_ROOMS:
        return set_rooms(p, v, len, why);
    case CHAT_POLICY_MAX_TEXT:
        if (parse_uint_range(v, len, 1, CHAT_TEXT_HARD_MAX, &n) < 0) {
            *why = "max text out of range (1..65536)";
            return -1;
        }
        p->max_text = n;
        return 0;
    case CHAT_POLICY_POLL_TIMEOUT:
        if (parse_uint_range(v, len, 1, CHAT_POLL_TIMEOUT_MAX, &n) < 0) {
            *why = "poll timeout out of range (1..300)";
            return -1;
        }
        p->poll_timeout = (unsigned)n;
        return 0;
    case CHAT_POLICY_ROLE:
        if (len == 9 && memcmp(v, "moderator", 9) == 0)
            p->moderator = true;
        else if (len == 4 && memcmp(v, "user", 4) == 0)
            p->moderator = false;
        else {
            *why = "role must be user or moderator";
            return -1;
        }
        return 0;
    case CHAT_POLICY_EDIT_WINDOW:
        if (parse_uint_range(v, len, 0, CHAT_EDIT_WINDOW_MAX, &n) < 0) {
            *why = "edit window out of range (0..31536000 seconds)";
            return -1;
        }
        p->edit_window = (unsigned)n;
        return 0;
    case CHAT_POLICY_FIRST_ROOM:
        if (!chat_valid_room(v, len)) {
            *why = "first room is not a room name";
            return -1;
        }
        memcpy(p->first_room, v, len);
        p->first_room[len] = '\0';
        return 0;
    case CHAT_POLICY_NAMESPACE:
        if (!chat_valid_ns(v, len)) {
            *why = "namespace must be 1..32 of a-z, 0-9, _ and -, starting with a letter or digit";
            return -1;
        }
        memcpy(p->ns, v, len);
        p->ns[len] = '\0';
        return 0;
    default:
        *why = "unknown policy key";
        return -1;
    }
}

/* The next space-separated pattern of a rooms list from *s (advanced past
 * it); NULL at the end. */
static const char *next_pattern(const char **s, size_t *len)
{
    while (**s == ' ')
        (*s)++;
    if (**s == '\0')
        return NULL;
    const char *start = *s;
    while (**s && **s != ' ')
        (*s)++;
    *len = (size_t)(*s - start);
    return start;
}

bool chat_policy_room_allowed(const struct chat_policy *p, const char *room, size_t len)
{
    const char *s = p->rooms, *pat;
    size_t plen;

    if (room == NULL || !chat_valid_room(room, len))
        return false;
    while ((pat = next_pattern(&s, &plen)) != NULL) {
        if (pat[plen - 1] == '*') {
            if (plen - 1 <= len && memcmp(pat, room, plen - 1) == 0)
                return true;
        } else if (plen == len && memcmp(pat, room, len) == 0) {
            return true;
        }
    }
    return false;
}

/* The first pattern of the rooms list that is a plain name (want_prefix
 * false) or a "prefix*" (true), copied without its '*'; false if none. */
static bool first_pattern(const char *s, bool want_prefix, char *out)
{
    const char *pat;
    size_t plen;

    while ((pat = next_pattern(&s, &plen)) != NULL) {
        bool prefix = pat[plen - 1] == '*';
        if (prefix != want_prefix || (prefix && plen == 1))
            continue;
        plen -= prefix;
        memcpy(out, pat, plen);
        out[plen] = '\0';
        return true;
    }
    return false;
}

void chat_policy_first_room(const struct chat_policy *p, char *out)
{
    static const char lobby[] = "lobby";
    size_t n;

    if (p->first_room[0] && chat_policy_room_allowed(p, p->first_room, strlen(p->first_room))) {
        memcpy(out, p->first_room, strlen(p->first_room) + 1);
        return;
    }
    if (chat_policy_room_allowed(p, lobby, sizeof(lobby) - 1) || !p->rooms[0]) {
        memcpy(out, lobby, sizeof(lobby));
        return;
    }
    if (first_pattern(p->rooms, false, out))
        return;
    if (!first_pattern(p->rooms, true, out)) { /* cannot be: set_rooms checked it */
        memcpy(out, lobby, sizeof(lobby));
        return;
    }
    n = strlen(out);
    if (n + sizeof(lobby) - 1 <= CHAT_ROOM_MAX)
        memcpy(out + n, lobby, sizeof(lobby));
}

int chat_policy_identity(const struct chat_policy *p, const char *guest_name, size_t len, char *out)
{
    if (p->user[0] != '\0') {
        memcpy(out, p->user, strlen(p->user) + 1);
        return 0;
    }
    if (!p->guests)
        return -1;
    if (guest_name == NULL || !chat_valid_user(guest_name, len))
        return -2;
    out[0] = '~';
    memcpy(out + 1, guest_name, len);
    out[len + 1] = '\0';
    return 0;
}
