/* test_tcp_models.c -- the TCP server under every concurrency model, and
 * its limits: connections, timeouts, backpressure, descriptors, stop. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 10000

typedef sk_test_model model_config;

static const model_config configs[] = {
    {"event loop", SK_MODEL_EVENT_LOOP, 1, 0},
    {"two event loops", SK_MODEL_EVENT_LOOP, 2, 0},
    {"worker pool", SK_MODEL_WORKER_POOL, 1, 4},
    {"pool on two loops", SK_MODEL_WORKER_POOL, 2, 3},
    {"thread per connection", SK_MODEL_THREAD_PER_CONNECTION, 1, 0},
    {"process per connection", SK_MODEL_PROCESS_PER_CONNECTION, 1, 0},
};
#define NCONFIGS ((int)(sizeof configs / sizeof configs[0]))

static sk_tcp_server *server_for(const model_config *cfg, const char *address, sk_service service) {
  sk_tcp_server *srv = sk_test_model_server(cfg, address, service);
  ck_assert_ptr_nonnull(srv);
  return srv;
}

typedef sk_test_running running;

static void run_start(running *r, const model_config *cfg, sk_tcp_server *srv) {
  (void)cfg; /* the server's own SK_OPT_MODEL says how it runs */
  ck_assert_int_eq(sk_test_running_start(r, srv), SK_OK);
}

static void run_stop(running *r) {
  ck_assert_int_eq(sk_test_running_stop(r, WAIT_MS), 0);
}

static void expect_bytes(int fd, const char *want, size_t len) {
  char got[8192];
  ck_assert_uint_le(len, sizeof got);
  ssize_t n = sk_test_read_exact(fd, got, len, WAIT_MS);
  ck_assert_int_eq(n, (ssize_t)len);
  ck_assert_msg(memcmp(got, want, len) == 0, "got '%.*s', want '%.*s'", (int)len, got, (int)len,
                want);
}

/* The server closes fd within WAIT_MS, with an EOF or with a reset (it
 * closed with input unread), and sends nothing first. A timeout is not a
 * close. */
static void expect_closed(int fd, const char *what) {
  char got[64];
  ssize_t n = sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS);
  ck_assert_msg(n != -2, "%s: not closed within %d ms", what, WAIT_MS);
  ck_assert_msg(n <= 0, "%s: got '%.*s' before the close", what, (int)n, got);
}

/* Echo, but a request "crash" kills whoever runs the service. */
static const char *echo_or_crash(const char *request, void *user) {
  (void)user;
  if (strcmp(request, "crash") == 0)
    abort();
  return request;
}

/* ---- one conformance body, run under every model ---------------------- */

#define CLIENTS 12
#define MESSAGES 40

typedef struct conf_client {
  const char *address;
  int id;
  int verified;
  int failed;
} conf_client;

static void *conf_thread(void *arg) {
  conf_client *c = arg;
  int fd = sk_test_tcp_connect(c->address);
  if (fd < 0) {
    c->failed = 1;
    return NULL;
  }
  /* Pipelined in two halves, so several requests are in flight at once. */
  char batch[MESSAGES * 32], want[MESSAGES * 32], got[MESSAGES * 32];
  for (int half = 0; half < 2 && !c->failed; half++) {
    size_t len = 0;
    for (int k = half * MESSAGES / 2; k < (half + 1) * MESSAGES / 2; k++)
      len += (size_t)snprintf(batch + len, sizeof batch - len, "client %d message %d\n", c->id, k);
    memcpy(want, batch, len);
    if (sk_test_send_all(fd, batch, len) != 0 ||
        sk_test_read_exact(fd, got, len, WAIT_MS) != (ssize_t)len || memcmp(got, want, len) != 0)
      c->failed = 1;
    else
      c->verified += MESSAGES / 2;
  }
  close(fd);
  return NULL;
}

