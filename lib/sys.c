/* sys.c -- socket and system-call helpers shared by the servers and clients. */
#include <errno.h>
#include <fcntl.h>
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
  /* -1 stands for a descriptor that is gone, such as a server's stop
   * descriptor in a forked connection child: waking it must do nothing,
   * not write into whatever file took the number since. */
  if (fd < 0)
    return;
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

static bool same_file(const struct stat *st, dev_t dev, ino_t ino) {
  return st->st_dev == dev && st->st_ino == ino;
}

/* Device and inode alone would not do: once our socket is closed (a server
 * stops before it is destroyed) and its file replaced, ext4 hands the freed
 * inode number to the very next file, often the replacement. An O_PATH
 * descriptor keeps the inode allocated, so no other file can share it. */
bool sk__unix_file_record(const sk_addr *addr, sk_unix_file *file) {
  if (!sk__addr_is_unix_path(addr))
    return false;
  const char *path = ((const struct sockaddr_un *)&addr->ss)->sun_path;
  int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    sk__close(fd);
    return false;
  }
  file->fd = fd;
  file->dev = st.st_dev;
  file->ino = st.st_ino;
  return true;
}

/* Another server may have replaced the file since (after finding ours
 * stale, or after an operator removed it): that file is not ours to
 * remove. */
void sk__unlink_unix_path(const sk_addr *addr, sk_unix_file *file) {
  const char *path = ((const struct sockaddr_un *)&addr->ss)->sun_path;
  struct stat st;
  if (lstat(path, &st) == 0 && same_file(&st, file->dev, file->ino))
    (void)unlink(path);
  sk__close(file->fd);
  file->fd = -1;
}

/* bind() found a file at the path. A socket file that nothing is bound to
 * any more (its server died without removing it) is removed, so that bind
 * can be tried again; a live socket and any other file are left alone.
 * Connecting is the only way to tell the two apart: a stale file refuses
 * (ECONNREFUSED), a live one accepts, or says EAGAIN when its backlog is
 * full, or EPROTOTYPE when it is a socket of the other type. Returns 0 when
 * bind may be tried again, or -1 with errno (EADDRINUSE when the socket
 * is in use, ENOTSOCK when the file is not a socket). */
static int remove_stale_socket(const sk_addr *addr, int type) {
  const char *path = ((const struct sockaddr_un *)&addr->ss)->sun_path;
  struct stat probed, now;
  if (lstat(path, &probed) != 0)
    return errno == ENOENT ? 0 : -1; /* gone already: bind again */
  if (!S_ISSOCK(probed.st_mode)) {
    errno = ENOTSOCK;
    return -1;
  }
  int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int err = connect(fd, (const struct sockaddr *)&addr->ss, addr->len) == 0 ? 0 : errno;
  sk__close(fd);
  if (err == ENOENT)
    return 0;
  if (err != ECONNREFUSED) {
    errno = err == 0 || err == EAGAIN || err == EPROTOTYPE ? EADDRINUSE : err;
    return -1;
  }
  /* Remove only the file that refused: if another server has replaced it
   * meanwhile, bind again and let that one be probed in its turn. */
  if (lstat(path, &now) != 0)
    return errno == ENOENT ? 0 : -1;
  if (!same_file(&now, probed.st_dev, probed.st_ino))
    return 0;
  return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Rounds of probing a taken UNIX path before giving up with EADDRINUSE. */
#define STALE_ROUNDS 3

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
  /* Bind first and probe only a path that is taken. A few rounds settle a
   * race with servers replacing stale files at the same path; one that
   * keeps losing it reports EADDRINUSE. */
  for (int round = 0; bind(fd, (struct sockaddr *)&a->ss, a->len) != 0; round++) {
    if (errno != EADDRINUSE || !sk__addr_is_unix_path(a))
      goto fail;
    if (round == STALE_ROUNDS) {
      errno = EADDRINUSE;
      goto fail;
    }
    if (remove_stale_socket(a, type) != 0)
      goto fail;
  }
  return fd;
fail:
  rc = sk__fail(rc, errno);
  sk__close(fd);
  return rc;
}
