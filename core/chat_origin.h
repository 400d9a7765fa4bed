/* chat_origin: may a page of this Origin act for the user (open a
 * WebSocket, join, send, type)? One rule for both daemons
 * (docs/nginx.md, "Origin"): the origin is one of $chat_origins' entries;
 * or it is the site itself: the same scheme as nginx says the request
 * came by ($chat_scheme), the same host and port as the request's Host (a
 * port left out is the scheme's default), and that Host is a name of this
 * server ($server_name, exactly or as a "*.example.org" / ".example.org"
 * wildcard) or its own address ($server_addr): a name the admin never
 * configured is what a DNS rebinding attack brings. "null" and anything
 * unparsable never pass. Pure: no I/O. */
#ifndef CHAT_ORIGIN_H
#define CHAT_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/* What nginx says about the site, as (pointer, length) pairs; a NULL
 * pointer is "not given". Without a scheme (the daemon reached without
 * nginx's parameters) the host and port alone decide. */
struct chat_site {
    const char *scheme; /* $chat_scheme: "http" or "https" */
    size_t scheme_len;
    const char *host; /* the request's Host: "host[:port]" */
    size_t host_len;
    const char *server_name; /* $server_name */
    size_t server_name_len;
    const char *server_addr; /* $server_addr */
    size_t server_addr_len;
    const char *allowed; /* $chat_origins: space-separated origins */
    size_t allowed_len;
};

bool chat_origin_allowed(const char *origin, size_t olen, const struct chat_site *site);

#endif
