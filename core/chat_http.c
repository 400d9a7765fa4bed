/* chat_http: small HTTP pieces both front doors share: query strings and
 * reason phrases (see chat_http.h). */
#include "chat_http.h"

#include <string.h>

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int chat_query_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t i = 0, n = 0;

    if (cap == 0)
        return CHAT_QUERY_BAD;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                return CHAT_QUERY_BAD;
            hi = hex_value((unsigned char)in[i + 1]);
            lo = hex_value((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return CHAT_QUERY_BAD;
            c = (unsigned char)(hi << 4 | lo);
            i += 3;
        } else {
            if (c == '+')
                c = ' ';
            i++;
        }
        if (c == '\0' || n + 1 >= cap)
            return CHAT_QUERY_BAD;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return (int)n;
}

int chat_query_get(const char *qs, size_t len, const char *name, char *out, size_t cap)
{
    size_t pos = 0, want = strlen(name);
    char key[64];

    while (pos < len) {
        const char *pair = qs + pos;
        const char *amp = memchr(pair, '&', len - pos);
        size_t plen = amp ? (size_t)(amp - pair) : len - pos;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;

        pos += plen + (amp ? 1 : 0);
        if (klen == 0)
            continue;
        if (klen < want || klen > 3 * want || want >= sizeof(key))
            continue; /* cannot decode to name: skipped unparsed */
        int k = chat_query_decode(pair, klen, key, sizeof(key));
        if (k == CHAT_QUERY_BAD)
            return CHAT_QUERY_BAD;
        if ((size_t)k != want || memcmp(key, name, want) != 0)
            continue;
        if (!eq) {
            if (cap == 0)
                return CHAT_QUERY_BAD;
            out[0] = '\0';
            return 0;
        }
        return chat_query_decode(eq + 1, plen - klen - 1, out, cap);
    }
    return CHAT_QUERY_ABSENT;
}

int chat_query_int(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t v = 0;

    if (len > 0 && s[0] == '-' && min < 0) {
        neg = 1;
        i = 1;
    }
    if (i == len || len - i > 19)
        return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    int64_t x = neg ? -(int64_t)v : (int64_t)v;
    if (x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

const char *chat_http_reason(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 303:
        return "See Other";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}
