/* lp_basic: the chat without JavaScript (docs/longpoll.md, "The basic HTML
 * mode"), under basic/ of the mount point:
 *   GET  basic/                 the rooms this location allows
 *   GET  basic/room?r=R&before=N&refresh=S   the last 50 messages of R (or
 *                               those before N), who is online, a form
 *   POST basic/post             the form (urlencoded): stored, then 303 back
 * Every value is HTML-escaped. A post needs a same-host Origin (or Referer)
 * when the browser sends one, and the form's token equal to the chat_csrf
 * cookie (random, HttpOnly, SameSite=Strict), which another site can
 * neither read nor set. The post goes through the same validation, policy
 * and rate limits as POST send, and chat_post like every other send. */
#define _GNU_SOURCE
#include "lp.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "chat_http.h"
#include "chat_log.h"
#include "chat_members.h"
#include "chat_sql.h"

#define PAGE 50
#define TOKEN_LEN 32

static int add(struct chat_sbuf *b, const char *s)
{
    return chat_sbuf_add(b, s, strlen(s));
}

/* s[0..len) with & < > " ' escaped. */
static int add_html(struct chat_sbuf *b, const char *s, size_t len)
{
    int bad = 0;
    for (size_t i = 0; i < len; i++) {
        const char *e = NULL;
        switch (s[i]) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        default:
            bad |= chat_sbuf_add(b, s + i, 1);
            continue;
        }
        bad |= add(b, e);
    }
    return bad;
}

static int add_h(struct chat_sbuf *b, const char *s)
{
    return add_html(b, s, strlen(s));
}

/* Writes a whole answer: status, extra header lines, an HTML body. */
static void reply(struct lp_req *r, int status, const char *headers, const struct chat_sbuf *body)
{
    struct chat_sbuf out = {0};
    char head[160];

    snprintf(head, sizeof(head), "Status: %d %s\r\n", status, chat_http_reason(status));
    int bad = add(&out, head) | add(&out, headers ? headers : "");
    if (body) {
        snprintf(head, sizeof(head),
                 "Content-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\n", body->len);
        bad |= add(&out, head);
    }
    bad |= add(&out, "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                     "Referrer-Policy: same-origin\r\n"
                     "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
                     "form-action 'self'; frame-ancestors 'none'\r\n\r\n");
    if (body && body->len)
        bad |= chat_sbuf_add(&out, body->p, body->len);
    if (bad || lp_stream_records(&r->conn, out.p, out.len, true, true) < 0)
        log_debug("basic %d: could not answer", r->conn.id);
    lp_conn_drop(&r->conn);
    chat_sbuf_free(&out);
}

