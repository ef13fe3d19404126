/* tcp_thread.c -- the thread-per-connection model: each client gets a
 * thread of its own, which serves it with plain waits (tcp_blocking.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "tcp.h"

/* A thread of the thread-per-connection model. */
typedef struct sk_conn_thread {
  pthread_t id;
  sk_tcp_server *srv;
  int fd;        /* closed under the threads' lock */
  bool detached; /* left running past the drain time */
  struct sk_conn_thread *next;
} sk_conn_thread;

/* The threads of a server, from all its loops: the model's state in it
 * (srv->model_state), made at listen and freed only once no thread of the
 * server is left running. */
typedef struct threads {
  pthread_mutex_t lock;
  sk_conn_thread *live;
  sk_conn_thread *finished; /* ended, for an event loop to join */
} threads;

static threads *state(sk_tcp_server *srv) {
  return srv->model_state;
}

static void *conn_thread_main(void *arg) {
  sk_conn_thread *t = arg;
  sk_tcp_server *srv = t->srv;
  threads *ts = state(srv);
  sk__tcp_serve_blocking(srv, t->fd, srv->core.stopfd, false);
  atomic_fetch_sub(&srv->active, 1);
  pthread_mutex_lock(&ts->lock);
  /* Closed under the lock: a stop past its drain time shuts the sockets of
   * threads still running down, and must never reach a reused number. */
  if (sk__forked())
    (void)shutdown(t->fd, SHUT_RDWR); /* a forked child may hold a copy */
  sk__close(t->fd);
  t->fd = -1;
  for (sk_conn_thread **p = &ts->live; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  bool detached = t->detached;
  if (detached) {
    free(t);
  } else {
    /* Move to the finished list, where the event loop joins it. */
    t->next = ts->finished;
    ts->finished = t;
  }
  pthread_mutex_unlock(&ts->lock);
  if (detached)
    sk__life_release(&srv->core.life); /* may free the server: touch nothing after */
  return NULL;
}

static void thread_accepted(sk_tcp_io *io, int fd, const struct sockaddr_storage *peer,
                            socklen_t peer_len) {
  (void)peer;
  (void)peer_len;
  sk_tcp_server *srv = io->srv;
  threads *ts = state(srv);
  sk_conn_thread *t = calloc(1, sizeof *t);
  if (t) {
    t->srv = srv;
    t->fd = fd;
    pthread_mutex_lock(&ts->lock);
    t->next = ts->live;
    ts->live = t;
    int rc = sk__thread_start(&t->id, conn_thread_main, t);
    if (rc == 0) {
      pthread_mutex_unlock(&ts->lock);
      return;
    }
    ts->live = t->next;
    pthread_mutex_unlock(&ts->lock);
    free(t);
    sk__log(SK_LOG_WARN, "tcp: cannot start a connection thread: %s", strerror(rc));
  }
  sk__close(fd);
  atomic_fetch_sub(&srv->active, 1);
  sk__tcp_count(srv, SK_STAT_CONNECTIONS_REJECTED, 1);
}

/* Join and free the threads of a finished list (they have ended, or are
 * about to return). */
static void join_list(sk_conn_thread *done) {
  for (sk_conn_thread *next; done; done = next) {
    next = done->next;
    pthread_join(done->id, NULL);
    free(done);
  }
}

/* Join threads that have finished. deadline_ms >= 0: wait for the others
 * until then; those still running after it are cut off from their clients
 * and left to end on their own (stragglers). */
static void join_threads(sk_tcp_server *srv, int64_t deadline_ms) {
  threads *ts = state(srv);
  for (;;) {
    pthread_mutex_lock(&ts->lock);
    sk_conn_thread *done = ts->finished;
    ts->finished = NULL;
    bool live = ts->live != NULL;
    pthread_mutex_unlock(&ts->lock);
    join_list(done);
    if (deadline_ms < 0 || !live)
      return;
    if (sk__clock_ms() >= deadline_ms)
      break;
    /* Live threads watch the stop descriptor and end soon after it, or at
     * the drain deadline if their client does not take its replies. */
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  /* Past the drain time, what still runs is a service call: its client is
   * cut off now, and the thread is left to end on its own. */
  int left = 0;
  pthread_mutex_lock(&ts->lock);
  for (sk_conn_thread *t = ts->live; t; t = t->next) {
    if (t->detached)
      continue;
    (void)shutdown(t->fd, SHUT_RDWR);
    pthread_detach(t->id);
    t->detached = true;
    sk__life_hold(&srv->core.life);
    left++;
  }
  /* Threads that ended since the last look are joined too: nobody looks
   * again once the run is over. */
  sk_conn_thread *done = ts->finished;
  ts->finished = NULL;
  pthread_mutex_unlock(&ts->lock);
  join_list(done);
  if (left)
    sk__log(SK_LOG_WARN,
            "tcp: %d service call(s) still running after the drain timeout; "
            "left to finish on their own",
            left);
}

static void thread_tick(sk_tcp_io *io) {
  join_threads(io->srv, -1);
}

static void thread_settle(sk_tcp_server *srv, int64_t deadline) {
  join_threads(srv, deadline);
}

static int thread_begin(sk_tcp_server *srv) {
  threads *ts = calloc(1, sizeof *ts);
  if (!ts)
    return sk__fail(SK_ENOMEM, ENOMEM);
  pthread_mutex_init(&ts->lock, NULL);
  srv->model_state = ts;
  return SK_OK;
}

static void thread_end(sk_tcp_server *srv) {
  threads *ts = state(srv);
  if (ts)
    pthread_mutex_destroy(&ts->lock);
  free(ts);
  srv->model_state = NULL;
}

const sk_tcp_model sk__tcp_thread_model = {
    .begin = thread_begin,
    .accepted = thread_accepted,
    .tick = thread_tick,
    .settle = thread_settle,
    .end = thread_end,
};
