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

/* The UNIX part of sk__addr_parse: `path` is what follows "unix:", a path
 * or "@name" for an abstract socket. Returns 0 or SK_EADDR (empty, or too
 * long for sun_path); *out must be zeroed. */
int sk__addr_parse_unix(sk_addr *out, const char *path);

/* Format a socket address as text in the same forms (IPv4-mapped IPv6 is
 * shown as IPv4; an unnamed UNIX address as "unix:"). Returns 0, or SK_EINVAL
 * if the family is unknown or buf is too small. Thread-safe. */
int sk__addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/* True if `text` has the "unix:" prefix of a UNIX address (which may still
 * be malformed after it). */
bool sk__addr_is_unix_text(const char *text);

/* The port of an IP address in host order; 0 for UNIX addresses. */
int sk__addr_port(const struct sockaddr *sa);

/* The longest NAME of "systemd:NAME", as systemd limits LISTEN_FDNAMES. */
#define SK__ADOPT_NAME_MAX 255

/* A socket a server takes over instead of binding one (activate.c finds
 * and checks it at listen): "fd:N", or "systemd" / "systemd:NAME". */
typedef struct sk_adopt {
  enum { SK_ADOPT_NONE, SK_ADOPT_FD, SK_ADOPT_SYSTEMD } kind;
  int fd;                            /* SK_ADOPT_FD: N */
  char name[SK__ADOPT_NAME_MAX + 1]; /* SK_ADOPT_SYSTEMD: NAME, "" for the first */
} sk_adopt;

/* True if `text` has the "fd:" prefix, or is "systemd" or has the
 * "systemd:" prefix: a socket to adopt (the rest may still be malformed). */
bool sk__addr_is_adopt_text(const char *text);

/* Parse "fd:N" (N from 0 to INT_MAX, decimal digits only), "systemd" and
 * "systemd:NAME" (1 to 255 printable ASCII characters, no ':'). Syntax
 * only: whether the socket exists is for listen to find out. Returns 0 or
 * SK_EADDR (*out zeroed). Pure. */
int sk__addr_parse_adopt(sk_adopt *out, const char *text);

#endif
