/* epoll-echo.c -- peer: a minimal hand-written epoll line echo server, the
 * practical limit for one read and one write per request (TCP), and a
 * recvmmsg/sendmmsg loop (UDP). */
#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define EVENT_BATCH 256
#define UDP_BATCH 32
#define UDP_MAX 65507

/* Per connection, indexed by descriptor: an incomplete line and unsent
 * output, 32 bytes, no heap memory while idle. */
typedef struct conn {
  line_carry in;
  line_carry out;
} conn;

static conn *conns;
static int nconns;
static int epfd;
static char inbuf[READ_SIZE];
static char *outbuf; /* MAX_LINE + READ_SIZE: a carried line and one read */

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void close_conn(int fd) {
  line_carry_free(&conns[fd].in);
  line_carry_free(&conns[fd].out);
  close(fd);
}

static void add_conn(int fd) {
  if (fd >= nconns) {
    int cap = nconns ? nconns : 64;
    while (cap <= fd)
      cap *= 2;
    conn *grown = realloc(conns, (size_t)cap * sizeof *grown);
    if (!grown)
      die("realloc");
    memset(grown + nconns, 0, (size_t)(cap - nconns) * sizeof *grown);
    conns = grown;
    nconns = cap;
  }
  peer_nodelay(fd);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
    close(fd);
}

/* Stop reading while output is pending (backpressure), resume after. */
static void want(int fd, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.fd = fd};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
    close_conn(fd);
}

/* Send bytes; keep what the socket does not take. Returns -1 on error. */
static int send_or_keep(int fd, conn *c, const char *bytes, size_t len) {
  ssize_t n = send(fd, bytes, len, MSG_NOSIGNAL);
  if (n < 0) {
    if (errno != EAGAIN)
      return -1;
    n = 0;
  }
  if ((size_t)n == len)
    return 0;
  c->out.buf = malloc(len - (size_t)n);
  if (!c->out.buf)
    return -1;
  memcpy(c->out.buf, bytes + n, len - (size_t)n);
  c->out.len = c->out.cap = (uint32_t)(len - (size_t)n);
  want(fd, EPOLLOUT);
  return 0;
}

static void on_writable(int fd, conn *c) {
  ssize_t n = send(fd, c->out.buf, c->out.len, MSG_NOSIGNAL);
  if (n < 0) {
    if (errno != EAGAIN)
      close_conn(fd);
    return;
  }
  if ((size_t)n < c->out.len) {
    memmove(c->out.buf, c->out.buf + n, c->out.len - (size_t)n);
    c->out.len -= (uint32_t)n;
    return;
  }
  line_carry_free(&c->out);
  want(fd, EPOLLIN);
}

/* One read, every complete line echoed, one write. */
static void on_readable(int fd, conn *c) {
  ssize_t n = read(fd, inbuf, sizeof inbuf);
  if (n <= 0) {
    if (n == 0 || errno != EAGAIN)
      close_conn(fd);
    return;
  }
  long out = echo_lines(&c->in, inbuf, (size_t)n, outbuf);
  if (out < 0 || (out > 0 && send_or_keep(fd, c, outbuf, (size_t)out) != 0))
    close_conn(fd);
}

static void serve_tcp(int lfd) {
  struct epoll_event events[EVENT_BATCH];
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};

  outbuf = malloc(MAX_LINE + READ_SIZE);
  if (!outbuf || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) != 0)
    die("setup");
  for (;;) {
    int n = epoll_wait(epfd, events, EVENT_BATCH, -1);
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (int k = 0; k < 64; k++) {
          int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0)
            break;
          add_conn(cfd);
        }
        continue;
      }
      conn *c = &conns[fd];
      if (c->out.len)
        on_writable(fd, c);
      else
        on_readable(fd, c);
    }
  }
}

/* UDP: take up to UDP_BATCH datagrams in one call, send them all back in
 * one call, until the socket is empty. */
static void serve_udp(int fd) {
  static struct mmsghdr in[UDP_BATCH], out[UDP_BATCH];
  static struct iovec iov[UDP_BATCH];
  static struct sockaddr_in from[UDP_BATCH];
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  char *bufs = malloc((size_t)UDP_BATCH * UDP_MAX);

  if (!bufs || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
    die("setup");
  for (int i = 0; i < UDP_BATCH; i++)
    iov[i] = (struct iovec){.iov_base = bufs + (size_t)i * UDP_MAX, .iov_len = UDP_MAX};
  for (;;) {
    if (epoll_wait(epfd, &ev, 1, -1) < 0 && errno != EINTR)
      die("epoll_wait");
    int n;
    do {
      for (int i = 0; i < UDP_BATCH; i++) {
        iov[i].iov_len = UDP_MAX;
        in[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                        .msg_namelen = sizeof from[i],
                                        .msg_iov = &iov[i],
                                        .msg_iovlen = 1};
      }
      n = recvmmsg(fd, in, UDP_BATCH, MSG_DONTWAIT, NULL);
      for (int i = 0; i < n; i++) {
        iov[i].iov_len = in[i].msg_len;
        out[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                         .msg_namelen = in[i].msg_hdr.msg_namelen,
                                         .msg_iov = &iov[i],
                                         .msg_iovlen = 1};
      }
      for (int sent = 0; sent < n;) {
        int k = sendmmsg(fd, out + sent, (unsigned)(n - sent), MSG_DONTWAIT);
        sent += k > 0 ? k : 1; /* a reply the socket refuses is dropped */
      }
    } while (n == UDP_BATCH);
  }
}

int main(int argc, char **argv) {
  peer_options opts;

  peer_parse_args(&opts, argc, argv);
  int fd = peer_listen(&opts);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0)
    die("epoll_create1");
  if (opts.udp)
    serve_udp(fd);
  else
    serve_tcp(fd);
  return 0;
}
