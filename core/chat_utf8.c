/* chat_utf8: incremental fail-fast UTF-8 validator. The whole state fits
 * in one word: how many continuation bytes are still owed and the range
 * the next one must fall in. That range is what makes rejection exact:
 * after E0 only A0..BF may follow (no overlongs), after ED only 80..9F
 * (no surrogates), after F4 only 80..8F (nothing above U+10FFFF). */
#include "chat_utf8.h"

/* state layout: bits 16..23 bytes still owed, 8..15 lowest allowed next
 * byte, 0..7 highest allowed next byte. 0 is "on a boundary". */
#define UTF8_BAD_STATE 0xffffffffu
#define UTF8_STATE(need, lo, hi) (((uint32_t)(need) << 16) | ((uint32_t)(lo) << 8) | (uint32_t)(hi))
#define UTF8_NEED(s) (((s) >> 16) & 0xffu)
#define UTF8_LO(s) (((s) >> 8) & 0xffu)
#define UTF8_HI(s) ((s)&0xffu)

void chat_utf8_init(struct chat_utf8 *v)
{
    v->state = 0;
}

/* State after a lead byte b, or UTF8_BAD_STATE when b cannot start a
 * sequence (continuation bytes, C0, C1, F5..FF). ASCII is handled by the
 * caller. */
static uint32_t lead_state(uint8_t b)
{
    if (b >= 0xc2 && b <= 0xdf)
        return UTF8_STATE(1, 0x80, 0xbf);
    if (b == 0xe0)
        return UTF8_STATE(2, 0xa0, 0xbf);
    if (b == 0xed)
        return UTF8_STATE(2, 0x80, 0x9f);
    if (b >= 0xe1 && b <= 0xef)
        return UTF8_STATE(2, 0x80, 0xbf);
    if (b == 0xf0)
        return UTF8_STATE(3, 0x90, 0xbf);
    if (b >= 0xf1 && b <= 0xf3)
        return UTF8_STATE(3, 0x80, 0xbf);
    if (b == 0xf4)
        return UTF8_STATE(3, 0x80, 0x8f);
    return UTF8_BAD_STATE;
}

int chat_utf8_feed(struct chat_utf8 *v, const uint8_t *p, size_t len, size_t *bad_at)
{
    uint32_t s = v->state;
    size_t i;

    if (s == UTF8_BAD_STATE) {
        if (bad_at)
            *bad_at = 0;
        return CHAT_UTF8_BAD;
    }
    for (i = 0; i < len; i++) {
        uint8_t b = p[i];

        if (s == 0) {
            if (b < 0x80)
                continue;
            s = lead_state(b);
            if (s == UTF8_BAD_STATE)
                break;
            continue;
        }
        if (b < UTF8_LO(s) || b > UTF8_HI(s)) {
            s = UTF8_BAD_STATE;
            break;
        }
        s = UTF8_NEED(s) == 1 ? 0 : UTF8_STATE(UTF8_NEED(s) - 1, 0x80, 0xbf);
    }
    v->state = s;
    if (s == UTF8_BAD_STATE) {
        if (bad_at)
            *bad_at = i;
        return CHAT_UTF8_BAD;
    }
    return s == 0 ? CHAT_UTF8_OK : CHAT_UTF8_INCOMPLETE;
}

int chat_utf8_valid(const uint8_t *p, size_t len)
{
    struct chat_utf8 v;

    chat_utf8_init(&v);
    return chat_utf8_feed(&v, p, len, NULL) == CHAT_UTF8_OK;
}
