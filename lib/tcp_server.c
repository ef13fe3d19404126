/* tcp_server.c -- accept loop, per-connection framing and reply dispatch on
 * one epoll event loop. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "conn.h"
#include "frame.h"
#include "internal.h"
#include "loop.h"

#define TCP_MAX_MESSAGE_LIMIT (64LL << 20)
#define TCP_DEFAULT_MAX_MESSAGE 65536
/* Bytes one read may bring beyond the largest message it completes. */
#define READ_CHUNK 65536
/* Unsent output at which a connection stops being read (backpressure). */
#define OUTPUT_HIGH_WATER (1u << 20)
/* How long a closing connection may take to send its EOF after ours. */
#define LINGER_MS 2000
/* How long stop waits for owed replies to leave. */
#define DRAIN_MS 1000
/* Connections accepted per wake-up before other events get their turn. */
#define ACCEPT_BATCH 64
#define EVENT_BATCH 256

/* epoll data for the listener; connections use their descriptor. */
#define LISTENER_TAG (UINT64_C(1) << 40)

enum tcp_state { TCP_CREATED, TCP_LISTENING, TCP_RUNNING, TCP_DONE };

#define TCP_STAT_COUNT (SK_STAT_CONNECTIONS_RESET + 1)

struct sk_tcp_server {
  sk_addr addr;
  sk_service service;
  void *user;

  long long max_message;
  long long reuseport;
  long long rcvbuf;
  long long sndbuf;
  long long framing;
  long long backlog;

  int fd;
  bool unlink_path;
  bool nodelay; /* TCP (not UNIX): replies must not wait for Nagle */
  enum tcp_state state;
  atomic_bool stop_requested;
  sk_loop loop;

  /* Per-loop working memory: reads land in `in` (behind the carried-over
   * bytes of an incomplete message), replies of one read collect in `out`
   * and leave in one send. */
  char *in;
  size_t in_size;
  sk_buf *out;

  sk_conn_table conns;

  struct sockaddr_storage bound;
  socklen_t bound_len;

  _Atomic uint64_t stats[TCP_STAT_COUNT];
};

static void count(sk_tcp_server *srv, int stat, int64_t n) {
  atomic_fetch_add_explicit(&srv->stats[stat], (uint64_t)n, memory_order_relaxed);
}

int sk_tcp_server_create(sk_tcp_server **out, const char *address, sk_service service, void *user) {
  if (!out)
    return SK_EINVAL;
  *out = NULL;
  if (!address || !service)
    return SK_EINVAL;
  sk_addr addr;
  int rc = sk__addr_parse(&addr, address);
  if (rc != 0)
    return sk__fail(rc, 0);
  sk_tcp_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return sk__fail(SK_ENOMEM, ENOMEM);
  srv->addr = addr;
  srv->service = service;
  srv->user = user;
  srv->max_message = TCP_DEFAULT_MAX_MESSAGE;
  srv->framing = SK_FRAME_LINE;
  srv->backlog = SOMAXCONN;
  srv->fd = -1;
  sk__conn_table_init(&srv->conns);
  if ((rc = sk__loop_init(&srv->loop)) != SK_OK) {
    free(srv);
    return rc;
  }
  *out = srv;
  return SK_OK;
}

/* One row per option that applies to TCP: where it lives and its range. */
typedef struct tcp_option {
  int option;
  size_t offset;
  long long min, max;
} tcp_option;

static const tcp_option tcp_options[] = {
    {SK_OPT_MAX_MESSAGE, offsetof(sk_tcp_server, max_message), 1, TCP_MAX_MESSAGE_LIMIT},
    {SK_OPT_REUSEPORT, offsetof(sk_tcp_server, reuseport), 0, 1},
    {SK_OPT_RCVBUF, offsetof(sk_tcp_server, rcvbuf), 0, INT_MAX},
    {SK_OPT_SNDBUF, offsetof(sk_tcp_server, sndbuf), 0, INT_MAX},
    {SK_OPT_FRAMING, offsetof(sk_tcp_server, framing), SK_FRAME_LINE, SK_FRAME_RAW},
    {SK_OPT_BACKLOG, offsetof(sk_tcp_server, backlog), 1, 65535},
};

