/* tcp_server.c -- the TCP server's public API: options, listening sockets,
 * threads, and the run/start/stop/destroy lifecycle. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "tcp.h"

int sk_tcp_server_create(sk_tcp_server **out, const char *address, sk_service service, void *user) {
  if (!out)
    return sk__fail(SK_EINVAL, 0);
  *out = NULL;
  if (!address || !service)
    return sk__fail(SK_EINVAL, 0);
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
  srv->max_message = 65536;
  srv->framing = SK_FRAME_LINE;
  srv->backlog = SOMAXCONN;
  srv->model = SK_MODEL_EVENT_LOOP;
  srv->io_threads = 1;
  srv->idle_timeout_ms = 60000;
  srv->write_timeout_ms = 30000;
  srv->high_water = 1 << 20;
  srv->max_buffered = 256LL << 20;
  srv->drain_timeout_ms = 5000;
  srv->max_inflight = 16;
  pthread_mutex_init(&srv->threads_lock, NULL);
  srv->stats = mmap(NULL, SK_TCP_STAT_COUNT * sizeof *srv->stats, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (srv->stats == MAP_FAILED) {
    rc = sk__fail(SK_ENOMEM, errno);
    free(srv);
    return rc;
  }
  srv->stopfd = sk__wakefd_open();
  if (srv->stopfd < 0) {
    rc = sk__fail(SK_ESYS, errno);
    munmap(srv->stats, SK_TCP_STAT_COUNT * sizeof *srv->stats);
    free(srv);
    return rc;
  }
  *out = srv;
  return SK_OK;
}

/* The options that apply to TCP. */
#define OPT(name, field, lo, hi)                                                                   \
  { name, offsetof(sk_tcp_server, field), lo, hi }
static const sk_option_def tcp_options[] = {
    OPT(SK_OPT_MAX_MESSAGE, max_message, 1, 64LL << 20),
    OPT(SK_OPT_REUSEPORT, reuseport, 0, 1),
    OPT(SK_OPT_RCVBUF, rcvbuf, 0, INT_MAX),
    OPT(SK_OPT_SNDBUF, sndbuf, 0, INT_MAX),
    OPT(SK_OPT_FRAMING, framing, SK_FRAME_LINE, SK_FRAME_RAW),
    OPT(SK_OPT_BACKLOG, backlog, 1, 65535),
    OPT(SK_OPT_MODEL, model, SK_MODEL_EVENT_LOOP, SK_MODEL_PROCESS_PER_CONNECTION),
    OPT(SK_OPT_WORKERS, workers, 0, 1024),
    OPT(SK_OPT_IO_THREADS, io_threads, 0, 256),
    OPT(SK_OPT_MAX_CONNECTIONS, max_connections, 0, INT_MAX),
    OPT(SK_OPT_IDLE_TIMEOUT_MS, idle_timeout_ms, 0, INT_MAX),
    OPT(SK_OPT_WRITE_TIMEOUT_MS, write_timeout_ms, 0, INT_MAX),
    OPT(SK_OPT_OUTPUT_HIGH_WATER, high_water, 1024, 1LL << 30),
    OPT(SK_OPT_MAX_BUFFERED, max_buffered, 0, 1LL << 40),
    OPT(SK_OPT_DRAIN_TIMEOUT_MS, drain_timeout_ms, 0, INT_MAX),
    OPT(SK_OPT_MAX_INFLIGHT, max_inflight, 1, 65536),
};
#undef OPT

int sk_tcp_server_set(sk_tcp_server *srv, int option, long long value) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  return sk__option_set(srv, tcp_options, SK__COUNT(tcp_options), option, value,
                        srv->state == SK_TCP_CREATED);
}

int sk_tcp_server_get(const sk_tcp_server *srv, int option, long long *value) {
  if (!srv || !value)
    return sk__fail(SK_EINVAL, 0);
  return sk__option_get(srv, tcp_options, SK__COUNT(tcp_options), option, value);
}

