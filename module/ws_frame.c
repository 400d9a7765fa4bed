/* ws_frame: RFC 6455 framing for the server side. The reader owns one
 * reassembly buffer (bounded by max_message) and a 125-byte control
 * payload; a whole unfragmented data frame already in the caller's buffer
 * is unmasked in place and handed out from there without a copy. */
#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>

/* A reassembly buffer larger than this is freed between messages, so an
 * idle connection does not keep a big message's memory. */
#define WS_MSG_KEEP 4096
#define WS_MSG_MIN 256

/* read_header results besides close codes (which are >= 1000). */
enum { HDR_MORE = 0, HDR_DONE = 1 };

static const uint8_t ws_empty[1];

size_t ws_frame_header(uint8_t out[WS_FRAME_HDR_MAX], int opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t ws_close_payload(uint8_t out[WS_CONTROL_MAX], unsigned code, const char *reason,
                        size_t reason_len)
{
    if (code == 0)
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason_len > WS_CLOSE_REASON_MAX) {
        /* cut before the character that does not fit whole */
        reason_len = WS_CLOSE_REASON_MAX;
        while (reason_len > 0 && ((uint8_t)reason[reason_len] & 0xc0) == 0x80)
            reason_len--;
    }
    if (reason_len > 0)
        memcpy(out + 2, reason, reason_len);
    return 2 + reason_len;
}

size_t ws_close_frame(uint8_t out[WS_CLOSE_FRAME_MAX], unsigned code, const char *reason,
                      size_t reason_len)
{
    size_t n = ws_close_payload(out + 2, code, reason, reason_len);
    size_t h = ws_frame_header(out, WS_OP_CLOSE, n);
    return h + n;
}

bool ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

void ws_reader_init(struct ws_reader *r, size_t max_message)
{
    memset(r, 0, sizeof(*r));
    r->max_message = max_message;
    r->state = WS_RD_HEADER;
    chat_utf8_init(&r->utf8);
}

void ws_reader_free(struct ws_reader *r)
{
    free(r->msg);
    r->msg = NULL;
    r->msg_len = r->msg_cap = 0;
}

static bool is_control(int opcode)
{
    return (opcode & 0x08) != 0;
}

/* Checks of the first header byte: FIN, RSV1-3, opcode. */
static unsigned check_byte0(const struct ws_reader *r)
{
    uint8_t b = r->hdr[0];
    int op = b & 0x0f;

    if (b & 0x70)
        return WS_CLOSE_PROTOCOL; /* RSV bits: no extension was negotiated */
    if ((op >= 0x3 && op <= 0x7) || op >= 0xb)
        return WS_CLOSE_PROTOCOL;
    if (is_control(op))
        return (b & 0x80) ? 0 : WS_CLOSE_PROTOCOL;
    if (op == WS_OP_CONT)
        return r->msg_opcode ? 0 : WS_CLOSE_PROTOCOL;
    return r->msg_opcode ? WS_CLOSE_PROTOCOL : 0;
}

/* Checks of the second byte: MASK, control frame length. */
static unsigned check_byte1(const struct ws_reader *r)
{
    uint8_t b = r->hdr[1];

    if (!(b & 0x80))
        return WS_CLOSE_PROTOCOL;
    if (is_control(r->hdr[0] & 0x0f) && (b & 0x7f) > WS_CONTROL_MAX)
        return WS_CLOSE_PROTOCOL;
    return 0;
}

/* Bytes of extended length after the first two header bytes. */
static size_t ext_len_size(const struct ws_reader *r)
{
    uint8_t l7 = r->hdr[1] & 0x7f;
    return l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
}

