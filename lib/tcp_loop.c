/* tcp_loop.c -- one TCP event loop's run and its connections: output and
 * backpressure, timers and the stop drain; the event-loop model serves
 * inline, the others through their sk_tcp_model tables. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "tcp.h"

#define EVENT_BATCH 256

/* ---- connections ------------------------------------------------------ */

/* Requests of the connection the model has in flight (the pool's); no
 * indirect call for a model without any. */
static uint32_t pending(sk_tcp_io *io, int fd) {
  const sk_tcp_model *model = io->srv->models;
  return model->pending ? model->pending(io, fd) : 0;
}

static void buffered_add(sk_tcp_io *io, int64_t n) {
  atomic_fetch_add_explicit(&io->srv->buffered, n, memory_order_relaxed);
}

static void close_conn(sk_tcp_io *io, int fd) {
  sk_conn *c = sk__conn_get(&io->conns, fd);
  buffered_add(io, -(int64_t)sk__buf_len(c->out));
  if (io->srv->models->closed)
    io->srv->models->closed(io, fd);
  sk__conn_release(&io->conns, fd);
  if (io->origins)
    sk__tcp_proxy_forget(io, fd);
  /* close() also takes the descriptor out of the epoll set: nothing else
   * holds a duplicate of it -- unless a connection child was forked since
   * (sk__forked). Then only shutdown() sends the client its EOF, and a
   * socket left in the set would report that EOF again and again. */
  if (sk__forked()) {
    (void)sk__loop_del(&io->loop, fd);
    (void)shutdown(fd, SHUT_RDWR); /* fails only if the peer is gone already */
  }
  sk__close(fd);
  atomic_fetch_sub(&io->srv->active, 1);
}

static void reset_conn(sk_tcp_io *io, int fd, int err) {
  sk__tcp_count(io->srv, SK_STAT_CONNECTIONS_RESET, 1);
  if (sk__log_enabled(SK_LOG_DEBUG))
    sk__tcp_log_conn(SK_LOG_DEBUG, fd, strerror(err));
  close_conn(io, fd);
}

/* Register the events a connection needs in its current state. */
static int update_events(sk_tcp_io *io, int fd, sk_conn *c) {
  uint32_t events = 0;
  bool closing = (c->flags & SK_CONN_CLOSING) != 0;
  bool lingering = (c->flags & SK_CONN_SHUT_WR) != 0;
  bool paused =
      c->flags & (SK_CONN_READ_PAUSED | SK_CONN_JOB_PAUSED | SK_CONN_PEER_EOF | SK_CONN_STOPPING);
  if (lingering || (!closing && !paused))
    events |= EPOLLIN;
  if (c->out)
    events |= EPOLLOUT;
  /* Most calls change nothing (a pool completion, a flush that emptied the
   * buffer it had just filled): skip the system call then. */
  uint32_t now = (c->flags & SK_CONN_IN_OFF ? 0 : EPOLLIN) |
                 (c->flags & SK_CONN_WANT_OUT ? (uint32_t)EPOLLOUT : 0);
  if (events == now)
    return 0;
  if (sk__loop_mod(&io->loop, fd, events, (uint64_t)fd) != 0)
    return -1;
  c->flags &= ~(uint32_t)(SK_CONN_IN_OFF | SK_CONN_WANT_OUT);
  if (!(events & EPOLLIN))
    c->flags |= SK_CONN_IN_OFF;
  if (events & EPOLLOUT)
    c->flags |= SK_CONN_WANT_OUT;
  return 0;
}

/* Choose the timer that matches the connection's state: waiting for a
 * request (idle), for the client to take output (write stall), or none
 * while the model works on its requests. `progress` restarts the clock. */
static void update_timer(sk_tcp_io *io, int fd, sk_conn *c, bool progress) {
  if (c->flags & (SK_CONN_SHUT_WR | SK_CONN_STOPPING))
    return;
  int want = c->out ? SK_LIST_WRITE : pending(io, fd) ? SK_LIST_NONE : SK_LIST_IDLE;
  int now_in = (int)((c->flags & SK_CONN_LIST_MASK) >> SK_CONN_LIST_SHIFT);
  if (want != now_in || progress)
    sk__conn_set_timer(&io->conns, fd, want, sk__loop_now(&io->loop));
}

