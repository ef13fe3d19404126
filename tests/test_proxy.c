/* test_proxy.c -- the PROXY protocol decoder: the spec's v1 lines and v2
 * blocks, every split point, where each malformed header is refused, and
 * over-read detection with each input against an unmapped page. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include "proxy.h"
#include "proxy_equal.h"
#include "sockkit.h"
#include "support.h"

#define BOTH (SK__PROXY_V1 | SK__PROXY_V2)
#define UNIX_OFF offsetof(struct sockaddr_un, sun_path)

/* ---- helpers ------------------------------------------------------------- */

/* Two readable pages followed by an unmapped one: every input is decoded
 * from a copy that ends right at the unmapped page, so reading one byte
 * past it crashes the test. */
static char *guard_end;
static size_t guard_room;

static int decode(const void *in, size_t n, int allow, sk_proxy_header *h) {
  if (guard_end == NULL) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(mprotect(map + 2 * page, page, PROT_NONE), 0);
    guard_end = map + 2 * page;
    guard_room = 2 * page;
  }
  ck_assert_uint_le(n, guard_room);
  char *buf = guard_end - n;
  if (n > 0)
    memcpy(buf, in, n);
  return sk__proxy_decode(n > 0 ? buf : NULL, n, allow, h);
}

/* in[0, n) starts with a valid header of `want` bytes: every shorter prefix
 * needs more, and the header alone or with what follows decodes the same. */
static sk_proxy_header accepted(const void *in, size_t n, int allow, size_t want) {
  sk_proxy_header h, alone;
  ck_assert_uint_le(want, n);
  for (size_t k = 0; k < want; k++)
    ck_assert_msg(decode(in, k, allow, &h) == 0, "prefix of %zu bytes not 0", k);
  ck_assert_int_eq(decode(in, want, allow, &alone), 1);
  ck_assert_uint_eq(alone.length, want);
  memset(&h, 0xa5, sizeof h);
  ck_assert_int_eq(decode(in, n, allow, &h), 1);
  ck_assert(sk_test_same_header(&h, &alone));
  return h;
}

/* The number of bytes at which in[0, n) is refused (prefixes before it
 * need more, it and every longer prefix give the same error), which the
 * caller compares with where the spec says it goes wrong. */
static size_t refused_at(const void *in, size_t n, int allow, int want_rc) {
  sk_proxy_header h;
  size_t at = 0;
  while (at <= n && decode(in, at, allow, &h) == 0)
    at++;
  ck_assert_msg(at <= n, "never refused");
  for (size_t k = at; k <= n; k++)
    ck_assert_msg(decode(in, k, allow, &h) == want_rc, "prefix of %zu bytes: not %d", k, want_rc);
  return at;
}

#define REFUSED_AT(s, allow, rc) refused_at((s), sizeof(s) - 1, (allow), (rc))

static void assert_in4(const struct sockaddr_storage *ss, socklen_t len, const char *ip,
                       unsigned port) {
  struct sockaddr_in sin, want = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  ck_assert_int_eq(inet_pton(AF_INET, ip, &want.sin_addr), 1);
  ck_assert_uint_eq(len, sizeof sin);
  memcpy(&sin, ss, sizeof sin);
  ck_assert_int_eq(sin.sin_family, AF_INET);
  ck_assert_uint_eq(sin.sin_port, want.sin_port);
  ck_assert_mem_eq(&sin.sin_addr, &want.sin_addr, 4);
}

static void assert_in6(const struct sockaddr_storage *ss, socklen_t len, const char *ip,
                       unsigned port) {
  struct sockaddr_in6 sin6;
  struct in6_addr want;
  ck_assert_int_eq(inet_pton(AF_INET6, ip, &want), 1);
  ck_assert_uint_eq(len, sizeof sin6);
  memcpy(&sin6, ss, sizeof sin6);
  ck_assert_int_eq(sin6.sin6_family, AF_INET6);
  ck_assert_uint_eq(ntohs(sin6.sin6_port), port);
  ck_assert_mem_eq(&sin6.sin6_addr, &want, 16);
}

/* A v2 header under construction. */
typedef struct v2buf {
  unsigned char b[8192];
  size_t n;
} v2buf;

static void put(v2buf *o, const void *p, size_t n) {
  ck_assert_uint_le(o->n + n, sizeof o->b);
  memcpy(o->b + o->n, p, n);
  o->n += n;
}

static const unsigned char SIG[12] = "\r\n\r\n\0\r\nQUIT\n";