/* Once the length is known: minimal encoding, 63 bits, message size. */
static unsigned check_length(struct ws_reader *r)
{
    size_t ext = ext_len_size(r);
    uint64_t len = r->hdr[1] & 0x7f;

    if (ext == 2) {
        len = (uint64_t)r->hdr[2] << 8 | r->hdr[3];
        if (len < 126)
            return WS_CLOSE_PROTOCOL;
    } else if (ext == 8) {
        len = 0;
        for (size_t i = 0; i < 8; i++)
            len = len << 8 | r->hdr[2 + i];
        if ((len >> 63) || len <= 0xffff)
            return WS_CLOSE_PROTOCOL;
    }
    r->frame_len = len;
    int op = r->hdr[0] & 0x0f;
    size_t have = op == WS_OP_CONT ? r->msg_len : 0; /* of the message so far */
    if (!is_control(op) && len > r->max_message - have)
        return WS_CLOSE_TOO_BIG;
    return 0;
}

/* Takes header bytes from buf, checking each as soon as it is there.
 * Returns HDR_MORE (buf used up), HDR_DONE, or a close code. */
static unsigned read_header(struct ws_reader *r, const uint8_t *buf, size_t len, size_t *pos)
{
    while (*pos < len) {
        unsigned code = 0;

        r->hdr[r->hdr_len++] = buf[(*pos)++];
        if (r->hdr_len == 1)
            code = check_byte0(r);
        else if (r->hdr_len == 2)
            code = check_byte1(r);
        if (code)
            return code;
        if (r->hdr_len < 2)
            continue;
        size_t ext = ext_len_size(r);
        if (r->hdr_len == 2 + ext && (code = check_length(r)) != 0)
            return code;
        if (r->hdr_len == 2 + ext + 4) {
            memcpy(r->mask, r->hdr + 2 + ext, 4);
            return HDR_DONE;
        }
    }
    return HDR_MORE;
}

/* The header is complete: set up the frame and, for the first frame of a
 * data message, the message. avail: payload bytes already in buf. */
static void start_frame(struct ws_reader *r, size_t avail)
{
    r->opcode = r->hdr[0] & 0x0f;
    r->fin = (r->hdr[0] & 0x80) != 0;
    r->frame_pos = 0;
    r->hdr_len = 0;
    r->direct = false;
    r->state = WS_RD_PAYLOAD;
    if (r->opcode == WS_OP_TEXT || r->opcode == WS_OP_BINARY) {
        r->msg_opcode = r->opcode;
        r->msg_len = 0;
        chat_utf8_init(&r->utf8);
        r->direct = r->fin && r->frame_len <= avail;
    }
}

static bool msg_reserve(struct ws_reader *r, size_t need)
{
    if (need <= r->msg_cap)
        return true;
    size_t cap = r->msg_cap < WS_MSG_MIN / 2 ? WS_MSG_MIN : r->msg_cap * 2;
    if (cap > r->max_message)
        cap = r->max_message;
    if (cap < need)
        cap = need;
    uint8_t *p = realloc(r->msg, cap);
    if (p == NULL)
        return false;
    r->msg = p;
    r->msg_cap = cap;
    return true;
}

/* n payload bytes at p: unmask, check, keep. Returns 0 or a close code. */
static unsigned take_payload(struct ws_reader *r, uint8_t *p, size_t n)
{
    size_t off = (size_t)r->frame_pos;

    for (size_t i = 0; i < n; i++)
        p[i] ^= r->mask[(off + i) & 3];
    r->frame_pos += n;
    if (is_control(r->opcode)) {
        memcpy(r->ctrl + off, p, n);
        return 0;
    }
    if (r->msg_opcode == WS_OP_TEXT && chat_utf8_feed(&r->utf8, p, n, NULL) == CHAT_UTF8_BAD)
        return WS_CLOSE_BAD_DATA;
    if (r->direct)
        return 0;
    if (!msg_reserve(r, r->msg_len + n))
        return WS_CLOSE_INTERNAL;
    memcpy(r->msg + r->msg_len, p, n);
    r->msg_len += n;
    return 0;
}