START_TEST(test_conformance_every_model) {
  const model_config *cfg = &configs[_i];
  int fds_before = sk_test_fd_count();
  int threads_before = sk_test_thread_baseline();
  running r;
  run_start(&r, cfg, server_for(cfg, "127.0.0.1:0", echo_or_crash));

  /* Many clients at once, every reply in order. */
  pthread_t threads[CLIENTS];
  conf_client clients[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    clients[i] = (conf_client){.address = r.address, .id = i};
    ck_assert_int_eq(pthread_create(&threads[i], NULL, conf_thread, &clients[i]), 0);
  }
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(threads[i], NULL);
    ck_assert_msg(!clients[i].failed, "%s: client %d failed", cfg->name, i);
    ck_assert_int_eq(clients[i].verified, MESSAGES);
  }

  /* Half-close: the replies still arrive, then EOF. */
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_eq(sk_test_send_all(fd, "x\ny\n", 4), 0);
  shutdown(fd, SHUT_WR);
  char got[64];
  ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), 4);
  ck_assert(memcmp(got, "x\ny\n", 4) == 0);
  close(fd);

  /* A NUL byte: owed replies, then a clean close of that connection only. */
  int other = sk_test_tcp_connect(r.address);
  fd = sk_test_tcp_connect(r.address);
  ck_assert_int_eq(sk_test_send_all(fd, "ok\nbad\0x\nlost\n", 14), 0);
  ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), 3);
  ck_assert(memcmp(got, "ok\n", 3) == 0);
  close(fd);
  ck_assert_int_eq(sk_test_send_all(other, "alive\n", 6), 0);
  expect_bytes(other, "alive\n", 6);

  if (cfg->model == SK_MODEL_PROCESS_PER_CONNECTION) {
    /* A crashing service kills only its own child. */
    fd = sk_test_tcp_connect(r.address);
    ck_assert_int_eq(sk_test_send_all(fd, "crash\n", 6), 0);
    expect_closed(fd, "the crashed child's client");
    close(fd);
    ck_assert_int_eq(sk_test_send_all(other, "still\n", 6), 0);
    expect_bytes(other, "still\n", 6);
  }
  close(other);

  if (r.srv) {
    ck_assert(sk_test_wait_tcp_stat_eq(r.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
    uint64_t in = 0;
    sk_tcp_server_stat(r.srv, SK_STAT_MESSAGES_IN, &in);
    ck_assert_uint_ge(in, CLIENTS * MESSAGES + 3);
  }
  run_stop(&r); /* the fork model's server process checks for zombies */

  /* Nothing outlives the server: threads, descriptors, children. */
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
  ck_assert(sk_test_wait_threads(threads_before, WAIT_MS));
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
}
END_TEST

/* start -> stop -> destroy, in every model, leaves nothing behind. */
/* The service sees the address of the client it is answering, in every
 * model, also for pipelined requests and with two clients at once. */
static const char *peer_echo(const char *request, void *user) {
  (void)user;
  const char *peer = sk_peer_address();
  return sk_replyf("%s|%s", request, peer ? peer : "none");
}

START_TEST(test_peer_address_every_model) {
  const model_config *cfg = &configs[_i];
  ck_assert_ptr_null(sk_peer_address()); /* no request on this thread */
  running r;
  run_start(&r, cfg, server_for(cfg, "127.0.0.1:0", peer_echo));
  int fds[2];
  char want[2][256];
  size_t want_len[2];
  for (int c = 0; c < 2; c++) {
    fds[c] = sk_test_tcp_connect(r.address);
    ck_assert_int_ge(fds[c], 0);
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    ck_assert_int_eq(getsockname(fds[c], (struct sockaddr *)&me, &len), 0);
    int port = ntohs(me.sin_port);
    want_len[c] =
        (size_t)snprintf(want[c], sizeof want[c], "a|127.0.0.1:%d\nb|127.0.0.1:%d\n", port, port);
  }
  for (int c = 0; c < 2; c++)
    ck_assert_int_eq(sk_test_send_all(fds[c], "a\nb\n", 4), 0);
  for (int c = 0; c < 2; c++) {
    char got[256];
    ck_assert_int_eq(sk_test_read_exact(fds[c], got, want_len[c], WAIT_MS), (ssize_t)want_len[c]);
    ck_assert_msg(memcmp(got, want[c], want_len[c]) == 0, "%s: got '%.*s', want '%s'", cfg->name,
                  (int)want_len[c], got, want[c]);
    close(fds[c]);
  }
  run_stop(&r);
}
END_TEST

/* Replies "1" if the socket the request came in on has TCP_NODELAY set,
 * "0" if not: the service finds its own connection among the process's
 * descriptors as the stream socket whose peer is the request's sender. */
static const char *nodelay_service(const char *request, void *user) {
  (void)request;
  (void)user;
  socklen_t want_len = 0;
  const struct sockaddr *want = sk_peer_sockaddr(&want_len);
  if (!want)
    return "no peer";
  for (int fd = 0; fd < 4096; fd++) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int type = 0;
    socklen_t tlen = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM ||
        getpeername(fd, (struct sockaddr *)&peer, &len) != 0 || len != want_len ||
        memcmp(&peer, want, len) != 0)
      continue;
    int on = 0;
    socklen_t olen = sizeof on;
    if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &olen) != 0)
      return "getsockopt failed";
    return on ? "1" : "0";
  }
  return "not found";
}

/* The README promises replies that never wait for Nagle: every model sets
 * TCP_NODELAY on its connections. */
START_TEST(test_nodelay_every_model) {
  const model_config *cfg = &configs[_i];
  running r;
  run_start(&r, cfg, server_for(cfg, "127.0.0.1:0", nodelay_service));
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "q\n", 2), 0);
  char got[64] = {0};
  ssize_t n = sk_test_read_exact(fd, got, 2, WAIT_MS);
  ck_assert_msg(n == 2 && memcmp(got, "1\n", 2) == 0, "%s: TCP_NODELAY: got '%.*s'", cfg->name,
                n > 0 ? (int)n : 0, got);
  close(fd);
  run_stop(&r);
}
END_TEST

/* Start a server of this model with `framing` and connect a client to it;
 * returns the client's socket. */
static int start_framed(running *r, const model_config *cfg, sk_service service, int framing) {
  sk_tcp_server *srv = server_for(cfg, "127.0.0.1:0", service);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_FRAMING, framing), SK_OK);
  run_start(r, cfg, srv);
  int fd = sk_test_tcp_connect(r->address);
  ck_assert_int_ge(fd, 0);
  return fd;
}

/* A client that ends its stream inside a message gets the replies owed
 * before it, then EOF; the cut-short message is counted (in the
 * in-process models, whose counters this test can read) and dropped. */
