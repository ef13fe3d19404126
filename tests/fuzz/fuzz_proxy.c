/* fuzz_proxy.c -- libFuzzer target: the PROXY header decoder, checked for
 * the properties a server relies on (bounds, prefixes, what follows, the
 * version mask) and its addresses against the bytes and inet_pton. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "../proxy_equal.h"
#include "proxy.h"
#include "sockkit.h"

/* Input: the bytes a client sends first, nothing else. */
#define MAX_INPUT 8192
#define BOTH (SK__PROXY_V1 | SK__PROXY_V2)
/* Prefixes decoded per input: all the short ones, then a spread, so that
 * an input costs O(len) decodes at most, not one per byte of 4 KiB. */
#define SHORT_PREFIXES 64
#define SPREAD_PREFIXES 64

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz_proxy: check failed: %s (line %d)\n", #cond, __LINE__);                \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* Decode from a copy exactly len bytes long, so that ASan sees any read
 * past the end. */
static int decode_exact(const uint8_t *bytes, size_t len, int allow, sk_proxy_header *h) {
  char *copy = malloc(len ? len : 1);
  CHECK(copy);
  if (len)
    memcpy(copy, bytes, len);
  int rc = sk__proxy_decode(len ? copy : NULL, len, allow, h);
  CHECK(rc == 1 || rc == 0 || rc == SK_EPROTO || rc == SK_EMSGSIZE);
  free(copy);
  return rc;
}

/* A kept TLV lies inside the header, after the fixed part, with its own
 * type and length in the three bytes before it. */
static void check_tlv(const uint8_t *s, const sk_proxy_header *h, size_t at, size_t len,
                      uint8_t type) {
  if (at == 0) {
    CHECK(len == 0);
    return;
  }
  CHECK(h->version == 2 && at >= 19 && at <= h->length && len <= h->length - at);
  CHECK(s[at - 3] == type && ((size_t)s[at - 2] << 8 | s[at - 1]) == len);
}

/* The address of a TCP4/TCP6 line as inet_pton reads its token, and the
 * port as the canonical decimal it must be. */
static void check_v1_address(const struct sockaddr_storage *ss, socklen_t ss_len, int family,
                             const char *addr, const char *port) {
  unsigned char want[16];
  CHECK(inet_pton(family, addr, want) == 1);
  char *end;
  unsigned long p = strtoul(port, &end, 10);
  char canonical[8];
  snprintf(canonical, sizeof canonical, "%lu", p);
  CHECK(*end == '\0' && p <= 65535 && strcmp(canonical, port) == 0);
  if (family == AF_INET) {
    struct sockaddr_in sin;
    CHECK(ss_len == sizeof sin);
    memcpy(&sin, ss, sizeof sin);
    CHECK(sin.sin_family == AF_INET && ntohs(sin.sin_port) == p);
    CHECK(memcmp(&sin.sin_addr, want, 4) == 0);
  } else {
    struct sockaddr_in6 sin6;
    CHECK(ss_len == sizeof sin6);
    memcpy(&sin6, ss, sizeof sin6);
    CHECK(sin6.sin6_family == AF_INET6 && ntohs(sin6.sin6_port) == p);
    CHECK(memcmp(&sin6.sin6_addr, want, 16) == 0);
  }
}

