/* ws_frame: the RFC 6455 framing of a server endpoint, without I/O. The
 * writer side builds unmasked frame headers and close payloads; the reader
 * side is fed the client's bytes in pieces of any size, enforces every
 * rule of section 5 (masking, no extensions, control frames, fragments,
 * UTF-8 of text, message size) and hands out whole messages, pings, pongs
 * and closes. A broken rule yields the close code to send, never an assert. */
#ifndef WS_FRAME_H
#define WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_utf8.h"

#define WS_FRAME_HDR_MAX 10  /* unmasked header: 2 + 8 bytes of length */
#define WS_CLIENT_HDR_MAX 14 /* masked header: + 4 bytes of masking key */
#define WS_CONTROL_MAX 125   /* payload of a control frame */
#define WS_CLOSE_REASON_MAX 123
#define WS_CLOSE_FRAME_MAX (2 + WS_CONTROL_MAX) /* a whole server close frame */

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003, /* e.g. binary where only text is spoken */
    WS_CLOSE_NO_STATUS = 1005,   /* received close had no code; never sent */
    WS_CLOSE_ABNORMAL = 1006,    /* never sent */
    WS_CLOSE_BAD_DATA = 1007,    /* invalid UTF-8 */
    WS_CLOSE_POLICY = 1008,      /* e.g. too slow to drain its queue */
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_EXTENSION = 1010,
    WS_CLOSE_INTERNAL = 1011, /* also: out of memory */
};

/* --- writer --- */

/* Writes the header of an unmasked, final frame of opcode carrying len
 * payload bytes (7-, 16- or 64-bit length form). Returns its size: 2, 4 or
 * 10. The payload follows it unchanged. */
size_t ws_frame_header(uint8_t out[WS_FRAME_HDR_MAX], int opcode, uint64_t len);

/* Writes a close payload: code in network order, then reason, truncated to
 * WS_CLOSE_REASON_MAX bytes at a UTF-8 character boundary (reason must be
 * valid UTF-8; NULL with reason_len 0 for none). code 0 writes an empty
 * payload ("no status"). Returns the payload size (0 or 2..125). */
size_t ws_close_payload(uint8_t out[WS_CONTROL_MAX], unsigned code, const char *reason,
                        size_t reason_len);

/* A whole close frame (header + ws_close_payload). Returns its size. */
size_t ws_close_frame(uint8_t out[WS_CLOSE_FRAME_MAX], unsigned code, const char *reason,
                      size_t reason_len);

/* May a peer send this code in a close frame? 1000-1003, 1007-1011 and
 * 3000-4999. */
bool ws_close_code_valid(unsigned code);

/* --- reader --- */

enum ws_event_type {
    WS_EV_NONE = 0,
    WS_EV_TEXT,   /* a whole text message, valid UTF-8 */
    WS_EV_BINARY, /* a whole binary message */
    WS_EV_PING,   /* payload: answer with a pong carrying the same bytes */
    WS_EV_PONG,
    WS_EV_CLOSE, /* code: received code (WS_CLOSE_NO_STATUS when none);
                    data: reason, valid UTF-8. Answer with the same
                    code (ws_close_frame code 0 for NO_STATUS), close. */
    WS_EV_ERROR, /* protocol violation: send a close frame with code, then
                    close the connection */
};

/* What ws_reader_feed delivered. data is borrowed: it points either into
 * the buf given to ws_reader_feed or into memory owned by the reader, and
 * is valid until the next ws_reader_feed or ws_reader_free call on the same
 * reader, and as long as the caller leaves buf unchanged. */
struct ws_event {
    int type; /* enum ws_event_type */
    const uint8_t *data;
    size_t len;
    unsigned code; /* WS_EV_CLOSE: code received; WS_EV_ERROR: code to send */
};

enum ws_reader_state { WS_RD_HEADER = 0, WS_RD_PAYLOAD, WS_RD_CLOSED, WS_RD_ERROR };

/* All fields are private. */
struct ws_reader {
    size_t max_message; /* bound on a whole (reassembled) data message */
    int state;          /* enum ws_reader_state */
    uint8_t hdr[WS_CLIENT_HDR_MAX];
    size_t hdr_len; /* bytes of hdr received */
    int opcode;     /* of the current frame */
    bool fin;
    uint8_t mask[4];
    uint64_t frame_len; /* payload length of the current frame */
    uint64_t frame_pos; /* payload bytes of it received */
    bool direct;        /* current frame is delivered straight from buf */
    int msg_opcode;     /* WS_OP_TEXT / WS_OP_BINARY while a message is
                           being received, else 0 */
    uint8_t *msg;       /* reassembly buffer, malloc'ed, <= max_message */
    size_t msg_len;
    size_t msg_cap;
    struct chat_utf8 utf8; /* of the text message in progress */
    uint8_t ctrl[WS_CONTROL_MAX];
    unsigned error_code; /* WS_RD_ERROR: the close code */
};

/* max_message: the largest data message accepted, in bytes (a larger one
 * is WS_CLOSE_TOO_BIG). The reader holds at most max_message bytes of
 * memory. */
void ws_reader_init(struct ws_reader *r, size_t max_message);

/* Frees the reassembly buffer; r may be initialized again. Accepts a
 * reader that was only initialized. */
void ws_reader_free(struct ws_reader *r);

/* Consumes bytes from buf[0..len), unmasking payload bytes in place, until
 * one event is complete or buf is used up. *consumed is the number of
 * bytes of buf used. Returns:
 *   1  an event is in *ev (WS_EV_TEXT .. WS_EV_CLOSE); call again with the
 *      rest of buf, which may hold more frames;
 *   0  all of buf was consumed (*consumed == len), no event yet;
 *  -1  protocol violation or out of memory: ev->type is WS_EV_ERROR and
 *      ev->code the close code (1002, 1007, 1009, 1011). The reader stays
 *      in error: later calls return -1 again and consume nothing.
 * Text is checked as it arrives, so invalid UTF-8 fails at once, even in
 * the first fragment of a message. After a WS_EV_CLOSE the reader is
 * closed: later calls consume and ignore everything and return 0. */
int ws_reader_feed(struct ws_reader *r, uint8_t *buf, size_t len, size_t *consumed,
                   struct ws_event *ev);

#endif
