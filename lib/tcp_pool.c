/* tcp_pool.c -- the worker-pool model: the loop's connections hand their
 * requests to pool threads, and the replies go back in request order. */
#include <stdlib.h>
#include <string.h>

#include "tcp.h"

typedef struct sk_tcp_job sk_tcp_job;

/* Requests of one connection handed to the pool, oldest first, and who
 * the connection's client is: taken at accept, so a job never has to ask
 * the kernel about a descriptor that may by then belong to someone else. */
typedef struct sk_job_fifo {
  sk_tcp_job *head;
  sk_tcp_job *tail;
  uint32_t count;
  int32_t next_touched; /* collect_jobs' list of FIFOs with completions */
  bool touched;
  socklen_t peer_len;
  struct sockaddr_storage peer;
} sk_job_fifo;

/* A request travelling to the pool and its reply travelling back. */
struct sk_tcp_job {
  sk_pool_task task;
  sk_tcp_io *io;
  sk_tcp_job *next_in_conn; /* FIFO of the connection (loop thread only) */
  sk_tcp_job *next_done;    /* completion list (under the jobs' done_lock) */
  int fd;
  bool done;     /* loop thread only: the reply is back */
  bool orphaned; /* loop thread only: the connection closed meanwhile */
  bool failed;   /* the reply could not be copied: the connection must end */
  char *reply;   /* the copy (in `request` when it fits), or NULL for no reply */
  size_t reply_len;
  size_t request_len;
  socklen_t peer_len;
  socklen_t proxy_len;           /* 0 unless the server takes PROXY headers */
  struct sockaddr_storage peer;  /* the client, as it was at accept or in the header */
  struct sockaddr_storage proxy; /* the proxy it came through */
  sk_origin *origin;             /* the header's TLVs, if it had any kept */
  char request[];                /* NUL-terminated copy */
};

/* The jobs of one loop: the model's state in it (io->model_state), made
 * with its first client. */
typedef struct jobs {
  sk_job_fifo *fifos; /* indexed by descriptor */
  int fifo_cap;
  pthread_mutex_t done_lock;
  sk_tcp_job *done_head; /* completions, newest first */
} jobs;

static jobs *state(sk_tcp_io *io) {
  return io->model_state;
}

/* The loop asks only about its connections, each made after the state. */
static uint32_t fifo_count(sk_tcp_io *io, int fd) {
  jobs *s = state(io);
  return fd < s->fifo_cap ? s->fifos[fd].count : 0;
}

static void free_job(sk_tcp_job *job) {
  if (job->reply != job->request)
    free(job->reply);
  free(job->origin);
  free(job);
}

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
    if (job->proxy_len)
      sk__peer_set_proxy(&peer, (const struct sockaddr *)&job->proxy, job->proxy_len, job->origin);
    const char *reply = srv->core.service(job->request, srv->core.user);
    if (reply) {
      /* Copied on this thread, before it runs user code again. */
      size_t len = strlen(reply);
      job->reply_len = len;
      if (len <= job->request_len) {
        /* Into the request's bytes, which are done with: no allocation
         * for a reply no longer than its request (it may be the request,
         * or lie inside it). */
        if (reply != job->request)
          memmove(job->request, reply, len + 1);
        job->reply = job->request;
      } else if ((job->reply = sk__malloc(SK_ALLOC_REPLY, len + 1))) {
        memcpy(job->reply, reply, len + 1);
      } else {
        job->failed = true;
      }
      if (srv->core.reply_free)
        srv->core.reply_free((void *)reply);
    }
    sk__peer_bind(was);
  }
  jobs *s = state(io);
  pthread_mutex_lock(&s->done_lock);
  bool first = s->done_head == NULL;
  job->next_done = s->done_head;
  s->done_head = job;
  pthread_mutex_unlock(&s->done_lock);
  /* One wake-up per batch of completions, not one write per request: the
   * loop takes the whole list after each wake-up it reads, so a list that
   * was not empty already has a wake-up on its way. */
  if (first)
    sk__loop_wake(&io->loop);
}

