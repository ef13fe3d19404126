/* cidr.c -- trusted-network lists: parsing "10.0.0.0/8 ::1 unix" and
 * matching socket addresses against them. */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sockkit.h"

static bool is_separator(char c) {
  return c == ' ' || c == '\t' || c == ',';
}

/* The prefix length in s[0, n): decimal, no leading zero, at most max. */
static int parse_prefix(const char *s, size_t n, int max) {
  if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
    return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v <= max ? v : -1;
}

static void clear_host_bits(uint8_t *addr, int bytes, int prefix) {
  for (int i = 0; i < bytes; i++) {
    int keep = prefix - i * 8; /* bits of this byte inside the prefix */
    if (keep >= 8)
      continue;
    addr[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
  }
}

/* One entry, s[0, n). */
static bool parse_entry(const char *s, size_t n, sk_cidr *out) {
  if (n == 4 && memcmp(s, "unix", 4) == 0) {
    *out = (sk_cidr){.family = AF_UNIX};
    return true;
  }
  if (n > SK__CIDR_TEXT_MAX)
    return false;
  char text[SK__CIDR_TEXT_MAX + 1];
  memcpy(text, s, n);
  text[n] = '\0';
  char *slash = strchr(text, '/');
  if (slash)
    *slash = '\0';
  *out = (sk_cidr){0};
  if (inet_pton(AF_INET, text, out->addr) == 1)
    out->family = AF_INET;
  else if (inet_pton(AF_INET6, text, out->addr) == 1)
    out->family = AF_INET6;
  else
    return false;
  int max = out->family == AF_INET ? 32 : 128;
  int prefix = max;
  if (slash) {
    const char *p = slash + 1;
    prefix = parse_prefix(p, n - (size_t)(p - text), max);
    if (prefix < 0)
      return false;
  }
  out->prefix = (uint8_t)prefix;
  clear_host_bits(out->addr, max / 8, prefix);
  return true;
}

int sk__cidr_parse(const char *text, sk_cidr **out, size_t *count, const char **bad,
                   size_t *bad_len) {
  *out = NULL;
  *count = 0;
  *bad = text;
  *bad_len = 0;
  size_t entries = 0;
  for (const char *p = text; *p;) {
    while (is_separator(*p))
      p++;
    if (!*p)
      break;
    entries++;
    while (*p && !is_separator(*p))
      p++;
  }
  if (entries == 0)
    return SK_EADDR;
  sk_cidr *list = calloc(entries, sizeof *list);
  if (!list)
    return SK_ENOMEM;
  size_t n = 0;
  for (const char *p = text; *p;) {
    while (is_separator(*p))
      p++;
    if (!*p)
      break;
    const char *start = p;
    while (*p && !is_separator(*p))
      p++;
    if (!parse_entry(start, (size_t)(p - start), &list[n])) {
      *bad = start;
      *bad_len = (size_t)(p - start);
      free(list);
      return SK_EADDR;
    }
    n++;
  }
  *out = list;
  *count = n;
  return SK_OK;
}

static bool in_network(const sk_cidr *c, const uint8_t *addr) {
  int bytes = c->prefix / 8, bits = c->prefix % 8;
  if (memcmp(c->addr, addr, (size_t)bytes) != 0)
    return false;
  return bits == 0 || ((addr[bytes] ^ c->addr[bytes]) & (uint8_t)(0xff << (8 - bits))) == 0;
}

bool sk__cidr_match(const sk_cidr *list, size_t count, const struct sockaddr *sa, socklen_t len) {
  if (!sa || len < (socklen_t)sizeof(sa_family_t))
    return false;
  /* Copied out: a sockaddr need not be aligned for its family's struct. */
  uint8_t addr[16];
  const uint8_t *v4 = NULL, *v6 = NULL;
  if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    memcpy(addr, (const char *)sa + offsetof(struct sockaddr_in, sin_addr), 4);
    v4 = addr;
  } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    memcpy(addr, (const char *)sa + offsetof(struct sockaddr_in6, sin6_addr), 16);
    v6 = addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr, mapped, sizeof mapped) == 0)
      v4 = addr + 12;
  }
  for (size_t i = 0; i < count; i++) {
    const sk_cidr *c = &list[i];
    if ((c->family == AF_UNIX && sa->sa_family == AF_UNIX) ||
        (c->family == AF_INET && v4 && in_network(c, v4)) ||
        (c->family == AF_INET6 && v6 && in_network(c, v6)))
      return true;
  }
  return false;
}