/* Half-close politely: our FIN goes after every owed reply, then input is
 * read and discarded until the client closes or the linger time passes.
 * A close() with unread input would send RST and could destroy replies
 * still in flight. */
static void begin_linger(sk_tcp_io *io, int fd, sk_conn *c) {
  if (c->flags & (SK_CONN_PEER_EOF | SK_CONN_STOPPING)) {
    close_conn(io, fd);
    return;
  }
  if (shutdown(fd, SHUT_WR) != 0) {
    reset_conn(io, fd, errno);
    return;
  }
  c->flags |= SK_CONN_SHUT_WR;
  free(c->in);
  c->in = NULL;
  sk__conn_set_timer(&io->conns, fd, SK_LIST_LINGER, sk__loop_now(&io->loop));
  if (update_events(io, fd, c) != 0)
    reset_conn(io, fd, errno);
}

/* Nothing left to send and nothing in flight: decide what comes next.
 * Returns false if the connection was closed. */
static bool settle(sk_tcp_io *io, int fd, sk_conn *c) {
  if (c->out || pending(io, fd))
    return true;
  if (c->flags & SK_CONN_CLOSING) {
    begin_linger(io, fd, c);
    return sk__conn_get(&io->conns, fd) != NULL;
  }
  if (c->flags & (SK_CONN_PEER_EOF | SK_CONN_STOPPING)) {
    close_conn(io, fd);
    return false;
  }
  return true;
}

static ssize_t send_some(int fd, const char *bytes, size_t len) {
  ssize_t n;
  do
    n = send(fd, bytes, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n;
}

static bool over_buffer_limits(sk_tcp_io *io, const sk_conn *c) {
  sk_tcp_server *srv = io->srv;
  return c->out->len >= (uint64_t)srv->high_water ||
         (srv->max_buffered &&
          atomic_load_explicit(&srv->buffered, memory_order_relaxed) >= srv->max_buffered);
}

/* How many bytes of replies the connection may queue before it must wait
 * for its client: up to the high-water mark, and up to the server-wide
 * cap. A connection with nothing queued may always serve one message more
 * (its reply mostly leaves at once), so the cap can never leave it waiting
 * for an event that will not come. 0: serve nothing now. */
size_t sk__tcp_output_room(sk_tcp_io *io, const sk_conn *c) {
  sk_tcp_server *srv = io->srv;
  size_t pending = sk__buf_len(c->out);
  size_t high = (size_t)srv->high_water;
  size_t room = pending < high ? high - pending : 0;
  if (srv->max_buffered) {
    long long buffered = atomic_load_explicit(&srv->buffered, memory_order_relaxed);
    size_t left = buffered < srv->max_buffered ? (size_t)(srv->max_buffered - buffered) : 0;
    if (left < room)
      room = left;
  }
  return room == 0 && pending == 0 ? 1 : room;
}

/* Forget the replies collected in io->out for a connection that is gone. */
static void drop_collected(sk_tcp_io *io) {
  if (io->out)
    io->out->len = 0;
}

/* Send what the socket takes of c->out and re-register events. Returns
 * false if the connection was closed. */
static bool flush_conn(sk_tcp_io *io, int fd, sk_conn *c) {
  bool progress = false;
  while (c->out) {
    ssize_t n = send_some(fd, sk__buf_bytes(c->out), c->out->len);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      reset_conn(io, fd, errno);
      return false;
    }
    progress = true;
    buffered_add(io, -n);
    sk__buf_consume(&c->out, (size_t)n);
  }
  /* Backpressure: over the high-water mark (or the server-wide cap) the
   * connection is neither read nor served; it resumes once below half the
   * mark. */
  if (!c->out)
    c->flags &= ~(uint32_t)SK_CONN_READ_PAUSED;
  else if (over_buffer_limits(io, c))
    c->flags |= SK_CONN_READ_PAUSED;
  else if (c->out->len < (uint64_t)io->srv->high_water / 2)
    c->flags &= ~(uint32_t)SK_CONN_READ_PAUSED;
  if (!settle(io, fd, c))
    return false;
  update_timer(io, fd, c, progress);
  if (update_events(io, fd, c) != 0) {
    reset_conn(io, fd, errno);
    return false;
  }
  return true;
}

