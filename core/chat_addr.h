/* chat_addr: client addresses as nginx writes them ($remote_addr), the one
 * place that says what an address is: its parser (bans match networks of
 * it) and the group an address counts under for every per-address bound of
 * both daemons (typing, rate buckets, parked polls, presence entries,
 * WebSocket connections). An IPv6 host is given a whole /64 and can pick a
 * new address in it for each request, so a bound keyed by the raw text
 * would bound nothing: every bound keys by chat_addr_group. */
#ifndef CHAT_ADDR_H
#define CHAT_ADDR_H

#define CHAT_ADDR_MAX 63     /* bytes of an address as nginx writes it */
#define CHAT_ADDR_V6_BITS 64 /* an IPv6 address counts by this prefix */

/* Parses an address ("192.0.2.7", "::ffff:192.0.2.7", "2001:db8::1", with
 * an optional "/bits") into family, 16 bytes and bits. 0, or -1. */
int chat_addr_parse(const char *s, int *family, unsigned char net[16], int *bits);

/* The group addr (may be NULL) counts under, in out: an IPv4 address whole
 * ("192.0.2.7"), an IPv4-mapped IPv6 one as its IPv4 ("::ffff:192.0.2.7"
 * is "192.0.2.7"), another IPv6 address as its /64 in canonical text
 * ("2001:db8:0:1:aa::5" is "2001:db8:0:1::/64"), anything else (a unix
 * socket's "", text that is no address) as given, cut to CHAT_ADDR_MAX
 * bytes. Two spellings of one address give the same group. */
void chat_addr_group(const char *addr, char out[CHAT_ADDR_MAX + 1]);

#endif