static void v2_start(v2buf *o, unsigned char ver_cmd, unsigned char fam) {
  o->n = 0;
  put(o, SIG, sizeof SIG);
  unsigned char hdr[4] = {ver_cmd, fam, 0, 0};
  put(o, hdr, 4);
}

/* Set the length field to what follows the 16 fixed bytes. */
static void v2_finish(v2buf *o) {
  size_t body = o->n - 16;
  o->b[14] = (unsigned char)(body >> 8);
  o->b[15] = (unsigned char)body;
}

static void tlv(v2buf *o, unsigned char type, const void *value, size_t n) {
  unsigned char hdr[3] = {type, (unsigned char)(n >> 8), (unsigned char)n};
  put(o, hdr, 3);
  put(o, value, n);
}

static void v2_inet(v2buf *o, unsigned char ver_cmd) {
  v2_start(o, ver_cmd, 0x11);
  put(o, "\xc0\x00\x02\x01" /* 192.0.2.1 */ "\xc6\x33\x64\x07" /* 198.51.100.7 */, 8);
  put(o, "\xdc\x04" /* 56324 */ "\x01\xbb" /* 443 */, 4);
}

/* CRC32C bit by bit, as the spec defines it: the decoder's own, faster
 * one must agree. */
static uint32_t crc32c_bitwise(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
  }
  return ~c;
}

/* Fill the 4 zero bytes of a CRC32C value at `at` with the checksum of
 * the finished header o->b[0, total). */
static void seal_crc32c(v2buf *o, size_t at, size_t total) {
  memset(o->b + at, 0, 4);
  uint32_t c = crc32c_bitwise(o->b, total);
  unsigned char be[4] = {(unsigned char)(c >> 24), (unsigned char)(c >> 16),
                         (unsigned char)(c >> 8), (unsigned char)c};
  memcpy(o->b + at, be, 4);
}

/* Deterministic xorshift so that failures reproduce. */
static uint64_t rng_state = 88172645463325252u;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 32);
}

/* ---- v1 ------------------------------------------------------------------ */

