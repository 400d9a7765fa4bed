/* chat_origin: may a page of this Origin make requests that act for the
 * user (join, send, type)? The rule of docs/protocol.md ("Cross-site
 * requests"): the origin is one of $chat_origins' entries, or it is the
 * site itself: the same scheme, host and port as nginx says the request
 * came to ($scheme and $http_host; a port left out is the scheme's
 * default). "null" and anything unparsable never are. Pure: no I/O. */
#ifndef CHAT_ORIGIN_H
#define CHAT_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/* origin[0..olen): the Origin header; scheme: "http" or "https" (may be
 * NULL or "": any); host: "host[:port]" (NULL or "": no site match);
 * allowed: space-separated origins (may be NULL). */
bool chat_origin_allowed(const char *origin, size_t olen, const char *scheme, const char *host,
                         const char *allowed);

#endif
