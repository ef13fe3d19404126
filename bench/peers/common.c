/* common.c -- command line, listening socket and line echo shared by the
 * peer echo servers. */
#define _GNU_SOURCE

#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void usage(const char *name) {
  fprintf(stderr,
          "Usage: %s --tcp|--udp HOST:PORT\n"
          "Line echo server for the benchmark; HOST is an IPv4 address, port 0\n"
          "picks a free port. Prints \"listening on tcp HOST:PORT\" once ready.\n",
          name);
  exit(2);
}

void peer_parse_args(peer_options *opts, int argc, char **argv) {
  const char *address = NULL;

  memset(opts, 0, sizeof *opts);
  opts->name = argv[0];
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--tcp") == 0)
      opts->udp = 0;
    else if (strcmp(argv[i], "--udp") == 0)
      opts->udp = 1;
    else if (argv[i][0] != '-' && !address)
      address = argv[i];
    else
      usage(argv[0]);
  }
  if (!address)
    usage(argv[0]);
  const char *colon = strrchr(address, ':');
  size_t hostlen = colon ? (size_t)(colon - address) : 0;
  if (!colon || hostlen == 0 || hostlen >= sizeof opts->host)
    usage(argv[0]);
  memcpy(opts->host, address, hostlen);
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 0 || port > 65535)
    usage(argv[0]);
  opts->port = (int)port;
}

int peer_listen(const peer_options *opts) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opts->port)};
  int type = opts->udp ? SOCK_DGRAM : SOCK_STREAM;
  int on = 1;

  if (inet_pton(AF_INET, opts->host, &sin.sin_addr) != 1) {
    fprintf(stderr, "%s: not an IPv4 address: %s\n", opts->name, opts->host);
    exit(2);
  }
  int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || (!opts->udp && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) ||
      bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
      (!opts->udp && listen(fd, SOMAXCONN) != 0)) {
    fprintf(stderr, "%s: cannot listen on %s:%d: %s\n", opts->name, opts->host, opts->port,
            strerror(errno));
    exit(1);
  }
  socklen_t len = sizeof sin;
  if (getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
    fprintf(stderr, "%s: getsockname: %s\n", opts->name, strerror(errno));
    exit(1);
  }
  printf("listening on %s %s:%d\n", opts->udp ? "udp" : "tcp", opts->host, ntohs(sin.sin_port));
  fflush(stdout);
  return fd;
}

void peer_nodelay(int fd) {
  int on = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static int carry_append(line_carry *c, const char *data, size_t len) {
  if (c->len + len > MAX_LINE)
    return -1;
  if (c->len + len > c->cap) {
    uint32_t cap = c->cap ? c->cap : 128;
    while (cap < c->len + len)
      cap *= 2;
    char *grown = realloc(c->buf, cap);
    if (!grown)
      return -1;
    c->buf = grown;
    c->cap = cap;
  }
  memcpy(c->buf + c->len, data, len);
  c->len += (uint32_t)len;
  return 0;
}

long echo_lines(line_carry *carry, const char *data, size_t len, char *out) {
  const char *p = data, *end = data + len;
  char *o = out;

  if (carry->len) {
    /* The first line starts in the carried bytes. */
    const char *nl = memchr(p, '\n', len);
    if (!nl)
      return carry_append(carry, data, len) == 0 ? 0 : -1;
    memcpy(o, carry->buf, carry->len);
    o += carry->len;
    memcpy(o, p, (size_t)(nl + 1 - p));
    o += nl + 1 - p;
    p = nl + 1;
    line_carry_free(carry);
  }
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
      break;
    size_t n = (size_t)(nl + 1 - p);
    memcpy(o, p, n);
    o += n;
    p += n;
  }
  if (p < end && carry_append(carry, p, (size_t)(end - p)) != 0)
    return -1;
  return o - out;
}

void line_carry_free(line_carry *carry) {
  free(carry->buf);
  *carry = (line_carry){0};
}
