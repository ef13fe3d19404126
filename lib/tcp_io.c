/* tcp_io.c -- one TCP event loop's state made and freed, and its listener:
 * accepting clients (the connection limit, TCP_NODELAY, tracking them),
 * shedding a client at EMFILE, resting and closing the listener. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "tcp.h"

#define ACCEPT_BATCH 64
/* How long the listener rests when no descriptor can be freed to shed a
 * client at EMFILE, so that running out of descriptors never spins. */
#define ACCEPT_PAUSE_MS 100

/* ---- setup ------------------------------------------------------------ */

int sk__tcp_io_init(sk_tcp_io *io, sk_tcp_server *srv, int index) {
  io->srv = srv;
  io->index = index;
  /* One listener each, or one shared by all (UNIX, adopted). An adopted
   * one stays open until the server is freed, even with one loop. */
  io->listen_fd = srv->core.fds[index % srv->core.nfds];
  io->owns_listener = srv->core.nfds == srv->core.nio && !srv->core.adopted;
  io->reserve_fd = -1;
  sk__conn_table_init(&io->conns);
  io->conns.lists[SK_LIST_IDLE].timeout_ms = (uint32_t)srv->idle_timeout_ms;
  io->conns.lists[SK_LIST_WRITE].timeout_ms = (uint32_t)srv->write_timeout_ms;
  io->conns.lists[SK_LIST_LINGER].timeout_ms = SK_TCP_LINGER_MS;
  io->conns.lists[SK_LIST_PROXY].timeout_ms = (uint32_t)srv->proxy_timeout_ms;
  int rc = sk__loop_init(&io->loop);
  if (rc != SK_OK) {
    io->srv = NULL;
    return rc;
  }
  /* Kept open so that one can be given up at EMFILE to accept and close
   * the next client, instead of leaving it in the backlog forever. */
  io->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return SK_OK;
}

void sk__tcp_io_free(sk_tcp_io *io) {
  if (!io->srv)
    return; /* never initialised, or freed already */
  for (int fd = 0; fd < io->conns.cap; fd++)
    if (sk__conn_get(&io->conns, fd))
      sk__close(fd);
  sk__conn_table_free(&io->conns);
  sk__tcp_proxy_free(io);
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
  io->srv = NULL;
}

/* ---- the listener ----------------------------------------------------- */

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
void sk__tcp_resume_listener(sk_tcp_io *io) {
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

bool sk__tcp_add_connection(sk_tcp_io *io, int fd, bool ready) {
  sk_tcp_server *srv = io->srv;
  sk_conn *c = ready ? sk__conn_open(&io->conns, fd) : NULL;
  if (!c || sk__loop_add(&io->loop, fd, EPOLLIN, (uint64_t)fd) != 0) {
    sk__log(SK_LOG_ERROR, "tcp: cannot track a new connection: %s",
            c ? strerror(errno) : "out of memory");
    if (c)
      sk__conn_release(&io->conns, fd);
    sk__close(fd);
    atomic_fetch_sub(&srv->active, 1);
    sk__tcp_count(srv, SK_STAT_CONNECTIONS_REJECTED, 1);
    return false;
  }
  /* Behind a proxy, a connection's first bytes are its PROXY header. */
  int list = SK_LIST_IDLE;
  if (srv->proxy_protocol != SK_PROXY_OFF) {
    c->flags |= SK_CONN_PROXY_WAIT;
    list = SK_LIST_PROXY;
  }
  sk__conn_set_timer(&io->conns, fd, list, sk__loop_now(&io->loop));
  return true;
}

void sk__tcp_accept(sk_tcp_io *io) {
  sk_tcp_server *srv = io->srv;
  /* The pool model keeps who each client is; the others ask when needed,
   * unless only trusted proxies may connect. */
  const sk_tcp_model *model = srv->models;
  bool check_sender = sk__tcp_proxy_checks_senders(srv);
  bool keep_peer = model->keep_peer || check_sender;
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
    if (check_sender && !sk__tcp_proxy_admit(srv, &peer, peer_len)) {
      sk__close(fd); /* before anything is read from it */
      continue;
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
    if (model->accepted)
      model->accepted(io, fd, keep_peer ? &peer : NULL, peer_len);
    else
      (void)sk__tcp_add_connection(io, fd, true);
  }
}

void sk__tcp_close_listener(sk_tcp_io *io) {
  if (io->listen_fd < 0)
    return;
  sk__loop_del(&io->loop, io->listen_fd);
  /* A listener shared by several loops (UNIX) may still be in another
   * loop's hands: the core closes it once all have ended. */
  if (io->owns_listener) {
    sk__close(io->listen_fd);
    io->srv->core.fds[io->index] = -1;
  }
  io->listen_fd = -1;
}
