/* chat_addr: the address parser and the per-address group (see
 * chat_addr.h). */
#define _GNU_SOURCE
#include "chat_addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int chat_addr_parse(const char *s, int *family, unsigned char net[16], int *bits)
{
    char host[CHAT_ADDR_MAX + 1];
    const char *slash;
    size_t hl;
    long b = -1;

    if (s == NULL || *s == '\0')
        return -1;
    slash = strchr(s, '/');
    hl = slash ? (size_t)(slash - s) : strlen(s);
    if (hl == 0 || hl > CHAT_ADDR_MAX)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (slash) {
        char *end;
        b = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end != '\0' || b < 0 || b > 128)
            return -1;
    }
    memset(net, 0, 16);
    if (inet_pton(AF_INET, host, net) == 1) {
        if (b > 32)
            return -1;
        *family = 4;
        *bits = b < 0 ? 32 : (int)b;
        return 0;
    }
    if (inet_pton(AF_INET6, host, net) != 1)
        return -1;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(net, mapped, 12) == 0 && (b < 0 || b >= 96)) {
        memmove(net, net + 12, 4);
        memset(net + 4, 0, 12);
        *family = 4;
        *bits = b < 0 ? 32 : (int)b - 96;
        return 0;
    }
    *family = 6;
    *bits = b < 0 ? 128 : (int)b;
    return 0;
}

void chat_addr_group(const char *addr, char out[CHAT_ADDR_MAX + 1])
{
    unsigned char net[16];
    char text[INET6_ADDRSTRLEN];
    int family, bits;

    out[0] = '\0';
    if (addr == NULL)
        return;
    /* an address alone: "a/bits" is a network, not a client */
    if (strchr(addr, '/') != NULL || chat_addr_parse(addr, &family, net, &bits) < 0) {
        snprintf(out, CHAT_ADDR_MAX + 1, "%s", addr);
        return;
    }
    if (family == 4) {
        inet_ntop(AF_INET, net, text, sizeof(text));
        snprintf(out, CHAT_ADDR_MAX + 1, "%s", text);
        return;
    }
    memset(net + CHAT_ADDR_V6_BITS / 8, 0, 16 - CHAT_ADDR_V6_BITS / 8);
    inet_ntop(AF_INET6, net, text, sizeof(text));
    snprintf(out, CHAT_ADDR_MAX + 1, "%s/%d", text, CHAT_ADDR_V6_BITS);
}
