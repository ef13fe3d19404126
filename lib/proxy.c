/* proxy.c -- the PROXY protocol header decoder: v1 text line, v2 binary block. */
#include "proxy.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

/* ---- v1: "PROXY TCP4 src dst sport dport\r\n" ------------------------------ */

/* A v1 token checker: 0 if s[0, n) is a valid token (whole) or can still
 * become one (!whole: its end has not arrived), else SK_EPROTO. Checking
 * prefixes is what lets a bad line be refused before its CRLF arrives. */
typedef int (*token_check)(const char *s, size_t n, bool whole);

/* More bytes could complete the line, unless the spec's bound is reached:
 * a receiver must not wait beyond 107 bytes for the CRLF. */
static int more(size_t len) {
  return len >= SK__PROXY_V1_MAX ? SK_EPROTO : 0;
}

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

static bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* buf[at, n) against the literal `lit`: 1 when all of it is there, 0 when
 * the bytes there begin it, SK_EPROTO when they differ. */
static int literal(const char *buf, size_t n, size_t at, const char *lit) {
  assert(at <= n);
  size_t want = strlen(lit), have = n - at < want ? n - at : want;
  if (memcmp(buf + at, lit, have) != 0)
    return SK_EPROTO;
  return have == want;
}

/* A dotted quad: exactly four decimal numbers 0-255 without leading zeros
 * (the spec's rule, which glibc's inet_pton also applies). */
static int check_ipv4(const char *s, size_t n, bool whole) {
  size_t octets = 0, digits = 0;
  unsigned value = 0;
  for (size_t i = 0; i < n; i++) {
    if (is_digit(s[i])) {
      if (digits > 0 && value == 0)
        return SK_EPROTO; /* a leading zero */
      value = value * 10 + (unsigned)(s[i] - '0');
      if (value > 255)
        return SK_EPROTO;
      if (digits++ == 0)
        octets++;
    } else if (s[i] == '.' && digits > 0 && octets < 4) {
      digits = 0;
      value = 0;
    } else {
      return SK_EPROTO;
    }
  }
  return whole && (octets < 4 || digits == 0) ? SK_EPROTO : 0;
}

/* An IPv6 address in the grammar of glibc's inet_pton6, which this follows
 * step by step so that a prefix is refused exactly when no completion of it
 * would parse: groups of 1-4 hex digits, at most one "::" standing for at
 * least one zero group, and an IPv4 tail in place of the last two groups. */
static int check_ipv6(const char *s, size_t n, bool whole) {
  size_t i = 0, groups = 0, digits = 0;
  bool gap = false;  /* "::" seen */
  bool open = false; /* the last ':' closed a group, so another must follow */
  if (n > 0 && s[0] == ':') {
    if (n > 1 && s[1] != ':')
      return SK_EPROTO; /* a lone leading ':' */
    i = 1;              /* the second ':' opens the gap below */
  }
  for (; i < n; i++) {
    if (is_hex(s[i])) {
      if (digits == 4)
        return SK_EPROTO;
      digits++;
      open = false;
    } else if (s[i] == ':' && digits == 0) {
      if (gap)
        return SK_EPROTO; /* a second "::", or ":::" */
      gap = true;
      open = false;
    } else if (s[i] == ':') {
      if (groups == 8)
        return SK_EPROTO;
      groups++;
      digits = 0;
      open = true;
    } else if (s[i] == '.') {
      /* The tail is the dotted quad from the last group on; it fills two
       * groups, and a gap must still stand for one at least. */
      if (gap ? groups > 5 : groups != 6)
        return SK_EPROTO;
      return check_ipv4(s + i - digits, n - i + digits, whole);
    } else {
      return SK_EPROTO;
    }
  }
  size_t need = groups + (digits > 0 || open);
  if (whole)
    return !open && (gap ? need < 8 : need == 8) ? 0 : SK_EPROTO;
  return need <= (gap ? 7 : 8) ? 0 : SK_EPROTO;
}

/* A decimal port 0-65535 without leading zeros. */
static int check_port(const char *s, size_t n, bool whole) {
  if (n > 5 || (whole && n == 0) || (n > 1 && s[0] == '0'))
    return SK_EPROTO;
  unsigned value = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i]))
      return SK_EPROTO;
    value = value * 10 + (unsigned)(s[i] - '0');
  }
  return value > 65535 ? SK_EPROTO : 0;
}

