/* tcp_blocking.c -- one connection served to its end on the calling thread
 * with plain waits on the socket: the thread and process models' core. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp.h"

/* Send all of out within the write timeout; once the server stops, within
 * the drain time too. False if the client is gone or stalled, or the drain
 * time is over. */
static bool send_all(sk_tcp_server *srv, int fd, sk_buf **out, int stopfd) {
  int64_t deadline = 0; /* 0: none computed since the last progress */
  bool stopping = false;
  while (*out) {
    if ((*out)->len == 0) { /* nothing framed (empty RAW replies) */
      free(*out);
      *out = NULL;
      break;
    }
    ssize_t n = send(fd, sk__buf_bytes(*out), (*out)->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sk__buf_consume(out, (size_t)n);
      deadline = 0;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
      return false;
    }
    if (!deadline)
      deadline = srv->write_timeout_ms ? sk__clock_ms() + srv->write_timeout_ms : -1;
    int64_t until = deadline;
    if (stopping) {
      int64_t drain = sk__life_drain_deadline(&srv->core.life);
      if (until < 0 || drain < until)
        until = drain;
    }
    int r = sk__wait_fd(fd, POLLOUT, stopping ? -1 : stopfd, until);
    if (r == SK__WAIT_STOPPED) {
      stopping = true; /* owed replies get the drain time, no more */
      continue;
    }
    if (r <= 0) {
      if (!stopping)
        sk__tcp_count(srv, SK_STAT_CONNECTIONS_TIMED_OUT, 1);
      return false;
    }
  }
  return true;
}

/* After a protocol error: our FIN, then discard input until the client's
 * EOF or the linger time, so owed replies are not destroyed by a reset. */
static void linger_close(int fd, int stopfd) {
  if (shutdown(fd, SHUT_WR) != 0)
    return;
  char buf[4096];
  int64_t deadline = sk__clock_ms() + SK_TCP_LINGER_MS;
  while (sk__wait_fd(fd, POLLIN, stopfd, deadline) == 1) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      break;
  }
}

/* Wait for the next read's bytes and append them to *in, which keeps room
 * for one byte more (the NUL after the last message). False when the
 * connection ends instead: the idle timeout, a stop (every reply owed was
 * sent already), an error, or the client's EOF; each counted. */
static bool read_more(sk_tcp_server *srv, int fd, int stopfd, size_t chunk, sk_buf **in,
                      int64_t idle_deadline) {
  for (;;) {
    int r = sk__wait_fd(fd, POLLIN, stopfd, idle_deadline);
    if (r == 0)
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_TIMED_OUT, 1);
    if (r <= 0)
      return false;
    char *dst = sk__buf_reserve(in, chunk + 1);
    if (!dst) {
      sk__log(SK_LOG_ERROR, "tcp: out of memory for a connection's input; closing it");
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
      return false;
    }
    ssize_t n = read(fd, dst, chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (n < 0) {
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
      return false;
    }
    if (n == 0) {
      sk__tcp_end_of_stream(srv, fd, in); /* the client is done; its replies are out */
      return false;
    }
    (*in)->len += (uint32_t)n;
    return true;
  }
}

void sk__tcp_serve_blocking(sk_tcp_server *srv, int fd, int stopfd, bool count_first) {
  /* RAW: one read is one message, so a read never takes more than a
   * message may hold. Input lives in a buffer that grows in place, so
   * each byte of a large message is copied a constant number of times. */
  size_t chunk = srv->framing == SK_FRAME_RAW ? (size_t)srv->core.max_message : SK_TCP_READ_CHUNK;
  size_t high = (size_t)srv->high_water;
  sk_buf *in = NULL, *out = NULL;
  sk_peer peer = {0};
  sk_peer *was = sk__peer_bind(&peer);
  sk_tally tally = {0};
  sk_origin *origin = NULL;
  if (srv->proxy_protocol) {
    /* Behind a proxy the first bytes are its header, and only those. */
    if (!sk__tcp_proxy_read_blocking(srv, fd, stopfd, &origin))
      goto done;
    sk__peer_set_origin(&peer, origin);
  }
  int64_t idle_deadline = srv->idle_timeout_ms ? sk__clock_ms() + srv->idle_timeout_ms : -1;
  for (;;) {
    if (!read_more(srv, fd, stopfd, chunk, &in, idle_deadline))
      break;
    int rc;
    do {
      /* At most one reply past the high-water mark is queued; it is sent
       * before more messages are taken from the input. */
      size_t used = 0;
      rc = sk__tcp_serve_all(srv, fd, count_first, sk__buf_bytes(in), in->len, high, &used, &out,
                             &tally, &peer);
      if (used > 0) {
        sk__buf_consume(&in, used);
        if (srv->idle_timeout_ms)
          idle_deadline = sk__clock_ms() + srv->idle_timeout_ms;
      }
      sk__tcp_flush_tally(srv, &tally);
      if (!send_all(srv, fd, &out, stopfd))
        goto done;
    } while (rc == SK_TCP_SERVE_FULL && in && !atomic_load(&srv->core.stop_requested));
    if (rc < 0) {
      sk__tcp_serve_failed(srv, fd, rc);
      linger_close(fd, stopfd);
      break;
    }
  }
done:
  sk__peer_bind(was);
  free(origin);
  free(out);
  free(in);
}
