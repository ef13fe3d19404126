/* activate.c -- the socket a server adopts: "fd:N", or systemd socket
 * activation read as sd_listen_fds(3) reads it (no libsystemd), and the
 * checks that the socket suits the server. */
#include "activate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

/* The first descriptor systemd passes (SD_LISTEN_FDS_START). */
#define LISTEN_FDS_START 3

/* The file system of pidfds whose inode numbers identify a process for
 * the whole boot (Linux 6.9). */
#ifndef PID_FS_MAGIC
#define PID_FS_MAGIC 0x50494446
#endif

/* The descriptor's name in log lines: "fd:7", "systemd:web (fd 4)". */
#define WHAT_MAX (SK__ADOPT_NAME_MAX + 40)

/* One warning naming the descriptor, what is wrong and what would do. */
static int refuse(const char *transport, const char *what, const char *problem, int socktype) {
  sk__log(SK_LOG_WARN, "%s: %s %s; a %s server needs %s", transport, what, problem,
          socktype == SOCK_STREAM ? "TCP" : "UDP",
          socktype == SOCK_STREAM ? "a listening stream socket (TCP or UNIX)"
                                  : "a bound datagram socket (UDP or UNIX)");
  return sk__fail(SK_EADDR, 0);
}

/* One warning about the environment systemd (or whoever) left us. */
__attribute__((format(printf, 3, 4))) static int not_passed(const char *transport, const char *what,
                                                            const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  sk__log(SK_LOG_WARN, "%s: %s: no socket to take: %s", transport, what, why);
  return sk__fail(SK_EADDR, 0);
}

