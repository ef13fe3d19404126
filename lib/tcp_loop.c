/* tcp_loop.c -- one TCP event loop: accept, per-connection framing, reply
 * dispatch (inline or through the worker pool), timers and the stop drain. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "tcp.h"

#define ACCEPT_BATCH 64
#define EVENT_BATCH 256
/* How long the listener rests when no descriptor can be freed to shed a
 * client at EMFILE, so that running out of descriptors never spins. */
#define ACCEPT_PAUSE_MS 100

/* ---- setup ------------------------------------------------------------ */

int sk__tcp_io_init(sk_tcp_io *io, sk_tcp_server *srv, int index) {
  io->srv = srv;
  io->index = index;
  /* One listener each, or one shared by all (UNIX). */
  io->listen_fd = srv->core.fds[index % srv->core.nfds];
  io->owns_listener = srv->core.nfds == srv->core.nio;
  io->reserve_fd = -1;
  sk__conn_table_init(&io->conns);
  io->conns.lists[SK_LIST_IDLE].timeout_ms = (uint32_t)srv->idle_timeout_ms;
  io->conns.lists[SK_LIST_WRITE].timeout_ms = (uint32_t)srv->write_timeout_ms;
  io->conns.lists[SK_LIST_LINGER].timeout_ms = SK_TCP_LINGER_MS;
  pthread_mutex_init(&io->done_lock, NULL);
  int rc = sk__loop_init(&io->loop);
  if (rc != SK_OK) {
    pthread_mutex_destroy(&io->done_lock);
    io->srv = NULL;
    return rc;
  }
  /* Kept open so that one can be given up at EMFILE to accept and close
   * the next client, instead of leaving it in the backlog forever. */
  io->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return SK_OK;
}

static void free_job_list(sk_tcp_job *job, bool via_done) {
  while (job) {
    sk_tcp_job *next = via_done ? job->next_done : job->next_in_conn;
    free(job->reply);
    free(job);
    job = next;
  }
}

void sk__tcp_io_free(sk_tcp_io *io) {
  if (!io->srv)
    return; /* never initialised, or freed already */
  for (int fd = 0; fd < io->conns.cap; fd++)
    if (sk__conn_get(&io->conns, fd))
      sk__close(fd);
  sk__conn_table_free(&io->conns);
  /* Jobs come back through the done list even when their connection is
   * gone; the ones still in a connection's FIFO are done and unsent. */
  free_job_list(io->done_head, true);
  io->done_head = NULL;
  for (int fd = 0; fd < io->fifo_cap; fd++)
    for (sk_tcp_job *j = io->fifos[fd].head, *next; j; j = next) {
      next = j->next_in_conn;
      if (j->done) {
        free(j->reply);
        free(j);
      }
    }
  free(io->fifos);
  io->fifos = NULL;
  if (io->srv->models->free)
    io->srv->models->free(io);
  io->listen_fd = -1; /* the core's */
  sk__close(io->reserve_fd);
  sk__loop_close(&io->loop);
  if (io->in)
    munmap(io->in, io->in_size + 1);
  io->in = NULL;
  free(io->out);
  io->out = NULL;
  pthread_mutex_destroy(&io->done_lock);
  io->srv = NULL;
}

/* ---- connections ------------------------------------------------------ */

static uint32_t fifo_count(sk_tcp_io *io, int fd) {
  return fd < io->fifo_cap ? io->fifos[fd].count : 0;
}

static void buffered_add(sk_tcp_io *io, int64_t n) {
  atomic_fetch_add_explicit(&io->srv->buffered, n, memory_order_relaxed);
}