START_TEST(v1_tcp4_spec_example) {
  static const char in[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
                           "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
  size_t line = strlen("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  sk_proxy_header h = accepted(in, sizeof in - 1, BOTH, line);
  ck_assert_int_eq(h.version, 1);
  ck_assert(!h.local);
  ck_assert_int_eq(h.family, AF_INET);
  assert_in4(&h.src, h.src_len, "192.168.0.1", 56324);
  assert_in4(&h.dst, h.dst_len, "192.168.0.11", 443);
  ck_assert_uint_eq(h.unique_id_at + h.unique_id_len + h.authority_at + h.authority_len, 0);
  /* The request after the line is left where the header ends. */
  ck_assert_mem_eq(in + h.length, "GET / ", 6);
}
END_TEST

START_TEST(v1_tcp4_bounds) {
  /* The spec's longest TCP4 line is 56 bytes; zeros and port 0 are valid. */
  static const char longest[] = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
  ck_assert_uint_eq(sizeof longest - 1, 56);
  sk_proxy_header h = accepted(longest, sizeof longest - 1, BOTH, 56);
  assert_in4(&h.src, h.src_len, "255.255.255.255", 65535);
  static const char zeros[] = "PROXY TCP4 0.0.0.0 10.0.0.10 0 10\r\n";
  h = accepted(zeros, sizeof zeros - 1, SK__PROXY_V1, sizeof zeros - 1);
  assert_in4(&h.src, h.src_len, "0.0.0.0", 0);
  assert_in4(&h.dst, h.dst_len, "10.0.0.10", 10);
}
END_TEST

START_TEST(v1_tcp6) {
  static const char longest[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  ck_assert_uint_eq(sizeof longest - 1, 104); /* the spec's count */
  sk_proxy_header h = accepted(longest, sizeof longest - 1, BOTH, 104);
  ck_assert_int_eq(h.family, AF_INET6);
  assert_in6(&h.src, h.src_len, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);

  static const char short_forms[] = "PROXY TCP6 2001:DB8::1 :: 1 0\r\nrest";
  h = accepted(short_forms, sizeof short_forms - 1, BOTH, sizeof short_forms - 5);
  assert_in6(&h.src, h.src_len, "2001:db8::1", 1);
  assert_in6(&h.dst, h.dst_len, "::", 0);

  /* Forms inet_pton accepts: an IPv4 tail, a gap at either end. */
  static const char mixed[] = "PROXY TCP6 ::ffff:192.0.2.1 1:2:3:4:5:6:7:: 80 8080\r\n";
  h = accepted(mixed, sizeof mixed - 1, BOTH, sizeof mixed - 1);
  assert_in6(&h.src, h.src_len, "::ffff:192.0.2.1", 80);
  assert_in6(&h.dst, h.dst_len, "1:2:3:4:5:6:7:0", 8080);
  static const char tail[] = "PROXY TCP6 1:2:3:4:5:6:1.2.3.4 1::2:3:4:5:6:7 1 2\r\n";
  h = accepted(tail, sizeof tail - 1, BOTH, sizeof tail - 1);
  assert_in6(&h.src, h.src_len, "1:2:3:4:5:6:102:304", 1);
}
END_TEST

START_TEST(v1_unknown) {
  static const char shortest[] = "PROXY UNKNOWN\r\nGET";
  sk_proxy_header h = accepted(shortest, sizeof shortest - 1, BOTH, 15);
  ck_assert_int_eq(h.version, 1);
  ck_assert(h.local);
  ck_assert_int_eq(h.family, AF_UNSPEC);
  ck_assert_uint_eq(h.src_len + h.dst_len, 0);

  /* The spec's worst case, 107 bytes: the rest of the line is ignored. */
  static const char worst[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  ck_assert_uint_eq(sizeof worst - 1, 107);
  h = accepted(worst, sizeof worst - 1, BOTH, 107);
  ck_assert(h.local);
  static const char junk[] = "PROXY UNKNOWN not 1.2.3 an address  at all\r\n";
  accepted(junk, sizeof junk - 1, BOTH, sizeof junk - 1);
}
END_TEST

START_TEST(v1_line_bound) {
  char line[200];
  /* One byte over the spec's 107: refused when the 107th byte is not the
   * end of the CRLF, without waiting for the rest. */
  memset(line, 'x', sizeof line);
  memcpy(line, "PROXY UNKNOWN ", 14);
  memcpy(line + 106, "\r\n", 2);
  ck_assert_uint_eq(refused_at(line, 108, BOTH, SK_EPROTO), 107);
  memcpy(line + 105, "\r\n", 2);
  accepted(line, 107, BOTH, 107);
  /* No CRLF at all: 106 bytes may still end well, 107 cannot. */
  memset(line + 14, 'x', sizeof line - 14);
  sk_proxy_header h;
  ck_assert_int_eq(decode(line, 106, BOTH, &h), 0);
  ck_assert_int_eq(decode(line, 107, BOTH, &h), SK_EPROTO);
  ck_assert_int_eq(decode(line, sizeof line, BOTH, &h), SK_EPROTO);
  /* A TCP6 line of valid fields that inet_pton reads but that runs past
   * 107 bytes (IPv4 tails) is refused at the bound too. */
  static const char tcp6[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                             "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n";
  ck_assert_uint_eq(REFUSED_AT(tcp6, BOTH, SK_EPROTO), 107);
}
END_TEST

/* Each malformed line, and the prefix length at which it must be refused:
 * the first byte that no valid header could have there. */
static const struct {
  const char *in;
  size_t at;
} v1_bad[] = {
    {"GET / HTTP/1.1\r\n", 1},
    {"PROXY\r\n", 6},                                           /* no space after PROXY */
    {"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", 6},                   /* likewise */
    {"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 7},                 /* double space */
    {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 7},                  /* the keyword is upper case */
    {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 10},                 /* no such protocol */
    {"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", 12},                /* double space */
    {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 20},                /* double space */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", 31},                /* a space before CRLF */
    {"PROXY TCP4 192.168.01.1 192.168.0.11 56324 443\r\n", 21}, /* leading zero, octet */
    {"PROXY TCP4 00.0.0.0 1.1.1.1 1 2\r\n", 13},                /* leading zero, octet */
    {"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", 20},               /* octet over 255 */
    {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 17},                   /* three octets */
    {"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", 19},               /* five octets */
    {"PROXY TCP4 1.2..3 5.6.7.8 1 2\r\n", 16},                  /* empty octet */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 056324 443\r\n", 29},          /* leading zero, port */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", 31},                /* leading zero, port */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 443\r\n", 32},           /* port over 65535 */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n", 35},            /* six digits */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", 28},                /* a sign */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 29},                   /* no destination port */
    {"PROXY TCP4 ::1 ::1 1 2\r\n", 12},                         /* TCP4 with IPv6 */
    {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", 13},                     /* TCP6 with IPv4 */
    {"PROXY TCP6 1::2::3 ::1 1 2\r\n", 17},                     /* two gaps */
    {"PROXY TCP6 :::1 ::1 1 2\r\n", 14},                        /* three colons */
    {"PROXY TCP6 :1::2 ::1 1 2\r\n", 13},                       /* a lone leading colon */
    {"PROXY TCP6 12345:: ::1 1 2\r\n", 16},                     /* five hex digits */
    {"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", 27},           /* nine groups */
    {"PROXY TCP6 1:2:3:4:5:6:7::8 ::1 1 2\r\n", 27},            /* a gap of no group */
    {"PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", 25},               /* seven groups */
    {"PROXY TCP6 ::1: ::1 1 2\r\n", 16},                        /* a trailing colon */
    {"PROXY TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 1 2\r\n", 27},       /* tail after 7 groups */
    {"PROXY TCP6 ::1:2:3:4:5:6:1.2.3.4 ::1 1 2\r\n", 27},       /* tail, gap of none */
    {"PROXY TCP6 ::a.2.3.4 ::1 1 2\r\n", 15},                   /* a hex digit in the tail */
    {"PROXY TCP6 ::g ::1 1 2\r\n", 14},                         /* not hex */
    {"PROXY TCP6 [::1] ::1 1 2\r\n", 12},                       /* brackets */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31},                   /* LF without CR */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", 32},               /* CR without LF */
    {"PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n", 19},                /* LF inside */
    {"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", 19},                /* a tab */
    {"PROXY UNKNOWNX\r\n", 14},                                 /* not the keyword */
    {"PROXY UNKNOWN a\nb\r\n", 16},                             /* LF without CR */
    {"PROXY UNKNOWN a\rb\r\n", 17},                             /* CR without LF */
};

START_TEST(v1_malformed) {
  for (size_t i = 0; i < sizeof v1_bad / sizeof v1_bad[0]; i++) {
    size_t at = refused_at(v1_bad[i].in, strlen(v1_bad[i].in), BOTH, SK_EPROTO);
    ck_assert_msg(at == v1_bad[i].at, "\"%s\": refused at %zu, not %zu", v1_bad[i].in, at,
                  v1_bad[i].at);
  }
  /* A NUL is no address character. */
  static const char nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
  ck_assert_uint_eq(REFUSED_AT(nul, BOTH, SK_EPROTO), 19);
}
END_TEST

/* Random tokens of address characters, decoded as a TCP4 / TCP6 source:
 * accepted exactly when inet_pton accepts them, with the same address, and
 * every prefix of a line with an accepted token needs more (the early
 * refusal never refuses a valid beginning). */
static void address_agrees(int family, const char *alphabet, size_t max_len) {
  size_t alen = strlen(alphabet);
  for (int round = 0; round < 100000; round++) {
    char token[64], line[160];
    size_t n = 1 + rng() % max_len;
    for (size_t i = 0; i < n; i++)
      token[i] = alphabet[rng() % alen];
    token[n] = '\0';
    unsigned char bin[16];
    int want = inet_pton(family, token, bin) == 1;
    const char *other = family == AF_INET ? "1.2.3.4" : "::1";
    int len = snprintf(line, sizeof line, "PROXY %s %s %s 1 2\r\n",
                       family == AF_INET ? "TCP4" : "TCP6", token, other);
    sk_proxy_header h;
    int rc = sk__proxy_decode(line, (size_t)len, BOTH, &h);
    ck_assert_msg(rc == (want ? 1 : SK_EPROTO), "\"%s\": %d, inet_pton says %d", token, rc, want);
    if (rc == 1) {
      const void *got = family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)&h.src)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)&h.src)->sin6_addr;
      ck_assert_mem_eq(got, bin, family == AF_INET ? 4 : 16);
      for (size_t k = 0; k < (size_t)len; k++)
        ck_assert_int_eq(sk__proxy_decode(line, k, BOTH, &h), 0);
    }
  }
}

