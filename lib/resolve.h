/* resolve.h -- internal: turn a client's address string into the socket
 * addresses to try, looking host names up with getaddrinfo. */
#ifndef SK_RESOLVE_H
#define SK_RESOLVE_H

#include <stddef.h>

#include "addr.h"

/* Addresses kept from one lookup; a name with more is rare, and trying
 * dozens of addresses one after another would not help anyway. */
#define SK_RESOLVE_MAX 16

/* The addresses a client tries, in the resolver's order of preference. */
typedef struct sk_addr_list {
  size_t count;
  sk_addr items[SK_RESOLVE_MAX];
} sk_addr_list;

/* Check the form of a client address without looking anything up:
 * "host:port", "[v6]:port", "1.2.3.4:port", ":port" or "port" (this
 * machine), "unix:/path" or "unix:@abstract". Port 0 is refused: there is
 * nothing to connect to. Returns 0 or SK_EADDR. */
int sk__resolve_check(const char *address);

/* Resolve `address` for sockets of `socktype` (SOCK_STREAM, SOCK_DGRAM).
 * Returns 0 with at least one address; SK_EADDR for a malformed address or
 * a name that does not exist; SK_ECONNECT when the lookup failed for now
 * (EAI_AGAIN: no answer from the name server), worth trying again;
 * SK_ENOMEM. A failed lookup is logged at SK_LOG_INFO. */
int sk__resolve(const char *address, int socktype, sk_addr_list *out);

#endif