int sk_tcp_server_set_reply_free(sk_tcp_server *srv, sk_reply_free fn) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  if (srv->state != SK_TCP_CREATED)
    return sk__fail(SK_ESTATE, 0);
  srv->reply_free = fn;
  return SK_OK;
}

/* Bind and listen one socket on `addr`. Returns the descriptor or a status. */
static int open_listener(sk_tcp_server *srv, sk_addr *addr, bool reuseport) {
  sk_bind_options opts = {
      .reuseport = reuseport, .rcvbuf = (int)srv->rcvbuf, .sndbuf = (int)srv->sndbuf};
  int fd = sk__bind_socket(addr, SOCK_STREAM, &opts);
  if (fd >= 0 && listen(fd, (int)srv->backlog) != 0) {
    int rc = sk__fail(SK_ELISTEN, errno);
    sk__close(fd);
    return rc;
  }
  return fd;
}

static void free_io(sk_tcp_server *srv) {
  for (int i = 0; i < srv->nio; i++)
    sk__tcp_io_free(&srv->io[i]);
  free(srv->io);
  srv->io = NULL;
  srv->nio = 0;
}

int sk_tcp_server_listen(sk_tcp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  if (srv->state != SK_TCP_CREATED || atomic_load(&srv->stop_requested))
    return sk__fail(SK_ESTATE, 0);
  int nio = srv->io_threads ? (int)srv->io_threads : sk__cpu_count();
  if (srv->model == SK_MODEL_PROCESS_PER_CONNECTION && nio != 1)
    return sk__fail(SK_EINVAL, 0);
  srv->io = calloc((size_t)nio, sizeof *srv->io);
  if (!srv->io)
    return sk__fail(SK_ENOMEM, ENOMEM);
  int rc = SK_OK;
  for (int i = 0; i < nio; i++) {
    srv->io[i].listen_fd = -1;
    if ((rc = sk__tcp_io_init(&srv->io[i], srv)) != SK_OK)
      goto fail;
    srv->nio = i + 1;
  }
  /* Several loops get a listener each on one port (SO_REUSEPORT), so the
   * kernel spreads connections over them. A UNIX path cannot be bound
   * twice: there the loops share one listener. */
  bool unix_socket = srv->addr.ss.ss_family == AF_UNIX;
  bool reuseport = srv->reuseport || (nio > 1 && !unix_socket);
  for (int i = 0; i < nio; i++) {
    if (i > 0 && unix_socket) {
      srv->io[i].listen_fd = srv->io[0].listen_fd;
      srv->io[i].owns_listener = false;
      continue;
    }
    sk_addr a = srv->addr;
    if (i > 0) {
      /* With port 0 the first socket picked the port: the others take it. */
      /* Still the wildcard form: dual-stack (IPV6_V6ONLY off) on every
       * listener, whatever net.ipv6.bindv6only says. */
      a.ss = srv->bound;
      a.len = srv->bound_len;
    }
    int fd = open_listener(srv, &a, reuseport);
    if (fd < 0) {
      rc = fd;
      goto fail;
    }
    srv->io[i].listen_fd = fd;
    srv->io[i].owns_listener = true;
    if (i == 0) {
      srv->addr = a; /* keeps an IPv4 fallback of the wildcard form */
      srv->unlink_path = sk__unix_file_record(&a, &srv->unix_file);
      srv->bound_len = sizeof srv->bound;
      if (getsockname(fd, (struct sockaddr *)&srv->bound, &srv->bound_len) != 0) {
        rc = sk__fail(SK_ESOCKET, errno);
        goto fail;
      }
    }
  }
  srv->nodelay = !unix_socket;
  srv->state = SK_TCP_LISTENING;
  if (sk__log_enabled(SK_LOG_INFO)) {
    char text[SK__ADDR_TEXT_MAX];
    if (sk__addr_format((struct sockaddr *)&srv->bound, srv->bound_len, text, sizeof text) == 0)
      sk__log(SK_LOG_INFO, "tcp: listening on %s with %d event loop(s)", text, nio);
  }
  return SK_OK;
fail:
  free_io(srv);
  if (srv->unlink_path)
    sk__unlink_unix_path(&srv->addr, &srv->unix_file);
  srv->unlink_path = false;
  return rc;
}

