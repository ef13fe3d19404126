/* tcp_client.c -- TCP client: connect with retries and back-off, framed
 * requests, and replies that are never paired with the wrong request. The
 * string calls and their binary twins (*_bytes) share one path: they differ
 * only in how a message's length is known and whether a NUL is refused. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "client.h"
#include "frame.h"
#include "resolve.h"

/* Free space each read gets in the receive buffer, at least. */
#define READ_CHUNK 16384

struct sk_tcp_client {
  sk_client_base base; /* first: sk__client_create fills it */
  int attempts;        /* of the last connect */
  char *in;            /* bytes received and not yet returned */
  size_t in_len, in_cap;
  char *out; /* the framed message being sent */
  size_t out_cap;
  char *msg; /* the last message returned, followed by a NUL */
  size_t msg_len, msg_cap;
};

/* Make *buf hold at least `need` bytes. 0, or -1 when out of memory. */
static int reserve(char **buf, size_t *cap, size_t need) {
  if (need <= *cap)
    return 0;
  size_t n = *cap ? *cap : 256;
  while (n < need)
    n *= 2;
  char *p = realloc(*buf, n);
  if (!p)
    return -1;
  *buf = p;
  *cap = n;
  return 0;
}

/* Bytes received and not yet returned belong to this connection only. */
static void disconnect(sk_tcp_client *c) {
  sk__close(c->base.fd);
  c->base.fd = -1;
  c->in_len = 0;
}

/* One connection to one address, bounded by `deadline`. Returns the
 * descriptor, or SK_ECONNECT, SK_ETIMEDOUT or SK_ESOCKET. */
static int connect_one(const sk_addr *a, long long deadline) {
  int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return sk__fail(SK_ESOCKET, errno);
  int rc;
  /* Non-blocking, so that the attempt can be bounded; an interrupted
   * connect goes on in the background just as one in progress does. */
  if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      rc = sk__fail(SK_ECONNECT, errno);
      goto fail;
    }
    int ready = sk__wait_fd(fd, POLLOUT, -1, deadline);
    if (ready <= 0) {
      rc = ready == 0 ? sk__fail(SK_ETIMEDOUT, 0) : sk__fail(SK_ECONNECT, errno);
      goto fail;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err != 0) {
      rc = sk__fail(SK_ECONNECT, err);
      goto fail;
    }
  }
  /* Each request waits for its reply, so Nagle's algorithm would only
   * delay it. */
  int one = 1;
  if (a->ss.ss_family != AF_UNIX &&
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    rc = sk__fail(SK_ESOCKET, errno);
    goto fail;
  }
  return fd;
fail:
  sk__close(fd);
  return rc;
}

/* One attempt: look the name up again (its addresses may have changed
 * since the last attempt) and try each address in turn. */
static int attempt_once(sk_tcp_client *c, long long deadline) {
  sk_addr_list list;
  int rc = sk__resolve(c->base.address, SOCK_STREAM, &list);
  if (rc != SK_OK)
    return rc;
  for (size_t i = 0; i < list.count; i++) {
    long long until = sk__clock_ms() + c->base.opts.connect_timeout_ms;
    if (deadline >= 0 && deadline < until)
      until = deadline;
    int fd = connect_one(&list.items[i], until);
    if (fd >= 0) {
      c->base.fd = fd;
      c->in_len = 0;
      return SK_OK;
    }
    rc = fd;
    if (deadline >= 0 && sk__clock_ms() >= deadline)
      break;
  }
  return rc;
}

static void log_attempt(const sk_tcp_client *c, int attempt, int rc, const char *next) {
  if (!sk__log_enabled(SK_LOG_INFO))
    return;
  int os_error = sk_last_os_error();
  sk__log(SK_LOG_INFO, "tcp client: cannot connect to %s (attempt %d of %lld): %s; %s",
          c->base.address, attempt, c->base.opts.attempts,
          os_error ? strerror(os_error) : sk_strerror(rc), next);
}