static void close_conn(sk_tcp_io *io, int fd) {
  sk_conn *c = sk__conn_get(&io->conns, fd);
  buffered_add(io, -(int64_t)sk__buf_len(c->out));
  if (fd < io->fifo_cap) {
    /* Jobs still with the pool come back later and are freed then. */
    for (sk_tcp_job *j = io->fifos[fd].head, *next; j; j = next) {
      next = j->next_in_conn;
      if (j->done) {
        free(j->reply);
        free(j);
      } else {
        j->orphaned = true;
      }
    }
    io->fifos[fd] = (sk_job_fifo){0};
  }
  sk__conn_release(&io->conns, fd);
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
 * while the pool works on its requests. `progress` restarts the clock. */
static void update_timer(sk_tcp_io *io, int fd, sk_conn *c, bool progress) {
  if (c->flags & (SK_CONN_SHUT_WR | SK_CONN_STOPPING))
    return;
  int want = c->out ? SK_LIST_WRITE : fifo_count(io, fd) ? SK_LIST_NONE : SK_LIST_IDLE;
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
  if (c->out || fifo_count(io, fd))
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
static size_t output_room(sk_tcp_io *io, const sk_conn *c) {
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

/* ---- worker pool ------------------------------------------------------ */

static void job_run(sk_pool_task *task) {
  sk_tcp_job *job = (sk_tcp_job *)task;
  sk_tcp_io *io = job->io;
  sk_tcp_server *srv = io->srv;
  if (!atomic_load_explicit(&srv->cancel_jobs, memory_order_relaxed)) {
    /* Pool threads are shared by every connection and server: bind per
     * job, to the address taken at accept (the descriptor may belong to
     * another client by now). */
    sk_peer peer;
    sk_peer *was = sk__peer_bind(&peer);
    sk__peer_set_addr(&peer, (const struct sockaddr *)&job->peer, job->peer_len);
    const char *reply = srv->core.service(job->request, srv->core.user);
    if (reply) {
      /* Copied on this thread, before it runs user code again. */
      job->reply_len = strlen(reply);
      job->reply = sk__malloc(SK_ALLOC_REPLY, job->reply_len + 1);
      if (job->reply)
        memcpy(job->reply, reply, job->reply_len + 1);
      else
        job->failed = true;
      if (srv->core.reply_free)
        srv->core.reply_free((void *)reply);
    }
    sk__peer_bind(was);
  }
  pthread_mutex_lock(&io->done_lock);
  bool first = io->done_head == NULL;
  job->next_done = io->done_head;
  io->done_head = job;
  pthread_mutex_unlock(&io->done_lock);
  /* One wake-up per batch of completions, not one write per request: the
   * loop takes the whole list after each wake-up it reads, so a list that
   * was not empty already has a wake-up on its way. */
  if (first)
    sk__loop_wake(&io->loop);
}

static bool grow_fifos(sk_tcp_io *io, int fd) {
  if (fd < io->fifo_cap)
    return true;
  int cap = io->fifo_cap ? io->fifo_cap : 64;
  while (cap <= fd)
    cap *= 2;
  sk_job_fifo *f = sk__realloc(SK_ALLOC_TABLE, io->fifos, (size_t)cap * sizeof *f);
  if (!f)
    return false;
  memset(f + io->fifo_cap, 0, (size_t)(cap - io->fifo_cap) * sizeof *f);
  io->fifos = f;
  io->fifo_cap = cap;
  return true;
}

/* Queue one request for the pool. False if out of memory. */
static bool submit_job(sk_tcp_io *io, int fd, const char *payload, size_t len) {
  sk_tcp_job *job = sk__malloc(SK_ALLOC_JOB, sizeof *job + len + 1);
  if (!job)
    return false;
  sk_job_fifo *q = &io->fifos[fd]; /* made at accept */
  *job = (sk_tcp_job){.task.run = job_run, .io = io, .fd = fd, .peer_len = q->peer_len};
  memcpy(&job->peer, &q->peer, q->peer_len);
  memcpy(job->request, payload, len);
  job->request[len] = '\0';
  if (q->tail)
    q->tail->next_in_conn = job;
  else
    q->head = job;
  q->tail = job;
  q->count++;
  io->tally.in++;
  io->tally.bytes_in += len;
  sk__pool_submit(io->srv->core.pool, &job->task);
  return true;
}

/* A reply of the connection is lost (it could not be copied or queued):
 * every later reply would answer the wrong request, so none is sent; the
 * replies before it still are, then the connection closes. */
static void lose_reply(sk_tcp_io *io, int fd, sk_conn *c) {
  sk__tcp_count(io->srv, SK_STAT_CONNECTIONS_RESET, 1);
  sk__tcp_warn_conn(io->srv, fd, "a reply could not be queued (out of memory); closing");
  c->flags |= SK_CONN_BROKEN | SK_CONN_CLOSING;
}

/* Move the replies at the head of the connection's FIFO whose requests are
 * done into io->out, in request order and within the connection's output
 * room, and deliver them; again while the socket takes them all. Replies
 * left waiting, done, are sent once the output drains (the connection is
 * then paused, so that its flush resumes it). Returns false if the
 * connection was closed. */
static bool send_done_jobs(sk_tcp_io *io, int fd, sk_conn *c) {
  sk_tcp_server *srv = io->srv;
  for (;;) {
    sk_job_fifo *q = &io->fifos[fd];
    size_t room = output_room(io, c);
    bool more = false;
    while (q->head && q->head->done) {
      if (!(c->flags & SK_CONN_BROKEN) && sk__buf_len(io->out) >= room) {
        more = true;
        break;
      }
      sk_tcp_job *job = q->head;
      q->head = job->next_in_conn;
      if (!q->head)
        q->tail = NULL;
      q->count--;
      if (!(c->flags & SK_CONN_BROKEN)) {
        if (job->failed) {
          sk__tcp_count(srv, SK_STAT_DROPS_TOO_LARGE, 1);
          lose_reply(io, fd, c);
        } else if (job->reply) {
          int st = sk__tcp_frame_reply(srv, (int)srv->framing, job->reply, job->reply_len, &io->out,
                                       &io->tally);
          if (st == SK_TCP_MULTILINE) {
            sk__tcp_serve_failed(srv, fd, st);
            c->flags |= SK_CONN_BROKEN | SK_CONN_CLOSING;
          } else if (st != 0) {
            lose_reply(io, fd, c);
          }
        }
      }
      free(job->reply);
      free(job);
    }
    sk__tcp_flush_tally(srv, &io->tally);
    if (more && room == 0)
      c->flags |= SK_CONN_READ_PAUSED; /* c->out is not empty: its flush resumes */
    if (!deliver(io, fd, c))
      return false;
    if (!more || (c->flags & SK_CONN_READ_PAUSED))
      break;
  }
  return settle(io, fd, c);
}

/* ---- reading and serving ---------------------------------------------- */

/* Hand the whole messages of buf[0, len) to the service (event loop) or to
 * the pool, within `room` bytes of output. Results as sk__tcp_serve_all. */
static int serve_buffer(sk_tcp_io *io, int fd, sk_conn *c, char *buf, size_t len, size_t room,
                        size_t *used) {
  sk_tcp_server *srv = io->srv;
  if (!srv->core.pool)
    return sk__tcp_serve_all(srv, fd, false, buf, len, room, used, &io->out, &io->tally, &io->peer);
  /* Pool replies come back later: what bounds them is the in-flight
   * limit, so here `room` only says whether to hand out requests at all. */
  size_t done = 0;
  int rc = 0;
  while (done < len) {
    if (fifo_count(io, fd) >= (uint32_t)srv->max_inflight) {
      c->flags |= SK_CONN_JOB_PAUSED;
      break;
    }
    sk_frame f;
    rc = sk__frame_decode((int)srv->framing, buf + done, len - done, (size_t)srv->core.max_message,
                          &f);
    if (rc <= 0)
      break;
    if (!submit_job(io, fd, buf + done + f.offset, f.length)) {
      sk__log(SK_LOG_ERROR, "tcp: out of memory queueing a request; closing connection");
      rc = SK_ENOMEM;
      break;
    }
    done += f.consumed;
    rc = 0;
  }
  *used = done;
  return rc;
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
    size_t room = output_room(io, c), used = 0;
    int rc = room ? serve_buffer(io, fd, c, buf, len, room, &used) : SK_TCP_SERVE_FULL;
    any |= used > 0;
    sk__tcp_flush_tally(srv, &io->tally); /* before the client can see replies */
    if (rc < 0) {
      if (rc == SK_ENOMEM)
        lose_reply(io, fd, c);
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

/* The connection may go on: replies the pool finished while its output was
 * full are sent, and input held back is served once neither the pool nor
 * the output makes it wait. */
static void resume(sk_tcp_io *io, int fd, sk_conn *c) {
  sk_tcp_server *srv = io->srv;
  if (srv->core.pool) {
    if (!send_done_jobs(io, fd, c))
      return;
    if ((c->flags & SK_CONN_JOB_PAUSED) && fifo_count(io, fd) < (uint32_t)srv->max_inflight)
      c->flags &= ~(uint32_t)SK_CONN_JOB_PAUSED;
  }
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

/* Pool replies are back: for each connection with completions, send every
 * reply at the head of its FIFO whose request is done, in request order,
 * then let it go on. The connections are linked through their FIFOs, so
 * collecting never allocates and no completion can be lost. */
static void collect_jobs(sk_tcp_io *io) {
  pthread_mutex_lock(&io->done_lock);
  sk_tcp_job *list = io->done_head;
  io->done_head = NULL;
  pthread_mutex_unlock(&io->done_lock);
  /* First mark, then send: sending may close a connection, which frees
   * the done jobs in its FIFO, so the list is not walked after that. */
  int32_t touched = -1;
  for (sk_tcp_job *next; list; list = next) {
    next = list->next_done;
    if (list->orphaned) {
      free(list->reply);
      free(list);
      continue;
    }
    list->done = true;
    sk_job_fifo *q = &io->fifos[list->fd];
    if (!q->touched) {
      q->touched = true;
      q->next_touched = touched;
      touched = list->fd;
    }
  }
  while (touched >= 0) {
    int fd = touched;
    sk_job_fifo *q = &io->fifos[fd];
    touched = q->next_touched;
    q->touched = false;
    sk_conn *c = sk__conn_get(&io->conns, fd);
    if (c)
      resume(io, fd, c);
  }
}

/* ---- accepting -------------------------------------------------------- */

/* Out of descriptors: give up the reserve to accept the next client and
 * close it at once (it learns at once, instead of waiting in the backlog),
 * or, when that is not possible, rest the listener for a moment. Either
 * way the loop cannot spin on a listener it cannot serve. */
static void shed_client(sk_tcp_io *io, int err) {
  sk_tcp_server *srv = io->srv;
  bool shed = false;
  if (io->reserve_fd >= 0) {
    sk__close(io->reserve_fd);
    int fd = accept4(io->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
      sk__close(fd);
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_REJECTED, 1);
      shed = true;
    }
    io->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  /* The listener leaves the epoll set rather than staying in it with no
   * events: EPOLL_CTL_MOD fails (EINVAL) on a listener registered with
   * EPOLLEXCLUSIVE, as the one UNIX listener shared by several loops is. */
  if ((!shed || io->reserve_fd < 0) && sk__loop_del(&io->loop, io->listen_fd) == 0) {
    io->listen_paused = true;
    io->listen_resume_at = sk__loop_now(&io->loop) + ACCEPT_PAUSE_MS;
  }
  sk__log(SK_LOG_WARN, "tcp: accept: %s; %s", strerror(err),
          shed ? "closed a new connection" : "pausing accepts");
}

/* Back into the epoll set with the flags sk__tcp_io_run gave it; if even
 * that fails, the listener rests once more rather than being lost. */
static void resume_listener(sk_tcp_io *io) {
  uint32_t now = sk__loop_now(&io->loop);
  if (!io->listen_paused || sk__time_before(now, io->listen_resume_at))
    return;
  if (io->reserve_fd < 0)
    io->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  uint32_t events = EPOLLIN | (io->owns_listener ? 0 : EPOLLEXCLUSIVE);
  if (sk__loop_add(&io->loop, io->listen_fd, events, SK_TCP_TAG_LISTENER) == 0)
    io->listen_paused = false;
  else
    io->listen_resume_at = now + ACCEPT_PAUSE_MS;
}

/* Track a new connection. `peer` is its client's address from accept,
 * kept for pool jobs (NULL in the other models). */
static void add_connection(sk_tcp_io *io, int fd, const struct sockaddr_storage *peer,
                           socklen_t peer_len) {
  sk_tcp_server *srv = io->srv;
  bool tables = !peer || grow_fifos(io, fd);
  sk_conn *c = tables ? sk__conn_open(&io->conns, fd) : NULL;
  if (!c || sk__loop_add(&io->loop, fd, EPOLLIN, (uint64_t)fd) != 0) {
    sk__log(SK_LOG_ERROR, "tcp: cannot track a new connection: %s",
            c ? strerror(errno) : "out of memory");
    if (c)
      sk__conn_release(&io->conns, fd);
    sk__close(fd);
    atomic_fetch_sub(&srv->active, 1);
    sk__tcp_count(srv, SK_STAT_CONNECTIONS_REJECTED, 1);
    return;
  }
  if (peer) {
    sk_job_fifo *q = &io->fifos[fd];
    q->peer_len = peer_len <= sizeof q->peer ? peer_len : (socklen_t)sizeof q->peer;
    memcpy(&q->peer, peer, q->peer_len);
  }
  sk__conn_set_timer(&io->conns, fd, SK_LIST_IDLE, sk__loop_now(&io->loop));
}

static void accept_some(sk_tcp_io *io) {
  sk_tcp_server *srv = io->srv;
  /* The pool model keeps who each client is; the others ask when needed. */
  const sk_tcp_model *model = srv->models;
  bool keep_peer = model->keep_peer;
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    int fd = accept4(io->listen_fd, keep_peer ? (struct sockaddr *)&peer : NULL,
                     keep_peer ? &peer_len : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        shed_client(io, errno);
      else if (errno != EAGAIN && errno != EWOULDBLOCK)
        sk__log(SK_LOG_WARN, "tcp: accept failed: %s", strerror(errno));
      return;
    }
    /* Counting first makes the limit exact across several loops. */
    long long before = atomic_fetch_add(&srv->active, 1);
    if (srv->max_connections && before >= srv->max_connections) {
      atomic_fetch_sub(&srv->active, 1);
      sk__close(fd);
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_REJECTED, 1);
      continue;
    }
    sk__tcp_count(srv, SK_STAT_CONNECTIONS_ACCEPTED, 1);
    /* Replies must not wait for Nagle, in every model. */
    if (srv->nodelay) {
      int on = 1;
      (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    model->accepted(io, fd, keep_peer ? &peer : NULL, peer_len);
  }
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
    if (!(c->flags & SK_CONN_SHUT_WR)) {
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
      collect_jobs(io);
      continue;
    }
    if (tag == SK_TCP_TAG_STOP || tag == SK_LOOP_TIMER)
      continue; /* the loop looks at the stop flag and timers after each batch */
    if (tag == SK_TCP_TAG_LISTENER) {
      if (!draining)
        accept_some(io);
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
        resume(io, fd, c);
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
  if (io->listen_fd >= 0) {
    sk__loop_del(&io->loop, io->listen_fd);
    /* A listener shared by several loops (UNIX) may still be in another
     * loop's hands: the core closes it once all have ended. */
    if (io->owns_listener) {
      sk__close(io->listen_fd);
      srv->core.fds[io->index] = -1;
    }
    io->listen_fd = -1;
  }
  for (int fd = 0; fd < io->conns.cap; fd++) {
    sk_conn *c = sk__conn_get(&io->conns, fd);
    if (!c)
      continue;
    c->flags |= SK_CONN_STOPPING;
    sk__conn_set_timer(&io->conns, fd, SK_LIST_NONE, 0);
    if (settle(io, fd, c) && update_events(io, fd, c) != 0)
      reset_conn(io, fd, errno);
  }
  int64_t deadline = sk__server_drain_deadline(&srv->core);
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
    resume_listener(io);
    tick(io);
  }
  drain(io, events);
  sk__peer_bind(was);
done:
  free(events);
  return rc;
}

const sk_tcp_model sk__tcp_event_model = {
    .accepted = add_connection,
};

const sk_tcp_model sk__tcp_pool_model = {
    .keep_peer = true,
    .accepted = add_connection,
};