static const tcp_option *find_option(int option) {
  for (size_t i = 0; i < sizeof tcp_options / sizeof tcp_options[0]; i++)
    if (tcp_options[i].option == option)
      return &tcp_options[i];
  return NULL;
}

int sk_tcp_server_set(sk_tcp_server *srv, int option, long long value) {
  if (!srv)
    return SK_EINVAL;
  const tcp_option *o = find_option(option);
  if (!o || value < o->min || value > o->max)
    return sk__fail(SK_EINVAL, 0);
  if (srv->state != TCP_CREATED)
    return sk__fail(SK_ESTATE, 0);
  *(long long *)((char *)srv + o->offset) = value;
  return SK_OK;
}

int sk_tcp_server_get(const sk_tcp_server *srv, int option, long long *value) {
  if (!srv || !value)
    return SK_EINVAL;
  const tcp_option *o = find_option(option);
  if (!o)
    return sk__fail(SK_EINVAL, 0);
  *value = *(const long long *)((const char *)srv + o->offset);
  return SK_OK;
}

int sk_tcp_server_listen(sk_tcp_server *srv) {
  if (!srv)
    return SK_EINVAL;
  if (srv->state != TCP_CREATED || atomic_load(&srv->stop_requested))
    return sk__fail(SK_ESTATE, 0);
  sk_bind_options opts = {
      .reuseport = srv->reuseport != 0, .rcvbuf = (int)srv->rcvbuf, .sndbuf = (int)srv->sndbuf};
  int fd = sk__bind_socket(&srv->addr, SOCK_STREAM, &opts);
  if (fd < 0)
    return fd;
  int rc;
  if (listen(fd, (int)srv->backlog) != 0) {
    rc = sk__fail(SK_ELISTEN, errno);
    goto fail;
  }
  srv->bound_len = sizeof srv->bound;
  if (getsockname(fd, (struct sockaddr *)&srv->bound, &srv->bound_len) != 0 ||
      sk__loop_add(&srv->loop, fd, EPOLLIN, LISTENER_TAG) != 0) {
    rc = sk__fail(SK_ESOCKET, errno);
    goto fail;
  }
  srv->fd = fd;
  srv->unlink_path = sk__addr_is_unix_path(&srv->addr);
  srv->nodelay = srv->addr.ss.ss_family != AF_UNIX;
  srv->state = TCP_LISTENING;
  if (sk__log_enabled(SK_LOG_INFO)) {
    char text[SK__ADDR_TEXT_MAX];
    if (sk__addr_format((struct sockaddr *)&srv->bound, srv->bound_len, text, sizeof text) == 0)
      sk__log(SK_LOG_INFO, "tcp: listening on %s", text);
  }
  return SK_OK;
fail:
  sk__close(fd);
  if (sk__addr_is_unix_path(&srv->addr))
    sk__unlink_unix_path(&srv->addr);
  return rc;
}

int sk_tcp_server_port(const sk_tcp_server *srv, int *port) {
  if (!srv || !port)
    return SK_EINVAL;
  if (srv->state == TCP_CREATED)
    return sk__fail(SK_ESTATE, 0);
  *port = sk__addr_port((const struct sockaddr *)&srv->bound);
  return SK_OK;
}

int sk_tcp_server_address(const sk_tcp_server *srv, char *buf, size_t size) {
  if (!srv || !buf)
    return SK_EINVAL;
  if (srv->state == TCP_CREATED)
    return sk__fail(SK_ESTATE, 0);
  return sk__addr_format((const struct sockaddr *)&srv->bound, srv->bound_len, buf, size);
}

/* ---- connections ------------------------------------------------------ */

