/* tcp_server.c -- the TCP server's public API: argument checks, options,
 * and the transport hooks of the server core (listen, loops, drain). */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tcp.h"

static int tcp_bound(sk_server *core, int fd, int index);
static void tcp_listening(sk_server *core, const char *address);
static int tcp_begin(sk_server *core);
static int tcp_serve(sk_server *core, int index);
static void tcp_settle(sk_server *core, int64_t deadline);
static void tcp_end(sk_server *core);
static void tcp_destroy(sk_server *core);

static const sk_server_ops tcp_ops = {
    .name = "tcp",
    .socktype = SOCK_STREAM,
    .bound = tcp_bound,
    .listening = tcp_listening,
    .begin = tcp_begin,
    .serve = tcp_serve,
    .settle = tcp_settle,
    .end = tcp_end,
    .destroy = tcp_destroy,
};

int sk_tcp_server_create(sk_tcp_server **out, const char *address, sk_service service, void *user) {
  int rc = sk__server_create((void **)out, sizeof **out, &tcp_ops, address, service, user);
  if (rc != SK_OK)
    return rc;
  sk_tcp_server *srv = *out;
  srv->core.max_message = 65536;
  srv->core.model = SK_MODEL_EVENT_LOOP;
  srv->core.io_threads = 1;
  srv->core.life.drain_timeout_ms = 5000;
  srv->framing = SK_FRAME_LINE;
  srv->backlog = SOMAXCONN;
  srv->idle_timeout_ms = 60000;
  srv->write_timeout_ms = 30000;
  srv->high_water = 1 << 20;
  srv->max_buffered = 256LL << 20;
  srv->max_inflight = 16;
  srv->proxy_timeout_ms = 3000;
  return SK_OK;
}

/* The options that apply to TCP. */
#define OPT(name, field, lo, hi) SK__OPTION(sk_tcp_server, name, field, lo, hi)
static const sk_option_def tcp_options[] = {
    OPT(SK_OPT_MAX_MESSAGE, core.max_message, 1, 64LL << 20),
    OPT(SK_OPT_REUSEPORT, core.reuseport, 0, 1),
    OPT(SK_OPT_RCVBUF, core.rcvbuf, 0, INT_MAX),
    OPT(SK_OPT_SNDBUF, core.sndbuf, 0, INT_MAX),
    OPT(SK_OPT_FRAMING, framing, SK_FRAME_LINE, SK_FRAME_RAW),
    OPT(SK_OPT_BACKLOG, backlog, 1, 65535),
    OPT(SK_OPT_MODEL, core.model, SK_MODEL_EVENT_LOOP, SK_MODEL_PROCESS_PER_CONNECTION),
    OPT(SK_OPT_WORKERS, core.workers, 0, 1024),
    OPT(SK_OPT_IO_THREADS, core.io_threads, 0, 256),
    OPT(SK_OPT_MAX_CONNECTIONS, max_connections, 0, INT_MAX),
    OPT(SK_OPT_IDLE_TIMEOUT_MS, idle_timeout_ms, 0, INT_MAX),
    OPT(SK_OPT_WRITE_TIMEOUT_MS, write_timeout_ms, 0, INT_MAX),
    OPT(SK_OPT_OUTPUT_HIGH_WATER, high_water, 1024, 1LL << 30),
    OPT(SK_OPT_MAX_BUFFERED, max_buffered, 0, 1LL << 40),
    OPT(SK_OPT_DRAIN_TIMEOUT_MS, core.life.drain_timeout_ms, 0, INT_MAX),
    OPT(SK_OPT_MAX_INFLIGHT, max_inflight, 1, 65536),
    OPT(SK_OPT_PROXY_PROTOCOL, proxy_protocol, SK_PROXY_OFF, SK_PROXY_ANY),
    OPT(SK_OPT_PROXY_TIMEOUT_MS, proxy_timeout_ms, 1, INT_MAX),
};
#undef OPT

/* The process model forks from its one event loop: it and more than one
 * I/O thread exclude each other, whichever is set first. */