/* The field at buf[*at, n), ended by `end` (' ' or '\r'): 1 with *at past
 * its end, 0 when n comes first and the field is valid so far, SK_EPROTO. */
static int field(const char *buf, size_t n, size_t *at, char end, token_check check) {
  size_t i = *at;
  while (i < n && buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n')
    i++;
  bool whole = i < n;
  if (whole && buf[i] != end)
    return SK_EPROTO;
  int rc = check(buf + *at, i - *at, whole); /* an empty field fails here */
  if (rc < 0 || !whole)
    return rc;
  *at = i + 1;
  return 1;
}

/* Fill a sockaddr from a checked address and port. inet_pton has the last
 * word: a C library stricter than the checker above makes it SK_EPROTO. */
static int ip_address(int family, const char *text, size_t n, const char *port, size_t port_len,
                      struct sockaddr_storage *ss, socklen_t *ss_len) {
  char host[INET6_ADDRSTRLEN];
  if (n >= sizeof host)
    return SK_EPROTO;
  memcpy(host, text, n);
  host[n] = '\0';
  uint16_t value = 0;
  for (size_t i = 0; i < port_len; i++)
    value = (uint16_t)(value * 10 + (port[i] - '0'));
  if (family == AF_INET) {
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(value)};
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
      return SK_EPROTO;
    memcpy(ss, &sin, sizeof sin);
    *ss_len = sizeof sin;
  } else {
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(value)};
    if (inet_pton(AF_INET6, host, &sin6.sin6_addr) != 1)
      return SK_EPROTO;
    memcpy(ss, &sin6, sizeof sin6);
    *ss_len = sizeof sin6;
  }
  return 0;
}

/* "TCP4 " or "TCP6 " has been read; the four fields start at buf[at]. */
static int v1_tcp(const char *buf, size_t len, size_t n, size_t at, int family,
                  sk_proxy_header *out) {
  token_check address = family == AF_INET ? check_ipv4 : check_ipv6;
  const token_check checks[4] = {address, address, check_port, check_port};
  size_t start[4], size[4];
  for (int f = 0; f < 4; f++) {
    start[f] = at;
    int rc = field(buf, n, &at, f < 3 ? ' ' : '\r', checks[f]);
    if (rc != 1)
      return rc < 0 ? rc : more(len);
    size[f] = at - 1 - start[f];
  }
  if (at == n)
    return more(len);
  if (buf[at] != '\n')
    return SK_EPROTO;

  sk_proxy_header h;
  memset(&h, 0, sizeof h);
  if (ip_address(family, buf + start[0], size[0], buf + start[2], size[2], &h.src, &h.src_len) <
          0 ||
      ip_address(family, buf + start[1], size[1], buf + start[3], size[3], &h.dst, &h.dst_len) < 0)
    return SK_EPROTO;
  h.version = 1;
  h.family = family;
  h.length = at + 1;
  *out = h;
  return 1;
}

/* "UNKNOWN" has been read: a space or the CRLF must follow; the rest of the
 * line is ignored, but a lone CR or LF ends no line. */
static int v1_unknown(const char *buf, size_t len, size_t n, size_t at, sk_proxy_header *out) {
  if (at < n && buf[at] != ' ' && buf[at] != '\r')
    return SK_EPROTO;
  for (size_t i = at; i < n; i++) {
    if (buf[i] == '\n')
      return SK_EPROTO;
    if (buf[i] != '\r')
      continue;
    if (i + 1 == n)
      return more(len);
    if (buf[i + 1] != '\n')
      return SK_EPROTO;
    memset(out, 0, sizeof *out);
    out->version = 1;
    out->local = true;
    out->family = AF_UNSPEC;
    out->length = i + 2;
    return 1;
  }
  return more(len);
}

static int v1_decode(const char *buf, size_t len, sk_proxy_header *out) {
  /* Nothing past the bound can belong to a valid line. */
  size_t n = len < SK__PROXY_V1_MAX ? len : SK__PROXY_V1_MAX;
  int rc = literal(buf, n, 0, "PROXY ");
  if (rc != 1)
    return rc;
  size_t at = sizeof "PROXY " - 1;
  int tcp4 = literal(buf, n, at, "TCP4 ");
  int tcp6 = literal(buf, n, at, "TCP6 ");
  int unknown = literal(buf, n, at, "UNKNOWN");
  if (tcp4 == 1 || tcp6 == 1)
    return v1_tcp(buf, len, n, at + 5, tcp4 == 1 ? AF_INET : AF_INET6, out);
  if (unknown == 1)
    return v1_unknown(buf, len, n, at + 7, out);
  return tcp4 == 0 || tcp6 == 0 || unknown == 0 ? 0 : SK_EPROTO;
}