START_TEST(v1_ipv4_agrees_with_inet_pton) {
  address_agrees(AF_INET, "0123456789.....", 16);
  address_agrees(AF_INET, "0125.", 12);
}
END_TEST

START_TEST(v1_ipv6_agrees_with_inet_pton) {
  address_agrees(AF_INET6, "0123456789abcdefABCDEF::::::.", 40);
  address_agrees(AF_INET6, "01f::::.", 24);
  address_agrees(AF_INET6, "1:", 20);
}
END_TEST

/* ---- v2 ------------------------------------------------------------------ */

START_TEST(v2_tcp4) {
  v2buf o;
  v2_inet(&o, 0x21);
  v2_finish(&o);
  put(&o, "hello\n", 6);
  sk_proxy_header h = accepted(o.b, o.n, BOTH, 28);
  ck_assert_int_eq(h.version, 2);
  ck_assert(!h.local);
  ck_assert_int_eq(h.family, AF_INET);
  assert_in4(&h.src, h.src_len, "192.0.2.1", 56324);
  assert_in4(&h.dst, h.dst_len, "198.51.100.7", 443);
  ck_assert_uint_eq(h.unique_id_at + h.unique_id_len + h.authority_at + h.authority_len, 0);
  ck_assert_mem_eq(o.b + h.length, "hello\n", 6);
}
END_TEST