static void log_conn(int level, int fd, const char *what) {
  if (!sk__log_enabled(level))
    return;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char peer[SK__ADDR_TEXT_MAX] = "unknown";
  if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
    sk__addr_format((struct sockaddr *)&ss, len, peer, sizeof peer);
  sk__log(level, "tcp: connection from %s: %s", peer, what);
}

static void close_conn(sk_tcp_server *srv, int fd) {
  sk__conn_release(&srv->conns, fd);
  /* close() also takes the descriptor out of the epoll set: nothing else
   * holds a duplicate of it. */
  sk__close(fd);
  count(srv, SK_STAT_CONNECTIONS_ACTIVE, -1);
}

static void reset_conn(sk_tcp_server *srv, int fd, int err) {
  count(srv, SK_STAT_CONNECTIONS_RESET, 1);
  if (sk__log_enabled(SK_LOG_DEBUG))
    log_conn(SK_LOG_DEBUG, fd, strerror(err));
  close_conn(srv, fd);
}

/* Register the events a connection needs in its current state. */
static int update_events(sk_tcp_server *srv, int fd, sk_conn *c) {
  uint32_t events = 0;
  bool want_out = c->out != NULL;
  bool want_in = !(c->flags & (SK_CONN_READ_PAUSED | SK_CONN_PEER_EOF)) &&
                 (!(c->flags & SK_CONN_CLOSING) || (c->flags & SK_CONN_SHUT_WR));
  if (want_in)
    events |= EPOLLIN;
  if (want_out)
    events |= EPOLLOUT;
  return sk__loop_mod(&srv->loop, fd, events, (uint64_t)fd);
}

/* Half-close politely: our FIN goes after every owed reply, then input is
 * read and discarded until the client closes or the linger time passes.
 * A close() with unread input would send RST and could destroy replies
 * still in flight. */
static void begin_linger(sk_tcp_server *srv, int fd, sk_conn *c) {
  if (c->flags & SK_CONN_PEER_EOF) {
    close_conn(srv, fd);
    return;
  }
  if (shutdown(fd, SHUT_WR) != 0) {
    reset_conn(srv, fd, errno);
    return;
  }
  c->flags |= SK_CONN_SHUT_WR;
  free(c->in);
  c->in = NULL;
  sk__conn_set_timer(&srv->conns, fd, SK_LIST_LINGER, sk__loop_now(&srv->loop));
  if (update_events(srv, fd, c) != 0)
    reset_conn(srv, fd, errno);
}

/* The connection has nothing left to send: decide what comes next. */
static void output_drained(sk_tcp_server *srv, int fd, sk_conn *c) {
  if (c->flags & SK_CONN_CLOSING)
    begin_linger(srv, fd, c);
  else if (c->flags & SK_CONN_PEER_EOF)
    close_conn(srv, fd);
}

static ssize_t send_some(int fd, const char *bytes, size_t len) {
  ssize_t n;
  do
    n = send(fd, bytes, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n;
}

/* Send what the socket takes of c->out. Returns false if the connection
 * was closed. */
static bool flush_conn(sk_tcp_server *srv, int fd, sk_conn *c) {
  while (c->out) {
    ssize_t n = send_some(fd, sk__buf_bytes(c->out), c->out->len);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      reset_conn(srv, fd, errno);
      return false;
    }
    sk__buf_consume(&c->out, (size_t)n);
  }
  if (!c->out) {
    c->flags &= ~(uint32_t)SK_CONN_READ_PAUSED;
    if (c->flags & (SK_CONN_CLOSING | SK_CONN_PEER_EOF)) {
      output_drained(srv, fd, c);
      return sk__conn_get(&srv->conns, fd) != NULL;
    }
  } else if (c->out->len >= OUTPUT_HIGH_WATER) {
    c->flags |= SK_CONN_READ_PAUSED;
  } else if (c->out->len < OUTPUT_HIGH_WATER / 2) {
    c->flags &= ~(uint32_t)SK_CONN_READ_PAUSED;
  }
  if (update_events(srv, fd, c) != 0) {
    reset_conn(srv, fd, errno);
    return false;
  }
  return true;
}