/* Room for fd's FIFO, and the loop's state if this is its first client. */
static bool grow_fifos(sk_tcp_io *io, int fd) {
  jobs *s = state(io);
  if (!s) {
    if (!(s = calloc(1, sizeof *s)))
      return false;
    pthread_mutex_init(&s->done_lock, NULL);
    io->model_state = s;
  }
  if (fd < s->fifo_cap)
    return true;
  int cap = s->fifo_cap ? s->fifo_cap : 64;
  while (cap <= fd)
    cap *= 2;
  sk_job_fifo *f = sk__realloc(SK_ALLOC_TABLE, s->fifos, (size_t)cap * sizeof *f);
  if (!f)
    return false;
  memset(f + s->fifo_cap, 0, (size_t)(cap - s->fifo_cap) * sizeof *f);
  s->fifos = f;
  s->fifo_cap = cap;
  return true;
}

static void pool_accepted(sk_tcp_io *io, int fd, const struct sockaddr_storage *peer,
                          socklen_t peer_len) {
  if (!sk__tcp_add_connection(io, fd, grow_fifos(io, fd)))
    return;
  sk_job_fifo *q = &state(io)->fifos[fd];
  q->peer_len = peer_len <= sizeof q->peer ? peer_len : (socklen_t)sizeof q->peer;
  memcpy(&q->peer, peer, q->peer_len);
}

/* Jobs made from one read, handed to the pool together. */
typedef struct job_batch {
  sk_pool_task *first, *last;
  int count;
} job_batch;

/* Queue one request of the connection for the pool, in `batch`. False if
 * out of memory. */
static bool submit_job(sk_tcp_io *io, int fd, const char *payload, size_t len, job_batch *batch) {
  sk_tcp_job *job = sk__malloc(SK_ALLOC_JOB, sizeof *job + len + 1);
  if (!job)
    return false;
  sk_job_fifo *q = &state(io)->fifos[fd]; /* made at accept */
  *job = (sk_tcp_job){
      .task.run = job_run, .io = io, .fd = fd, .request_len = len, .peer_len = q->peer_len};
  memcpy(&job->peer, &q->peer, q->peer_len);
  if (io->srv->proxy_protocol) {
    /* Behind a proxy: the client is the one its header named, if any. */
    job->proxy_len = q->peer_len;
    memcpy(&job->proxy, &q->peer, q->peer_len);
    const sk_origin *o = sk__tcp_origin(io, fd);
    if (o && o->len) {
      job->peer_len = o->len;
      memcpy(&job->peer, &o->addr, o->len);
    }
    /* Its TLVs, if any, in a copy of the job's own: a job may outlive its
     * connection. */
    if (o && (o->has_unique_id || o->has_authority)) {
      if (!(job->origin = sk__malloc(SK_ALLOC_JOB, sk__origin_size(o)))) {
        free(job);
        return false;
      }
      memcpy(job->origin, o, sk__origin_size(o));
    }
  }
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
  if (batch->last)
    batch->last->next = &job->task;
  else
    batch->first = &job->task;
  batch->last = &job->task;
  batch->count++;
  return true;
}

/* Hand the whole messages of buf[0, len) to the pool. Its replies come
 * back later: what bounds them is the in-flight limit, so `room` (which
 * the loop checked) only says to hand out requests at all. */
static int pool_serve(sk_tcp_io *io, int fd, sk_conn *c, char *buf, size_t len, size_t room,
                      size_t *used) {
  sk_tcp_server *srv = io->srv;
  size_t done = 0;
  int rc = 0;
  int framing = (int)srv->framing;
  size_t max = (size_t)srv->core.max_message;
  /* One search for NUL over the whole read instead of one per message;
   * only a read that holds one pays for the checked decoder. */
  bool nul_free = memchr(buf, '\0', len) == NULL;
  job_batch batch = {NULL, NULL, 0};
  while (done < len) {
    if (fifo_count(io, fd) >= (uint32_t)srv->max_inflight) {
      c->flags |= SK_CONN_JOB_PAUSED;
      break;
    }
    sk_frame f;
    rc = nul_free ? sk__frame_decode_nul_free(framing, buf + done, len - done, max, &f)
                  : sk__frame_decode(framing, buf + done, len - done, max, &f);
    if (rc <= 0)
      break;
    if (!submit_job(io, fd, buf + done + f.offset, f.length, &batch)) {
      sk__log(SK_LOG_ERROR, "tcp: out of memory queueing a request; closing connection");
      rc = SK_ENOMEM;
      break;
    }
    done += f.consumed;
    rc = 0;
  }
  /* One lock and one wake-up for the read's requests, not one each. */
  sk__pool_submit_list(srv->core.pool, batch.first, batch.last, batch.count);
  *used = done;
  return rc;
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
    sk_job_fifo *q = &state(io)->fifos[fd];
    size_t room = sk__tcp_output_room(io, c);
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
          sk__tcp_lose_reply(io, fd, c);
        } else if (job->reply) {
          int st = sk__tcp_frame_reply(srv, (int)srv->framing, job->reply, job->reply_len, &io->out,
                                       &io->tally);
          if (st == SK_TCP_MULTILINE) {
            sk__tcp_serve_failed(srv, fd, st);
            c->flags |= SK_CONN_BROKEN | SK_CONN_CLOSING;
          } else if (st != 0) {
            sk__tcp_lose_reply(io, fd, c);
          }
        }
      }
      free_job(job);
    }
    sk__tcp_flush_tally(srv, &io->tally);
    if (more && room == 0)
      c->flags |= SK_CONN_READ_PAUSED; /* c->out is not empty: its flush resumes */
    if (!sk__tcp_deliver(io, fd, c))
      return false;
    if (!more || (c->flags & SK_CONN_READ_PAUSED))
      break;
  }
  return sk__tcp_settle(io, fd, c);
}

