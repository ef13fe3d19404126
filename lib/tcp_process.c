/* tcp_process.c -- the process-per-connection model: each client gets a
 * forked child, which serves it (tcp_blocking.c) and exits; the loop reaps
 * only its own children. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tcp.h"

/* A child of the process-per-connection model. */
typedef struct sk_tcp_child {
  pid_t pid;
  int pidfd; /* -1 where pidfd_open is unavailable: polled instead */
} sk_tcp_child;

/* The children of one loop: the model's state in it (io->model_state). */
typedef struct children {
  sk_tcp_child *list;
  int n, cap;
} children;

static children *kids(sk_tcp_io *io) {
  return io->model_state;
}

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
    children *k = kids(io);
    for (int c = 0; k && c < k->n; c++)
      sk__close(k->list[c].pidfd);
    if (k)
      k->n = 0; /* the parent's children, not the child's */
  }
  sk__close(srv->core.stopfd);
  srv->core.stopfd = -1;
}

static void process_accepted(sk_tcp_io *io, int fd, const struct sockaddr_storage *peer,
                             socklen_t peer_len) {
  (void)peer;
  (void)peer_len;
  sk_tcp_server *srv = io->srv;
  if (!io->model_state && !(io->model_state = calloc(1, sizeof(children))))
    goto reject;
  children *k = kids(io);
  if (k->n == k->cap) {
    int cap = k->cap ? k->cap * 2 : 16;
    sk_tcp_child *c = realloc(k->list, (size_t)cap * sizeof *c);
    if (!c)
      goto reject;
    k->list = c;
    k->cap = cap;
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
    /* A crashing service must not take its requests out of the count. */
    sk__tcp_serve_blocking(srv, fd, -1, true);
    _exit(0);
  }
  /* The parent never registered fd with epoll, so closing it is all. */
  sk__close(fd);
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd >= 0 &&
      sk__loop_add(&io->loop, pidfd, EPOLLIN, SK_TCP_TAG_MODEL | (uint64_t)pid) != 0) {
    sk__close(pidfd);
    pidfd = -1;
  }
  k->list[k->n++] = (sk_tcp_child){.pid = pid, .pidfd = pidfd};
  return;
reject:
  sk__close(fd);
  atomic_fetch_sub(&srv->active, 1);
  sk__tcp_count(srv, SK_STAT_CONNECTIONS_REJECTED, 1);
}

/* Reap children that have exited; wait_all: end and reap the rest too. */
static void reap_children(sk_tcp_io *io, bool wait_all) {
  children *k = kids(io);
  for (int i = 0; k && i < k->n;) {
    sk_tcp_child *c = &k->list[i];
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
    *c = k->list[--k->n];
  }
}

static void process_tick(sk_tcp_io *io) {
  if (kids(io) && kids(io)->n)
    reap_children(io, false);
}

/* Where pidfd_open is missing, exited children are looked for now and then. */
static int process_next_timeout(sk_tcp_io *io) {
  children *k = kids(io);
  return k && k->n && k->list[0].pidfd < 0 ? 50 : -1;
}

static int process_busy(sk_tcp_io *io) {
  return kids(io) ? kids(io)->n : 0;
}

static void process_end_drain(sk_tcp_io *io) {
  reap_children(io, true);
}

static void process_free(sk_tcp_io *io) {
  children *k = kids(io);
  if (k)
    free(k->list);
  free(k);
  io->model_state = NULL;
}

const sk_tcp_model sk__tcp_process_model = {
    .accepted = process_accepted,
    .tick = process_tick,
    .next_timeout = process_next_timeout,
    .busy = process_busy,
    .end_drain = process_end_drain,
    .free = process_free,
};
