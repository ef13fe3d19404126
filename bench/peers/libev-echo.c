/* libev-echo.c -- peer: line echo server on libev (one ev_io per
 * connection; one read, every complete line echoed, one write). */
#define _GNU_SOURCE

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

typedef struct conn {
  ev_io io; /* first: the watcher pointer is the connection pointer */
  line_carry in;
  line_carry out;
} conn;

static char inbuf[READ_SIZE];
static char *outbuf; /* MAX_LINE + READ_SIZE */

static void close_conn(struct ev_loop *loop, conn *c) {
  ev_io_stop(loop, &c->io);
  close(c->io.fd);
  line_carry_free(&c->in);
  line_carry_free(&c->out);
  free(c);
}

/* Watch for `events` only: reading stops while output is pending. */
static void want(struct ev_loop *loop, conn *c, int events) {
  ev_io_stop(loop, &c->io);
  ev_io_set(&c->io, c->io.fd, events);
  ev_io_start(loop, &c->io);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents) {
  conn *c = (conn *)w;
  int fd = w->fd;

  if (revents & EV_WRITE) {
    ssize_t n = send(fd, c->out.buf, c->out.len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN)
        close_conn(loop, c);
      return;
    }
    memmove(c->out.buf, c->out.buf + n, c->out.len - (size_t)n);
    c->out.len -= (uint32_t)n;
    if (c->out.len == 0) {
      line_carry_free(&c->out);
      want(loop, c, EV_READ);
    }
    return;
  }
  ssize_t n = read(fd, inbuf, sizeof inbuf);
  if (n <= 0) {
    if (n == 0 || errno != EAGAIN)
      close_conn(loop, c);
    return;
  }
  long out = echo_lines(&c->in, inbuf, (size_t)n, outbuf);
  if (out <= 0) {
    if (out < 0)
      close_conn(loop, c);
    return;
  }
  ssize_t sent = send(fd, outbuf, (size_t)out, MSG_NOSIGNAL);
  if (sent < 0 && errno != EAGAIN) {
    close_conn(loop, c);
    return;
  }
  if (sent < 0)
    sent = 0;
  if (sent < out) {
    size_t rest = (size_t)(out - sent);
    if (!(c->out.buf = malloc(rest))) {
      close_conn(loop, c);
      return;
    }
    memcpy(c->out.buf, outbuf + sent, rest);
    c->out.len = c->out.cap = (uint32_t)rest;
    want(loop, c, EV_WRITE);
  }
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  for (int k = 0; k < 64; k++) {
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    peer_nodelay(fd);
    ev_io_init(&c->io, on_io, fd, EV_READ);
    ev_io_start(loop, &c->io);
  }
}

int main(int argc, char **argv) {
  peer_options opts;
  ev_io listener;

  peer_parse_args(&opts, argc, argv);
  if (opts.udp) {
    fprintf(stderr, "%s: UDP is not served by this peer\n", argv[0]);
    return 2;
  }
  int fd = peer_listen(&opts);
  struct ev_loop *loop = ev_default_loop(EVBACKEND_EPOLL);
  outbuf = malloc(MAX_LINE + READ_SIZE);
  if (!loop || !outbuf) {
    fprintf(stderr, "%s: cannot create the loop\n", argv[0]);
    return 1;
  }
  ev_io_init(&listener, on_accept, fd, EV_READ);
  ev_io_start(loop, &listener);
  ev_run(loop, 0);
  return 0;
}