int sk_tcp_server_port(const sk_tcp_server *srv, int *port) {
  if (!srv || !port)
    return sk__fail(SK_EINVAL, 0);
  if (srv->state == SK_TCP_CREATED)
    return sk__fail(SK_ESTATE, 0);
  *port = sk__addr_port((const struct sockaddr *)&srv->bound);
  return SK_OK;
}

int sk_tcp_server_address(const sk_tcp_server *srv, char *buf, size_t size) {
  if (!srv || !buf)
    return sk__fail(SK_EINVAL, 0);
  if (srv->state == SK_TCP_CREATED)
    return sk__fail(SK_ESTATE, 0);
  int rc = sk__addr_format((const struct sockaddr *)&srv->bound, srv->bound_len, buf, size);
  return rc == SK_OK ? SK_OK : sk__fail(rc, 0);
}

static void *io_thread(void *arg) {
  sk_tcp_io *io = arg;
  io->rc = sk__tcp_io_run(io);
  return NULL;
}

/* Everything run and start share: state checks, listening, the pool. */
static int prepare(sk_tcp_server *srv) {
  if (srv->state == SK_TCP_RUNNING || srv->state == SK_TCP_DONE ||
      atomic_load(&srv->stop_requested))
    return sk__fail(SK_ESTATE, 0);
  if (srv->state == SK_TCP_CREATED) {
    int rc = sk_tcp_server_listen(srv);
    if (rc != SK_OK)
      return rc;
  }
  if (srv->model == SK_MODEL_WORKER_POOL) {
    int workers = srv->workers ? (int)srv->workers : sk__cpu_count();
    int rc = sk__pool_create(&srv->pool, workers);
    if (rc != SK_OK)
      return rc;
  }
  srv->state = SK_TCP_RUNNING;
  return SK_OK;
}

/* Start loops first..nio-1 on threads of their own. */
static int start_threads(sk_tcp_server *srv, int first) {
  for (int i = first; i < srv->nio; i++) {
    int rc = sk__thread_start(&srv->io[i].thread, io_thread, &srv->io[i]);
    if (rc != 0) {
      sk_tcp_server_stop(srv);
      return sk__fail(SK_ESYS, rc);
    }
    srv->io[i].thread_started = true;
  }
  return SK_OK;
}

static void pool_ended(void *srv);

/* Wait for every thread the server started; the first loop error wins. */
static int finish(sk_tcp_server *srv, int rc) {
  for (int i = 0; i < srv->nio; i++) {
    if (srv->io[i].thread_started) {
      pthread_join(srv->io[i].thread, NULL);
      srv->io[i].thread_started = false;
    }
    if (rc == SK_OK)
      rc = srv->io[i].rc;
  }
  /* Connection threads and pool workers get what is left of the drain
   * time; a service call still running after it is left to end on its own
   * (its reply is discarded), so a service that never returns cannot hold
   * up run or destroy. */
  int64_t deadline = sk__tcp_drain_deadline(srv);
  sk__tcp_join_threads(srv, deadline);
  /* Every loop has closed its connections: jobs still queued have nobody
   * to answer, so they skip the service and the pool ends quickly. */
  atomic_store(&srv->cancel_jobs, true);
  /* Counted before the close: a pool left to its stragglers may end, and
   * call pool_ended, before sk__pool_close has even returned. */
  if (srv->pool) {
    pthread_mutex_lock(&srv->threads_lock);
    srv->stragglers++;
    pthread_mutex_unlock(&srv->threads_lock);
    if (sk__pool_close(srv->pool, deadline, pool_ended, srv)) {
      pthread_mutex_lock(&srv->threads_lock);
      srv->stragglers--;
      pthread_mutex_unlock(&srv->threads_lock);
    }
  }
  srv->pool = NULL;
  pthread_mutex_lock(&srv->threads_lock);
  bool stragglers = srv->stragglers > 0;
  pthread_mutex_unlock(&srv->threads_lock);
  /* Stragglers' completions still reach the loops' wake-ups and done
   * lists: those are freed with the server, after the last has ended. */
  if (!stragglers)
    free_io(srv);
  srv->state = SK_TCP_DONE;
  srv->started = false;
  sk__log(SK_LOG_INFO, "tcp: stopped");
  return rc;
}