/* Hand the replies collected in srv->out to the connection: straight to
 * the socket in one call when nothing is queued before them, else behind
 * the queue. Returns false if the connection was closed. */
static bool deliver(sk_tcp_server *srv, int fd, sk_conn *c) {
  size_t len = sk__buf_len(srv->out);
  if (len == 0)
    return true;
  srv->out->len = 0; /* the per-loop buffer is reused by the next read */
  const char *bytes = sk__buf_bytes(srv->out);
  size_t sent = 0;
  if (!c->out) {
    ssize_t n = send_some(fd, bytes, len);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      reset_conn(srv, fd, errno);
      return false;
    }
    sent = n > 0 ? (size_t)n : 0;
    if (sent == len)
      return true;
  }
  if (sk__buf_append(&c->out, bytes + sent, len - sent) != 0) {
    sk__log(SK_LOG_ERROR, "tcp: out of memory queueing replies; closing connection");
    reset_conn(srv, fd, ENOMEM);
    return false;
  }
  return flush_conn(srv, fd, c);
}

/* Run the service for one message and frame its reply into srv->out. */
static void serve_message(sk_tcp_server *srv, int fd, char *payload, size_t len) {
  /* The byte after the payload is always ours (the newline, the next
   * header, or the spare byte after a read), so the request becomes a C
   * string in place, without a copy. */
  char saved = payload[len];
  payload[len] = '\0';
  count(srv, SK_STAT_MESSAGES_IN, 1);
  count(srv, SK_STAT_BYTES_IN, (int64_t)len);
  sk__peer_set_fd(fd);
  const char *reply = srv->service(payload, srv->user);
  if (reply) {
    /* Copied before any user code runs again on this thread. */
    size_t rlen = strlen(reply);
    int framing = (int)srv->framing;
    char *dst =
        rlen <= UINT32_MAX ? sk__buf_reserve(&srv->out, rlen + sk__frame_overhead(framing)) : NULL;
    if (dst) {
      srv->out->len += (uint32_t)sk__frame_encode(framing, dst, reply, rlen);
      count(srv, SK_STAT_MESSAGES_OUT, 1);
      count(srv, SK_STAT_BYTES_OUT, (int64_t)rlen);
    } else {
      count(srv, SK_STAT_DROPS_TOO_LARGE, 1);
      sk__log(SK_LOG_ERROR, "tcp: cannot queue a reply of %zu bytes; dropped", rlen);
    }
  }
  sk__peer_clear();
  payload[len] = saved;
}

/* Decode and serve every whole message in buf[0, len). Returns the bytes
 * consumed; on a protocol error marks the connection closing. */
static size_t serve_buffer(sk_tcp_server *srv, int fd, sk_conn *c, char *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    sk_frame f;
    int rc =
        sk__frame_decode((int)srv->framing, buf + done, len - done, (size_t)srv->max_message, &f);
    if (rc == 0)
      break;
    if (rc < 0) {
      count(srv, rc == SK_EMSGSIZE ? SK_STAT_DROPS_TRUNCATED : SK_STAT_DROPS_NUL, 1);
      log_conn(SK_LOG_WARN, fd,
               rc == SK_EMSGSIZE ? "message larger than the maximum; closing"
                                 : "NUL byte in a message; closing");
      c->flags |= SK_CONN_CLOSING;
      return len;
    }
    serve_message(srv, fd, buf + done + f.offset, f.length);
    done += f.consumed;
  }
  return done;
}

/* Discard input of a connection that is closing; close it at EOF. */
static void drain_input(sk_tcp_server *srv, int fd) {
  ssize_t n = read(fd, srv->in, srv->in_size);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
    close_conn(srv, fd);
}