/* ---- v2: signature, version/command, family, length, addresses, TLVs ---- */

static const unsigned char signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                            0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

enum { TLV_AUTHORITY = 0x02, TLV_CRC32C = 0x03, TLV_UNIQUE_ID = 0x05 };

/* CRC32C (Castagnoli, reflected), four bits at a time: PP2_TYPE_CRC32C's
 * checksum. A header is at most 4 KiB, so a small table is fast enough. */
static const uint32_t crc32c_nibble[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
    0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9, 0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

static uint32_t crc32c_update(uint32_t crc, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    crc = (crc >> 4) ^ crc32c_nibble[crc & 15];
    crc = (crc >> 4) ^ crc32c_nibble[crc & 15];
  }
  return crc;
}

uint32_t sk__crc32c(const void *buf, size_t len) {
  return ~crc32c_update(~UINT32_C(0), buf, len);
}

/* The spec's check: the CRC32C of the whole header with the checksum's
 * own four bytes (at `at`) taken as zero equals their value, in network
 * order. */
static bool crc32c_matches(const unsigned char *b, size_t total, size_t at) {
  static const unsigned char zero[4];
  uint32_t crc = crc32c_update(~UINT32_C(0), b, at);
  crc = crc32c_update(crc, zero, 4);
  crc = ~crc32c_update(crc, b + at + 4, total - at - 4);
  uint32_t want =
      (uint32_t)b[at] << 24 | (uint32_t)b[at + 1] << 16 | (uint32_t)b[at + 2] << 8 | b[at + 3];
  return crc == want;
}

/* Bytes of the address block for the family/transport byte, or -1 for one
 * we refuse: the DGRAM ones (0x12, 0x22, 0x32), since our servers are
 * stream servers, and every value the spec leaves unassigned. */
static int block_size(unsigned char fam) {
  switch (fam) {
  case 0x00:
    return 0; /* UNSPEC: no addresses; TLVs, if any, follow at once */
  case 0x11:
    return 12;
  case 0x21:
    return 36;
  case 0x31:
    return 216;
  default:
    return -1;
  }
}

/* Walk the TLVs in b[at, end), of which b[0, have) has arrived: 1 when all
 * arrived, 0 when more are needed, SK_EPROTO as soon as a TLV's header
 * shows it cannot fit. Positions of the ones we keep go into *h. */
static int walk_tlvs(const unsigned char *b, size_t have, size_t at, size_t end,
                     sk_proxy_header *h) {
  assert(at <= end && end <= SK__PROXY_V2_MAX && have <= end);
  while (at < end) {
    if (end - at < 3)
      return SK_EPROTO; /* a TLV header cut by the end of the block */
    if (have < at + 3)
      return 0;
    size_t value = at + 3, vlen = (size_t)b[at + 1] << 8 | b[at + 2];
    if (vlen > end - value)
      return SK_EPROTO;
    /* A second copy is refused: which one a reader would pick is not
     * something two readers can be trusted to agree on. */
    if (b[at] == TLV_UNIQUE_ID) {
      if (vlen > SK__PROXY_UNIQUE_ID_MAX || h->unique_id_at != 0)
        return SK_EPROTO;
      h->unique_id_at = value;
      h->unique_id_len = vlen;
    } else if (b[at] == TLV_AUTHORITY) {
      if (h->authority_at != 0)
        return SK_EPROTO;
      h->authority_at = value;
      h->authority_len = vlen;
    } else if (b[at] == TLV_CRC32C) {
      if (vlen != 4 || h->crc32c_at != 0)
        return SK_EPROTO; /* the spec's value is 32 bits; a second is refused as above */
      h->crc32c_at = value;
    }
    at = value + vlen;
  }
  return have == end;
}

/* 108 bytes of sun_path that need not end in a NUL, with the length the
 * kernel would report for the address. */