START_TEST(v2_tcp6) {
  v2buf o;
  v2_start(&o, 0x21, 0x21);
  struct in6_addr a, b;
  inet_pton(AF_INET6, "2001:db8::1", &a);
  inet_pton(AF_INET6, "2001:db8::2:3", &b);
  put(&o, &a, 16);
  put(&o, &b, 16);
  put(&o, "\x04\xd2\x01\xbb", 4); /* 1234, 443 */
  v2_finish(&o);
  put(&o, "\r\n\r\n", 4);
  sk_proxy_header h = accepted(o.b, o.n, BOTH, 52);
  ck_assert_int_eq(h.family, AF_INET6);
  assert_in6(&h.src, h.src_len, "2001:db8::1", 1234);
  assert_in6(&h.dst, h.dst_len, "2001:db8::2:3", 443);
}
END_TEST

START_TEST(v2_unix) {
  v2buf o;
  char src[108] = "/run/client.sock", dst[108];
  memset(dst, 'a', sizeof dst); /* fills sun_path: no NUL */
  v2_start(&o, 0x21, 0x31);
  put(&o, src, sizeof src);
  put(&o, dst, sizeof dst);
  v2_finish(&o);
  put(&o, "x", 1);
  sk_proxy_header h = accepted(o.b, o.n, BOTH, 232);
  ck_assert_int_eq(h.family, AF_UNIX);
  struct sockaddr_un sun;
  memcpy(&sun, &h.src, sizeof sun);
  ck_assert_int_eq(sun.sun_family, AF_UNIX);
  ck_assert_str_eq(sun.sun_path, "/run/client.sock");
  ck_assert_uint_eq(h.src_len, UNIX_OFF + strlen(src) + 1);
  memcpy(&sun, &h.dst, sizeof sun);
  ck_assert_mem_eq(sun.sun_path, dst, sizeof dst);
  ck_assert_uint_eq(h.dst_len, UNIX_OFF + 108);
  /* Nothing past sun_path is taken from the header. */
  for (size_t i = sizeof sun; i < sizeof h.dst; i++)
    ck_assert_int_eq(((unsigned char *)&h.dst)[i], 0);

  /* Abstract (leading NUL): up to the last non-NUL byte. Unnamed: none. */
  memset(src, 0, sizeof src);
  memcpy(src + 1, "abc", 3);
  memset(dst, 0, sizeof dst);
  v2_start(&o, 0x21, 0x31);
  put(&o, src, sizeof src);
  put(&o, dst, sizeof dst);
  v2_finish(&o);
  h = accepted(o.b, o.n, BOTH, 232);
  ck_assert_uint_eq(h.src_len, UNIX_OFF + 4);
  ck_assert_uint_eq(h.dst_len, UNIX_OFF);
}
END_TEST

START_TEST(v2_local_and_unspec) {
  v2buf o;
  /* LOCAL as proxies send it for health checks. */
  v2_start(&o, 0x20, 0x00);
  v2_finish(&o);
  sk_proxy_header h = accepted(o.b, o.n, BOTH, 16);
  ck_assert_int_eq(h.version, 2);
  ck_assert(h.local);
  ck_assert_int_eq(h.family, AF_UNSPEC);
  ck_assert_uint_eq(h.src_len + h.dst_len, 0);

  /* LOCAL with an address block: skipped whole, the addresses unused. */
  v2_inet(&o, 0x20);
  v2_finish(&o);
  put(&o, "PING\n", 5);
  h = accepted(o.b, o.n, BOTH, 28);
  ck_assert(h.local);
  ck_assert_int_eq(h.family, AF_UNSPEC);
  ck_assert_uint_eq(h.src_len + h.dst_len, 0);

  /* PROXY with UNSPEC: the address information is ignored; the TLVs
   * start at once. */
  v2_start(&o, 0x21, 0x00);
  tlv(&o, 0x05, "id-1", 4);
  v2_finish(&o);
  h = accepted(o.b, o.n, BOTH, 23);
  ck_assert(h.local);
  ck_assert_int_eq(h.family, AF_UNSPEC);
  ck_assert_uint_eq(h.unique_id_at, 19);
  ck_assert_uint_eq(h.unique_id_len, 4);
}
END_TEST