START_TEST(test_stream_ending_inside_a_message_every_model) {
  const model_config *cfg = &configs[_i];
  for (int framing = SK_FRAME_LINE; framing <= SK_FRAME_LENGTH; framing++) {
    running r;
    int fd = start_framed(&r, cfg, sk_test_echo, framing);
    static const char line[] = "a\nb\npartial";
    static const char length[] = "\0\0\0\1a\0\0\0\5par"; /* "a", then 3 of 5 bytes */
    const char *msg = framing == SK_FRAME_LINE ? line : length;
    size_t len = framing == SK_FRAME_LINE ? sizeof line - 1 : sizeof length - 1;
    const char *want = framing == SK_FRAME_LINE ? "a\nb\n" : "\0\0\0\1a";
    size_t want_len = framing == SK_FRAME_LINE ? 4 : 5;
    ck_assert_int_eq(sk_test_send_all(fd, msg, len), 0);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    char got[64];
    ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), (ssize_t)want_len);
    ck_assert_msg(memcmp(got, want, want_len) == 0, "%s: wrong replies", cfg->name);
    close(fd);
    if (r.srv) {
      ck_assert(sk_test_wait_tcp_stat(r.srv, SK_STAT_DROPS_INCOMPLETE, 1, WAIT_MS));
      uint64_t n = 0;
      ck_assert_int_eq(sk_tcp_server_stat(r.srv, SK_STAT_DROPS_INCOMPLETE, &n), SK_OK);
      ck_assert_uint_eq(n, 1);
    }
    run_stop(&r);
  }
}
END_TEST

static const char *multiline_service(const char *request, void *user) {
  (void)user;
  return strcmp(request, "multi") == 0 ? "a\nb" : request;
}

/* LINE framing cannot carry a reply with a newline in it (the client would
 * read two replies): it is refused, counted, and the connection ends after
 * the replies before it. LENGTH framing carries the same reply whole. */
START_TEST(test_multiline_reply_refused_in_line_framing_every_model) {
  const model_config *cfg = &configs[_i];
  for (int framing = SK_FRAME_LINE; framing <= SK_FRAME_LENGTH; framing++) {
    running r;
    int fd = start_framed(&r, cfg, multiline_service, framing);
    char got[64];
    if (framing == SK_FRAME_LINE) {
      ck_assert_int_eq(sk_test_send_all(fd, "x\nmulti\ny\n", 10), 0);
      ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), 2);
      ck_assert_msg(memcmp(got, "x\n", 2) == 0, "%s: wrong replies", cfg->name);
      if (r.srv)
        ck_assert(sk_test_wait_tcp_stat(r.srv, SK_STAT_DROPS_MULTILINE, 1, WAIT_MS));
    } else {
      ck_assert_int_eq(sk_test_send_all(fd, "\0\0\0\5multi", 9), 0);
      ck_assert_int_eq(sk_test_read_exact(fd, got, 7, WAIT_MS), 7);
      ck_assert_msg(memcmp(got, "\0\0\0\3a\nb", 7) == 0, "%s: LENGTH reply", cfg->name);
    }
    close(fd);
    run_stop(&r);
  }
}
END_TEST

START_TEST(test_start_stop_destroy_every_model) {
  const model_config *cfg = &configs[_i];
  int fds_before = sk_test_fd_count();
  int threads_before = sk_test_thread_baseline();
  for (int round = 0; round < 3; round++) {
    sk_tcp_server *srv = server_for(cfg, "127.0.0.1:0", sk_test_echo);
    /* A fork-model child holds a copy of this test's client socket, so it
     * only ends when the drain time runs out and it is killed. */
    ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, 300), SK_OK);
    ck_assert_int_eq(sk_tcp_server_start(srv), SK_OK);
    ck_assert_int_eq(sk_tcp_server_start(srv), SK_ESTATE);
    char address[128];
    sk_tcp_server_address(srv, address, sizeof address);
    int fd = sk_test_tcp_connect(address);
    ck_assert_int_eq(sk_test_send_all(fd, "hi\n", 3), 0);
    expect_bytes(fd, "hi\n", 3);
    if (round == 1)
      close(fd); /* and round 2 keeps it open across the stop */
    ck_assert_int_eq(sk_tcp_server_stop(srv), SK_OK);
    sk_tcp_server_destroy(srv);
    if (round != 1)
      close(fd);
  }
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
  ck_assert(sk_test_wait_threads(threads_before, WAIT_MS));
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* no zombie outlives stop */
}
END_TEST

/* ---- the worker pool -------------------------------------------------- */

/* "N-slow" sleeps 200 ms, "N-fast" 20 ms: the second request of a client
 * finishes first, yet its reply must leave second. */