static int end_close(struct ws_reader *r, struct ws_event *ev)
{
    size_t n = (size_t)r->frame_len;

    if (n == 1)
        return WS_CLOSE_PROTOCOL;
    ev->type = WS_EV_CLOSE;
    ev->code = WS_CLOSE_NO_STATUS;
    ev->data = ws_empty;
    ev->len = 0;
    if (n >= 2) {
        ev->code = (unsigned)r->ctrl[0] << 8 | r->ctrl[1];
        if (!ws_close_code_valid(ev->code))
            return WS_CLOSE_PROTOCOL;
        if (!chat_utf8_valid(r->ctrl + 2, n - 2))
            return WS_CLOSE_BAD_DATA;
        ev->data = r->ctrl + 2;
        ev->len = n - 2;
    }
    r->state = WS_RD_CLOSED;
    return 0;
}

/* The frame's payload is all in. Returns 1 with an event, 0 without
 * (a non-final fragment), or a close code. direct: the payload in buf. */
static int end_frame(struct ws_reader *r, const uint8_t *direct, struct ws_event *ev)
{
    r->state = WS_RD_HEADER;
    switch (r->opcode) {
    case WS_OP_CLOSE: {
        int code = end_close(r, ev);
        return code ? code : 1;
    }
    case WS_OP_PING:
    case WS_OP_PONG:
        ev->type = r->opcode == WS_OP_PING ? WS_EV_PING : WS_EV_PONG;
        ev->data = r->ctrl;
        ev->len = (size_t)r->frame_len;
        return 1;
    default:
        break;
    }
    if (!r->fin)
        return 0;
    if (r->msg_opcode == WS_OP_TEXT) {
        if (chat_utf8_feed(&r->utf8, ws_empty, 0, NULL) != CHAT_UTF8_OK)
            return WS_CLOSE_BAD_DATA; /* ends inside a character */
        ev->type = WS_EV_TEXT;
    } else {
        ev->type = WS_EV_BINARY;
    }
    if (r->direct) {
        ev->data = direct;
        ev->len = (size_t)r->frame_len;
    } else {
        ev->data = r->msg_len ? r->msg : ws_empty;
        ev->len = r->msg_len;
    }
    r->msg_opcode = 0;
    r->msg_len = 0;
    return 1;
}

static int fail(struct ws_reader *r, unsigned code, struct ws_event *ev)
{
    r->state = WS_RD_ERROR;
    r->error_code = code;
    ev->type = WS_EV_ERROR;
    ev->code = code;
    ev->data = ws_empty;
    ev->len = 0;
    return -1;
}

int ws_reader_feed(struct ws_reader *r, uint8_t *buf, size_t len, size_t *consumed,
                   struct ws_event *ev)
{
    size_t pos = 0;
    uint8_t *payload = NULL;

    memset(ev, 0, sizeof(*ev));
    *consumed = 0;
    if (r->state == WS_RD_ERROR)
        return fail(r, r->error_code, ev);
    if (r->state == WS_RD_CLOSED) {
        *consumed = len;
        return 0;
    }
    if (r->msg_opcode == 0 && r->msg_cap > WS_MSG_KEEP)
        ws_reader_free(r);
    for (;;) {
        if (r->state == WS_RD_HEADER) {
            unsigned rc = read_header(r, buf, len, &pos);
            if (rc == HDR_MORE)
                break;
            if (rc != HDR_DONE) {
                *consumed = pos;
                return fail(r, rc, ev);
            }
            start_frame(r, len - pos);
            payload = buf + pos;
        }
        uint64_t left = r->frame_len - r->frame_pos;
        size_t n = left < len - pos ? (size_t)left : len - pos;
        unsigned code = n ? take_payload(r, buf + pos, n) : 0;
        pos += n;
        if (code) {
            *consumed = pos;
            return fail(r, code, ev);
        }
        if (r->frame_pos < r->frame_len)
            break;
        int rc = end_frame(r, payload, ev);
        if (rc != 0) {
            *consumed = pos;
            return rc == 1 ? 1 : fail(r, (unsigned)rc, ev);
        }
    }
    *consumed = pos;
    return 0;
}