START_TEST(v2_tlvs) {
  v2buf o;
  char id[SK__PROXY_UNIQUE_ID_MAX];
  for (size_t i = 0; i < sizeof id; i++)
    id[i] = (char)(i * 7);
  v2_inet(&o, 0x21);
  tlv(&o, 0x04, "", 0);             /* NOOP, empty */
  tlv(&o, 0x01, "h2", 2);           /* ALPN */
  tlv(&o, 0x02, "example.com", 11); /* AUTHORITY */
  tlv(&o, 0x04, "\0\0\0\0\0", 5);   /* NOOP padding */
  tlv(&o, 0x03, "\0\0\0\0", 4);     /* CRC32C, sealed below */
  size_t crc_at = o.n - 4;
  tlv(&o, 0x20, "\x01\0\0\0\0\x21\0\x03TLS", 11); /* SSL with a sub-TLV */
  tlv(&o, 0x05, id, sizeof id);                   /* UNIQUE_ID, 128 bytes: the most allowed */
  tlv(&o, 0xe0, "\x05\x00\x01x", 4);              /* custom type, holding what looks like a TLV */
  v2_finish(&o);
  size_t total = o.n;
  seal_crc32c(&o, crc_at, total);
  put(&o, "after", 5);
  sk_proxy_header h = accepted(o.b, o.n, BOTH, total);
  ck_assert_int_eq(h.family, AF_INET);
  ck_assert_uint_eq(h.crc32c_at, crc_at);
  ck_assert_uint_eq(h.authority_len, 11);
  ck_assert_mem_eq(o.b + h.authority_at, "example.com", 11);
  ck_assert_uint_eq(h.unique_id_len, sizeof id);
  ck_assert_mem_eq(o.b + h.unique_id_at, id, sizeof id);
  assert_in4(&h.src, h.src_len, "192.0.2.1", 56324);
}
END_TEST

/* A CRC32C present is verified: the check value of the algorithm, a
 * header sealed with it is taken, and a change to any byte of the header
 * (the checksum included) refuses it once the header is whole; a CRC32C
 * of another size, or a second one, is refused too. */
START_TEST(v2_crc32c) {
  ck_assert_uint_eq(sk__crc32c("123456789", 9), 0xe3069283u);
  ck_assert_uint_eq(sk__crc32c("", 0), 0);
  v2buf o;
  v2_inet(&o, 0x21);
  tlv(&o, 0x05, "conn-7", 6);
  tlv(&o, 0x03, "\0\0\0\0", 4);
  size_t at = o.n - 4;
  tlv(&o, 0x04, "pad", 3);
  v2_finish(&o);
  size_t total = o.n;
  seal_crc32c(&o, at, total);
  put(&o, "GET\n", 4);
  sk_proxy_header h = accepted(o.b, o.n, BOTH, total);
  ck_assert_uint_eq(h.crc32c_at, at);
  ck_assert_uint_eq(h.unique_id_len, 6);
  sk_proxy_header out;
  for (size_t i = 16; i < total; i++) { /* past the signature and length, which fail earlier */
    if (i == at - 3)
      continue; /* 0x03 becomes 0x02, AUTHORITY: a header without a checksum */
    v2buf bad = o;
    bad.b[i] ^= 0x01;
    int rc = decode(bad.b, total, BOTH, &out);
    ck_assert_msg(rc == SK_EPROTO, "byte %zu changed: %d, not refused", i, rc);
  }
  /* Not 4 bytes, or two of them. */
  for (size_t len = 0; len <= 8; len++) {
    if (len == 4)
      continue;
    v2_inet(&o, 0x21);
    tlv(&o, 0x03, "\0\0\0\0\0\0\0\0", len);
    v2_finish(&o);
    ck_assert_int_eq(decode(o.b, o.n, BOTH, &out), SK_EPROTO);
  }
  v2_inet(&o, 0x21);
  tlv(&o, 0x03, "\0\0\0\0", 4);
  size_t first = o.n - 4;
  tlv(&o, 0x03, "\0\0\0\0", 4);
  v2_finish(&o);
  seal_crc32c(&o, first, o.n);
  ck_assert_int_eq(decode(o.b, o.n, BOTH, &out), SK_EPROTO);
}
END_TEST

