/* libuv-echo.c -- peer: line echo server on libuv, TCP (uv_tcp_t, one read,
 * every complete line echoed, uv_try_write then uv_write for the rest) and
 * UDP (uv_udp_t with recvmmsg, uv_udp_try_send). */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common.h"

/* Above this much queued output a connection is not read until it drains. */
#define HIGH_WATER (1u << 20)
/* libuv takes as many datagrams per recvmmsg as 64 KiB slots fit, up to 20. */
#define UDP_RECV_SIZE (20u * 65536u)

typedef struct conn {
  uv_tcp_t tcp; /* first: the handle pointer is the connection pointer */
  line_carry in;
} conn;

/* A write libuv could not finish at once, with its bytes. */
typedef struct pending_write {
  uv_write_t req;
  char bytes[];
} pending_write;

static char readbuf[READ_SIZE];
static char *outbuf; /* MAX_LINE + READ_SIZE */
static char *udpbuf;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(readbuf, sizeof readbuf);
}

static void on_closed(uv_handle_t *h) {
  conn *c = (conn *)h;
  line_carry_free(&c->in);
  free(c);
}

static void close_conn(conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status) {
  uv_stream_t *s = req->handle;
  free(req);
  if (status < 0) {
    close_conn((conn *)s);
    return;
  }
  if (uv_stream_get_write_queue_size(s) < HIGH_WATER / 2 && !uv_is_closing((uv_handle_t *)s))
    uv_read_start(s, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = (conn *)s;
  if (nread < 0) {
    close_conn(c);
    return;
  }
  long out = echo_lines(&c->in, buf->base, (size_t)nread, outbuf);
  if (out <= 0) {
    if (out < 0)
      close_conn(c);
    return;
  }
  uv_buf_t b = uv_buf_init(outbuf, (unsigned)out);
  int sent = uv_try_write(s, &b, 1);
  if (sent == UV_EAGAIN)
    sent = 0;
  if (sent < 0) {
    close_conn(c);
    return;
  }
  if (sent == out)
    return;
  size_t rest = (size_t)(out - sent);
  pending_write *w = malloc(sizeof *w + rest);
  if (!w) {
    close_conn(c);
    return;
  }
  memcpy(w->bytes, outbuf + sent, rest);
  b = uv_buf_init(w->bytes, (unsigned)rest);
  if (uv_write(&w->req, s, &b, 1, on_written) != 0) {
    free(w);
    close_conn(c);
    return;
  }
  if (uv_stream_get_write_queue_size(s) >= HIGH_WATER)
    uv_read_stop(s);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0)
    return;
  conn *c = calloc(1, sizeof *c);
  if (!c)
    return;
  uv_tcp_init(server->loop, &c->tcp);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(udpbuf, UDP_RECV_SIZE);
}

static void on_datagram(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags) {
  (void)flags;
  if (nread <= 0 || !addr)
    return; /* nothing more to read, an error, or the end of a batch */
  uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
  (void)uv_udp_try_send(h, &b, 1, addr); /* a full socket drops the reply */
}

int main(int argc, char **argv) {
  peer_options opts;
  uv_loop_t *loop = uv_default_loop();
  static uv_tcp_t server;
  static uv_udp_t udp;

  peer_parse_args(&opts, argc, argv);
  int fd = peer_listen(&opts);
  outbuf = malloc(MAX_LINE + READ_SIZE);
  udpbuf = opts.udp ? malloc(UDP_RECV_SIZE) : NULL;
  int rc;
  if (opts.udp) {
    rc = udpbuf ? uv_udp_init_ex(loop, &udp, AF_UNSPEC | UV_UDP_RECVMMSG) : UV_ENOMEM;
    if (rc == 0)
      rc = uv_udp_open(&udp, fd);
    if (rc == 0)
      rc = uv_udp_recv_start(&udp, on_udp_alloc, on_datagram);
  } else {
    rc = outbuf ? uv_tcp_init(loop, &server) : UV_ENOMEM;
    if (rc == 0)
      rc = uv_tcp_open(&server, fd);
    if (rc == 0)
      rc = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection);
  }
  if (rc != 0) {
    fprintf(stderr, "%s: %s\n", argv[0], uv_strerror(rc));
    return 1;
  }
  return uv_run(loop, UV_RUN_DEFAULT);
}