/* Hand the replies collected in io->out to the connection: straight to the
 * socket in one call when nothing is queued before them, else behind the
 * queue. Returns false if the connection was closed. */
static bool deliver(sk_tcp_io *io, int fd, sk_conn *c) {
  size_t len = sk__buf_len(io->out);
  if (len == 0)
    return true;
  io->out->len = 0; /* the per-loop buffer is reused by the next read */
  const char *bytes = sk__buf_bytes(io->out);
  size_t sent = 0;
  if (!c->out) {
    ssize_t n = send_some(fd, bytes, len);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      reset_conn(io, fd, errno);
      return false;
    }
    sent = n > 0 ? (size_t)n : 0;
    if (sent == len)
      return true;
  }
  if (sk__buf_append(&c->out, bytes + sent, len - sent) != 0) {
    sk__log(SK_LOG_ERROR, "tcp: out of memory queueing replies; closing connection");
    reset_conn(io, fd, ENOMEM);
    return false;
  }
  buffered_add(io, (int64_t)(len - sent));
  return flush_conn(io, fd, c);
}

/* ---- reading and serving ---------------------------------------------- */

/* A reply of the connection is lost (it could not be copied or queued):
 * every later reply would answer the wrong request, so none is sent; the
 * replies before it still are, then the connection closes. */
void sk__tcp_lose_reply(sk_tcp_io *io, int fd, sk_conn *c) {
  sk__tcp_count(io->srv, SK_STAT_CONNECTIONS_RESET, 1);
  sk__tcp_warn_conn(io->srv, fd, "a reply could not be queued (out of memory); closing");
  c->flags |= SK_CONN_BROKEN | SK_CONN_CLOSING;
}

/* Hand the whole messages of buf[0, len) to the service, or to the model
 * that serves them its own way. Results as sk__tcp_serve_all. */
static int serve_buffer(sk_tcp_io *io, int fd, sk_conn *c, char *buf, size_t len, size_t room,
                        size_t *used) {
  sk_tcp_server *srv = io->srv;
  if (srv->proxy_protocol)
    sk__peer_set_origin(&io->peer, sk__tcp_origin(io, fd));
  if (!srv->models->serve)
    return sk__tcp_serve_all(srv, fd, false, buf, len, room, used, &io->out, &io->tally, &io->peer);
  return srv->models->serve(io, fd, c, buf, len, room, used);
}

/* Serve the connection's input: one read's bytes in the loop's scratch
 * (nread > 0, c->in empty), or what c->in holds (nread == 0). What is not
 * consumed -- an incomplete message, or messages held back because the
 * output is full -- stays in c->in. The replies of each round leave in one
 * send; while the socket takes them all and whole messages remain,
 * serving goes on. */
static void serve_input(sk_tcp_io *io, int fd, sk_conn *c, size_t nread) {
  sk_tcp_server *srv = io->srv;
  bool any = false;
  for (;;) {
    char *buf = io->in;
    size_t len = nread;
    if (!nread) {
      /* Room for the NUL that ends the last message. */
      if (!sk__buf_reserve(&c->in, 1)) {
        reset_conn(io, fd, ENOMEM);
        return;
      }
      buf = sk__buf_bytes(c->in);
      len = c->in->len;
    }
    size_t room = sk__tcp_output_room(io, c), used = 0;
    int rc = room ? serve_buffer(io, fd, c, buf, len, room, &used) : SK_TCP_SERVE_FULL;
    any |= used > 0;
    sk__tcp_flush_tally(srv, &io->tally); /* before the client can see replies */
    if (rc < 0) {
      if (rc == SK_ENOMEM)
        sk__tcp_lose_reply(io, fd, c);
      else
        sk__tcp_serve_failed(srv, fd, rc);
      c->flags |= SK_CONN_CLOSING;
    }
    if (c->flags & SK_CONN_CLOSING) {
      free(c->in);
      c->in = NULL;
    } else if (nread) {
      if (used < len && sk__buf_append(&c->in, buf + used, len - used) != 0) {
        drop_collected(io);
        reset_conn(io, fd, ENOMEM);
        return;
      }
    } else if (used) {
      sk__buf_consume(&c->in, used);
    }
    nread = 0;
    if (room == 0)
      c->flags |= SK_CONN_READ_PAUSED; /* c->out is not empty: its flush resumes */
    if (!deliver(io, fd, c))
      return;
    if (rc != SK_TCP_SERVE_FULL || !c->in ||
        (c->flags & (SK_CONN_READ_PAUSED | SK_CONN_JOB_PAUSED | SK_CONN_CLOSING)))
      break;
  }
  if (!settle(io, fd, c))
    return;
  update_timer(io, fd, c, any);
  /* Only these change what the connection waits for (a flush that left
   * output registered its events itself). */
  if ((c->flags & (SK_CONN_JOB_PAUSED | SK_CONN_READ_PAUSED | SK_CONN_CLOSING)) &&
      update_events(io, fd, c) != 0)
    reset_conn(io, fd, errno);
}