static const char *sleepy(const char *request, void *user) {
  (void)user;
  long ms = strstr(request, "slow") ? 200 : 20;
  struct timespec d = {0, ms * 1000000L};
  nanosleep(&d, NULL);
  return request;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define POOL_CLIENTS 64

typedef struct pool_client {
  const char *address;
  int id;
  int ok;
} pool_client;

static void *pool_thread(void *arg) {
  pool_client *c = arg;
  int fd = sk_test_tcp_connect(c->address);
  char req[64], got[64];
  int len = snprintf(req, sizeof req, "%d-slow\n%d-fast\n", c->id, c->id);
  c->ok = fd >= 0 && sk_test_send_all(fd, req, (size_t)len) == 0 &&
          sk_test_read_exact(fd, got, (size_t)len, 20000) == len &&
          memcmp(got, req, (size_t)len) == 0;
  if (fd >= 0)
    close(fd);
  return NULL;
}

START_TEST(test_pool_serves_blocking_service_concurrently_in_order) {
  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", sleepy, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MODEL, SK_MODEL_WORKER_POOL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WORKERS, 8), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  pthread_t threads[POOL_CLIENTS];
  pool_client clients[POOL_CLIENTS];
  int64_t start = mono_ms();
  for (int i = 0; i < POOL_CLIENTS; i++) {
    clients[i] = (pool_client){.address = t.address, .id = i};
    ck_assert_int_eq(pthread_create(&threads[i], NULL, pool_thread, &clients[i]), 0);
  }
  for (int i = 0; i < POOL_CLIENTS; i++) {
    pthread_join(threads[i], NULL);
    ck_assert_msg(clients[i].ok, "client %d got wrong or late replies", i);
  }
  int64_t elapsed = mono_ms() - start;
  int64_t serial = POOL_CLIENTS * (200 + 20);
  ck_assert_msg(elapsed < serial / 2, "took %lld ms; serial would be %lld ms", (long long)elapsed,
                (long long)serial);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

static atomic_int frees;
static void count_free(void *p) {
  atomic_fetch_add(&frees, 1);
  free(p);
}
static const char *heap_echo(const char *request, void *user) {
  (void)user;
  return strcmp(request, "none") == 0 ? NULL : strdup(request);
}

START_TEST(test_reply_free_once_per_reply) {
  const model_config *cfg = &configs[_i];
  atomic_store(&frees, 0);
  sk_tcp_server *srv = server_for(cfg, "127.0.0.1:0", heap_echo);
  ck_assert_int_eq(sk_tcp_server_set_reply_free(srv, count_free), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(srv), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set_reply_free(srv, free), SK_ESTATE);
  running r;
  run_start(&r, cfg, srv);
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_eq(sk_test_send_all(fd, "a\nnone\nb\nc\n", 11), 0);
  expect_bytes(fd, "a\nb\nc\n", 6);
  close(fd);
  run_stop(&r);
  /* In the fork model the replies are freed in the children. */
  ck_assert_int_eq(atomic_load(&frees), r.forked ? 0 : 3);
}
END_TEST

/* ---- limits ----------------------------------------------------------- */

/* One more than the limit is accepted and closed at once, unserved, in
 * every model; a place that comes free is taken by the next client. */
START_TEST(test_max_connections_every_model) {
  const model_config *cfg = &configs[_i];
  sk_tcp_server *srv = server_for(cfg, "127.0.0.1:0", sk_test_echo);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_CONNECTIONS, 5), SK_OK);
  running r;
  run_start(&r, cfg, srv);
  int fds[5];
  for (int i = 0; i < 5; i++) {
    fds[i] = sk_test_tcp_connect(r.address);
    ck_assert_int_ge(fds[i], 0);
    ck_assert_int_eq(sk_test_send_all(fds[i], "in\n", 3), 0);
    expect_bytes(fds[i], "in\n", 3);
  }
  /* The sixth is accepted and closed at once: its request goes unserved,
   * though the idle timeout (60 s) is far away. */
  int extra = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(extra, 0);
  sk_test_send_all(extra, "out\n", 4); /* may already fail: the server closed it */
  expect_closed(extra, cfg->name);
  close(extra);
  if (r.srv)
    ck_assert(sk_test_wait_tcp_stat(r.srv, SK_STAT_CONNECTIONS_REJECTED, 1, WAIT_MS));
  /* The five are still served. */
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(sk_test_send_all(fds[i], "still\n", 6), 0);
    expect_bytes(fds[i], "still\n", 6);
  }
  /* One leaves; a newcomer is served once the server has seen it go (a
   * child of the fork model must end and be reaped first). */
  close(fds[0]);
  fds[0] = -1;
  for (int attempt = 0; attempt < 200 && fds[0] < 0; attempt++) {
    int fd = sk_test_tcp_connect(r.address);
    char got[8];
    if (fd >= 0 && sk_test_send_all(fd, "back\n", 5) == 0 &&
        sk_test_read_exact(fd, got, 5, WAIT_MS) == 5 && memcmp(got, "back\n", 5) == 0) {
      fds[0] = fd;
      break;
    }
    if (fd >= 0)
      close(fd);
    struct timespec d = {0, 10 * 1000000L};
    nanosleep(&d, NULL);
  }
  ck_assert_msg(fds[0] >= 0, "%s: no place came free", cfg->name);
  for (int i = 0; i < 5; i++)
    close(fds[i]);
  if (r.srv) {
    ck_assert(sk_test_wait_tcp_stat_eq(r.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
    uint64_t rejected = 0;
    sk_tcp_server_stat(r.srv, SK_STAT_CONNECTIONS_REJECTED, &rejected);
    ck_assert_uint_ge(rejected, 1);
  }
  run_stop(&r);
}
END_TEST

START_TEST(test_idle_timeout_closes_silent_and_trickling_clients) {
  const model_config *cfg = &configs[_i];
  sk_tcp_server *srv = server_for(cfg, "127.0.0.1:0", sk_test_echo);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IDLE_TIMEOUT_MS, 300), SK_OK);
  running r;
  run_start(&r, cfg, srv);
  int silent = sk_test_tcp_connect(r.address);
  int trickle = sk_test_tcp_connect(r.address);
  int busy = sk_test_tcp_connect(r.address);
  /* The busy client completes a request every 50 ms and stays; the
   * trickling one never completes one and is closed with the silent one. */
  bool trickle_closed = false;
  for (int i = 0; i < 16; i++) {
    ck_assert_int_eq(sk_test_send_all(busy, "ping\n", 5), 0);
    expect_bytes(busy, "ping\n", 5);
    if (!trickle_closed && send(trickle, "x", 1, MSG_NOSIGNAL) != 1)
      trickle_closed = true;
    struct timespec d = {0, 50 * 1000000L};
    nanosleep(&d, NULL);
  }
  /* Seen from the clients, so that it holds for the fork model's children
   * too: both are closed (well before WAIT_MS), not merely left alone. */
  expect_closed(silent, "silent client");
  expect_closed(trickle, "trickling client");
  if (r.srv)
    ck_assert(sk_test_wait_tcp_stat(r.srv, SK_STAT_CONNECTIONS_TIMED_OUT, 2, WAIT_MS));
  ck_assert_int_eq(sk_test_send_all(busy, "last\n", 5), 0);
  expect_bytes(busy, "last\n", 5);
  close(silent);
  close(trickle);
  close(busy);
  run_stop(&r);
}
END_TEST