static int connect_retrying(sk_tcp_client *c, int timeout_ms) {
  long long deadline = timeout_ms < 0 ? -1 : sk__clock_ms() + timeout_ms;
  for (int attempt = 1;; attempt++) {
    c->attempts = attempt;
    int rc = attempt_once(c, deadline);
    if (rc == SK_OK) {
      if (attempt > 1)
        sk__log(SK_LOG_INFO, "tcp client: connected to %s on attempt %d", c->base.address, attempt);
      return SK_OK;
    }
    /* Refusals, unreachable hosts and timeouts may pass (a server still
     * starting); a name that does not exist or a lack of sockets will not. */
    if (rc != SK_ECONNECT && rc != SK_ETIMEDOUT)
      return rc;
    if (attempt >= c->base.opts.attempts) {
      log_attempt(c, attempt, rc, "giving up");
      return rc;
    }
    long long pause = sk__retry_pause(&c->base.opts, attempt, &c->base.rng);
    long long wake = sk__clock_ms() + pause;
    if (deadline >= 0 && wake >= deadline) {
      /* The next attempt could not begin in time: say so now rather than
       * sleep to the deadline first. */
      log_attempt(c, attempt, rc, "out of time");
      return SK_ETIMEDOUT;
    }
    if (sk__log_enabled(SK_LOG_INFO)) {
      char next[64];
      snprintf(next, sizeof next, "trying again in %lld ms", pause);
      log_attempt(c, attempt, rc, next);
    }
    sk__sleep_until(wake);
  }
}

/* Whether the connection holds anything no request asked for: unread
 * bytes, or the end of a connection the server closed while it was idle.
 * A reply read now could then belong to an earlier request. */