static void on_readable(sk_tcp_io *io, int fd, sk_conn *c) {
  if (c->flags & (SK_CONN_PEER_EOF | SK_CONN_STOPPING))
    return; /* a hang-up reported again while replies still drain */
  if (c->flags & SK_CONN_SHUT_WR) {
    /* Closing: discard input, close at the client's EOF. */
    ssize_t n = read(fd, io->in, io->in_size);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
      close_conn(io, fd);
    return;
  }
  if (c->flags & (SK_CONN_JOB_PAUSED | SK_CONN_READ_PAUSED))
    return; /* a hang-up reported while the connection waits */
  ssize_t n;
  do
    n = read(fd, io->in, io->in_size);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      reset_conn(io, fd, errno);
    return;
  }
  if (c->flags & SK_CONN_PROXY_WAIT) {
    size_t rest = (size_t)n;
    int r = sk__tcp_proxy_take(io, fd, c, &rest);
    if (r < 0)
      close_conn(io, fd);
    else if (r > 0 && (rest || c->in))
      serve_input(io, fd, c, rest);
    return;
  }
  if (n == 0) {
    /* Half-close: requests already whole were served. Owed replies still
     * go out before we close. */
    c->flags |= SK_CONN_PEER_EOF;
    if (c->in)
      sk__tcp_end_of_stream(io->srv, fd, &c->in);
    if (settle(io, fd, c) && update_events(io, fd, c) != 0)
      reset_conn(io, fd, errno);
    return;
  }
  if (!c->in) {
    serve_input(io, fd, c, (size_t)n);
    return;
  }
  /* Behind bytes already held: appended in place, so that each byte of a
   * large message is copied a constant number of times, not once per read. */
  if (sk__buf_append(&c->in, io->in, (size_t)n) != 0) {
    reset_conn(io, fd, ENOMEM);
    return;
  }
  serve_input(io, fd, c, 0);
}

/* The connection may go on: replies the model finished while its output
 * was full are sent (its resume hook), and input held back is served once
 * neither the model nor the output makes it wait. */
void sk__tcp_resume(sk_tcp_io *io, int fd, sk_conn *c) {
  const sk_tcp_model *model = io->srv->models;
  if (model->resume && !model->resume(io, fd, c))
    return;
  uint32_t waits = SK_CONN_JOB_PAUSED | SK_CONN_READ_PAUSED | SK_CONN_CLOSING | SK_CONN_STOPPING |
                   SK_CONN_SHUT_WR;
  if (c->in && !(c->flags & waits)) {
    serve_input(io, fd, c, 0);
    if (!(c = sk__conn_get(&io->conns, fd)))
      return;
  } else {
    update_timer(io, fd, c, true);
  }
  if (update_events(io, fd, c) != 0) /* e.g. reading again after the pool had paused it */
    reset_conn(io, fd, errno);
}

/* ---- the loop --------------------------------------------------------- */

static void tick(sk_tcp_io *io) {
  if (io->srv->models->tick)
    io->srv->models->tick(io);
}