static void on_readable(sk_tcp_server *srv, int fd, sk_conn *c) {
  if (c->flags & SK_CONN_PEER_EOF)
    return; /* a hang-up reported again while replies still drain */
  if (c->flags & SK_CONN_SHUT_WR) {
    drain_input(srv, fd);
    return;
  }
  /* Carry the incomplete message (at most max_message plus framing) in
   * front of the new bytes, so decoding always sees one contiguous run. */
  size_t have = sk__buf_len(c->in);
  if (have)
    memcpy(srv->in, sk__buf_bytes(c->in), have);
  ssize_t n;
  do
    n = read(fd, srv->in + have, srv->in_size - have);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      reset_conn(srv, fd, errno);
    return;
  }
  if (n == 0) {
    /* Half-close: requests already whole were served; an incomplete tail
     * can never complete. Owed replies still go out before we close. */
    c->flags |= SK_CONN_PEER_EOF;
    if (!c->out)
      close_conn(srv, fd);
    else if (update_events(srv, fd, c) != 0)
      reset_conn(srv, fd, errno);
    return;
  }
  have += (size_t)n;
  size_t used = serve_buffer(srv, fd, c, srv->in, have);
  if (c->flags & SK_CONN_CLOSING) {
    free(c->in);
    c->in = NULL;
  } else if (used < have) {
    if (c->in)
      c->in->head = c->in->len = 0;
    if (sk__buf_append(&c->in, srv->in + used, have - used) != 0) {
      reset_conn(srv, fd, ENOMEM);
      return;
    }
  } else if (c->in) {
    free(c->in);
    c->in = NULL;
  }
  if (!deliver(srv, fd, c))
    return;
  if ((c->flags & SK_CONN_CLOSING) && !c->out)
    begin_linger(srv, fd, c);
}

static void on_writable(sk_tcp_server *srv, int fd, sk_conn *c) {
  (void)flush_conn(srv, fd, c);
}

static void accept_some(sk_tcp_server *srv) {
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        sk__log(SK_LOG_WARN, "tcp: accept failed: %s", strerror(errno));
      return;
    }
    if (srv->nodelay) {
      int on = 1;
      (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    if (!sk__conn_open(&srv->conns, fd)) {
      sk__log(SK_LOG_ERROR, "tcp: out of memory for a connection; closing it");
      sk__close(fd);
      continue;
    }
    if (sk__loop_add(&srv->loop, fd, EPOLLIN, (uint64_t)fd) != 0) {
      sk__conn_release(&srv->conns, fd);
      sk__close(fd);
      continue;
    }
    count(srv, SK_STAT_CONNECTIONS_ACCEPTED, 1);
    count(srv, SK_STAT_CONNECTIONS_ACTIVE, 1);
  }
}

static void expire_timers(sk_tcp_server *srv) {
  uint32_t now = sk__loop_now(&srv->loop);
  int fd;
  while ((fd = sk__conn_expired(&srv->conns, now)) >= 0)
    close_conn(srv, fd);
}

/* After stop: no new clients, no new requests; owed replies get DRAIN_MS
 * to leave, then everything closes. */
static void drain_and_close(sk_tcp_server *srv, struct epoll_event *events) {
  sk__close(srv->fd);
  srv->fd = -1;
  for (int fd = 0; fd < srv->conns.cap; fd++) {
    sk_conn *c = sk__conn_get(&srv->conns, fd);
    if (!c)
      continue;
    if (!c->out) {
      close_conn(srv, fd);
      continue;
    }
    c->flags |= SK_CONN_PEER_EOF; /* stop reading; close once flushed */
    sk__conn_set_timer(&srv->conns, fd, SK_LIST_NONE, 0);
    if (update_events(srv, fd, c) != 0)
      reset_conn(srv, fd, errno);
  }
  uint32_t deadline = sk__loop_now(&srv->loop) + DRAIN_MS;
  while (srv->conns.count > 0) {
    uint32_t now = sk__loop_now(&srv->loop);
    if (!sk__time_before(now, deadline))
      break;
    int n = sk__loop_wait(&srv->loop, events, EVENT_BATCH, (int)(deadline - now));
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      if (tag == SK_LOOP_WAKE || tag == LISTENER_TAG)
        continue;
      sk_conn *c = sk__conn_get(&srv->conns, (int)tag);
      if (c)
        on_writable(srv, (int)tag, c);
    }
  }
  for (int fd = 0; fd < srv->conns.cap; fd++)
    if (sk__conn_get(&srv->conns, fd))
      close_conn(srv, fd);
}