/* Writes requests without reading until the server stops taking them for
 * 200 ms. Returns the bytes sent. The socket is left non-blocking. */
static size_t flood_without_reading(int fd, size_t limit) {
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  static char chunk[65536];
  for (size_t i = 0; i < sizeof chunk; i += 32)
    memcpy(chunk + i, "0123456789abcdef0123456789abcde\n", 32);
  size_t sent = 0;
  while (sent < limit) {
    ssize_t n = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
    if (n > 0) {
      sent += (size_t)n;
      continue;
    }
    if (n < 0 && errno != EAGAIN)
      break;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, 200) == 0)
      break;
  }
  return sent;
}

START_TEST(test_non_reading_client_memory_bounded) {
  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, 65536), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WRITE_TIMEOUT_MS, 0), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int hog = sk_test_tcp_connect(t.address);
  size_t sent = flood_without_reading(hog, 64u << 20);
  uint64_t buffered = 0;
  sk_tcp_server_stat(srv, SK_STAT_BYTES_BUFFERED, &buffered);
  /* The mark, plus at most the replies of one read (64 KiB + a message). */
  ck_assert_uint_gt(buffered, 0);
  ck_assert_uint_le(buffered, 65536 + 65536 + 65536 + 16);
  ck_assert_uint_lt(buffered, sent);
  /* Meanwhile everybody else is served. */
  int other = sk_test_tcp_connect(t.address);
  ck_assert_int_eq(sk_test_send_all(other, "fine\n", 5), 0);
  expect_bytes(other, "fine\n", 5);
  close(other);
  close(hog);
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_BYTES_BUFFERED, 0, WAIT_MS));
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_write_timeout_closes_client_that_never_reads) {
  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WRITE_TIMEOUT_MS, 300), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int hog = sk_test_tcp_connect(t.address);
  /* A stall of the flood can be CPU starvation rather than the server
   * holding replies: flood again until the server has output waiting, so
   * that its write timer really runs. */
  uint64_t buffered = 0, timed_out = 0;
  for (int round = 0; round < 50 && buffered == 0 && timed_out == 0; round++) {
    flood_without_reading(hog, 64u << 20);
    sk_tcp_server_stat(srv, SK_STAT_BYTES_BUFFERED, &buffered);
    sk_tcp_server_stat(srv, SK_STAT_CONNECTIONS_TIMED_OUT, &timed_out);
  }
  ck_assert(buffered > 0 || timed_out > 0);
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_CONNECTIONS_TIMED_OUT, 1, WAIT_MS));
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_BYTES_BUFFERED, 0, WAIT_MS));
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  close(hog);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* The server hangs up on fd (FIN or reset) within timeout_ms, seen without
 * reading what it sent first. */
static bool hung_up(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  long long deadline = sk_test_now_ms() + timeout_ms;
  for (;;) {
    long long left = deadline - sk_test_now_ms();
    if (left <= 0)
      return false;
    int n = poll(&p, 1, (int)left);
    if (n > 0)
      return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
    if (n < 0 && errno != EINTR)
      return false;
  }
}

/* In every model, a client that sends requests but never reads a reply is
 * cut off once its output has waited SK_OPT_WRITE_TIMEOUT_MS, long before
 * the idle timeout (60 s), and the others are served meanwhile. */
START_TEST(test_write_timeout_every_model) {
  const model_config *cfg = &configs[_i];
  sk_tcp_server *srv = server_for(cfg, "127.0.0.1:0", sk_test_echo);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WRITE_TIMEOUT_MS, 300), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IDLE_TIMEOUT_MS, 60000), SK_OK);
  /* A small send buffer, so that replies soon wait in the server rather
   * than in the kernel: only output the server holds has a write timer. */
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_SNDBUF, 65536), SK_OK);
  running r;
  run_start(&r, cfg, srv);
  int hog = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(hog, 0);
  long long start = sk_test_now_ms();
  flood_without_reading(hog, 64u << 20);
  /* Cut off: the server's counter says so, or (the process model, whose
   * counters live in another process) the client sees the reset. A close
   * with all input read sends a FIN, which waits behind the replies still
   * in the kernel: then the client sees the end only once it reads. */
  if (r.srv)
    ck_assert_msg(sk_test_wait_tcp_stat(r.srv, SK_STAT_CONNECTIONS_TIMED_OUT, 1, WAIT_MS),
                  "%s: a client that never reads was not cut off", cfg->name);
  else
    hung_up(hog, 2000);
  long long elapsed = sk_test_now_ms() - start;
  ck_assert_msg(elapsed >= 300, "%s: cut off after %lld ms", cfg->name, elapsed);
  /* Now reading finds the end of the stream: had the server not cut the
   * client off, it would answer the rest of the flood and wait for more. */
  fcntl(hog, F_SETFL, fcntl(hog, F_GETFL) & ~O_NONBLOCK);
  ck_assert_msg(sk_test_wait_closed(hog, WAIT_MS) != -2, "%s: the connection is still open",
                cfg->name);
  int other = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(other, 0);
  ck_assert_int_eq(sk_test_send_all(other, "fine\n", 5), 0);
  expect_bytes(other, "fine\n", 5);
  close(other);
  close(hog);
  run_stop(&r);
}
END_TEST

