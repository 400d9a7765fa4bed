/* chat_valid: the naming and text rules of docs/protocol.md ("Names"). Pure
 * functions over (ptr, len); no allocation, no NUL terminator needed. */
#ifndef CHAT_VALID_H
#define CHAT_VALID_H

#include <stdbool.h>
#include <stddef.h>

#define CHAT_USER_MAX 32         /* user names: 1..32 of [A-Za-z0-9_.-] */
#define CHAT_ROOM_MAX 64         /* rooms: ^[a-z0-9][a-z0-9_-]{0,63}$ */
#define CHAT_CID_MAX 64          /* cids: 1..64 printable ASCII (0x20..0x7e) */
#define CHAT_TEXT_DEFAULT 4096   /* default max text bytes */
#define CHAT_TEXT_HARD_MAX 65536 /* no policy may raise max text above this */

/* A guest's display name is "~" + name, so buffers for a sender need
 * CHAT_USER_MAX + 2 bytes with the NUL. */
#define CHAT_SENDER_MAX (CHAT_USER_MAX + 1)

bool chat_valid_user(const char *s, size_t len);
bool chat_valid_room(const char *s, size_t len);
bool chat_valid_cid(const char *s, size_t len);

enum chat_text_check {
    CHAT_TEXT_OK = 0,
    CHAT_TEXT_EMPTY,     /* len == 0 */
    CHAT_TEXT_TOO_LARGE, /* len > max */
    CHAT_TEXT_BAD_UTF8,  /* not valid UTF-8 */
    CHAT_TEXT_CONTROL,   /* a control character other than \n and \t:
                            C0, DEL, or C1 (U+0080..U+009F) */
};

/* Checks text of a message against max bytes. */
enum chat_text_check chat_valid_text(const char *s, size_t len, size_t max);

#endif