static bool out_of_step(sk_tcp_client *c) {
  char byte;
  ssize_t n = 0;
  if (c->in_len == 0) {
    do
      n = recv(c->base.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return false;
  }
  if (c->in_len > 0 || n > 0)
    sk__log(SK_LOG_WARN, "tcp client: %s sent data nobody asked for; reconnecting",
            c->base.address);
  else
    sk__log(SK_LOG_DEBUG, "tcp client: %s closed the connection; reconnecting", c->base.address);
  return true;
}

static int check_message(const sk_tcp_client *c, const char *m, size_t len) {
  if (len > (size_t)c->base.opts.max_message)
    return sk__fail(SK_EMSGSIZE, 0);
  if (c->base.opts.framing == SK_FRAME_LINE && len > 0 && memchr(m, '\n', len) != NULL)
    return sk__fail(SK_EINVAL, 0); /* it would arrive as two messages */
  if (c->base.opts.framing == SK_FRAME_RAW && len == 0)
    return sk__fail(SK_EINVAL, 0); /* nothing would be sent */
  return SK_OK;
}

/* Frame the message and send all of it before `deadline`. */
static int send_message(sk_tcp_client *c, const char *m, size_t len, long long deadline) {
  int framing = (int)c->base.opts.framing;
  size_t total = len + sk__frame_overhead(framing);
  if (reserve(&c->out, &c->out_cap, total) != 0)
    return sk__fail(SK_ENOMEM, ENOMEM);
  sk__frame_encode(framing, c->out, m, len);
  size_t at = 0;
  while (at < total) {
    ssize_t n = send(c->base.fd, c->out + at, total - at, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      at += (size_t)n;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int ready = sk__wait_fd(c->base.fd, POLLOUT, -1, deadline);
      if (ready <= 0)
        return ready == 0 ? sk__fail(SK_ETIMEDOUT, 0) : sk__fail(SK_EWRITE, errno);
    } else if (errno == EPIPE || errno == ECONNRESET) {
      return sk__fail(SK_ECLOSED, errno);
    } else if (errno != EINTR) {
      return sk__fail(SK_EWRITE, errno);
    }
  }
  return SK_OK;
}

/* Copy the decoded message out, NUL-terminated, and drop it from the input. */
static int take(sk_tcp_client *c, const sk_frame *f) {
  if (reserve(&c->msg, &c->msg_cap, f->length + 1) != 0)
    return sk__fail(SK_ENOMEM, ENOMEM);
  memcpy(c->msg, c->in + f->offset, f->length);
  c->msg[f->length] = '\0';
  c->msg_len = f->length;
  c->in_len -= f->consumed;
  memmove(c->in, c->in + f->consumed, c->in_len);
  return SK_OK;
}

/* Read until one whole message has arrived or `deadline` passes. A `text`
 * message, one for the string calls, must not contain a NUL (SK_EPROTO). */
static int recv_message(sk_tcp_client *c, long long deadline, bool text) {
  int framing = (int)c->base.opts.framing;
  size_t max = (size_t)c->base.opts.max_message;
  for (;;) {
    sk_frame f;
    int r = text ? sk__frame_decode(framing, c->in, c->in_len, max, &f)
                 : sk__frame_decode_nul_free(framing, c->in, c->in_len, max, &f);
    if (r == 1)
      return take(c, &f);
    if (r < 0)
      return sk__fail(r, 0);
    /* RAW: a message is what one read returns, so the read may take one
     * byte more than the limit, to tell a message that is too long. */
    size_t want = framing == SK_FRAME_RAW ? max + 1 : READ_CHUNK;
    if (reserve(&c->in, &c->in_cap, c->in_len + want) != 0)
      return sk__fail(SK_ENOMEM, ENOMEM);
    int ready = sk__wait_fd(c->base.fd, POLLIN, -1, deadline);
    if (ready <= 0)
      return ready == 0 ? sk__fail(SK_ETIMEDOUT, 0) : sk__fail(SK_EREAD, errno);
    ssize_t n = recv(c->base.fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
    if (n > 0)
      c->in_len += (size_t)n;
    else if (n == 0)
      return sk__fail(SK_ECLOSED, 0);
    else if (errno == ECONNRESET)
      return sk__fail(SK_ECLOSED, errno);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return sk__fail(SK_EREAD, errno);
  }
}

int sk_tcp_client_create(sk_tcp_client **out, const char *address) {
  return sk__client_create((void **)out, sizeof **out, address, SK_CLIENT_TCP);
}

int sk_tcp_client_set(sk_tcp_client *c, int option, long long value) {
  if (!c)
    return sk__null_argument("sk_tcp_client_set", "c");
  /* The bytes already received were framed the old way. */
  bool settable = option != SK_OPT_FRAMING || c->base.fd < 0;
  return sk__client_opt_set(&c->base.opts, SK_CLIENT_TCP, option, value,
                            settable ? NULL : "the framing cannot change while connected");
}

int sk_tcp_client_get(const sk_tcp_client *c, int option, long long *value) {
  if (!c || !value)
    return sk__fail(SK_EINVAL, 0);
  return sk__client_opt_get(&c->base.opts, SK_CLIENT_TCP, option, value);
}

int sk_tcp_client_connect(sk_tcp_client *c, int timeout_ms) {
  if (!c)
    return sk__fail(SK_EINVAL, 0);
  if (c->base.fd >= 0)
    return SK_OK;
  return connect_retrying(c, timeout_ms);
}

/* The worker of both request calls: arguments checked, `len` bytes at m. */
static int exchange(sk_tcp_client *c, const char *m, size_t len, bool text, const char **reply,
                    size_t *reply_len) {
  int rc = check_message(c, m, len);
  if (rc != SK_OK)
    return rc;
  if (c->base.fd >= 0 && out_of_step(c))
    disconnect(c);
  if (c->base.fd < 0 && (rc = connect_retrying(c, -1)) != SK_OK)
    return rc;
  long long deadline = sk__clock_ms() + c->base.opts.request_timeout_ms;
  if ((rc = send_message(c, m, len, deadline)) == SK_OK &&
      (rc = recv_message(c, deadline, text)) == SK_OK) {
    *reply = c->msg;
    *reply_len = c->msg_len;
    return SK_OK;
  }
  /* Whatever went wrong, a reply may still be on its way: only a new
   * connection is sure not to deliver it to the next request. */
  disconnect(c);
  return rc;
}

/* The worker of both send calls. */
static int send_one_way(sk_tcp_client *c, const char *m, size_t len) {
  int rc = check_message(c, m, len);
  if (rc != SK_OK)
    return rc;
  if (c->base.fd < 0 && (rc = connect_retrying(c, -1)) != SK_OK)
    return rc;
  rc = send_message(c, m, len, sk__clock_ms() + c->base.opts.request_timeout_ms);
  if (rc != SK_OK)
    disconnect(c); /* part of a message may have left: the stream is out of step */
  return rc;
}

/* The worker of both recv calls. */
static int recv_one_way(sk_tcp_client *c, int timeout_ms, bool text, const char **m, size_t *len) {
  if (c->base.fd < 0)
    return sk__fail(SK_ESTATE, 0);
  int rc = recv_message(c, timeout_ms < 0 ? -1 : sk__clock_ms() + timeout_ms, text);
  if (rc == SK_OK) {
    *m = c->msg;
    *len = c->msg_len;
  } else if (rc != SK_ETIMEDOUT) { /* a part message stays buffered for the next call */
    disconnect(c);
  }
  return rc;
}

int sk_tcp_client_request(sk_tcp_client *c, const char *request, const char **reply) {
  if (reply)
    *reply = NULL;
  if (!c || !request || !reply)
    return sk__fail(SK_EINVAL, 0);
  size_t reply_len;
  return exchange(c, request, strlen(request), true, reply, &reply_len);
}

int sk_tcp_client_request_bytes(sk_tcp_client *c, const void *req, size_t len, const void **reply,
                                size_t *reply_len) {
  if (reply)
    *reply = NULL;
  if (reply_len)
    *reply_len = 0;
  if (!c || (!req && len > 0) || !reply || !reply_len)
    return sk__fail(SK_EINVAL, 0);
  const char *r = NULL;
  int rc = exchange(c, req, len, false, &r, reply_len);
  *reply = r;
  return rc;
}

int sk_tcp_client_send(sk_tcp_client *c, const char *message) {
  if (!c || !message)
    return sk__fail(SK_EINVAL, 0);
  return send_one_way(c, message, strlen(message));
}

int sk_tcp_client_send_bytes(sk_tcp_client *c, const void *msg, size_t len) {
  if (!c || (!msg && len > 0))
    return sk__fail(SK_EINVAL, 0);
  return send_one_way(c, msg, len);
}

int sk_tcp_client_recv(sk_tcp_client *c, const char **message, int timeout_ms) {
  if (message)
    *message = NULL;
  if (!c || !message)
    return sk__fail(SK_EINVAL, 0);
  size_t len;
  return recv_one_way(c, timeout_ms, true, message, &len);
}

int sk_tcp_client_recv_bytes(sk_tcp_client *c, const void **msg, size_t *len, int timeout_ms) {
  if (msg)
    *msg = NULL;
  if (len)
    *len = 0;
  if (!c || !msg || !len)
    return sk__fail(SK_EINVAL, 0);
  const char *m = NULL;
  int rc = recv_one_way(c, timeout_ms, false, &m, len);
  *msg = m;
  return rc;
}

int sk_tcp_client_attempts(const sk_tcp_client *c, int *attempts) {
  if (!c || !attempts)
    return sk__fail(SK_EINVAL, 0);
  *attempts = c->attempts;
  return SK_OK;
}

void sk_tcp_client_destroy(sk_tcp_client *c) {
  if (!c)
    return;
  sk__close(c->base.fd);
  free(c->base.address);
  free(c->in);
  free(c->out);
  free(c->msg);
  free(c);
}
