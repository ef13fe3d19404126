/* addr.c -- parse and format address strings (IPv4, [IPv6], port-only, unix:),
 * and parse the forms of a socket to adopt (fd:N, systemd[:NAME]). */
#include "addr.h"

#include <arpa/inet.h>
#include <assert.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "sockkit.h"

#define UNIX_PREFIX "unix:"
#define UNIX_PREFIX_LEN (sizeof UNIX_PREFIX - 1)
#define SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)

/* Parse a port: 1 to 5 decimal digits and nothing else, at most 65535.
 * strtol would accept signs, spaces and hex, which we want to reject. */
static int parse_port(const char *s, in_port_t *port) {
  unsigned long v = 0;
  size_t n = 0;
  for (; s[n] != '\0'; n++) {
    if (s[n] < '0' || s[n] > '9' || n == 5)
      return SK_EADDR;
    v = v * 10 + (unsigned long)(s[n] - '0');
  }
  if (n == 0 || v > 65535)
    return SK_EADDR;
  *port = htons((uint16_t)v);
  return 0;
}

/* inet_pton needs a NUL-terminated host, but ours sits inside the text
 * before ':' or ']'; copy it out. Anything longer than the longest valid
 * address is wrong anyway, so a fixed buffer suffices. */
static int parse_host(int family, const char *host, size_t n, void *dst) {
  char tmp[INET6_ADDRSTRLEN];
  if (n >= sizeof tmp)
    return SK_EADDR;
  memcpy(tmp, host, n);
  tmp[n] = '\0';
  return inet_pton(family, tmp, dst) == 1 ? 0 : SK_EADDR;
}

int sk__addr_parse_unix(sk_addr *out, const char *path) {
  struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
  size_t n = strlen(path);
  sun->sun_family = AF_UNIX;
  if (path[0] == '@') {
    /* Abstract: a leading NUL byte, then the name. The kernel takes every
     * byte up to len as the name, so no terminating NUL is counted. */
    n--;
    if (n == 0 || n > SUN_PATH_SIZE - 1)
      return SK_EADDR;
    memcpy(sun->sun_path + 1, path + 1, n);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
  } else {
    /* Named: keep room for the NUL so the path is a C string everywhere. */
    if (n == 0 || n >= SUN_PATH_SIZE)
      return SK_EADDR;
    memcpy(sun->sun_path, path, n + 1);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
  return 0;
}

static int parse(sk_addr *out, const char *text) {
  if (text == NULL || text[0] == '\0')
    return SK_EADDR;

  if (sk__addr_is_unix_text(text))
    return sk__addr_parse_unix(out, text + UNIX_PREFIX_LEN);

  int rc;
  if (text[0] == '[') {
    /* IPv6 needs brackets, otherwise "::1:80" is ambiguous. Zones
     * ("fe80::1%eth0") are rejected by inet_pton; resolving an interface
     * name would be a system call, which this pure parser avoids. */
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
    const char *end = strchr(text, ']');
    if (end == NULL || end[1] != ':')
      return SK_EADDR;
    sin6->sin6_family = AF_INET6;
    out->len = sizeof *sin6;
    if ((rc = parse_host(AF_INET6, text + 1, (size_t)(end - text - 1), &sin6->sin6_addr)) != 0)
      return rc;
    return parse_port(end + 2, &sin6->sin6_port);
  }

  const char *colon = strchr(text, ':');
  if (colon == NULL || colon == text) {
    /* Port only: listen on every interface. IPv6 any is dual-stack on
     * Linux by default, so one socket serves IPv4 clients too. */
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_any;
    out->len = sizeof *sin6;
    out->wildcard = true;
    return parse_port(colon == NULL ? text : text + 1, &sin6->sin6_port);
  }

  /* IPv4: numbers only. Hostnames are the client's business (DNS later);
   * inet_pton also refuses short forms like "127.1" that inet_aton allows. */
  struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
  sin->sin_family = AF_INET;
  out->len = sizeof *sin;
  if ((rc = parse_host(AF_INET, text, (size_t)(colon - text), &sin->sin_addr)) != 0)
    return rc;
  return parse_port(colon + 1, &sin->sin_port);
}

bool sk__addr_is_unix_text(const char *text) {
  return strncmp(text, UNIX_PREFIX, UNIX_PREFIX_LEN) == 0;
}

int sk__addr_parse(sk_addr *out, const char *text) {
  assert(out != NULL);
  memset(out, 0, sizeof *out);
  int rc = parse(out, text);
  if (rc != 0) /* Never leave a half-filled address that could be bound. */
    memset(out, 0, sizeof *out);
  return rc;
}

/* snprintf reports truncation by returning the length it wanted. */
static int fits(int n, size_t size) {
  return n >= 0 && (size_t)n < size ? 0 : SK_EINVAL;
}

/* The caller's sockaddr may be any buffer (only sockaddr's 2-byte alignment
 * is promised), so fields are copied out with memcpy rather than read
 * through a cast to sockaddr_in/in6, which would assume 4-byte alignment. */
static int format_unix(const struct sockaddr *sa, socklen_t len, char *buf, size_t size) {
  const size_t off = offsetof(struct sockaddr_un, sun_path);
  const char *path = (const char *)sa + off;
  /* The kernel may report len up to the full struct; never read past it. */
  size_t n = len > off ? (size_t)len - off : 0;
  if (n > SUN_PATH_SIZE)
    n = SUN_PATH_SIZE;

  if (n == 0) /* Unnamed: a client socket that never bound. */
    return fits(snprintf(buf, size, UNIX_PREFIX), size);

  if (path[0] != '\0') {
    /* Named: the path need not be NUL-terminated when it fills sun_path,
     * so bound it by len as well as by its first NUL. */
    size_t plen = strnlen(path, n);
    return fits(snprintf(buf, size, UNIX_PREFIX "%.*s", (int)plen, path), size);
  }

  /* Abstract: the name is every byte after the leading NUL, NULs included.
   * Show those as '@' (as ss(8) does) so the text stays one C string. */
  size_t name = n - 1;
  if (UNIX_PREFIX_LEN + 1 + name + 1 > size)
    return SK_EINVAL;
  char *p = buf;
  memcpy(p, UNIX_PREFIX "@", UNIX_PREFIX_LEN + 1);
  p += UNIX_PREFIX_LEN + 1;
  for (size_t i = 0; i < name; i++)
    *p++ = path[1 + i] != '\0' ? path[1 + i] : '@';
  *p = '\0';
  return 0;
}

int sk__addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size) {
  char host[INET6_ADDRSTRLEN];
  if (sa == NULL || buf == NULL || size == 0)
    return SK_EINVAL;

  switch (sa->sa_family) {
  case AF_INET: {
    struct sockaddr_in sin;
    if (len < sizeof sin)
      return SK_EINVAL;
    memcpy(&sin, sa, sizeof sin);
    if (inet_ntop(AF_INET, &sin.sin_addr, host, sizeof host) == NULL)
      return SK_EINVAL;
    return fits(snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(sin.sin_port)), size);
  }
  case AF_INET6: {
    struct sockaddr_in6 sin6;
    if (len < sizeof sin6)
      return SK_EINVAL;
    memcpy(&sin6, sa, sizeof sin6);
    /* IPv4 clients of a dual-stack socket arrive as ::ffff:a.b.c.d; users
     * expect to see them as the IPv4 address they are. */
    if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
      if (inet_ntop(AF_INET, &sin6.sin6_addr.s6_addr[12], host, sizeof host) == NULL)
        return SK_EINVAL;
      return fits(snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(sin6.sin6_port)), size);
    }
    /* The scope id of a link-local address is not shown: the parser does
     * not accept zones, and text we print should parse back. */
    if (inet_ntop(AF_INET6, &sin6.sin6_addr, host, sizeof host) == NULL)
      return SK_EINVAL;
    return fits(snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(sin6.sin6_port)), size);
  }
  case AF_UNIX:
    return format_unix(sa, len, buf, size);
  default:
    return SK_EINVAL;
  }
}

