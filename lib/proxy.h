/* proxy.h -- internal: pure decoder of the PROXY protocol header (v1 and v2).
 *
 * The reference is HAProxy's doc/proxy-protocol.txt. A server configured
 * for the protocol must never guess whether a header is there, so the
 * decoder refuses as soon as the bytes received cannot begin an allowed
 * header, rather than waiting for more. */
#ifndef SK_PROXY_H
#define SK_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sockkit.h"

/* Versions a server accepts: a bit set of these. */
#define SK__PROXY_V1 1
#define SK__PROXY_V2 2

/* The longest v1 line, CRLF included (the spec's worst case, UNKNOWN with
 * two full IPv6 addresses and ports), and the longest v2 header we accept
 * (the spec sets no bound below 16 + 65535; 4 KiB is ample for addresses
 * and the TLVs proxies send). */
#define SK__PROXY_V1_MAX 107
#define SK__PROXY_V2_MAX 4096
/* The spec's bound on the value of PP2_TYPE_UNIQUE_ID. */
#define SK__PROXY_UNIQUE_ID_MAX 128

/* A decoded header. Addresses are as accept() would report them. */
typedef struct sk_proxy_header {
  int version; /* 1 or 2 */
  bool local;  /* v2 LOCAL, v2 UNSPEC or v1 UNKNOWN: keep the connection's real addresses */
  int family;  /* AF_UNSPEC (local), AF_INET, AF_INET6 or AF_UNIX */
  struct sockaddr_storage src, dst; /* all zero when local */
  socklen_t src_len, dst_len;       /* 0 when local */
  size_t length; /* bytes of the whole header: the first message is at buf + length */
  /* v2 TLVs kept for later: where the value starts in buf (0 when absent;
   * a value present, even empty, starts at 19 or later) and its length. */
  size_t unique_id_at, unique_id_len; /* PP2_TYPE_UNIQUE_ID, at most 128 bytes */
  size_t authority_at, authority_len; /* PP2_TYPE_AUTHORITY */
  size_t crc32c_at;                   /* PP2_TYPE_CRC32C's 4 bytes, verified */
} sk_proxy_header;

/* CRC32C (Castagnoli) of buf[0, len), as PP2_TYPE_CRC32C carries it. */
uint32_t sk__crc32c(const void *buf, size_t len);

/* Decode the PROXY header at the front of buf[0, len), accepting the
 * versions in `allow` (SK__PROXY_V1 | SK__PROXY_V2, at least one).
 * Returns 1 when a whole valid header was found (*out filled), 0 when the
 * bytes so far are a valid beginning of an allowed header and more are
 * needed, SK_EPROTO when they cannot begin one (or begin a version not
 * allowed), SK_EMSGSIZE when a v2 header announces more than
 * SK__PROXY_V2_MAX bytes. The result is the same however the header is
 * split across reads; bytes after it are never looked at.
 * v1: "PROXY TCP4 ", "PROXY TCP6 " or "PROXY UNKNOWN", strictly as the spec
 * says (single spaces, no leading zeros, IPv6 as inet_pton reads it, the
 * family matching TCP4/TCP6), then CRLF. A line with no CRLF within
 * SK__PROXY_V1_MAX bytes is SK_EPROTO: the spec calls it invalid. After
 * UNKNOWN comes a space or the CRLF; the rest of the line is ignored but
 * may hold no lone CR or LF.
 * v2: the signature, version 2, command LOCAL or PROXY, family UNSPEC,
 * TCP over IPv4 or IPv6, or UNIX stream (DGRAM families are SK_EPROTO: our
 * servers are stream servers; so is an unknown family, with either
 * command), the address block within the announced length, then TLVs,
 * each within it. A UNIQUE_ID longer than 128 bytes, or a second
 * UNIQUE_ID or AUTHORITY, is SK_EPROTO; so is a CRC32C that is not 4
 * bytes, a second one, or one that does not match the header's checksum
 * (computed with its own value as zero, as the spec says; it is checked
 * once the whole header is there). Other types are skipped unread (NOOP,
 * ALPN, SSL and its sub-TLVs, custom ones). LOCAL and
 * UNSPEC give local (no addresses); their TLVs are still walked.
 * A UNIX address, 108 bytes that need not hold a NUL, is copied whole into
 * sun_path; its length is the kernel's for a path (up to and with its NUL),
 * for an abstract name (leading NUL) the bytes up to the last non-NUL one,
 * and just the family for an unnamed one (all NUL).
 * Pure: reads only buf[0, len), writes only *out (and only on 1); no
 * allocation; O(min(len, SK__PROXY_V2_MAX)). */
int sk__proxy_decode(const char *buf, size_t len, int allow, sk_proxy_header *out);

#endif