static void unix_address(const unsigned char *p, struct sockaddr_storage *ss, socklen_t *ss_len) {
  struct sockaddr_un sun;
  _Static_assert(sizeof sun.sun_path == 108, "the spec's UNIX address is 108 bytes");
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, p, sizeof sun.sun_path);
  size_t n;
  if (p[0] != 0) { /* a path, with its NUL when there is room for one */
    n = strnlen(sun.sun_path, sizeof sun.sun_path);
    n += n < sizeof sun.sun_path;
  } else { /* abstract, or unnamed (n = 0) */
    n = sizeof sun.sun_path;
    while (n > 0 && p[n - 1] == 0)
      n--;
  }
  memcpy(ss, &sun, sizeof sun);
  *ss_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

/* Addresses and ports arrive in network order, as sockaddrs hold them. */
static void v2_addresses(const unsigned char *a, unsigned char fam, sk_proxy_header *h) {
  if (fam == 0x11) {
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    memcpy(&src.sin_addr, a, 4);
    memcpy(&dst.sin_addr, a + 4, 4);
    memcpy(&src.sin_port, a + 8, 2);
    memcpy(&dst.sin_port, a + 10, 2);
    memcpy(&h->src, &src, sizeof src);
    memcpy(&h->dst, &dst, sizeof dst);
    h->src_len = h->dst_len = sizeof src;
    h->family = AF_INET;
  } else if (fam == 0x21) {
    struct sockaddr_in6 src = {.sin6_family = AF_INET6}, dst = {.sin6_family = AF_INET6};
    memcpy(&src.sin6_addr, a, 16);
    memcpy(&dst.sin6_addr, a + 16, 16);
    memcpy(&src.sin6_port, a + 32, 2);
    memcpy(&dst.sin6_port, a + 34, 2);
    memcpy(&h->src, &src, sizeof src);
    memcpy(&h->dst, &dst, sizeof dst);
    h->src_len = h->dst_len = sizeof src;
    h->family = AF_INET6;
  } else {
    assert(fam == 0x31);
    unix_address(a, &h->src, &h->src_len);
    unix_address(a + 108, &h->dst, &h->dst_len);
    h->family = AF_UNIX;
  }
}

/* Each byte is checked as soon as it arrives, in the order they come. */
static int v2_decode(const unsigned char *b, size_t len, sk_proxy_header *out) {
  if (memcmp(b, signature, len < 12 ? len : 12) != 0)
    return SK_EPROTO;
  if (len > 12 && (b[12] >> 4 != 2 || (b[12] & 0x0f) > 1))
    return SK_EPROTO; /* version 2 only; command LOCAL (0) or PROXY (1) */
  int block = len > 13 ? block_size(b[13]) : 0;
  if (block < 0)
    return SK_EPROTO;
  if (len < 16)
    return 0;
  size_t total = 16 + ((size_t)b[14] << 8 | b[15]);
  if (total > SK__PROXY_V2_MAX)
    return SK_EMSGSIZE;
  if (total - 16 < (size_t)block)
    return SK_EPROTO;

  sk_proxy_header h;
  memset(&h, 0, sizeof h);
  int rc = walk_tlvs(b, len < total ? len : total, 16 + (size_t)block, total, &h);
  if (rc != 1)
    return rc;
  /* A checksum present must be verified (the spec's MUST). */
  if (h.crc32c_at && !crc32c_matches(b, total, h.crc32c_at))
    return SK_EPROTO;
  h.version = 2;
  h.length = total;
  /* LOCAL: the proxy's own connection. UNSPEC: the spec says to ignore any
   * address information, so both keep the connection's real addresses. */
  h.local = (b[12] & 0x0f) == 0 || b[13] == 0x00;
  h.family = AF_UNSPEC;
  if (!h.local)
    v2_addresses(b + 16, b[13], &h);
  *out = h;
  return 1;
}

int sk__proxy_decode(const char *buf, size_t len, int allow, sk_proxy_header *out) {
  assert(out != NULL);
  assert(allow != 0 && (allow & ~(SK__PROXY_V1 | SK__PROXY_V2)) == 0);
  if (len == 0)
    return 0;
  assert(buf != NULL);
  /* The first byte tells the versions apart: 'P' of "PROXY", CR of the
   * v2 signature. Anything else cannot begin a header: refuse it at once. */
  if (buf[0] == 'P' && (allow & SK__PROXY_V1))
    return v1_decode(buf, len, out);
  if (buf[0] == '\r' && (allow & SK__PROXY_V2))
    return v2_decode((const unsigned char *)buf, len, out);
  return SK_EPROTO;
}