int sk__addr_port(const struct sockaddr *sa) {
  size_t off;
  if (sa == NULL)
    return 0;
  if (sa->sa_family == AF_INET)
    off = offsetof(struct sockaddr_in, sin_port);
  else if (sa->sa_family == AF_INET6)
    off = offsetof(struct sockaddr_in6, sin6_port);
  else
    return 0;
  in_port_t port;
  memcpy(&port, (const char *)sa + off, sizeof port);
  return ntohs(port);
}

/* ---- sockets to adopt ------------------------------------------------- */

#define FD_PREFIX "fd:"
#define SYSTEMD "systemd"

bool sk__addr_is_adopt_text(const char *text) {
  return strncmp(text, FD_PREFIX, sizeof FD_PREFIX - 1) == 0 || strcmp(text, SYSTEMD) == 0 ||
         strncmp(text, SYSTEMD ":", sizeof SYSTEMD) == 0;
}

/* A descriptor number: digits only (no sign, space or "0x"), at most
 * INT_MAX; leading zeros are harmless. */
static int parse_fd(const char *s, int *fd) {
  long long v = 0;
  size_t n = 0;
  for (; s[n] != '\0'; n++) {
    if (s[n] < '0' || s[n] > '9')
      return SK_EADDR;
    v = v * 10 + (s[n] - '0');
    if (v > INT_MAX)
      return SK_EADDR;
  }
  if (n == 0)
    return SK_EADDR;
  *fd = (int)v;
  return 0;
}

/* What systemd accepts in LISTEN_FDNAMES (fdname_is_valid), but for the
 * empty name, which "systemd" alone stands for: printable ASCII, no ':'. */
static int parse_fdname(const char *s, char *name) {
  size_t n = 0;
  for (; s[n] != '\0'; n++)
    if (s[n] < ' ' || s[n] > '~' || s[n] == ':' || n == SK__ADOPT_NAME_MAX)
      return SK_EADDR;
  if (n == 0)
    return SK_EADDR;
  memcpy(name, s, n + 1);
  return 0;
}

int sk__addr_parse_adopt(sk_adopt *out, const char *text) {
  assert(out != NULL);
  memset(out, 0, sizeof *out);
  int rc = SK_EADDR;
  if (text == NULL) {
    /* rc stays SK_EADDR */
  } else if (strncmp(text, FD_PREFIX, sizeof FD_PREFIX - 1) == 0) {
    out->kind = SK_ADOPT_FD;
    rc = parse_fd(text + sizeof FD_PREFIX - 1, &out->fd);
  } else if (strcmp(text, SYSTEMD) == 0) {
    out->kind = SK_ADOPT_SYSTEMD;
    rc = 0;
  } else if (strncmp(text, SYSTEMD ":", sizeof SYSTEMD) == 0) {
    out->kind = SK_ADOPT_SYSTEMD;
    rc = parse_fdname(text + sizeof SYSTEMD, out->name);
  }
  if (rc != 0)
    memset(out, 0, sizeof *out);
  return rc;
}
