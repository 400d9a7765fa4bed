/* libFuzzer target for the ws_frame reader. The first two input bytes pick
 * max_message and a seed for chunk sizes; the rest is the client's bytes.
 * They are fed once whole and once in random-sized chunks: both runs must
 * give the same events, every event must keep the reader's promises, and
 * the reader must never hold more than max_message bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

#define MAX_EVENTS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct trace {
    int n;
    int type[MAX_EVENTS];
    unsigned code[MAX_EVENTS];
    size_t len[MAX_EVENTS];
    uint64_t hash[MAX_EVENTS];
};

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint32_t next_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void check_event(const struct ws_reader *r, const struct ws_event *ev, int rc)
{
    if (ev->data == NULL && rc != 0)
        abort();
    switch (ev->type) {
    case WS_EV_TEXT:
        if (!chat_utf8_valid(ev->data, ev->len))
            abort();
        /* fall through */
    case WS_EV_BINARY:
        if (ev->len > r->max_message)
            abort();
        break;
    case WS_EV_PING:
    case WS_EV_PONG:
        if (ev->len > WS_CONTROL_MAX)
            abort();
        break;
    case WS_EV_CLOSE:
        if (ev->len > WS_CLOSE_REASON_MAX || !chat_utf8_valid(ev->data, ev->len))
            abort();
        if (ev->code != WS_CLOSE_NO_STATUS && !ws_close_code_valid(ev->code))
            abort();
        break;
    case WS_EV_ERROR:
        if (rc != -1 ||
            (ev->code != 1002 && ev->code != 1007 && ev->code != 1009 && ev->code != 1011))
            abort();
        break;
    default:
        if (rc != 0)
            abort();
    }
}

/* Feeds wire in chunks (seed 0: all at once); records the events. */
static void run(const uint8_t *wire, size_t len, size_t max, uint32_t seed, struct trace *t)
{
    struct ws_reader r;
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        abort();
    memcpy(buf, wire, len);
    memset(t, 0, sizeof(*t));
    ws_reader_init(&r, max);
    size_t pos = 0;
    int stop = 0;
    while (pos < len && !stop) {
        size_t chunk = len - pos;
        if (seed) {
            uint32_t v = next_rand(&seed);
            chunk = (v & 7) == 0 ? (v >> 3) % 4096 + 1 : (v >> 3) % 16 + 1;
            if (chunk > len - pos)
                chunk = len - pos;
        }
        /* an exact-size copy, so that a read past the chunk is caught */
        uint8_t *piece = malloc(chunk);
        if (piece == NULL)
            abort();
        memcpy(piece, buf + pos, chunk);
        size_t off = 0;
        while (off < chunk) {
            struct ws_event ev;
            size_t used;
            int rc = ws_reader_feed(&r, piece + off, chunk - off, &used, &ev);
            if (used > chunk - off || (rc == 0 && used != chunk - off))
                abort();
            if (r.msg_cap > max)
                abort();
            check_event(&r, &ev, rc);
            off += used;
            if (rc != 0 && t->n < MAX_EVENTS) {
                t->type[t->n] = ev.type;
                t->code[t->n] = ev.code;
                t->len[t->n] = ev.len;
                t->hash[t->n] = fnv(ev.data, ev.len);
                t->n++;
            }
            if (rc < 0) {
                /* sticky */
                struct ws_event ev2;
                if (ws_reader_feed(&r, piece, chunk, &used, &ev2) != -1 || used != 0 ||
                    ev2.code != ev.code)
                    abort();
                stop = 1;
                break;
            }
        }
        free(piece);
        pos += chunk;
    }
    ws_reader_free(&r);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = {0, 1, 5, 125, 126, 1000, 65535, 65536, 1 << 20};
    struct trace whole, chunked;

    if (size < 2)
        return 0;
    size_t max = maxes[data[0] % (sizeof(maxes) / sizeof(maxes[0]))];
    uint32_t seed = data[1] | 0x100u;
    run(data + 2, size - 2, max, 0, &whole);
    run(data + 2, size - 2, max, seed, &chunked);
    if (whole.n != chunked.n)
        abort();
    for (int i = 0; i < whole.n; i++)
        if (whole.type[i] != chunked.type[i] || whole.code[i] != chunked.code[i] ||
            whole.len[i] != chunked.len[i] || whole.hash[i] != chunked.hash[i])
            abort();
    return 0;
}
