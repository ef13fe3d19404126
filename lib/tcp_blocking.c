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

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for `events`, stop is signalled, or deadline_ms
 * (0: none) passes. Returns 1 ready, 0 timed out, -1 stopped or error. */
static int wait_fd(int fd, short events, int stopfd, int64_t deadline_ms) {
  for (;;) {
    int timeout = -1;
    if (deadline_ms) {
      int64_t left = deadline_ms - now_ms();
      if (left <= 0)
        return 0;
      timeout = left > 60000 ? 60000 : (int)left;
    }
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = stopfd, .events = POLLIN}};
    int n = poll(p, stopfd >= 0 ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR)
      return -1;
    if (n > 0 && stopfd >= 0 && (p[1].revents & POLLIN))
      return -1;
    if (n > 0)
      return 1;
  }
}

/* Send all of out within the write timeout. False if the client is gone
 * or stalled. */
static bool send_all(sk_tcp_server *srv, int fd, sk_buf **out) {
  int64_t deadline = 0;
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
      deadline = srv->write_timeout_ms ? now_ms() + srv->write_timeout_ms : 0;
    /* Stop does not cut owed replies short: only the write timeout does. */
    int r = wait_fd(fd, POLLOUT, -1, deadline);
    if (r <= 0) {
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_TIMED_OUT, 1);
      return false;
    }
  }
  return true;
}

/* After a protocol error: our FIN, then discard input until the client's
 * EOF or the linger time, so owed replies are not destroyed by a reset. */
static void linger_close(int fd, char *buf, size_t size) {
  if (shutdown(fd, SHUT_WR) != 0)
    return;
  int64_t deadline = now_ms() + SK_TCP_LINGER_MS;
  while (wait_fd(fd, POLLIN, -1, deadline) == 1) {
    ssize_t n = read(fd, buf, size);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      break;
  }
}

void sk__tcp_serve_blocking(sk_tcp_server *srv, int fd, int stopfd) {
  size_t size = (size_t)srv->max_message + 8 + SK_TCP_READ_CHUNK;
  char *in = malloc(size + 1);
  sk_buf *out = NULL;
  if (!in) {
    sk__log(SK_LOG_ERROR, "tcp: out of memory for a connection; closing it");
    goto done;
  }
  sk_peer peer;
  sk_peer *was = sk__peer_bind(&peer);
  size_t have = 0;
  sk_tally tally = {0};
  int64_t idle_deadline = srv->idle_timeout_ms ? now_ms() + srv->idle_timeout_ms : 0;
  for (;;) {
    int r = wait_fd(fd, POLLIN, stopfd, idle_deadline);
    if (r == 0) {
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_TIMED_OUT, 1);
      break;
    }
    if (r < 0)
      break; /* stopped: every reply owed was sent already */
    ssize_t n = read(fd, in + have, size - have);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (n < 0) {
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
      break;
    }
    if (n == 0)
      break; /* the client is done; its replies are out */
    have += (size_t)n;
    size_t done;
    int rc = sk__tcp_serve_all(srv, fd, in, have, &done, &out, &tally, &peer);
    if (done > 0 && srv->idle_timeout_ms)
      idle_deadline = now_ms() + srv->idle_timeout_ms;
    memmove(in, in + done, have - done);
    have -= done;
    sk__tcp_flush_tally(srv, &tally);
    if (!send_all(srv, fd, &out))
      break;
    if (rc < 0) {
      sk__tcp_protocol_error(srv, fd, rc);
      linger_close(fd, in, size);
      break;
    }
  }
  sk__peer_bind(was);
done:
  free(out);
  free(in);
  sk__close(fd);
}

/* ---- thread per connection -------------------------------------------- */

static void *conn_thread_main(void *arg) {
  sk_conn_thread *t = arg;
  sk_tcp_server *srv = t->srv;
  sk__tcp_serve_blocking(srv, t->fd, srv->stopfd);
  atomic_fetch_sub(&srv->active, 1);
  /* Move to the finished list, where the event loop joins it. */
  pthread_mutex_lock(&srv->threads_lock);
  for (sk_conn_thread **p = &srv->live_threads; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  t->next = srv->finished_threads;
  srv->finished_threads = t;
  pthread_mutex_unlock(&srv->threads_lock);
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

void sk__tcp_join_threads(sk_tcp_server *srv, bool all) {
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
    if (!all || !live)
      return;
    /* Live threads watch the stop descriptor and end soon after it. */
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

/* ---- process per connection ------------------------------------------- */

/* In the child: close every descriptor of this server but the client's. */
static void close_library_fds(sk_tcp_server *srv) {
  for (int i = 0; i < srv->nio; i++) {
    sk_tcp_io *io = &srv->io[i];
    sk__close(io->loop.epfd);
    sk__close(io->loop.wakefd);
    sk__close(io->loop.timerfd);
    sk__close(io->listen_fd);
    sk__close(io->reserve_fd);
    for (int k = 0; k < io->nchildren; k++)
      sk__close(io->children[k].pidfd);
  }
  sk__close(srv->stopfd);
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