START_TEST(test_descriptor_exhaustion_recovers) {
  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  struct rlimit old;
  getrlimit(RLIMIT_NOFILE, &old);
  struct rlimit low = {.rlim_cur = (rlim_t)sk_test_fd_count() + 24, .rlim_max = old.rlim_max};
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);

  /* Clients and server share the limit. Fill it with served clients;
   * then free one descriptor and connect once more: the client end takes
   * it, and the server's accept finds none left. */
  int spare = dup(0);
  ck_assert_int_ge(spare, 0);
  int fds[64], n = 0, served = 0, shed = 0;
  /* One shed client only: with clients in the same process, a second one
   * could take the descriptor the server frees to shed with, and then the
   * server (rightly) rests its listener instead of shedding. */
  while (n < 64 && shed < 1) {
    int fd = sk_test_tcp_connect(t.address);
    if (fd < 0 && spare >= 0) {
      close(spare);
      spare = -1;
      fd = sk_test_tcp_connect(t.address);
    }
    if (fd < 0)
      break;
    fds[n++] = fd;
    char got[8];
    ssize_t r = -3; /* the send failed: already closed */
    if (sk_test_send_all(fd, "q\n", 2) == 0 && (r = sk_test_read_exact(fd, got, 2, WAIT_MS)) == 2) {
      served++;
    } else {
      /* Accepted and closed at once (a reserve descriptor makes room for
       * the accept), not left waiting in the backlog until descriptors
       * come back. */
      ck_assert_msg(r != -2, "a client the server had no descriptor for was left waiting");
      shed++;
    }
  }
  ck_assert_int_gt(served, 5);
  ck_assert_int_gt(shed, 0);
  /* Shed clients are closed at once and counted; the loop did not spin. */
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_CONNECTIONS_REJECTED, (uint64_t)shed, WAIT_MS));
  /* Descriptors come back: a new client is served. */
  for (int i = 0; i < n; i++)
    close(fds[i]);
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "again\n", 6), 0);
  expect_bytes(fd, "again\n", 6);
  close(fd);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* Stop while a client pipelines: every request the server took gets its
 * reply before the close, in order, with nothing cut in half. */
static const char *slow_echo(const char *request, void *user) {
  (void)user;
  struct timespec d = {0, 2 * 1000000L};
  nanosleep(&d, NULL);
  return request;
}

START_TEST(test_stop_under_load_loses_no_owed_reply) {
  const model_config *cfg = &configs[_i];
  sk_tcp_server *srv = server_for(cfg, "127.0.0.1:0", slow_echo);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  enum { COUNT = 2000 };
  static char batch[COUNT * 16];
  size_t len = 0;
  for (int i = 0; i < COUNT; i++)
    len += (size_t)snprintf(batch + len, sizeof batch - len, "req %08d\n", i);
  ck_assert_int_eq(sk_test_send_all(fd, batch, len), 0);
  /* Let some replies come back, then stop mid-stream. */
  char first[13];
  ck_assert_int_eq(sk_test_read_exact(fd, first, 13, WAIT_MS), 13);
  sk_tcp_server_stop(t.srv);
  static char rest[COUNT * 16];
  ssize_t n = sk_test_read_to_eof(fd, rest, sizeof rest, WAIT_MS);
  ck_assert_int_ge(n, 0);
  size_t received = 13 + (size_t)n;
  ck_assert_uint_eq(received % 13, 0); /* whole replies only */
  ck_assert(memcmp(batch, first, 13) == 0);
  ck_assert(memcmp(batch + 13, rest, (size_t)n) == 0);
  /* Every request the server took before the stop was answered: compared
   * with the requests taken (passed on to the service), not with the
   * replies the server counts as sent. */
  uint64_t taken = 0, served = 0;
  ck_assert_int_eq(sk_test_join(t.thread, WAIT_MS), 0);
  sk_tcp_server_stat(t.srv, SK_STAT_MESSAGES_IN, &taken);
  sk_tcp_server_stat(t.srv, SK_STAT_MESSAGES_OUT, &served);
  ck_assert_uint_eq(received / 13, taken);
  ck_assert_uint_eq(served, taken);
  ck_assert_uint_lt(taken, COUNT); /* the stop really came mid-stream */
  sk_tcp_server_destroy(t.srv);
  close(fd);
}
END_TEST