/* A v1 line: "PROXY ", five fields separated by single spaces, CRLF. */
static void check_v1(const uint8_t *s, const sk_proxy_header *h) {
  CHECK(h->length >= 15 && h->length <= SK__PROXY_V1_MAX);
  CHECK(memcmp(s, "PROXY ", 6) == 0 && s[h->length - 2] == '\r' && s[h->length - 1] == '\n');
  CHECK(h->unique_id_at == 0 && h->authority_at == 0);
  if (h->local) {
    CHECK(memcmp(s + 6, "UNKNOWN", 7) == 0);
    return;
  }
  char line[SK__PROXY_V1_MAX + 1], *field[6], *save = NULL;
  memcpy(line, s, h->length - 2);
  line[h->length - 2] = '\0';
  CHECK(strlen(line) == h->length - 2); /* no NUL inside */
  size_t count = 0;
  for (char *f = strtok_r(line, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
    CHECK(count < 6);
    field[count++] = f;
  }
  /* strtok_r merges runs of spaces: six fields in a line of this length
   * means single spaces only. */
  CHECK(count == 6);
  size_t sum = 5;
  for (size_t i = 0; i < 6; i++)
    sum += strlen(field[i]);
  CHECK(sum == h->length - 2);
  int family = strcmp(field[1], "TCP4") == 0 ? AF_INET : AF_INET6;
  CHECK(family == AF_INET || strcmp(field[1], "TCP6") == 0);
  CHECK(h->family == family);
  check_v1_address(&h->src, h->src_len, family, field[2], field[4]);
  check_v1_address(&h->dst, h->dst_len, family, field[3], field[5]);
}

/* A v2 block: the addresses are the header's bytes, copied as they are. */
static void check_v2(const uint8_t *s, const sk_proxy_header *h) {
  CHECK(h->length >= 16 && h->length <= SK__PROXY_V2_MAX);
  CHECK(h->length == 16 + ((size_t)s[14] << 8 | s[15]));
  CHECK(s[12] >> 4 == 2 && (s[12] & 0x0f) <= 1);
  CHECK(h->local == ((s[12] & 0x0f) == 0 || s[13] == 0));
  CHECK(h->unique_id_len <= SK__PROXY_UNIQUE_ID_MAX);
  check_tlv(s, h, h->unique_id_at, h->unique_id_len, 0x05);
  check_tlv(s, h, h->authority_at, h->authority_len, 0x02);
  if (h->local)
    return;
  const uint8_t *a = s + 16;
  if (s[13] == 0x11) {
    struct sockaddr_in src, dst;
    memcpy(&src, &h->src, sizeof src);
    memcpy(&dst, &h->dst, sizeof dst);
    CHECK(h->family == AF_INET && h->length >= 28);
    CHECK(memcmp(&src.sin_addr, a, 4) == 0 && memcmp(&dst.sin_addr, a + 4, 4) == 0);
    CHECK(memcmp(&src.sin_port, a + 8, 2) == 0 && memcmp(&dst.sin_port, a + 10, 2) == 0);
  } else if (s[13] == 0x21) {
    struct sockaddr_in6 src, dst;
    memcpy(&src, &h->src, sizeof src);
    memcpy(&dst, &h->dst, sizeof dst);
    CHECK(h->family == AF_INET6 && h->length >= 52);
    CHECK(memcmp(&src.sin6_addr, a, 16) == 0 && memcmp(&dst.sin6_addr, a + 16, 16) == 0);
    CHECK(memcmp(&src.sin6_port, a + 32, 2) == 0 && memcmp(&dst.sin6_port, a + 34, 2) == 0);
  } else {
    struct sockaddr_un src, dst;
    memcpy(&src, &h->src, sizeof src);
    memcpy(&dst, &h->dst, sizeof dst);
    CHECK(s[13] == 0x31 && h->family == AF_UNIX && h->length >= 232);
    CHECK(memcmp(src.sun_path, a, 108) == 0 && memcmp(dst.sun_path, a + 108, 108) == 0);
    size_t off = offsetof(struct sockaddr_un, sun_path);
    CHECK(h->src_len >= off && h->src_len <= sizeof src);
    CHECK(h->dst_len >= off && h->dst_len <= sizeof dst);
  }
}

static void check_header(const uint8_t *s, size_t len, const sk_proxy_header *h) {
  CHECK(h->length > 0 && h->length <= len);
  CHECK(h->local == (h->family == AF_UNSPEC));
  if (h->local)
    CHECK(h->src_len == 0 && h->dst_len == 0);
  CHECK(h->src_len <= sizeof h->src && h->dst_len <= sizeof h->dst);
  CHECK(h->version == 1 || h->version == 2);
  if (h->version == 1)
    check_v1(s, h);
  else
    check_v2(s, h);
}

/* As the buffer grows the result goes from 0 to its final value and then
 * stays there: a header is never refused after a valid beginning, and once
 * refused or decoded more bytes change nothing. */
static void check_prefix(const uint8_t *s, size_t k, int rc, const sk_proxy_header *h, int *seen) {
  sk_proxy_header p;
  int rk = decode_exact(s, k, BOTH, &p);
  if (rc == 1 && k < h->length)
    CHECK(rk == 0);
  else if (rc == 1)
    CHECK(rk == 1 && sk_test_same_header(&p, h));
  else if (rc == 0)
    CHECK(rk == 0);
  else
    CHECK(rk == 0 ? !*seen : rk == rc);
  if (rk != 0)
    *seen = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MAX_INPUT)
    return 0;
  sk_proxy_header h;
  int rc = decode_exact(data, size, BOTH, &h);
  if (rc == 1)
    check_header(data, size, &h);

  /* Prefixes, in increasing length. */
  int seen = 0;
  size_t step = size / SPREAD_PREFIXES + 1;
  for (size_t k = 0; k < size; k += k < SHORT_PREFIXES ? 1 : step)
    check_prefix(data, k, rc, &h, &seen);
  if (size > 0)
    check_prefix(data, size - 1, rc, &h, &seen);

  /* Bytes after the input: a decided result stays the same. */
  if (rc != 0) {
    uint8_t *more = malloc(size + 16);
    CHECK(more);
    memcpy(more, data, size);
    memset(more + size, size % 2 ? '\n' : 0xff, 16);
    sk_proxy_header m;
    CHECK(decode_exact(more, size + 16, BOTH, &m) == rc);
    if (rc == 1)
      CHECK(sk_test_same_header(&m, &h));
    free(more);
  }

  /* The version mask: the first byte picks the version; allowing only it
   * changes nothing, allowing only the other refuses at once. */
  if (size > 0) {
    int own = data[0] == 'P' ? SK__PROXY_V1 : data[0] == '\r' ? SK__PROXY_V2 : 0;
    sk_proxy_header m;
    if (own == 0) {
      CHECK(rc == SK_EPROTO);
    } else {
      CHECK(decode_exact(data, size, own, &m) == rc);
      if (rc == 1)
        CHECK(sk_test_same_header(&m, &h) && h.version == own);
      CHECK(decode_exact(data, size, BOTH & ~own, &m) == SK_EPROTO);
    }
  }
  return 0;
}