static bool model_conflict(const sk_tcp_server *srv, int option, long long value) {
  long long model = option == SK_OPT_MODEL ? value : srv->core.model;
  long long nio = option == SK_OPT_IO_THREADS ? value : srv->core.io_threads;
  if ((option != SK_OPT_MODEL && option != SK_OPT_IO_THREADS) ||
      model != SK_MODEL_PROCESS_PER_CONNECTION || nio == 1 || srv->core.state != SK_SERVER_CREATED)
    return false;
  if (option == SK_OPT_MODEL)
    sk__log(SK_LOG_WARN,
            "sk_tcp_server_set: SK_OPT_MODEL=%lld (SK_MODEL_PROCESS_PER_CONNECTION): needs "
            "SK_OPT_IO_THREADS=1, and it is %lld: the process model forks from one event loop",
            value, nio);
  else
    sk__log(SK_LOG_WARN,
            "sk_tcp_server_set: SK_OPT_IO_THREADS=%lld: SK_MODEL_PROCESS_PER_CONNECTION is set, "
            "which forks from one event loop: only 1 is allowed",
            value);
  return true;
}

int sk_tcp_server_set(sk_tcp_server *srv, int option, long long value) {
  if (!srv)
    return sk__null_argument("sk_tcp_server_set", "srv");
  if (model_conflict(srv, option, value))
    return sk__fail(SK_EINVAL, 0);
  return sk__option_set(srv, tcp_options, SK__COUNT(tcp_options), option, value,
                        srv->core.state == SK_SERVER_CREATED ? NULL : SK__SERVER_LOCKED,
                        "sk_tcp_server_set");
}

int sk_tcp_server_get(const sk_tcp_server *srv, int option, long long *value) {
  if (!srv || !value)
    return sk__fail(SK_EINVAL, 0);
  return sk__option_get(srv, tcp_options, SK__COUNT(tcp_options), option, value,
                        "sk_tcp_server_get");
}

int sk_tcp_server_set_reply_free(sk_tcp_server *srv, sk_reply_free fn) {
  if (!srv)
    return sk__null_argument("sk_tcp_server_set_reply_free", "srv");
  return sk__server_set_reply_free(&srv->core, fn);
}

int sk_tcp_server_set_proxy_trusted(sk_tcp_server *srv, const char *cidrs) {
  if (!srv)
    return sk__null_argument("sk_tcp_server_set_proxy_trusted", "srv");
  if (srv->core.state != SK_SERVER_CREATED) {
    sk__log(SK_LOG_WARN, "sk_tcp_server_set_proxy_trusted: %s", SK__SERVER_LOCKED);
    return sk__fail(SK_ESTATE, 0);
  }
  return sk__tcp_proxy_trust(srv, cidrs);
}

int sk_tcp_server_listen(sk_tcp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_listen(&srv->core);
}

int sk_tcp_server_port(const sk_tcp_server *srv, int *port) {
  if (!srv || !port)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_port(&srv->core, port);
}

int sk_tcp_server_address(const sk_tcp_server *srv, char *buf, size_t size) {
  if (!srv || !buf)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_address(&srv->core, buf, size);
}

int sk_tcp_server_run(sk_tcp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_run(&srv->core);
}

int sk_tcp_server_start(sk_tcp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_start(&srv->core);
}

int sk_tcp_server_stop(sk_tcp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_stop(&srv->core);
}

int sk_tcp_server_stat(const sk_tcp_server *srv, int stat, uint64_t *out) {
  if (!srv || !out || stat <= 0 || stat >= SK_SERVER_STAT_COUNT ||
      stat == SK_STAT_DROPS_NO_ADDRESS || stat == SK_STAT_DROPS_WOULD_BLOCK ||
      stat == SK_STAT_DROPS_SEND_ERROR || stat == SK_STAT_DROPS_QUEUE_FULL)
    return sk__fail(SK_EINVAL, 0);
  if (stat == SK_STAT_CONNECTIONS_ACTIVE)
    *out = (uint64_t)atomic_load(&((sk_tcp_server *)srv)->active);
  else if (stat == SK_STAT_BYTES_BUFFERED)
    *out = (uint64_t)atomic_load(&((sk_tcp_server *)srv)->buffered);
  else
    *out = atomic_load_explicit(&srv->core.stats[stat], memory_order_relaxed);
  return SK_OK;
}

