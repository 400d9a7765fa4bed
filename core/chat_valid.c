/* chat_valid: the naming and text rules of docs/protocol.md ("Names"). Byte
 * tests are spelled out rather than taken from <ctype.h>, whose answers
 * depend on the locale. */
#include "chat_valid.h"

#include <stdint.h>

#include "chat_utf8.h"

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_lower(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_alpha(unsigned char c)
{
    return is_lower(c) || (c >= 'A' && c <= 'Z');
}

bool chat_valid_user(const char *s, size_t len)
{
    size_t i;

    if (s == NULL || len == 0 || len > CHAT_USER_MAX)
        return false;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '.' && c != '-')
            return false;
    }
    return true;
}

bool chat_valid_room(const char *s, size_t len)
{
    size_t i;

    if (s == NULL || len == 0 || len > CHAT_ROOM_MAX)
        return false;
    if (!is_lower((unsigned char)s[0]) && !is_digit((unsigned char)s[0]))
        return false;
    for (i = 1; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!is_lower(c) && !is_digit(c) && c != '_' && c != '-')
            return false;
    }
    return true;
}

bool chat_valid_cid(const char *s, size_t len)
{
    size_t i;

    if (s == NULL || len == 0 || len > CHAT_CID_MAX)
        return false;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c > 0x7e)
            return false;
    }
    return true;
}

enum chat_text_check chat_valid_text(const char *s, size_t len, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i;

    if (len == 0)
        return CHAT_TEXT_EMPTY;
    if (len > max)
        return CHAT_TEXT_TOO_LARGE;
    if (!chat_utf8_valid((const uint8_t *)s, len))
        return CHAT_TEXT_BAD_UTF8;
    for (i = 0; i < len; i++) {
        if (u[i] == '\n' || u[i] == '\t')
            continue;
        if (u[i] < 0x20 || u[i] == 0x7f)
            return CHAT_TEXT_CONTROL;
        /* C1 controls U+0080..U+009F are C2 80..C2 9F; the input is valid
         * UTF-8 here, so a C2 lead always has a next byte. */
        if (u[i] == 0xc2 && u[i + 1] <= 0x9f)
            return CHAT_TEXT_CONTROL;
    }
    return CHAT_TEXT_OK;
}