START_TEST(test_model_option_rules) {
  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  long long v;
  ck_assert_int_eq(sk_tcp_server_get(srv, SK_OPT_MODEL, &v), SK_OK);
  ck_assert_int_eq(v, SK_MODEL_EVENT_LOOP);
  ck_assert_int_eq(sk_tcp_server_get(srv, SK_OPT_IDLE_TIMEOUT_MS, &v), SK_OK);
  ck_assert_int_eq(v, 60000);
  ck_assert_int_eq(sk_tcp_server_get(srv, SK_OPT_DRAIN_TIMEOUT_MS, &v), SK_OK);
  ck_assert_int_eq(v, 5000);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MODEL, 4), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WORKERS, -1), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, 10), SK_EINVAL);
  /* The fork model needs exactly one event loop: refused when set,
   * whichever of the two comes first, and nothing changes. */
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IO_THREADS, 2), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MODEL, SK_MODEL_PROCESS_PER_CONNECTION),
                   SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_get(srv, SK_OPT_MODEL, &v), SK_OK);
  ck_assert_int_eq(v, SK_MODEL_EVENT_LOOP);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IO_THREADS, 1), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MODEL, SK_MODEL_PROCESS_PER_CONNECTION), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IO_THREADS, 2), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IO_THREADS, 0), SK_EINVAL); /* one per CPU */
  ck_assert_int_eq(sk_tcp_server_get(srv, SK_OPT_IO_THREADS, &v), SK_OK);
  ck_assert_int_eq(v, 1);
  ck_assert_int_eq(sk_tcp_server_listen(srv), SK_OK);
  sk_tcp_server_destroy(srv);
}
END_TEST

/* A client that half-closes and then resets while the pool still works on
 * its request is released at once, not when the request finishes (and the
 * loop does not spin on its error meanwhile). */
static const char *very_slow(const char *request, void *user) {
  (void)user;
  struct timespec d = {2, 0};
  nanosleep(&d, NULL);
  return request;
}

START_TEST(test_pool_client_vanishing_mid_request_is_released) {
  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", very_slow, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MODEL, SK_MODEL_WORKER_POOL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WORKERS, 1), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_eq(sk_test_send_all(fd, "wait\n", 5), 0);
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_MESSAGES_IN, 1, WAIT_MS));
  shutdown(fd, SHUT_WR);
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd); /* RST */
  /* Well inside the two seconds the service still sleeps. */
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, 1000));
  uint64_t resets = 0, out = 0;
  sk_tcp_server_stat(srv, SK_STAT_CONNECTIONS_RESET, &resets);
  sk_tcp_server_stat(srv, SK_STAT_MESSAGES_OUT, &out);
  ck_assert_uint_eq(resets, 1);
  ck_assert_uint_eq(out, 0);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* ---- what a user relies on when clients misbehave or the server stops -- */

/* A reply far larger than the socket buffers, so that the server is still
 * sending it when its client goes. */
#define BIG_REPLY (4u << 20)
static char big_reply[BIG_REPLY + 1];

static const char *big_or_echo(const char *request, void *user) {
  (void)user;
  return strcmp(request, "big") == 0 ? big_reply : request;
}

/* The models whose service runs in this process: there a SIGPIPE would
 * end the test process (Check reports the signal as a failure). The
 * process model has its own test in test_fork_model.c: its children would
 * share this process's client sockets, so a client's close would not reach
 * them. */
static const int sigpipe_models[] = {0, 2, 4};

/* "The server never raises SIGPIPE": a client half-closes and resets while
 * a large reply is still being sent to it. The reset of a half-closed
 * connection makes the server's next send fail with EPIPE, which raises
 * SIGPIPE unless the send says MSG_NOSIGNAL. The server lives on, counts
 * each reset, and serves the next client. */
START_TEST(test_client_reset_mid_reply_raises_no_sigpipe) {
  const model_config *cfg = &configs[sigpipe_models[_i]];
  memset(big_reply, 'x', BIG_REPLY);
  sk_tcp_server *srv = server_for(cfg, "127.0.0.1:0", big_or_echo);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_SNDBUF, 65536), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  for (int round = 0; round < 3; round++)
    ck_assert_int_eq(sk_test_reset_mid_reply(t.address, "big\n", 65536), 0);
  ck_assert_msg(sk_test_wait_tcp_stat(srv, SK_STAT_CONNECTIONS_RESET, 3, WAIT_MS),
                "%s: not every reset was counted", cfg->name);
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  int other = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(other, 0);
  ck_assert_int_eq(sk_test_send_all(other, "alive\n", 6), 0);
  expect_bytes(other, "alive\n", 6);
  close(other);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* A pool service held until the test opens its gate (at most 10 s),
 * counting the calls begun and ended. */
static atomic_int slow_started, slow_finished;
static atomic_bool slow_open;
static const char *held_service(const char *request, void *user) {
  (void)user;
  atomic_fetch_add(&slow_started, 1);
  for (int i = 0; i < 5000 && !atomic_load(&slow_open); i++) {
    struct timespec d = {0, 2 * 1000000L};
    nanosleep(&d, NULL);
  }
  atomic_fetch_add(&slow_finished, 1);
  return request;
}

/* Stop while pool requests run, with the default drain time (5 s): the
 * listener closes at once, so a new client is refused while every call is
 * still held, and every request taken before the stop -- running or
 * queued -- gets its reply, in order, before the connection closes. */