void sk_tcp_server_destroy(sk_tcp_server *srv) {
  if (srv)
    sk__server_destroy(&srv->core);
}

/* ---- the core's hooks -------------------------------------------------- */

static int tcp_bound(sk_server *core, int fd, int index) {
  sk_tcp_server *srv = (sk_tcp_server *)core;
  (void)index;
  srv->nodelay = core->addr.ss.ss_family != AF_UNIX;
  if (listen(fd, (int)srv->backlog) != 0)
    return sk__fail(SK_ELISTEN, errno);
  return SK_OK;
}

static void tcp_listening(sk_server *core, const char *address) {
  sk_tcp_server *srv = (sk_tcp_server *)core;
  static const char *const proxy[] = {"", ", PROXY protocol v1", ", PROXY protocol v2",
                                      ", PROXY protocol v1 or v2"};
  sk__log(SK_LOG_INFO, "tcp: listening on %s with %d event loop(s)%s%s", address, core->nio,
          proxy[srv->proxy_protocol],
          srv->proxy_protocol && !srv->trusted ? " from any sender" : "");
  if (!srv->proxy_protocol && srv->trusted)
    sk__log(SK_LOG_WARN,
            "tcp: %s: the trusted proxies (sk_tcp_server_set_proxy_trusted) are "
            "ignored: SK_OPT_PROXY_PROTOCOL is SK_PROXY_OFF",
            address);
}

static int tcp_begin(sk_server *core) {
  sk_tcp_server *srv = (sk_tcp_server *)core;
  static const sk_tcp_model *const models[] = {
      [SK_MODEL_EVENT_LOOP] = &sk__tcp_event_model,
      [SK_MODEL_WORKER_POOL] = &sk__tcp_pool_model,
      [SK_MODEL_THREAD_PER_CONNECTION] = &sk__tcp_thread_model,
      [SK_MODEL_PROCESS_PER_CONNECTION] = &sk__tcp_process_model,
  };
  srv->models = models[core->model];
  srv->io = calloc((size_t)core->nio, sizeof *srv->io);
  if (!srv->io)
    return sk__fail(SK_ENOMEM, ENOMEM);
  for (int i = 0; i < core->nio; i++) {
    int rc = sk__tcp_io_init(&srv->io[i], srv, i);
    if (rc != SK_OK)
      return rc;
  }
  return srv->models->begin ? srv->models->begin(srv) : SK_OK;
}

static int tcp_serve(sk_server *core, int index) {
  sk_tcp_server *srv = (sk_tcp_server *)core;
  return sk__tcp_io_run(&srv->io[index]);
}

/* Every loop has closed its connections. Connection threads and pool
 * workers get what is left of the drain time; a service call still
 * running after it is left to end on its own (its reply is discarded). */
static void tcp_settle(sk_server *core, int64_t deadline) {
  sk_tcp_server *srv = (sk_tcp_server *)core;
  if (srv->models->settle)
    srv->models->settle(srv, deadline);
  /* Jobs still queued have nobody to answer: they skip the service, and
   * the pool ends quickly. */
  atomic_store(&srv->cancel_jobs, true);
  sk__server_close_pool(core, deadline);
}

/* Stragglers' completions still reach the loops' wake-ups and done lists:
 * the core calls this only after the last has ended. */
static void tcp_end(sk_server *core) {
  sk_tcp_server *srv = (sk_tcp_server *)core;
  for (int i = 0; srv->io && i < core->nio; i++)
    sk__tcp_io_free(&srv->io[i]);
  free(srv->io);
  srv->io = NULL;
  if (srv->models->end)
    srv->models->end(srv);
}

static void tcp_destroy(sk_server *core) {
  sk_tcp_server *srv = (sk_tcp_server *)core;
  free(srv->trusted);
  srv->trusted = NULL;
}