/* Replies finished while the output was full go out; reading goes on
 * once the connection is back under its in-flight limit. */
static bool pool_resume(sk_tcp_io *io, int fd, sk_conn *c) {
  if (!send_done_jobs(io, fd, c))
    return false;
  if ((c->flags & SK_CONN_JOB_PAUSED) && fifo_count(io, fd) < (uint32_t)io->srv->max_inflight)
    c->flags &= ~(uint32_t)SK_CONN_JOB_PAUSED;
  return true;
}

/* Pool replies are back: for each connection with completions, send every
 * reply at the head of its FIFO whose request is done, in request order,
 * then let it go on. The connections are linked through their FIFOs, so
 * collecting never allocates and no completion can be lost. */
static void collect_jobs(sk_tcp_io *io) {
  jobs *s = state(io);
  pthread_mutex_lock(&s->done_lock);
  sk_tcp_job *list = s->done_head;
  s->done_head = NULL;
  pthread_mutex_unlock(&s->done_lock);
  /* First mark, then send: sending may close a connection, which frees
   * the done jobs in its FIFO, so the list is not walked after that. */
  int32_t touched = -1;
  for (sk_tcp_job *next; list; list = next) {
    next = list->next_done;
    if (list->orphaned) {
      free_job(list);
      continue;
    }
    list->done = true;
    sk_job_fifo *q = &s->fifos[list->fd];
    if (!q->touched) {
      q->touched = true;
      q->next_touched = touched;
      touched = list->fd;
    }
  }
  while (touched >= 0) {
    int fd = touched;
    sk_job_fifo *q = &s->fifos[fd];
    touched = q->next_touched;
    q->touched = false;
    sk_conn *c = sk__conn_get(&io->conns, fd);
    if (c)
      sk__tcp_resume(io, fd, c);
  }
}

/* Forget the FIFO of fd: its done jobs are freed, and those still with
 * the pool come back through the done list and are freed then. */
static void pool_closed(sk_tcp_io *io, int fd) {
  jobs *s = state(io);
  if (fd >= s->fifo_cap)
    return;
  for (sk_tcp_job *j = s->fifos[fd].head, *next; j; j = next) {
    next = j->next_in_conn;
    if (j->done)
      free_job(j);
    else
      j->orphaned = true;
  }
  s->fifos[fd] = (sk_job_fifo){0};
}

/* Every job has come back by now (stragglers have ended): the done list
 * holds those not yet collected, the FIFOs the done ones not yet sent. */
static void pool_free(sk_tcp_io *io) {
  jobs *s = state(io);
  if (!s)
    return;
  for (int fd = 0; fd < s->fifo_cap; fd++)
    pool_closed(io, fd);
  for (sk_tcp_job *j = s->done_head, *next; j; j = next) {
    next = j->next_done;
    free_job(j);
  }
  free(s->fifos);
  pthread_mutex_destroy(&s->done_lock);
  free(s);
  io->model_state = NULL;
}

const sk_tcp_model sk__tcp_pool_model = {
    .keep_peer = true,
    .accepted = pool_accepted,
    .serve = pool_serve,
    .pending = fifo_count,
    .resume = pool_resume,
    .wake = collect_jobs,
    .closed = pool_closed,
    .free = pool_free,
};
