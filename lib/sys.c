/* sys.c -- socket and system-call helpers shared by the servers and clients. */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "internal.h"

void sk__close(int fd) {
  if (fd < 0)
    return;
  int saved_errno = errno;
  /* Never retry close on EINTR: Linux has already released the descriptor
   * and a retry could close one that another thread just opened. */
  (void)close(fd);
  errno = saved_errno;
}

int sk__wakefd_open(void) {
  return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void sk__wake(int fd) {
  int saved_errno = errno;
  uint64_t one = 1;
  /* EAGAIN means the counter is already huge: the loop is woken anyway. */
  ssize_t n;
  do
    n = write(fd, &one, sizeof one);
  while (n < 0 && errno == EINTR);
  errno = saved_errno;
}

static int set_int(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value);
}

bool sk__addr_is_wildcard(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
  if (ss->ss_family == AF_INET6)
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
  return false;
}

bool sk__addr_is_unix_path(const sk_addr *addr) {
  const struct sockaddr_un *un = (const struct sockaddr_un *)&addr->ss;
  return un->sun_family == AF_UNIX && un->sun_path[0] != '\0';
}

void sk__unlink_unix_path(const sk_addr *addr) {
  if (sk__addr_is_unix_path(addr))
    (void)unlink(((const struct sockaddr_un *)&addr->ss)->sun_path);
}

/* A stale socket file from a previous run is replaced; any other file at
 * the path is left alone and binding fails with EADDRINUSE. */
static int prepare_unix_path(const sk_addr *addr) {
  if (!sk__addr_is_unix_path(addr))
    return 0;
  const char *path = ((const struct sockaddr_un *)&addr->ss)->sun_path;
  struct stat st;
  if (lstat(path, &st) != 0)
    return 0;
  if (!S_ISSOCK(st.st_mode)) {
    errno = EADDRINUSE;
    return -1;
  }
  return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int sk__bind_socket(sk_addr *a, int type, const sk_bind_options *opts) {
  int family = a->ss.ss_family;
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 && a->wildcard && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
    /* No IPv6 on this host: the port-only form falls back to IPv4 any. */
    in_port_t port = ((struct sockaddr_in6 *)&a->ss)->sin6_port;
    struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
    memset(&a->ss, 0, sizeof a->ss);
    in->sin_family = AF_INET;
    in->sin_port = port;
    in->sin_addr.s_addr = htonl(INADDR_ANY);
    a->len = sizeof *in;
    family = AF_INET;
    fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (fd < 0)
    return sk__fail(SK_ESOCKET, errno);

  int rc = SK_ESOCKET;
  if (family == AF_INET6 && a->wildcard && set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0) != 0)
    goto fail;
  if (type == SOCK_STREAM && family != AF_UNIX && set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) != 0)
    goto fail;
  if (opts->reuseport && set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1) != 0)
    goto fail;
  if (opts->rcvbuf && set_int(fd, SOL_SOCKET, SO_RCVBUF, opts->rcvbuf) != 0)
    goto fail;
  if (opts->sndbuf && set_int(fd, SOL_SOCKET, SO_SNDBUF, opts->sndbuf) != 0)
    goto fail;
  rc = SK_EBIND;
  if (family == AF_UNIX && prepare_unix_path(a) != 0)
    goto fail;
  if (bind(fd, (struct sockaddr *)&a->ss, a->len) != 0)
    goto fail;
  return fd;
fail:
  rc = sk__fail(rc, errno);
  sk__close(fd);
  return rc;
}