START_TEST(test_stop_answers_running_pool_requests) {
  const model_config *cfg = &configs[_i];
  atomic_store(&slow_started, 0);
  atomic_store(&slow_finished, 0);
  atomic_store(&slow_open, false);
  sk_tcp_server *srv = server_for(cfg, "127.0.0.1:0", held_service);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  /* More requests than workers: some run, the others wait in the pool. */
  static const char requests[] = "r0\nr1\nr2\nr3\nr4\nr5\n";
  const size_t len = sizeof requests - 1;
  ck_assert_int_eq(sk_test_send_all(fd, requests, len), 0);
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_MESSAGES_IN, 6, WAIT_MS));
  for (int i = 0; i < 1000 && atomic_load(&slow_started) == 0; i++) {
    struct timespec d = {0, 2 * 1000000L};
    nanosleep(&d, NULL);
  }
  ck_assert_int_gt(atomic_load(&slow_started), 0);
  long long stopped_at = sk_test_now_ms();
  ck_assert_int_eq(sk_tcp_server_stop(srv), SK_OK);

  /* Refused while the calls are held, well within the drain time. */
  bool refused = false;
  while (!refused && sk_test_now_ms() - stopped_at < 3000) {
    /* A connect that races with the close is reset: try again. */
    int probe = sk_test_tcp_connect(t.address);
    if (probe < 0) {
      ck_assert_msg(errno == ECONNREFUSED || errno == ECONNRESET, "connect: %s", strerror(errno));
      refused = errno == ECONNREFUSED;
      continue;
    }
    close(probe);
    struct timespec d = {0, 2 * 1000000L};
    nanosleep(&d, NULL);
  }
  ck_assert_msg(refused, "%s: a new client was not refused after stop", cfg->name);
  ck_assert_int_eq(atomic_load(&slow_finished), 0);
  atomic_store(&slow_open, true);

  char got[64];
  ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), (ssize_t)len);
  ck_assert_msg(memcmp(got, requests, len) == 0, "got '%.*s'", (int)len, got);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* The models whose closing connection lingers in this process. */
static const int linger_models[] = {0, 4};

/* After a protocol error the server shuts down its side and discards input
 * until the client closes -- or 2 s pass. A client that never reads and
 * never closes is closed then: not at once, and not never. */
START_TEST(test_protocol_error_linger_is_bounded) {
  const model_config *cfg = &configs[linger_models[_i]];
  running r;
  run_start(&r, cfg, server_for(cfg, "127.0.0.1:0", sk_test_echo));
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "ok\nbad\0x\n", 9), 0);
  long long start = sk_test_now_ms();
  ck_assert(sk_test_wait_tcp_stat(r.srv, SK_STAT_MESSAGES_IN, 1, WAIT_MS));
  ck_assert(sk_test_wait_tcp_stat_eq(r.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  long long elapsed = sk_test_now_ms() - start;
  ck_assert_msg(elapsed >= 1000 && elapsed <= 6000, "%s: closed after %lld ms, want about 2000",
                cfg->name, elapsed);
  /* And really closed: what the client sends now is answered by a reset. */
  bool reset = false;
  for (int i = 0; i < 200 && !reset; i++) {
    reset = send(fd, "x", 1, MSG_NOSIGNAL) < 0;
    struct timespec d = {0, 5 * 1000000L};
    nanosleep(&d, NULL);
  }
  ck_assert_msg(reset, "%s: the server's socket is still open", cfg->name);
  close(fd);
  run_stop(&r);
}
END_TEST

static Suite *models_suite(void) {
  Suite *s = suite_create("tcp_models");
  TCase *tc = tcase_create("models");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_conformance_every_model, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_peer_address_every_model, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_nodelay_every_model, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_multiline_reply_refused_in_line_framing_every_model, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_stream_ending_inside_a_message_every_model, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_start_stop_destroy_every_model, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_reply_free_once_per_reply, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_idle_timeout_closes_silent_and_trickling_clients, 0, NCONFIGS);
  /* Only the pool can be stopped between the requests of one read. */
  tcase_add_loop_test(tc, test_stop_under_load_loses_no_owed_reply, 2, 4);
  tcase_add_test(tc, test_pool_serves_blocking_service_concurrently_in_order);
  tcase_add_test(tc, test_pool_client_vanishing_mid_request_is_released);
  tcase_add_loop_test(tc, test_client_reset_mid_reply_raises_no_sigpipe, 0,
                      (int)(sizeof sigpipe_models / sizeof sigpipe_models[0]));
  tcase_add_loop_test(tc, test_stop_answers_running_pool_requests, 2, 4);
  tcase_add_loop_test(tc, test_protocol_error_linger_is_bounded, 0,
                      (int)(sizeof linger_models / sizeof linger_models[0]));
  suite_add_tcase(s, tc);
  TCase *limits = tcase_create("limits");
  tcase_set_timeout(limits, 60);
  tcase_add_loop_test(limits, test_max_connections_every_model, 0, NCONFIGS);
  tcase_add_test(limits, test_non_reading_client_memory_bounded);
  tcase_add_test(limits, test_write_timeout_closes_client_that_never_reads);
  tcase_add_loop_test(limits, test_write_timeout_every_model, 0, NCONFIGS);
  tcase_add_test(limits, test_descriptor_exhaustion_recovers);
  tcase_add_test(limits, test_model_option_rules);
  suite_add_tcase(s, limits);
  return s;
}

int main(void) {
  if (getenv("SK_TEST_DEBUG"))
    sk_set_log_level(SK_LOG_DEBUG);
  else
    sk_set_log_level(SK_LOG_ERROR); /* the crash and shedding tests warn by design */
  return sk_test_run(models_suite());
}