static void expire_timers(sk_tcp_io *io) {
  uint32_t now = sk__loop_now(&io->loop);
  int fd;
  while ((fd = sk__conn_expired(&io->conns, now)) >= 0) {
    sk_conn *c = sk__conn_get(&io->conns, fd);
    if (c->flags & SK_CONN_PROXY_WAIT) {
      sk__tcp_proxy_expired(io->srv, fd);
    } else if (!(c->flags & SK_CONN_SHUT_WR)) {
      sk__tcp_count(io->srv, SK_STAT_CONNECTIONS_TIMED_OUT, 1);
      if (sk__log_enabled(SK_LOG_DEBUG))
        sk__tcp_log_conn(SK_LOG_DEBUG, fd, c->out ? "write timeout" : "idle timeout");
    }
    close_conn(io, fd);
  }
}

static int next_timeout(sk_tcp_io *io) {
  uint32_t now = sk__loop_now(&io->loop);
  int timeout = sk__conn_next_timeout(&io->conns, now);
  if (io->listen_paused) {
    int wait = sk__time_before(now, io->listen_resume_at) ? (int)(io->listen_resume_at - now) : 0;
    if (timeout < 0 || wait < timeout)
      timeout = wait;
  }
  int model = io->srv->models->next_timeout ? io->srv->models->next_timeout(io) : -1;
  if (model >= 0 && (timeout < 0 || model < timeout))
    timeout = model;
  return timeout;
}

/* Handle one batch of events. During the drain only output, completions
 * and children matter. */
static void dispatch(sk_tcp_io *io, struct epoll_event *events, int n, bool draining) {
  for (int i = 0; i < n; i++) {
    uint64_t tag = events[i].data.u64;
    if (tag == SK_LOOP_WAKE) {
      if (io->srv->models->wake)
        io->srv->models->wake(io);
      continue;
    }
    if (tag == SK_TCP_TAG_STOP || tag == SK_LOOP_TIMER)
      continue; /* the loop looks at the stop flag and timers after each batch */
    if (tag == SK_TCP_TAG_LISTENER) {
      if (!draining)
        sk__tcp_accept(io);
      continue;
    }
    if ((tag & SK_TCP_TAG_MASK) == SK_TCP_TAG_MODEL) {
      tick(io);
      continue;
    }
    int fd = (int)tag;
    sk_conn *c = sk__conn_get(&io->conns, fd);
    if (!c)
      continue;
    uint32_t ev = events[i].events;
    if ((ev & (EPOLLOUT | EPOLLERR)) && c->out) {
      bool paused = (c->flags & SK_CONN_READ_PAUSED) != 0;
      if (!flush_conn(io, fd, c))
        continue;
      if (paused && !(c->flags & SK_CONN_READ_PAUSED)) {
        /* Level-triggered: input still waiting is reported again. */
        sk__tcp_resume(io, fd, c);
        continue;
      }
    }
    /* epoll reports errors and hang-ups even for a connection that asks
     * for no events; one that is not reading must end here, or the loop
     * would be woken for it again and again. */
    if ((ev & (EPOLLERR | EPOLLHUP)) && (c->flags & (SK_CONN_PEER_EOF | SK_CONN_STOPPING |
                                                     SK_CONN_JOB_PAUSED | SK_CONN_READ_PAUSED))) {
      reset_conn(io, fd, ECONNRESET);
      continue;
    }
    /* Otherwise errors and hang-ups surface as the result of the read. */
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
      on_readable(io, fd, c);
  }
}

/* After stop: no new clients, no new requests. Running services finish
 * and owed replies get the drain time to leave; then everything closes. */
