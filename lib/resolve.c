/* resolve.c -- client addresses: names and numbers through getaddrinfo,
 * UNIX addresses through the library's own parser. */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* Longest host part we pass to getaddrinfo (NI_MAXHOST). */
#define HOST_MAX 1025

/* The host and port of "host:port", "[v6]:port", ":port" or "port". */
typedef struct host_port {
  char host[HOST_MAX]; /* empty: this machine */
  char port[6];
  bool bracketed; /* "[...]": an IPv6 literal, never looked up */
} host_port;

/* "localhost" and names under ".localhost" are the loopback (RFC 6761),
 * without asking the resolver: a machine without /etc/hosts (a minimal
 * container or chroot) would otherwise fail to find it. */
static bool is_localhost(const char *host) {
  size_t n = strlen(host);
  static const char suffix[] = ".localhost";
  return strcasecmp(host, "localhost") == 0 ||
         (n > sizeof suffix - 1 && strcasecmp(host + n - (sizeof suffix - 1), suffix) == 0);
}

static int split(const char *address, host_port *out) {
  const char *host = address, *colon;
  size_t host_len;
  if (address[0] == '[') {
    const char *end = strchr(address, ']');
    if (end == NULL || end[1] != ':')
      return SK_EADDR;
    host = address + 1;
    host_len = (size_t)(end - host);
    colon = end + 1;
    if (host_len == 0)
      return SK_EADDR;
  } else {
    /* A second colon means an IPv6 address without brackets, which would
     * be ambiguous ("::1:80"). */
    colon = strchr(address, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL)
      return SK_EADDR;
    host_len = colon ? (size_t)(colon - address) : 0;
  }
  const char *port = colon ? colon + 1 : address;
  size_t digits = strspn(port, "0123456789");
  if (digits == 0 || digits > 5 || port[digits] != '\0' || host_len >= sizeof out->host)
    return SK_EADDR;
  long value = 0;
  for (size_t i = 0; i < digits; i++)
    value = value * 10 + (port[i] - '0');
  if (value < 1 || value > 65535)
    return SK_EADDR;
  memcpy(out->host, host, host_len);
  out->host[host_len] = '\0';
  memcpy(out->port, port, digits + 1);
  out->bracketed = address[0] == '[';
  return 0;
}

int sk__resolve_check(const char *address) {
  if (sk__addr_is_unix_text(address)) {
    sk_addr a;
    return sk__addr_parse(&a, address);
  }
  host_port hp;
  return split(address, &hp);
}

int sk__resolve(const char *address, int socktype, sk_addr_list *out) {
  out->count = 0;
  if (sk__addr_is_unix_text(address)) {
    int rc = sk__addr_parse(&out->items[0], address);
    if (rc != 0)
      return sk__fail(rc, 0);
    out->count = 1;
    return 0;
  }
  host_port hp;
  if (split(address, &hp) != 0)
    return sk__fail(SK_EADDR, 0);

  /* No AI_ADDRCONFIG: it hides ::1 on hosts whose only IPv6 address is the
   * loopback, which is where tests and local services live. No host means
   * this machine: without AI_PASSIVE, getaddrinfo gives the loopback. */
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = socktype};
  hints.ai_flags = AI_NUMERICSERV;
  if (hp.bracketed) {
    hints.ai_family = AF_INET6;
    hints.ai_flags |= AI_NUMERICHOST;
  }
  struct addrinfo *list = NULL;
  int err =
      getaddrinfo(hp.host[0] && !is_localhost(hp.host) ? hp.host : NULL, hp.port, &hints, &list);
  if (err != 0) {
    int os_error = err == EAI_SYSTEM ? errno : 0;
    sk__log(SK_LOG_INFO, "client: cannot resolve %s: %s", address,
            err == EAI_SYSTEM ? strerror(os_error) : gai_strerror(err));
    if (err == EAI_MEMORY)
      return sk__fail(SK_ENOMEM, ENOMEM);
    if (err == EAI_AGAIN)
      return sk__fail(SK_ECONNECT, EAGAIN);
    return sk__fail(SK_EADDR, os_error);
  }
  for (struct addrinfo *ai = list; ai && out->count < SK_RESOLVE_MAX; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof out->items[0].ss)
      continue;
    sk_addr *a = &out->items[out->count++];
    memset(a, 0, sizeof *a);
    memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
    a->len = ai->ai_addrlen;
  }
  freeaddrinfo(list);
  return out->count > 0 ? 0 : sk__fail(SK_EADDR, 0);
}
