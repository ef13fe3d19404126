/* cidr.h -- internal: lists of trusted networks ("10.0.0.0/8 ::1 unix"),
 * parsed once and matched against socket addresses. Pure. */
#ifndef SK_CIDR_H
#define SK_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One network: an address with the bits past `prefix` cleared, or every
 * UNIX peer. */
typedef struct sk_cidr {
  int family;     /* AF_INET, AF_INET6 or AF_UNIX */
  uint8_t prefix; /* 0..32 or 0..128; unused for AF_UNIX */
  uint8_t addr[16];
} sk_cidr;

/* The longest entry: an IPv6 address in its longest text form (45) with
 * "/128". Longer entries are refused. */
#define SK__CIDR_TEXT_MAX 63

/* Parse a list of entries separated by spaces, tabs or commas: IPv4 or
 * IPv6 addresses with an optional "/prefix" (decimal, no sign, no leading
 * zero; an address alone is a host) and the word "unix". Host bits past
 * the prefix are cleared. On success *out (malloc'd, to free) and *count
 * receive the list. SK_EADDR for a malformed entry (*bad and *bad_len say
 * which; for a list with no entry, *bad_len is 0) or SK_ENOMEM. */
int sk__cidr_parse(const char *text, sk_cidr **out, size_t *count, const char **bad,
                   size_t *bad_len);

/* True if the address is in one of the networks. An IPv4-mapped IPv6
 * address (a dual-stack listener's IPv4 client) matches IPv4 entries as
 * its IPv4 address, and IPv6 entries as itself. */
bool sk__cidr_match(const sk_cidr *list, size_t count, const struct sockaddr *sa, socklen_t len);

#endif