/* A decimal number of digits only, no greater than max. */
static bool parse_decimal(const char *s, uint64_t max, uint64_t *out) {
  uint64_t v = 0;
  if (s[0] == '\0')
    return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return false;
    unsigned d = (unsigned)(*s - '0');
    if (v > (max - d) / 10)
      return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

/* The inode number of a pidfd of ours, which systemd puts in
 * LISTEN_PIDFDID: 1 with *id; 0 where pidfds have no such number (no
 * pidfd_open, or pidfds outside pidfs before Linux 6.9, all sharing one
 * inode), in which case systemd ignores the variable and so do we; or
 * SK_ESOCKET. st_ino is 64 bits on the 64-bit systems we build for. */
static int own_pidfd_id(uint64_t *id) {
#ifdef SYS_pidfd_open
  int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  if (fd < 0)
    return errno == ENOSYS || errno == EOPNOTSUPP || errno == ENOTTY ? 0
                                                                     : sk__fail(SK_ESOCKET, errno);
  struct statfs fs;
  struct stat st;
  int rc = 0;
  if (fstatfs(fd, &fs) != 0 || fstat(fd, &st) != 0)
    rc = sk__fail(SK_ESOCKET, errno);
  else if (fs.f_type == PID_FS_MAGIC) {
    *id = (uint64_t)st.st_ino;
    rc = 1;
  }
  sk__close(fd);
  return rc;
#else
  (void)id;
  return 0;
#endif
}

/* The index of `name` among the n names of LISTEN_FDNAMES, or -1. Without
 * the variable every descriptor is named "unknown", as sd_listen_fds(3)
 * says. */
static int find_name(const char *names, int n, const char *name) {
  if (!names)
    return strcmp(name, "unknown") == 0 ? 0 : -1;
  size_t len = strlen(name);
  for (int i = 0; i < n; i++) {
    const char *end = strchrnul(names, ':');
    if ((size_t)(end - names) == len && memcmp(names, name, len) == 0)
      return i;
    names = *end ? end + 1 : end;
  }
  return -1;
}

/* The descriptor systemd passed us under a->name ("": the first), checked
 * as sd_listen_fds(3) checks the environment. The variables are left set:
 * each server of the process may take one of the descriptors. */
static int systemd_fd(const sk_adopt *a, const char *transport) {
  char what[WHAT_MAX];
  snprintf(what, sizeof what, "systemd%s%s", a->name[0] ? ":" : "", a->name);
  uint64_t v;
  const char *e = getenv("LISTEN_PID");
  if (!e)
    return not_passed(transport, what, "LISTEN_PID is not set (not started by socket activation?)");
  if (!parse_decimal(e, INT_MAX, &v) || v == 0)
    return not_passed(transport, what, "LISTEN_PID=\"%.40s\" is not a process id", e);
  if ((pid_t)v != getpid())
    return not_passed(transport, what,
                      "the sockets were passed to process %llu (LISTEN_PID), not %d",
                      (unsigned long long)v, (int)getpid());
  if ((e = getenv("LISTEN_PIDFDID")) != NULL) {
    uint64_t own = 0;
    if (!parse_decimal(e, UINT64_MAX, &v))
      return not_passed(transport, what, "LISTEN_PIDFDID=\"%.40s\" is not a number", e);
    int rc = own_pidfd_id(&own);
    if (rc < 0)
      return rc;
    if (rc == 1 && v != own)
      return not_passed(transport, what,
                        "the sockets were passed to an earlier process with our pid "
                        "(LISTEN_PIDFDID=%llu, ours is %llu)",
                        (unsigned long long)v, (unsigned long long)own);
  }
  if (!(e = getenv("LISTEN_FDS")))
    return not_passed(transport, what, "LISTEN_FDS is not set");
  if (!parse_decimal(e, INT_MAX - LISTEN_FDS_START, &v) || v == 0)
    return not_passed(transport, what, "LISTEN_FDS=\"%.40s\" is not a count of 1 or more", e);
  int n = (int)v;
  const char *names = getenv("LISTEN_FDNAMES");
  if (names) {
    int count = 1;
    for (const char *p = names; *p; p++)
      count += *p == ':';
    if (count != n)
      return not_passed(transport, what, "LISTEN_FDNAMES has %d name(s) for LISTEN_FDS=%d", count,
                        n);
  }
  int index = a->name[0] ? find_name(names, n, a->name) : 0;
  if (index < 0 && names)
    return not_passed(transport, what,
                      "none of the %d socket(s) is named \"%s\" (LISTEN_FDNAMES=\"%.200s\")", n,
                      a->name, names);
  if (index < 0)
    return not_passed(transport, what,
                      "LISTEN_FDNAMES is not set: the %d socket(s) are named \"unknown\"", n);
  return LISTEN_FDS_START + index;
}

static const char *file_kind(mode_t mode) {
  return S_ISFIFO(mode)  ? "a pipe or FIFO"
         : S_ISREG(mode) ? "a regular file"
         : S_ISDIR(mode) ? "a directory"
         : S_ISCHR(mode) ? "a character device"
         : S_ISBLK(mode) ? "a block device"
                         : "a file of another kind";
}

static const char *socket_kind(int domain, int type) {
  bool ip = domain == AF_INET || domain == AF_INET6;
  switch (type) {
  case SOCK_STREAM:
    return ip ? "a TCP socket" : "a UNIX stream socket";
  case SOCK_DGRAM:
    return ip ? "a UDP socket" : "a UNIX datagram socket";
  case SOCK_SEQPACKET:
    return "a sequenced-packet socket";
  case SOCK_RAW:
    return "a raw socket";
  default:
    return "a socket of another type";
  }
}

static int get_int(int fd, int name, int *value) {
  socklen_t len = sizeof *value;
  return getsockopt(fd, SOL_SOCKET, name, value, &len);
}

/* An address to receive datagrams at: a port, or a UNIX name. */
static bool is_bound(const sk_addr *a) {
  if (a->ss.ss_family == AF_UNIX)
    return a->len > offsetof(struct sockaddr_un, sun_path);
  return sk__addr_port((const struct sockaddr *)&a->ss) != 0;
}

/* Is fd a socket this server can serve? */
static int check(int fd, const char *what, const char *transport, int socktype, sk_addr *bound) {
  char problem[96];
  struct stat st;
  if (fstat(fd, &st) != 0)
    return errno == EBADF ? refuse(transport, what, "is not an open descriptor", socktype)
                          : sk__fail(SK_ESOCKET, errno);
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(problem, sizeof problem, "is %s, not a socket", file_kind(st.st_mode));
    return refuse(transport, what, problem, socktype);
  }
  int domain, type, listening;
  if (get_int(fd, SO_DOMAIN, &domain) != 0 || get_int(fd, SO_TYPE, &type) != 0 ||
      get_int(fd, SO_ACCEPTCONN, &listening) != 0)
    return sk__fail(SK_ESOCKET, errno);
  if (domain != AF_INET && domain != AF_INET6 && domain != AF_UNIX) {
    snprintf(problem, sizeof problem, "is a socket of address family %d, not IPv4, IPv6 or UNIX",
             domain);
    return refuse(transport, what, problem, socktype);
  }
  if (type != socktype) {
    snprintf(problem, sizeof problem, "is %s", socket_kind(domain, type));
    return refuse(transport, what, problem, socktype);
  }
  if (socktype == SOCK_STREAM && !listening) {
    snprintf(problem, sizeof problem, "is %s that is not listening", socket_kind(domain, type));
    return refuse(transport, what, problem, socktype);
  }
  memset(bound, 0, sizeof *bound);
  bound->len = sizeof bound->ss;
  if (getsockname(fd, (struct sockaddr *)&bound->ss, &bound->len) != 0)
    return sk__fail(SK_ESOCKET, errno);
  if (socktype == SOCK_DGRAM && !is_bound(bound)) {
    snprintf(problem, sizeof problem, "is %s that is not bound to an address",
             socket_kind(domain, type));
    return refuse(transport, what, problem, socktype);
  }
  return SK_OK;
}

/* What the server core needs of every socket it serves. O_NONBLOCK is a
 * flag of the open file, so systemd's copy (or the caller's) gets it too:
 * it is what any event loop sharing a listening socket needs anyway. */
static int prepare(int fd, const sk_bind_options *opts) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0))
    return sk__fail(SK_ESOCKET, errno);
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || (!(fdfl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) != 0))
    return sk__fail(SK_ESOCKET, errno);
  if ((opts->rcvbuf &&
       setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opts->rcvbuf, sizeof opts->rcvbuf) != 0) ||
      (opts->sndbuf &&
       setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opts->sndbuf, sizeof opts->sndbuf) != 0))
    return sk__fail(SK_ESOCKET, errno);
  return SK_OK;
}

int sk__activate_take(const sk_adopt *a, const char *transport, int socktype,
                      const sk_bind_options *opts, sk_addr *bound) {
  char what[WHAT_MAX];
  int fd = a->fd;
  if (a->kind == SK_ADOPT_SYSTEMD) {
    if ((fd = systemd_fd(a, transport)) < 0)
      return fd;
    snprintf(what, sizeof what, "systemd%s%s (fd %d)", a->name[0] ? ":" : "", a->name, fd);
  } else {
    snprintf(what, sizeof what, "fd:%d", fd);
  }
  int rc = check(fd, what, transport, socktype, bound);
  if (rc == SK_OK)
    rc = prepare(fd, opts);
  return rc == SK_OK ? fd : rc;
}