static void drain(sk_tcp_io *io, struct epoll_event *events) {
  sk_tcp_server *srv = io->srv;
  sk__loop_del(&io->loop, srv->core.stopfd);
  sk__tcp_close_listener(io);
  for (int fd = 0; fd < io->conns.cap; fd++) {
    sk_conn *c = sk__conn_get(&io->conns, fd);
    if (!c)
      continue;
    c->flags |= SK_CONN_STOPPING;
    sk__conn_set_timer(&io->conns, fd, SK_LIST_NONE, 0);
    if (settle(io, fd, c) && update_events(io, fd, c) != 0)
      reset_conn(io, fd, errno);
  }
  int64_t deadline = sk__life_drain_deadline(&srv->core.life);
  const sk_tcp_model *model = srv->models;
  for (;;) {
    tick(io);
    int busy = model->busy ? model->busy(io) : 0;
    if (io->conns.count == 0 && busy == 0)
      break;
    int64_t left = deadline - sk__clock_ms();
    if (left <= 0)
      break;
    int wait = left > INT32_MAX ? INT32_MAX : (int)left;
    int poll_model = model->next_timeout ? model->next_timeout(io) : -1;
    if (poll_model >= 0 && poll_model < wait)
      wait = poll_model;
    int n = sk__loop_wait(&io->loop, events, EVENT_BATCH, wait);
    if (n < 0)
      break;
    dispatch(io, events, n, true);
  }
  int busy = model->busy ? model->busy(io) : 0;
  if (io->conns.count > 0 || busy > 0) {
    /* Out of time: queued requests are dropped unserved. */
    atomic_store(&srv->cancel_jobs, true);
    sk__log(SK_LOG_WARN, "tcp: drain timeout: closing %d connection(s) and %d child(ren)",
            io->conns.count, busy);
  }
  for (int fd = 0; fd < io->conns.cap; fd++)
    if (sk__conn_get(&io->conns, fd))
      close_conn(io, fd);
  if (model->end_drain)
    model->end_drain(io);
}

int sk__tcp_io_run(sk_tcp_io *io) {
  sk_tcp_server *srv = io->srv;
  /* One read, and the spare byte that ends its last request. */
  /* RAW: one read is one message, so a read never takes more than a
   * message may hold. */
  io->in_size = SK_TCP_READ_CHUNK;
  if (srv->framing == SK_FRAME_RAW)
    io->in_size = (size_t)srv->core.max_message;
  /* Mapped rather than taken from the heap: a buffer that lives as long
   * as the loop would sit among the small allocations of connections and
   * keep the heap from shrinking around them (bench/run measured 66 bytes
   * per idle connection with it in the heap, 59 without). */
  io->in = mmap(NULL, io->in_size + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (io->in == MAP_FAILED)
    io->in = NULL;
  struct epoll_event *events = malloc(EVENT_BATCH * sizeof *events);
  int rc = SK_OK;
  if (!io->in || !events) {
    rc = sk__fail(SK_ENOMEM, ENOMEM);
    goto done;
  }
  /* Shared listeners (UNIX) wake one loop per connection, not all. */
  uint32_t listen_events = EPOLLIN | (io->owns_listener ? 0 : EPOLLEXCLUSIVE);
  if (sk__loop_add(&io->loop, srv->core.stopfd, EPOLLIN, SK_TCP_TAG_STOP) != 0 ||
      sk__loop_add(&io->loop, io->listen_fd, listen_events, SK_TCP_TAG_LISTENER) != 0) {
    rc = sk__fail(SK_ESYS, errno);
    goto done;
  }
  sk_peer *was = sk__peer_bind(&io->peer);
  while (!atomic_load_explicit(&srv->core.stop_requested, memory_order_relaxed)) {
    sk__loop_arm(&io->loop, next_timeout(io));
    int n = sk__loop_wait(&io->loop, events, EVENT_BATCH, -1);
    if (n < 0) {
      rc = sk__fail(SK_ESYS, errno);
      break;
    }
    dispatch(io, events, n, false);
    expire_timers(io);
    sk__tcp_resume_listener(io);
    tick(io);
  }
  drain(io, events);
  sk__peer_bind(was);
done:
  free(events);
  return rc;
}

/* ---- for the models that serve in the loop (tcp.h) --------------------- */

bool sk__tcp_deliver(sk_tcp_io *io, int fd, sk_conn *c) {
  return deliver(io, fd, c);
}

bool sk__tcp_settle(sk_tcp_io *io, int fd, sk_conn *c) {
  return settle(io, fd, c);
}

/* The event-loop model has no hooks: the loop tracks each client and
 * serves its requests itself. */
const sk_tcp_model sk__tcp_event_model = {0};