int sk_tcp_server_run(sk_tcp_server *srv) {
  if (!srv)
    return SK_EINVAL;
  if (srv->state == TCP_RUNNING || srv->state == TCP_DONE || atomic_load(&srv->stop_requested))
    return sk__fail(SK_ESTATE, 0);
  if (srv->state == TCP_CREATED) {
    int rc = sk_tcp_server_listen(srv);
    if (rc != SK_OK)
      return rc;
  }
  srv->state = TCP_RUNNING;
  srv->conns.lists[SK_LIST_LINGER].timeout_ms = LINGER_MS;

  /* Room for a carried-over message of the largest size with its framing,
   * one read behind it, and the spare byte that ends the last request. */
  srv->in_size = (size_t)srv->max_message + 8 + READ_CHUNK;
  srv->in = malloc(srv->in_size + 1);
  struct epoll_event *events = malloc(EVENT_BATCH * sizeof *events);
  int rc = SK_OK;
  if (!srv->in || !events) {
    rc = sk__fail(SK_ENOMEM, ENOMEM);
    goto done;
  }
  while (!atomic_load_explicit(&srv->stop_requested, memory_order_relaxed)) {
    int timeout = sk__conn_next_timeout(&srv->conns, sk__loop_now(&srv->loop));
    int n = sk__loop_wait(&srv->loop, events, EVENT_BATCH, timeout);
    if (n < 0) {
      rc = sk__fail(SK_ESYS, errno);
      break;
    }
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      if (tag == SK_LOOP_WAKE)
        continue;
      if (tag == LISTENER_TAG) {
        accept_some(srv);
        continue;
      }
      int fd = (int)tag;
      sk_conn *c = sk__conn_get(&srv->conns, fd);
      if (!c)
        continue;
      uint32_t ev = events[i].events;
      if (ev & EPOLLOUT) {
        on_writable(srv, fd, c);
        if (!(c = sk__conn_get(&srv->conns, fd)))
          continue;
      }
      /* Errors and hang-ups surface as the result of the read. */
      if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(srv, fd, c);
    }
    expire_timers(srv);
  }
  drain_and_close(srv, events);
done:
  free(events);
  free(srv->in);
  srv->in = NULL;
  free(srv->out);
  srv->out = NULL;
  sk__close(srv->fd);
  srv->fd = -1;
  srv->state = TCP_DONE;
  sk__log(SK_LOG_INFO, "tcp: stopped");
  return rc;
}

int sk_tcp_server_stop(sk_tcp_server *srv) {
  if (!srv)
    return SK_EINVAL;
  /* Only a lock-free atomic store and write(2): both async-signal-safe. */
  atomic_store(&srv->stop_requested, true);
  sk__loop_wake(&srv->loop);
  return SK_OK;
}

int sk_tcp_server_stat(const sk_tcp_server *srv, int stat, uint64_t *out) {
  if (!srv || !out || stat <= 0 || stat >= TCP_STAT_COUNT)
    return SK_EINVAL;
  *out = atomic_load_explicit(&((sk_tcp_server *)srv)->stats[stat], memory_order_relaxed);
  return SK_OK;
}

void sk_tcp_server_destroy(sk_tcp_server *srv) {
  if (!srv)
    return;
  for (int fd = 0; fd < srv->conns.cap; fd++)
    if (sk__conn_get(&srv->conns, fd))
      sk__close(fd);
  sk__conn_table_free(&srv->conns);
  sk__close(srv->fd);
  sk__loop_close(&srv->loop);
  if (srv->unlink_path)
    sk__unlink_unix_path(&srv->addr);
  free(srv->in);
  free(srv->out);
  free(srv);
}