START_TEST(v2_longest) {
  /* 4096 bytes in all is accepted; one more is too long, refused as soon
   * as the length field arrives. */
  static v2buf o;
  static char pad[SK__PROXY_V2_MAX];
  v2_inet(&o, 0x21);
  tlv(&o, 0x04, pad, SK__PROXY_V2_MAX - 28 - 3);
  v2_finish(&o);
  ck_assert_uint_eq(o.n, SK__PROXY_V2_MAX);
  sk_proxy_header h = accepted(o.b, o.n, BOTH, SK__PROXY_V2_MAX);
  ck_assert_uint_eq(h.length, 4096);
  v2_inet(&o, 0x21);
  tlv(&o, 0x04, pad, SK__PROXY_V2_MAX - 28 - 2);
  v2_finish(&o);
  ck_assert_uint_eq(refused_at(o.b, o.n, BOTH, SK_EMSGSIZE), 16);
  o.b[14] = o.b[15] = 0xff;
  ck_assert_uint_eq(refused_at(o.b, o.n, BOTH, SK_EMSGSIZE), 16);
}
END_TEST

START_TEST(v2_bad_signature) {
  v2buf o;
  v2_inet(&o, 0x21);
  v2_finish(&o);
  for (size_t i = 0; i < 12; i++) {
    v2buf bad = o;
    bad.b[i] ^= 0x20;
    ck_assert_uint_eq(refused_at(bad.b, bad.n, BOTH, SK_EPROTO), i + 1);
    bad.b[i] = 'P'; /* 'P' first is v1's; elsewhere just wrong */
    ck_assert_uint_eq(refused_at(bad.b, bad.n, BOTH, SK_EPROTO), i == 0 ? 2 : i + 1);
  }
}
END_TEST

START_TEST(v2_bad_version_command_family) {
  static const unsigned char ver_cmd[] = {0x01, 0x11, 0x31, 0xf1, 0x22, 0x23, 0x2f};
  static const unsigned char fam[] = {0x01, 0x02, 0x10, 0x12, 0x13, 0x20,
                                      0x22, 0x32, 0x41, 0x40, 0xff};
  v2buf o;
  for (size_t i = 0; i < sizeof ver_cmd; i++) {
    v2_inet(&o, ver_cmd[i]);
    v2_finish(&o);
    ck_assert_uint_eq(refused_at(o.b, o.n, BOTH, SK_EPROTO), 13);
  }
  for (size_t i = 0; i < sizeof fam; i++) {
    for (unsigned cmd = 0x20; cmd <= 0x21; cmd++) {
      v2_inet(&o, (unsigned char)cmd);
      o.b[13] = fam[i];
      put(&o, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24);
      v2_finish(&o);
      ck_assert_uint_eq(refused_at(o.b, o.n, BOTH, SK_EPROTO), 14);
    }
  }
}
END_TEST

START_TEST(v2_block_longer_than_length) {
  static const struct {
    unsigned char fam;
    size_t block;
  } fams[] = {{0x11, 12}, {0x21, 36}, {0x31, 216}};
  v2buf o;
  for (size_t i = 0; i < 3; i++) {
    for (unsigned cmd = 0x20; cmd <= 0x21; cmd++) {
      v2_start(&o, (unsigned char)cmd, fams[i].fam);
      for (size_t k = 0; k < fams[i].block; k++)
        put(&o, "\x7f", 1);
      v2_finish(&o);
      accepted(o.b, o.n, BOTH, 16 + fams[i].block);
      o.b[15]--; /* one byte short of the address block */
      ck_assert_uint_eq(refused_at(o.b, o.n, BOTH, SK_EPROTO), 16);
    }
  }
}
END_TEST

