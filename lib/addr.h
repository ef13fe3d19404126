/* addr.h -- internal: parse and format libsockkit address strings. */
#ifndef SK_ADDR_H
#define SK_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "sockkit.h"

/* Longest text sk__addr_format can produce, with its NUL: "unix:" plus a
 * full sun_path (108 bytes, possibly with '@' for abstract) fits in 128. */
#define SK__ADDR_TEXT_MAX SK_ADDRSTRLEN

/* A parsed address, ready for bind() or connect(). */
typedef struct sk_addr {
  struct sockaddr_storage ss; /* AF_INET, AF_INET6 or AF_UNIX */
  socklen_t len;              /* the length to pass to bind()/connect() */
  bool wildcard;              /* port-only form: IPv6 any, dual-stack; the
                                 caller falls back to IPv4 any without IPv6 */
} sk_addr;

/* Parse one of the forms "1.2.3.4:port", "[v6]:port", ":port", "port",
 * "unix:/path" and "unix:@abstract". Returns 0 or SK_EADDR. Pure: no DNS,
 * no system calls. A port-only form yields AF_INET6 in6addr_any with
 * wildcard set. */
int sk__addr_parse(sk_addr *out, const char *text);

/* Format a socket address as text in the same forms (IPv4-mapped IPv6 is
 * shown as IPv4; an unnamed UNIX address as "unix:"). Returns 0, or SK_EINVAL
 * if the family is unknown or buf is too small. Thread-safe. */
int sk__addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/* True if `text` has the "unix:" prefix of a UNIX address (which may still
 * be malformed after it). */
bool sk__addr_is_unix_text(const char *text);

/* The port of an IP address in host order; 0 for UNIX addresses. */
int sk__addr_port(const struct sockaddr *sa);

#endif