static int page_start(struct chat_sbuf *b, const char *title, unsigned refresh)
{
    char meta[96] = "";
    if (refresh)
        snprintf(meta, sizeof(meta), "<meta http-equiv=\"refresh\" content=\"%u\">\n", refresh);
    int bad = add(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    bad |= add(b, meta) | add(b, "<title>") | add_h(b, title) | add(b, "</title>\n");
    bad |= add(b, "<style>body{font-family:sans-serif;max-width:40em;margin:0 auto;padding:.5em}"
                  "li{margin:.3em 0}textarea,input{font-size:1em;max-width:100%}"
                  ".meta{color:#666;font-size:.85em}</style></head><body>\n");
    return bad;
}

static void error_page(struct lp_req *r, int status, const char *msg, const char *room)
{
    struct chat_sbuf b = {0};
    int bad = page_start(&b, "Chat: error", 0);
    bad |=
        add(&b, "<h1>Not sent</h1>\n<p><strong>") | add_h(&b, msg) | add(&b, "</strong></p>\n<p>");
    if (room && room[0])
        bad |= add(&b, "<a href=\"room?r=") | add_h(&b, room) | add(&b, "\">Back to #") |
               add_h(&b, room) | add(&b, "</a> | ");
    bad |= add(&b, "<a href=\"./\">Rooms</a></p></body></html>\n");
    if (!bad)
        reply(r, status, NULL, &b);
    else
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
    chat_sbuf_free(&b);
}

/* ---- the CSRF cookie ------------------------------------------------------- */

/* The chat_csrf cookie the browser sent ("" when none or a bad one). */
static void csrf_cookie(struct lp_req *r, char *tok)
{
    int n = lp_cookie_get(r->cookie, strlen(r->cookie), "chat_csrf", tok, TOKEN_LEN + 1);
    if (n != TOKEN_LEN)
        tok[0] = '\0';
}

/* A new random token: 32 hex digits. 0, or -1 when the kernel gives none. */
static int csrf_new(char *tok)
{
    unsigned char raw[TOKEN_LEN / 2];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(tok + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* A page view the user made (not another site's <img> or link): it makes
 * the user online and takes from the user's bucket. The browser says so
 * with Sec-Fetch-Site (same-origin, or none: typed, a bookmark); one too
 * old to send it, by sending the SameSite=Strict chat_csrf cookie, which
 * it never attaches to another site's request. */
static bool own_view(const struct lp_req *r, const char *tok)
{
    return !lp_req_cross_site(r) && (r->fetch_site[0] != '\0' || tok[0] != '\0');
}

/* Origin or Referer, when the browser sent one, must name this host. */
static bool same_host(const struct lp_req *r)
{
    const char *v = r->origin[0] ? r->origin : r->referer;
    if (!v[0])
        return true; /* neither (old browsers, w3m): the token decides */
    const char *h = strstr(v, "://");
    if (h == NULL || r->host[0] == '\0')
        return false;
    h += 3;
    size_t n = strcspn(h, ":/?#");
    return n == strlen(r->host) && strncasecmp(h, r->host, n) == 0;
}

/* ---- pages ------------------------------------------------------------------- */

static void rooms_page(struct lp_req *r)
{
    struct chat_sbuf b = {0};
    char spec[CHAT_ROOMS_SPEC_MAX + 1];
    bool any = false;
    int bad = page_start(&b, "Chat rooms", 0);

    bad |= add(&b, "<h1>Chat rooms</h1>\n<ul>\n");
    snprintf(spec, sizeof(spec), "%s", r->policy.rooms);
    for (char *save, *p = strtok_r(spec, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
        if (!chat_valid_room(p, strlen(p))) {
            any = true; /* a pattern: the form below opens any room it allows */
            continue;
        }
        bad |= add(&b, "<li><a href=\"room?r=") | add_h(&b, p) | add(&b, "\">#") | add_h(&b, p) |
               add(&b, "</a></li>\n");
    }
    bad |= add(&b, "</ul>\n");
    if (any)
        bad |= add(&b, "<form method=\"get\" action=\"room\"><label>Room: <input name=\"r\" "
                       "required maxlength=\"64\" pattern=\"[a-z0-9][a-z0-9_\\-]*\"></label> "
                       "<button>Open</button></form>\n");
    bad |= add(&b, "<p class=\"meta\">The basic chat: no JavaScript needed. "
                   "<a href=\"../\">The full chat</a></p></body></html>\n");
    if (!bad)
        reply(r, 200, NULL, &b);
    else
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
    chat_sbuf_free(&b);
}

/* One message row of chat_row_json: "user (time): text". Change rows
 * (edits, deletions: they update the message they name) are skipped. */
static int add_message(struct chat_sbuf *b, const char *j, size_t len, int64_t *first)
{
    json_t *m = json_loadb(j, len, 0, NULL);
    int bad = 0;

    if (m == NULL)
        return 0;
    json_int_t seq = json_integer_value(json_object_get(m, "seq"));
    if (*first == 0 || seq < *first)
        *first = seq;
    /* an edit or a deletion is no message of its own: the message it names
     * is shown as it is now */
    if (json_object_get(m, "edit") == NULL && json_object_get(m, "delete") == NULL) {
        const char *user = json_string_value(json_object_get(m, "user"));
        const char *text = json_string_value(json_object_get(m, "text"));
        const char *ts = json_string_value(json_object_get(m, "ts"));
        char num[32];
        snprintf(num, sizeof(num), "%lld", (long long)seq);
        bad |= add(b, "<li id=\"m") | add(b, num) | add(b, "\"><strong>") |
               add_h(b, user ? user : "?") | add(b, "</strong> <span class=\"meta\">");
        if (ts && strlen(ts) >= 16)
            bad |= add_html(b, ts, 10) | add(b, " ") | add_html(b, ts + 11, 5) | add(b, " UTC");
        bad |= add(b, "</span><br>");
        if (json_is_true(json_object_get(m, "deleted")) || text == NULL) {
            bad |= add(b, "<em>message deleted</em>");
        } else {
            for (const char *p = text; *p; p++) /* lines kept */
                bad |= *p == '\n' ? add(b, "<br>") : add_html(b, p, 1);
            if (json_object_get(m, "edited") != NULL)
                bad |= add(b, " <span class=\"meta\">(edited)</span>");
        }
        bad |= add(b, "</li>\n");
    }
    json_decref(m);
    return bad;
}

static void room_page(struct lp_req *r, PGconn **db)
{
    char room[CHAT_ROOM_MAX + 2], num[32], before_s[24], tok[TOKEN_LEN + 1],
        name[CHAT_USER_MAX + 2];
    char who[CHAT_SENDER_MAX + 1], cid[TOKEN_LEN + 1], cookie_hdr[256] = "";
    int64_t before = 0, refresh = 0, first = 0;
    char key[CHAT_ROOM_KEY_MAX + 1]; /* the room in the database (chat_ns.h) */
    int n = chat_query_get(r->query, r->query_len, "r", room, sizeof(room));

    if (n < 0 || chat_room_key(r->policy.ns, room, (size_t)n, key) == 0)
        return error_page(
            r, 400, "No such room name: 1-64 of a-z 0-9 _ -, starting with a letter or digit.",
            NULL);
    n = chat_query_get(r->query, r->query_len, "before", num, sizeof(num));
    if (n == CHAT_QUERY_BAD ||
        (n >= 0 && chat_query_int(num, (size_t)n, 1, INT64_MAX, &before) < 0))
        return error_page(r, 400, "before must be a message number.", room);
    n = chat_query_get(r->query, r->query_len, "refresh", num, sizeof(num));
    if (n == CHAT_QUERY_BAD || (n >= 0 && chat_query_int(num, (size_t)n, 5, 3600, &refresh) < 0))
        return error_page(r, 400, "refresh must be 5..3600 seconds.", room);
    if (!chat_policy_room_allowed(&r->policy, room, strlen(room)))
        return error_page(r, 403, "This room is not allowed here.", NULL);
    /* who reads: nginx's user, else the guest name of the cookie (none: not online) */
    n = lp_cookie_get(r->cookie, strlen(r->cookie), "chat_name", name, sizeof(name));
    if (chat_policy_identity(&r->policy, n > 0 ? name : NULL, n > 0 ? (size_t)n : 0, who) != 0)
        who[0] = '\0';
    csrf_cookie(r, tok);
    if (!own_view(r, tok))
        who[0] = '\0'; /* not online, and the address's bucket, not the user's */
    if (!lp_rate_admit(r, who, false))
        return;
    if (tok[0] == '\0') {
        if (csrf_new(tok) < 0)
            return error_page(r, 503, "No randomness for the form token; try again.", room);
        snprintf(cookie_hdr, sizeof(cookie_hdr),
                 "Set-Cookie: chat_csrf=%s; Path=%s; HttpOnly; SameSite=Strict\r\n", tok, r->base);
    }
    if (csrf_new(cid) < 0)
        cid[0] = '\0';
    snprintf(before_s, sizeof(before_s), "%" PRId64, before);
    const char *vals[3] = {key, before_s, CHAT_STR(PAGE)};
    PGresult *res = lp_db_query(db, "basic", CHAT_SQL_HISTORY, 3, vals);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return error_page(r, 503, "The database is unavailable; try again in a moment.", room);
    }
    PGresult *mem = lp_db_query(db, "basic", CHAT_SQL_MEMBERS, 1, &vals[0]);
    const char **names = NULL;
    size_t nn = 0, count = 0;
    if (mem && PQresultStatus(mem) == PGRES_TUPLES_OK && PQntuples(mem) == 1) {
        count = strtoull(PQgetvalue(mem, 0, 0), NULL, 10);
        if (chat_members_parse(PQgetvalue(mem, 0, 1), (size_t)PQgetlength(mem, 0, 1),
                               who[0] ? who : NULL, &names, &nn, &count) < 0)
            nn = count = 0;
    }
    PQclear(mem);

    struct chat_sbuf b = {0};
    char title[80];
    snprintf(title, sizeof(title), "#%s - chat", room);
    int bad = page_start(&b, title, (unsigned)refresh);
    bad |= add(&b, "<p><a href=\"./\">Rooms</a> | <a href=\"room?r=") | add_h(&b, room) |
           add(&b, "\">Refresh</a> | <a href=\"room?r=") | add_h(&b, room) |
           add(&b, "&amp;refresh=30\">Refresh every 30 s</a></p>\n<h1>#") | add_h(&b, room) |
           add(&b, "</h1>\n");
    struct chat_str msgs[PAGE];
    int64_t horizon;
    size_t rows = chat_history_rows(res, msgs, PAGE, &horizon);
    bad |= add(&b, "<ol class=\"messages\">\n");
    for (size_t i = 0; i < rows; i++)
        bad |= add_message(&b, msgs[i].p, msgs[i].len, &first);
    bad |= add(&b, "</ol>\n");
    if (horizon > 0)
        bad |= add(&b, "<p>Older messages were removed.</p>\n");
    if (rows == 0)
        bad |= add(&b, "<p>No messages yet.</p>\n");
    if (rows == PAGE && first > 1) {
        snprintf(num, sizeof(num), "%" PRId64, first);
        bad |= add(&b, "<p><a href=\"room?r=") | add_h(&b, room) | add(&b, "&amp;before=") |
               add(&b, num) | add(&b, "\">Older messages</a></p>\n");
    }
    if (before)
        bad |= add(&b, "<p><a href=\"room?r=") | add_h(&b, room) |
               add(&b, "\">Latest messages</a></p>\n");
    snprintf(num, sizeof(num), "%zu", count);
    bad |= add(&b, "<h2>Online (") | add(&b, num) | add(&b, ")</h2>\n<p class=\"online\">");
    for (size_t i = 0; i < nn; i++)
        bad |= add(&b, i ? ", " : "") | add_h(&b, names[i]);
    bad |= add(&b, "</p>\n");
    chat_members_free(names, nn);
    PQclear(res);
    if (r->policy.readonly) {
        bad |= add(&b, "<p>This room is read-only here.</p>\n");
    } else {
        bad |= add(&b, "<form method=\"post\" action=\"post\">\n<input type=\"hidden\" "
                       "name=\"room\" value=\"") |
               add_h(&b, room) | add(&b, "\">\n<input type=\"hidden\" name=\"token\" value=\"") |
               add(&b, tok) | add(&b, "\">\n<input type=\"hidden\" name=\"cid\" value=\"") |
               add(&b, cid) | add(&b, "\">\n");
        if (r->policy.user[0])
            bad |= add(&b, "<p>You are <strong>") | add_h(&b, r->policy.user) |
                   add(&b, "</strong></p>\n");
        else
            bad |= add(&b, "<p><label>Your name: <input name=\"name\" required maxlength=\"32\" "
                           "value=\"") |
                   add_h(&b, n > 0 ? name : "") | add(&b, "\"></label></p>\n");
        bad |= add(&b, "<p><label>Message:<br><textarea name=\"text\" rows=\"3\" cols=\"40\" "
                       "required></textarea></label></p>\n<p><button>Send</button></p>\n</form>\n");
    }
    bad |= add(&b, "</body></html>\n");
    if (who[0])
        lp_presence_touch(key, who, r->addr, r->policy.poll_timeout);
    if (!bad)
        reply(r, 200, cookie_hdr, &b);
    else
        lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
    chat_sbuf_free(&b);
}

/* ---- the form post ------------------------------------------------------------- */

static int field(struct lp_req *r, const char *name, char *out, size_t cap)
{
    return r->body ? chat_query_get(r->body, r->body_len, name, out, cap) : CHAT_QUERY_ABSENT;
}

static void post(struct lp_req *r, PGconn **db)
{
    char room[CHAT_ROOM_MAX + 2], tok[TOKEN_LEN + 1], got[TOKEN_LEN + 2], name[CHAT_USER_MAX + 2];
    char cid[CHAT_CID_MAX + 2], who[CHAT_SENDER_MAX + 1], loc[256], hdr[512];
    size_t cap = r->policy.max_text + 2;
    char *text = NULL;

    if (!r->form)
        return error_page(r, 415, "Send the form as application/x-www-form-urlencoded.", NULL);
    if (r->body_too_large)
        return error_page(r, 413, "The message is too long.", NULL);
    char key[CHAT_ROOM_KEY_MAX + 1]; /* the room in the database (chat_ns.h) */
    int n = field(r, "room", room, sizeof(room));
    if (n < 0 || chat_room_key(r->policy.ns, room, (size_t)n, key) == 0)
        return error_page(r, 400, "No such room name.", NULL);
    csrf_cookie(r, tok);
    n = field(r, "token", got, sizeof(got));
    if (!same_host(r) || tok[0] == '\0' || n != TOKEN_LEN || strcmp(tok, got) != 0) {
        log_info("basic: form post refused (cross-site, or without its cookie)");
        return error_page(r, 403,
                          "This form did not come from this chat's page (or its cookie is "
                          "gone): open the room again and send from there.",
                          room);
    }
    if (r->policy.readonly)
        return error_page(r, 403, "Read-only here.", room);
    if (!chat_policy_room_allowed(&r->policy, room, strlen(room)))
        return error_page(r, 403, "This room is not allowed here.", NULL);
    int k = field(r, "name", name, sizeof(name));
    int id = chat_policy_identity(&r->policy, k > 0 ? name : NULL, k > 0 ? (size_t)k : 0, who);
    if (id == -1)
        return error_page(r, 401, "Guests are not allowed here.", room);
    if (id < 0)
        return error_page(r, 400, "A name is 1-32 of letters, digits, _ . -", room);
    if ((text = malloc(cap)) == NULL)
        return error_page(r, 503, "Out of memory; try again.", room);
    n = field(r, "text", text, cap);
    /* a browser sends the textarea's line breaks as CR LF: keep LF */
    size_t len = 0;
    for (int i = 0; n > 0 && i < n; i++)
        if (!(text[i] == '\r' && i + 1 < n && text[i + 1] == '\n'))
            text[len++] = text[i];
    text[n > 0 ? len : 0] = '\0';
    enum chat_text_check tc = n == CHAT_QUERY_BAD && r->body_len > cap ? CHAT_TEXT_TOO_LARGE
                              : n <= 0                                 ? CHAT_TEXT_EMPTY
                                       : chat_valid_text(text, len, r->policy.max_text);
    const char *why = tc == CHAT_TEXT_OK      ? NULL
                      : tc == CHAT_TEXT_EMPTY ? "The message is empty."
                      : tc == CHAT_TEXT_TOO_LARGE
                          ? "The message is too long."
                          : "The message has characters a chat message cannot have.";
    int status = tc == CHAT_TEXT_TOO_LARGE ? 413 : 400;
    k = field(r, "cid", cid, sizeof(cid));
    if (!why && k > 0 && !chat_valid_cid(cid, (size_t)k))
        why = "Bad form: open the room again.";
    if (why) {
        free(text);
        return error_page(r, status, why, room);
    }
    if (lp_bans_match(who[0] ? who : NULL, r->addr, r->policy.ns)) {
        free(text);
        return error_page(r, 403, "You are banned from this chat.", room);
    }
    if (!lp_rate_admit(r, who, true)) {
        free(text);
        return;
    }
    struct chat_sbuf a[4] = {{0}, {0}, {0}, {0}};
    int bad = chat_db_array_add(&a[0], key, strlen(key)) | chat_db_array_end(&a[0]);
    bad |= chat_db_array_add(&a[1], who, strlen(who)) | chat_db_array_end(&a[1]);
    bad |= chat_db_array_add(&a[2], text, len) | chat_db_array_end(&a[2]);
    if (k > 0) /* the form's own cid: sending it twice stores it once */
        bad |= chat_db_array_add(&a[3], cid, (size_t)k) | chat_db_array_end(&a[3]);
    else
        bad |= chat_sbuf_add(&a[3], "{NULL}", 6);
    free(text);
    PGresult *res = NULL;
    if (!bad) {
        const char *vals[4] = {a[0].p, a[1].p, a[2].p, a[3].p};
        res = lp_db_query(db, "basic post", CHAT_SQL_POST, 4, vals);
    }
    for (int i = 0; i < 4; i++)
        chat_sbuf_free(&a[i]);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1) {
        log_warn("basic: post failed: %s", lp_pgerr(res, db ? *db : NULL));
        PQclear(res);
        return error_page(r, 503,
                          "The message was not stored (database unavailable). Go back "
                          "and send it again.",
                          room);
    }
    PQclear(res);
    snprintf(loc, sizeof(loc), "%sroom?r=%s", r->base, room);
    n = snprintf(hdr, sizeof(hdr), "Location: %s\r\n", loc);
    if (!r->policy.user[0] && k >= 0)
        snprintf(hdr + n, sizeof(hdr) - (size_t)n,
                 "Set-Cookie: chat_name=%s; Path=%s; HttpOnly; SameSite=Lax; Max-Age=31536000\r\n",
                 who + 1, r->base);
    reply(r, 303, hdr, NULL);
}

void lp_basic_handle(struct lp_req *r, PGconn **db)
{
    bool is_post = strcmp(r->basic_page, "post") == 0;

    if (r->policy.user[0] == '\0' && !r->policy.guests && is_post)
        return error_page(r, 401, "Guests are not allowed here.", NULL);
    if (is_post)
        return r->post ? post(r, db) : error_page(r, 405, "Use the form to send.", NULL);
    if (!r->get)
        return error_page(r, 405, "Only GET here.", NULL);
    if (r->query_too_long)
        return error_page(r, 400, "Query string too long.", NULL);
    if (r->basic_page[0] == '\0')
        return rooms_page(r);
    if (strcmp(r->basic_page, "room") == 0)
        return room_page(r, db);
    error_page(r, 404, "No such page.", NULL);
}
