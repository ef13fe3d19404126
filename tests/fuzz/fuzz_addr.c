/* fuzz_addr.c -- libFuzzer target: the address parser and formatter, with
 * parse -> format -> parse round trips. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"
#include "sockkit.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz_addr: check failed: %s (line %d)\n", #cond, __LINE__);                 \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static bool v4_mapped(const sk_addr *a) {
  const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
  return a->ss.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
}

/* Text: parse; what parses formats, and the text formatted parses back to
 * the same address (v4-mapped IPv6 comes back as the IPv4 it is). */
static void text_round_trip(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  CHECK(text);
  memcpy(text, data, size);
  text[size] = '\0';
  sk_addr a;
  int rc = sk__addr_parse(&a, text);
  CHECK(rc == 0 || rc == SK_EADDR);
  if (rc == 0) {
    int family = a.ss.ss_family;
    CHECK(family == AF_INET || family == AF_INET6 || family == AF_UNIX);
    CHECK(a.len > 0 && a.len <= sizeof a.ss);
    char out[SK_ADDRSTRLEN];
    CHECK(sk__addr_format((struct sockaddr *)&a.ss, a.len, out, sizeof out) == 0);
    CHECK(strlen(out) < sizeof out);
    sk_addr b;
    CHECK(sk__addr_parse(&b, out) == 0);
    if (!v4_mapped(&a)) {
      CHECK(b.ss.ss_family == a.ss.ss_family && b.len == a.len);
      CHECK(memcmp(&a.ss, &b.ss, a.len) == 0);
    } else {
      CHECK(b.ss.ss_family == AF_INET);
    }
    CHECK(sk__addr_port((struct sockaddr *)&a.ss) == sk__addr_port((struct sockaddr *)&b.ss));
  } else {
    /* A failed parse leaves nothing that could be bound. */
    static const sk_addr zero;
    CHECK(memcmp(&a, &zero, sizeof a) == 0);
  }
  /* The forms of a socket to adopt: a digit string within int, or a name
   * of printable characters without ':'. */
  sk_adopt adopt;
  rc = sk__addr_parse_adopt(&adopt, text);
  CHECK(rc == 0 || rc == SK_EADDR);
  CHECK(rc != 0 || sk__addr_is_adopt_text(text));
  if (rc == 0 && adopt.kind == SK_ADOPT_FD)
    CHECK(adopt.fd >= 0 && strspn(text + 3, "0123456789") == strlen(text + 3));
  else if (rc == 0)
    CHECK(adopt.kind == SK_ADOPT_SYSTEMD && strlen(adopt.name) <= SK__ADOPT_NAME_MAX &&
          !strchr(adopt.name, ':'));
  else
    CHECK(adopt.kind == SK_ADOPT_NONE);
  free(text);
}

/* Raw sockaddr bytes of any length, formatted into a buffer of any size:
 * never a read past the address or a write past the buffer, and what is
 * written is one C string that fits. */
static void format_any(const uint8_t *data, size_t size) {
  if (size < 2)
    return;
  size_t bufsize = data[0] % 160;
  data++;
  size--;
  size_t len = size < sizeof(struct sockaddr_storage) ? size : sizeof(struct sockaddr_storage);
  if (len < sizeof(sa_family_t))
    return;
  /* The caller's address need only be 2-byte aligned: place it so. */
  char *mem = malloc(len + 2);
  char *buf = malloc(bufsize ? bufsize : 1);
  CHECK(mem && buf);
  memcpy(mem + 2, data, len);
  struct sockaddr *sa = (void *)(mem + 2);
  int rc = sk__addr_format(sa, (socklen_t)len, buf, bufsize);
  CHECK(rc == 0 || rc == SK_EINVAL);
  if (rc == 0) {
    CHECK(bufsize > 0 && strnlen(buf, bufsize) < bufsize);
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
      sk_addr b;
      CHECK(sk__addr_parse(&b, buf) == 0);
      CHECK(sk__addr_port((struct sockaddr *)&b.ss) == sk__addr_port(sa));
    }
  }
  free(buf);
  free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  text_round_trip(data, size);
  format_any(data, size);
  return 0;
}