START_TEST(v2_bad_tlvs) {
  v2buf o;
  /* A value running one byte past the header: refused with its TLV header. */
  v2_inet(&o, 0x21);
  tlv(&o, 0x02, "abc", 3);
  v2_finish(&o);
  o.b[30]++;
  ck_assert_uint_eq(refused_at(o.b, o.n, BOTH, SK_EPROTO), 31);
  /* One or two bytes left over: no TLV header fits, known at byte 16. */
  for (size_t extra = 1; extra <= 2; extra++) {
    v2_inet(&o, 0x21);
    put(&o, "\x04\x00", extra);
    v2_finish(&o);
    ck_assert_uint_eq(refused_at(o.b, o.n, BOTH, SK_EPROTO), 16);
  }
  /* The same in LOCAL and UNSPEC headers, whose TLVs are walked too. */
  v2_start(&o, 0x20, 0x00);
  tlv(&o, 0x04, "ab", 2);
  v2_finish(&o);
  o.b[18] = 3;
  ck_assert_uint_eq(refused_at(o.b, o.n, BOTH, SK_EPROTO), 19);
  /* UNIQUE_ID of 129 bytes. */
  char id[129] = {0};
  v2_inet(&o, 0x21);
  tlv(&o, 0x05, id, sizeof id);
  v2_finish(&o);
  ck_assert_uint_eq(refused_at(o.b, o.n, BOTH, SK_EPROTO), 31);
  /* A second UNIQUE_ID, or a second AUTHORITY. */
  static const unsigned char types[] = {0x05, 0x02};
  for (size_t i = 0; i < 2; i++) {
    v2_inet(&o, 0x21);
    tlv(&o, types[i], "one", 3);
    tlv(&o, 0x04, "", 0);
    tlv(&o, types[i], "two", 3);
    v2_finish(&o);
    ck_assert_uint_eq(refused_at(o.b, o.n, BOTH, SK_EPROTO), 40);
  }
}
END_TEST

/* ---- both ---------------------------------------------------------------- */

START_TEST(allow_mask) {
  static const char v1[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
  v2buf o;
  v2_inet(&o, 0x21);
  v2_finish(&o);
  accepted(v1, sizeof v1 - 1, SK__PROXY_V1, sizeof v1 - 1);
  accepted(o.b, o.n, SK__PROXY_V2, o.n);
  /* A version not allowed is refused at its first byte. */
  ck_assert_uint_eq(REFUSED_AT(v1, SK__PROXY_V2, SK_EPROTO), 1);
  ck_assert_uint_eq(refused_at(o.b, o.n, SK__PROXY_V1, SK_EPROTO), 1);
  /* Nothing at all needs more, with no buffer yet. */
  sk_proxy_header h;
  ck_assert_int_eq(sk__proxy_decode(NULL, 0, BOTH, &h), 0);
  ck_assert_int_eq(sk__proxy_decode(NULL, 0, SK__PROXY_V1, &h), 0);
}
END_TEST

START_TEST(out_untouched_unless_whole) {
  sk_proxy_header h;
  memset(&h, 0x5a, sizeof h);
  unsigned char before[sizeof h];
  memcpy(before, &h, sizeof h);
  ck_assert_int_eq(decode("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", 31, BOTH, &h), 0);
  ck_assert_int_eq(decode("PROXY TCP4 1.2.3.4 5.6.7.8 1 02\r\n", 33, BOTH, &h), SK_EPROTO);
  v2buf o;
  v2_inet(&o, 0x21);
  tlv(&o, 0x05, "abc", 3);
  v2_finish(&o);
  ck_assert_int_eq(decode(o.b, o.n - 1, BOTH, &h), 0);
  ck_assert_mem_eq(&h, before, sizeof h);
}
END_TEST

static Suite *proxy_suite(void) {
  Suite *s = suite_create("proxy");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, v1_tcp4_spec_example);
  tcase_add_test(tc, v1_tcp4_bounds);
  tcase_add_test(tc, v1_tcp6);
  tcase_add_test(tc, v1_unknown);
  tcase_add_test(tc, v1_line_bound);
  tcase_add_test(tc, v1_malformed);
  tcase_add_test(tc, v1_ipv4_agrees_with_inet_pton);
  tcase_add_test(tc, v1_ipv6_agrees_with_inet_pton);
  tcase_add_test(tc, v2_tcp4);
  tcase_add_test(tc, v2_tcp6);
  tcase_add_test(tc, v2_unix);
  tcase_add_test(tc, v2_local_and_unspec);
  tcase_add_test(tc, v2_tlvs);
  tcase_add_test(tc, v2_crc32c);
  tcase_add_test(tc, v2_longest);
  tcase_add_test(tc, v2_bad_signature);
  tcase_add_test(tc, v2_bad_version_command_family);
  tcase_add_test(tc, v2_block_longer_than_length);
  tcase_add_test(tc, v2_bad_tlvs);
  tcase_add_test(tc, allow_mask);
  tcase_add_test(tc, out_untouched_unless_whole);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(proxy_suite());
}