int sk_tcp_server_run(sk_tcp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  int rc = prepare(srv);
  if (rc != SK_OK)
    return rc;
  rc = start_threads(srv, 1);
  if (rc == SK_OK)
    srv->io[0].rc = sk__tcp_io_run(&srv->io[0]);
  return finish(srv, rc);
}

int sk_tcp_server_start(sk_tcp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  int rc = prepare(srv);
  if (rc != SK_OK)
    return rc;
  srv->started = true;
  rc = start_threads(srv, 0);
  if (rc != SK_OK)
    finish(srv, rc);
  return rc;
}

int sk_tcp_server_stop(sk_tcp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  /* Only a lock-free atomic store and write(2): both async-signal-safe. */
  atomic_store(&srv->stop_requested, true);
  sk__wake(srv->stopfd);
  return SK_OK;
}

int sk_tcp_server_stat(const sk_tcp_server *srv, int stat, uint64_t *out) {
  if (!srv || !out || stat <= 0 || stat >= SK_TCP_STAT_COUNT || stat == SK_STAT_DROPS_NO_ADDRESS ||
      stat == SK_STAT_DROPS_WOULD_BLOCK || stat == SK_STAT_DROPS_SEND_ERROR ||
      stat == SK_STAT_DROPS_QUEUE_FULL)
    return sk__fail(SK_EINVAL, 0);
  if (stat == SK_STAT_CONNECTIONS_ACTIVE)
    *out = (uint64_t)atomic_load(&((sk_tcp_server *)srv)->active);
  else if (stat == SK_STAT_BYTES_BUFFERED)
    *out = (uint64_t)atomic_load(&((sk_tcp_server *)srv)->buffered);
  else
    *out = atomic_load_explicit(&srv->stats[stat], memory_order_relaxed);
  return SK_OK;
}

static void free_server(sk_tcp_server *srv) {
  free_io(srv);
  sk__close(srv->stopfd);
  munmap(srv->stats, SK_TCP_STAT_COUNT * sizeof *srv->stats);
  pthread_mutex_destroy(&srv->threads_lock);
  free(srv);
}

int64_t sk__tcp_drain_deadline(sk_tcp_server *srv) {
  int64_t deadline = atomic_load(&srv->drain_deadline);
  if (deadline == 0) {
    int64_t want = sk__clock_ms() + srv->drain_timeout_ms;
    if (atomic_compare_exchange_strong(&srv->drain_deadline, &deadline, want))
      deadline = want;
  }
  return deadline;
}

void sk__tcp_server_release(sk_tcp_server *srv) {
  pthread_mutex_lock(&srv->threads_lock);
  bool last = --srv->stragglers == 0 && srv->destroyed;
  pthread_mutex_unlock(&srv->threads_lock);
  if (last)
    free_server(srv);
}

static void pool_ended(void *srv) {
  sk__tcp_server_release(srv);
}

void sk_tcp_server_destroy(sk_tcp_server *srv) {
  if (!srv)
    return;
  if (srv->started) {
    sk_tcp_server_stop(srv);
    finish(srv, SK_OK);
  }
  if (srv->unlink_path)
    sk__unlink_unix_path(&srv->addr, &srv->unix_file);
  srv->unlink_path = false;
  pthread_mutex_lock(&srv->threads_lock);
  srv->destroyed = true;
  bool later = srv->stragglers > 0; /* the last straggler frees it */
  pthread_mutex_unlock(&srv->threads_lock);
  if (!later)
    free_server(srv);
}
