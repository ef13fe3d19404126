/* tcp_blocking.c -- the classic models: a thread or a forked child per
 * connection, each serving its client with plain waits on the socket. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
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
      int64_t drain = sk__server_drain_deadline(&srv->core);
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

void sk__tcp_serve_blocking(sk_tcp_server *srv, int fd, int stopfd) {
  /* RAW: one read is one message, so a read never takes more than a
   * message may hold. Input lives in a buffer that grows in place, so
   * each byte of a large message is copied a constant number of times. */
  size_t chunk = srv->framing == SK_FRAME_RAW ? (size_t)srv->core.max_message : SK_TCP_READ_CHUNK;
  size_t high = (size_t)srv->high_water;
  sk_buf *in = NULL, *out = NULL;
  sk_peer peer;
  sk_peer *was = sk__peer_bind(&peer);
  sk_tally tally = {0};
  int64_t idle_deadline = srv->idle_timeout_ms ? sk__clock_ms() + srv->idle_timeout_ms : -1;
  for (;;) {
    int r = sk__wait_fd(fd, POLLIN, stopfd, idle_deadline);
    if (r == 0) {
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_TIMED_OUT, 1);
      break;
    }
    if (r < 0)
      break;                                     /* stopped: every reply owed was sent already */
    char *dst = sk__buf_reserve(&in, chunk + 1); /* + the NUL after the last message */
    if (!dst) {
      sk__log(SK_LOG_ERROR, "tcp: out of memory for a connection's input; closing it");
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
      break;
    }
    ssize_t n = read(fd, dst, chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (n < 0) {
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
      break;
    }
    if (n == 0)
      break; /* the client is done; its replies are out */
    in->len += (uint32_t)n;
    int rc;
    do {
      /* At most one reply past the high-water mark is queued; it is sent
       * before more messages are taken from the input. */
      size_t used = 0;
      rc = sk__tcp_serve_all(srv, fd, sk__buf_bytes(in), in->len, high, &used, &out, &tally, &peer);
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
  free(out);
  free(in);
}

/* ---- thread per connection -------------------------------------------- */

static void *conn_thread_main(void *arg) {
  sk_conn_thread *t = arg;
  sk_tcp_server *srv = t->srv;
  sk__tcp_serve_blocking(srv, t->fd, srv->core.stopfd);
  atomic_fetch_sub(&srv->active, 1);
  pthread_mutex_lock(&srv->threads_lock);
  /* Closed under the lock: a stop past its drain time shuts the sockets of
   * threads still running down, and must never reach a reused number. */
  if (sk__forked())
    (void)shutdown(t->fd, SHUT_RDWR); /* a forked child may hold a copy */
  sk__close(t->fd);
  t->fd = -1;
  for (sk_conn_thread **p = &srv->live_threads; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  bool detached = t->detached;
  if (detached) {
    free(t);
  } else {
    /* Move to the finished list, where the event loop joins it. */
    t->next = srv->finished_threads;
    srv->finished_threads = t;
  }
  pthread_mutex_unlock(&srv->threads_lock);
  if (detached)
    sk__server_release(&srv->core); /* may free the server: touch nothing after */
  return NULL;
}

void sk__tcp_spawn_thread(sk_tcp_server *srv, int fd) {
  sk_conn_thread *t = calloc(1, sizeof *t);
  if (t) {
    t->srv = srv;
    t->fd = fd;
    pthread_mutex_lock(&srv->threads_lock);
    t->next = srv->live_threads;
    srv->live_threads = t;
    int rc = sk__thread_start(&t->id, conn_thread_main, t);
    if (rc == 0) {
      pthread_mutex_unlock(&srv->threads_lock);
      return;
    }
    srv->live_threads = t->next;
    pthread_mutex_unlock(&srv->threads_lock);
    free(t);
    sk__log(SK_LOG_WARN, "tcp: cannot start a connection thread: %s", strerror(rc));
  }
  sk__close(fd);
  atomic_fetch_sub(&srv->active, 1);
  sk__tcp_count(srv, SK_STAT_CONNECTIONS_REJECTED, 1);
}

void sk__tcp_join_threads(sk_tcp_server *srv, int64_t deadline_ms) {
  for (;;) {
    pthread_mutex_lock(&srv->threads_lock);
    sk_conn_thread *done = srv->finished_threads;
    srv->finished_threads = NULL;
    bool live = srv->live_threads != NULL;
    pthread_mutex_unlock(&srv->threads_lock);
    for (sk_conn_thread *next; done; done = next) {
      next = done->next;
      pthread_join(done->id, NULL);
      free(done);
    }
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
  pthread_mutex_lock(&srv->threads_lock);
  for (sk_conn_thread *t = srv->live_threads; t; t = t->next) {
    if (t->detached)
      continue;
    (void)shutdown(t->fd, SHUT_RDWR);
    pthread_detach(t->id);
    t->detached = true;
    sk__server_hold(&srv->core);
    left++;
  }
  pthread_mutex_unlock(&srv->threads_lock);
  if (left)
    sk__log(SK_LOG_WARN,
            "tcp: %d service call(s) still running after the drain timeout; "
            "left to finish on their own",
            left);
}

/* ---- process per connection ------------------------------------------- */

/* Set before the first fork and never cleared: see sk__forked. One flag
 * read where connections close costs nothing, and it covers descriptors
 * of every kind and every server, which a child closing them could not:
 * it would need a registry of all servers and a consistent view of their
 * connection tables at the instant of fork(), while other threads accept
 * and close (and a lock taken around fork() by every loop thread). The
 * forking server's own connections never need it: each is held by its
 * child alone. */
static atomic_bool forked;

bool sk__forked(void) {
  return atomic_load_explicit(&forked, memory_order_relaxed);
}

/* In the child: close every descriptor of this server but the client's,
 * and forget their numbers. Files the service opens take those numbers,
 * and code inherited from the parent may still use the server -- a signal
 * handler calling sk_tcp_server_stop, as the README shows -- which must
 * then do nothing (sk__wake and sk__close ignore -1) rather than write
 * into the service's file. */
static void close_library_fds(sk_tcp_server *srv) {
  for (int i = 0; i < srv->core.nfds; i++) {
    sk__close(srv->core.fds[i]);
    srv->core.fds[i] = -1;
  }
  for (int i = 0; i < srv->core.nio; i++) {
    sk_tcp_io *io = &srv->io[i];
    sk__loop_close(&io->loop);
    io->listen_fd = -1;
    sk__close(io->reserve_fd);
    io->reserve_fd = -1;
    for (int k = 0; k < io->nchildren; k++)
      sk__close(io->children[k].pidfd);
    io->nchildren = 0; /* the parent's children, not the child's */
  }
  sk__close(srv->core.stopfd);
  srv->core.stopfd = -1;
}

void sk__tcp_spawn_child(sk_tcp_io *io, int fd) {
  sk_tcp_server *srv = io->srv;
  if (io->nchildren == io->children_cap) {
    int cap = io->children_cap ? io->children_cap * 2 : 16;
    sk_tcp_child *c = realloc(io->children, (size_t)cap * sizeof *c);
    if (!c)
      goto reject;
    io->children = c;
    io->children_cap = cap;
  }
  /* Before fork(), so that a connection another thread closes once the
   * child exists is always shut down first. Only one that is closing at
   * this very instant, between its check and its close(), can miss it. */
  atomic_store(&forked, true);
  pid_t pid = fork();
  if (pid < 0) {
    sk__log(SK_LOG_WARN, "tcp: cannot fork for a connection: %s", strerror(errno));
    goto reject;
  }
  if (pid == 0) {
    /* Library threads block signals; the child's service should not. */
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    close_library_fds(srv);
    sk__tcp_serve_blocking(srv, fd, -1);
    _exit(0);
  }
  /* The parent never registered fd with epoll, so closing it is all. */
  sk__close(fd);
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd >= 0 &&
      sk__loop_add(&io->loop, pidfd, EPOLLIN, (UINT64_C(3) << 40) | (uint64_t)pid) != 0) {
    sk__close(pidfd);
    pidfd = -1;
  }
  io->children[io->nchildren++] = (sk_tcp_child){.pid = pid, .pidfd = pidfd};
  return;
reject:
  sk__close(fd);
  atomic_fetch_sub(&srv->active, 1);
  sk__tcp_count(srv, SK_STAT_CONNECTIONS_REJECTED, 1);
}

void sk__tcp_reap_children(sk_tcp_io *io, bool wait_all) {
  for (int i = 0; i < io->nchildren;) {
    sk_tcp_child *c = &io->children[i];
    int status = 0;
    pid_t r;
    do
      r = waitpid(c->pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0 && wait_all) {
      /* Out of drain time: the child is ended and reaped now. */
      kill(c->pid, SIGKILL);
      do
        r = waitpid(c->pid, &status, 0);
      while (r < 0 && errno == EINTR);
    }
    if (r == 0) {
      i++;
      continue;
    }
    if (r == c->pid && WIFSIGNALED(status))
      sk__log(SK_LOG_WARN, "tcp: connection process %d killed by signal %d", (int)c->pid,
              WTERMSIG(status));
    sk__close(c->pidfd); /* also leaves the epoll set */
    atomic_fetch_sub(&io->srv->active, 1);
    *c = io->children[--io->nchildren];
  }
}
