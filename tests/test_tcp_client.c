/* test_tcp_client.c -- the TCP client against the library's own server and
 * small raw servers: framings, retries, back-off, timeouts, resets, names,
 * one-way use and many clients on threads. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "support.h"

#define WAIT_MS 5000

static sk_tcp_server *new_server(const char *address, sk_service service, int framing) {
  sk_tcp_server *srv = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&srv, address, service, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_FRAMING, framing), SK_OK);
  return srv;
}

static sk_tcp_client *new_client(const char *address, int framing) {
  sk_tcp_client *c = NULL;
  ck_assert_int_eq(sk_tcp_client_create(&c, address), SK_OK);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_FRAMING, framing), SK_OK);
  return c;
}

static void expect_reply(sk_tcp_client *c, const char *request, const char *want) {
  const char *reply = NULL;
  int rc = sk_tcp_client_request(c, request, &reply);
  ck_assert_msg(rc == SK_OK, "request '%.40s': %s", request, sk_status_name(rc));
  ck_assert_ptr_nonnull(reply);
  ck_assert_str_eq(reply, want);
}

START_TEST(test_request_reply_every_framing) {
  static const int framings[] = {SK_FRAME_LINE, SK_FRAME_LENGTH, SK_FRAME_RAW};
  char big[20000];
  memset(big, 'b', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  for (size_t i = 0; i < 3; i++) {
    int framing = framings[i];
    sk_test_tcp t;
    ck_assert_int_eq(sk_test_tcp_start_server(&t, new_server("127.0.0.1:0", sk_test_echo, framing)),
                     SK_OK);
    sk_tcp_client *c = new_client(t.address, framing);
    ck_assert_int_eq(sk_tcp_client_connect(c, WAIT_MS), SK_OK);
    int attempts = 0;
    ck_assert_int_eq(sk_tcp_client_attempts(c, &attempts), SK_OK);
    ck_assert_int_eq(attempts, 1);
    expect_reply(c, "hello", "hello");
    expect_reply(c, "second request", "second request");
    if (framing != SK_FRAME_RAW) {
      /* RAW cannot carry an empty message, nor promise that a large one
       * arrives in one read. */
      expect_reply(c, "", "");
      expect_reply(c, big, big);
    }
    /* A reply may be sent back as the next request: it is copied first. */
    const char *reply = NULL;
    ck_assert_int_eq(sk_tcp_client_request(c, "chain", &reply), SK_OK);
    ck_assert_int_eq(sk_tcp_client_request(c, reply, &reply), SK_OK);
    ck_assert_str_eq(reply, "chain");
    sk_tcp_client_destroy(c);
    uint64_t accepted = 0;
    sk_tcp_server_stat(t.srv, SK_STAT_CONNECTIONS_ACCEPTED, &accepted);
    ck_assert_uint_eq(accepted, 1); /* every request used the one connection */
    ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  }
}
END_TEST

START_TEST(test_ipv6_unix_and_names) {
  sk_test_tcp t;
  const char *reply;
  if (sk_test_have_ipv6()) {
    ck_assert_int_eq(sk_test_tcp_start(&t, "[::1]:0", sk_test_echo, NULL), SK_OK);
    sk_tcp_client *c = new_client(t.address, SK_FRAME_LINE);
    expect_reply(c, "six", "six");
    sk_tcp_client_destroy(c);
    ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  }

  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char address[256];
  snprintf(address, sizeof address, "unix:%s/s.sock", dir);
  ck_assert_int_eq(sk_test_tcp_start(&t, address, sk_test_echo, NULL), SK_OK);
  sk_tcp_client *c = new_client(address, SK_FRAME_LINE);
  expect_reply(c, "local", "local");
  sk_tcp_client_destroy(c);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  sk_test_rmdir(dir);

  /* A host name. */
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  snprintf(address, sizeof address, "localhost:%d", t.port);
  c = new_client(address, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_request(c, "by name", &reply), SK_OK);
  ck_assert_str_eq(reply, "by name");
  int attempts = 0;
  sk_tcp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 1);
  sk_tcp_client_destroy(c);
  /* The port alone means this machine: ::1 and 127.0.0.1. Where ::1 comes
   * first it refuses, and the same attempt goes on to 127.0.0.1. */
  snprintf(address, sizeof address, "%d", t.port);
  c = new_client(address, SK_FRAME_LINE);
  expect_reply(c, "port only", "port only");
  sk_tcp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 1);
  sk_tcp_client_destroy(c);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* Starts a server on a reserved port after a pause, from a helper thread. */
typedef struct late_server {
  int port;
  int delay_ms;
  sk_test_tcp t;
  atomic_int rc;
} late_server;

static void *start_late(void *arg) {
  late_server *l = arg;
  struct timespec pause = {l->delay_ms / 1000, (long)(l->delay_ms % 1000) * 1000000L};
  nanosleep(&pause, NULL);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", l->port);
  atomic_store(&l->rc, sk_test_tcp_start(&l->t, address, sk_test_echo, NULL));
  return NULL;
}

START_TEST(test_connect_retries_until_server_listens) {
  /* The port refuses until the server binds it too (SO_REUSEADDR). */
  late_server l = {.delay_ms = 1500};
  int held = sk_test_refusing_port(SOCK_STREAM, &l.port);
  ck_assert_int_ge(held, 0);
  atomic_init(&l.rc, 1);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", l.port);
  sk_tcp_client *c = new_client(address, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_ATTEMPTS, 5), SK_OK);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_RETRY_DELAY_MS, 1000), SK_OK);
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, start_late, &l), 0);

  int rc = sk_tcp_client_connect(c, -1);
  ck_assert_int_eq(sk_test_join(thread, WAIT_MS), 0);
  ck_assert_int_eq(atomic_load(&l.rc), SK_OK);
  ck_assert_int_eq(rc, SK_OK);
  int attempts = 0;
  sk_tcp_client_attempts(c, &attempts);
  ck_assert_msg(attempts == 2 || attempts == 3, "connected on attempt %d", attempts);
  expect_reply(c, "late", "late");
  sk_tcp_client_destroy(c);
  ck_assert_int_eq(sk_test_tcp_stop(&l.t, WAIT_MS), SK_OK);
  close(held);
}
END_TEST

START_TEST(test_all_attempts_refused_is_econnect) {
  int port;
  int held = sk_test_refusing_port(SOCK_STREAM, &port);
  ck_assert_int_ge(held, 0);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  sk_tcp_client *c = new_client(address, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_ATTEMPTS, 3), SK_OK);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_RETRY_DELAY_MS, 100), SK_OK);

  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_tcp_client_connect(c, -1), SK_ECONNECT);
  long long elapsed = sk_test_now_ms() - start;
  ck_assert_int_eq(sk_last_os_error(), ECONNREFUSED);
  int attempts = 0;
  sk_tcp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 3);
  /* Two pauses of 100 ms between three attempts. */
  ck_assert_msg(elapsed >= 195 && elapsed < 3000, "took %lld ms", elapsed);

  /* A request connects by itself, with the same retries. */
  const char *reply = "unchanged";
  ck_assert_int_eq(sk_tcp_client_request(c, "anyone?", &reply), SK_ECONNECT);
  ck_assert_ptr_null(reply);
  ck_assert_int_eq(sk_tcp_client_send(c, "anyone?"), SK_ECONNECT);

  /* The call's own bound cuts the retries short. */
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_RETRY_DELAY_MS, 1000), SK_OK);
  start = sk_test_now_ms();
  ck_assert_int_eq(sk_tcp_client_connect(c, 300), SK_ETIMEDOUT);
  ck_assert_int_lt(sk_test_now_ms() - start, 1000);
  sk_tcp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 1);
  sk_tcp_client_destroy(c);
  close(held);

  /* No socket at a UNIX path: refused the same way. */
  c = new_client("unix:/nonexistent/sktest.sock", SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_ATTEMPTS, 1), SK_OK);
  ck_assert_int_eq(sk_tcp_client_connect(c, -1), SK_ECONNECT);
  ck_assert_int_eq(sk_last_os_error(), ENOENT);
  sk_tcp_client_destroy(c);
}
END_TEST

START_TEST(test_exponential_backoff_with_jitter) {
  sk_client_opts o;
  sk__client_opts_init(&o, SK_CLIENT_TCP);
  ck_assert_int_eq(sk__client_opt_set(&o, SK_CLIENT_TCP, SK_OPT_RETRY_DELAY_MS, 100, NULL), 0);
  ck_assert_int_eq(sk__retry_pause(&o, 1, &(uint64_t){1}), 100); /* fixed by default */
  ck_assert_int_eq(sk__retry_pause(&o, 7, &(uint64_t){1}), 100);
  ck_assert_int_eq(
      sk__client_opt_set(&o, SK_CLIENT_TCP, SK_OPT_BACKOFF, SK_BACKOFF_EXPONENTIAL, NULL), 0);
  ck_assert_int_eq(sk__client_opt_set(&o, SK_CLIENT_TCP, SK_OPT_RETRY_MAX_MS, 1000, NULL), 0);
  /* Retry n draws from [0, min(1000, 100 * 2^(n-1))], and uses the range. */
  static const long long ceilings[] = {100, 200, 400, 800, 1000, 1000, 1000};
  uint64_t rng = 42;
  for (int n = 1; n <= 7; n++) {
    long long lo = ceilings[n - 1], hi = 0;
    for (int i = 0; i < 2000; i++) {
      long long p = sk__retry_pause(&o, n, &rng);
      ck_assert_int_ge(p, 0);
      ck_assert_int_le(p, ceilings[n - 1]);
      lo = p < lo ? p : lo;
      hi = p > hi ? p : hi;
    }
    ck_assert_int_lt(lo, ceilings[n - 1] / 10);
    ck_assert_int_gt(hi, ceilings[n - 1] * 9 / 10);
  }
  /* A huge retry count does not overflow. */
  long long p = sk__retry_pause(&o, 1000, &rng);
  ck_assert(p >= 0 && p <= 1000);

  /* And through the API: four refused attempts stay within the capped
   * pauses (at most 100 + 150 + 150 ms). */
  int port;
  int held = sk_test_refusing_port(SOCK_STREAM, &port);
  ck_assert_int_ge(held, 0);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  sk_tcp_client *c = new_client(address, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_ATTEMPTS, 4), SK_OK);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_RETRY_DELAY_MS, 100), SK_OK);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_BACKOFF, SK_BACKOFF_EXPONENTIAL), SK_OK);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_RETRY_MAX_MS, 150), SK_OK);
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_tcp_client_connect(c, -1), SK_ECONNECT);
  ck_assert_int_lt(sk_test_now_ms() - start, 2000);
  int attempts = 0;
  sk_tcp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 4);
  sk_tcp_client_destroy(c);
  close(held);
}
END_TEST

/* A service that blocks on "slow" until released (or 5 s pass). */
static atomic_bool slow_released;

static const char *slow_service(const char *request, void *user) {
  (void)user;
  if (strcmp(request, "slow") == 0) {
    for (int i = 0; i < 2500 && !atomic_load(&slow_released); i++) {
      struct timespec pause = {0, 2 * 1000 * 1000};
      nanosleep(&pause, NULL);
    }
    return "late reply to slow";
  }
  return request;
}

START_TEST(test_reply_timeout_closes_connection) {
  atomic_store(&slow_released, false);
  sk_tcp_server *srv = new_server("127.0.0.1:0", slow_service, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MODEL, SK_MODEL_WORKER_POOL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WORKERS, 2), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  sk_tcp_client *c = new_client(t.address, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_REQUEST_TIMEOUT_MS, 200), SK_OK);

  const char *reply = "unchanged";
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_tcp_client_request(c, "slow", &reply), SK_ETIMEDOUT);
  long long elapsed = sk_test_now_ms() - start;
  ck_assert_ptr_null(reply);
  ck_assert_msg(elapsed >= 195 && elapsed < 3000, "took %lld ms", elapsed);

  /* The next request goes over a new connection, so it gets its own reply
   * even once the late one has been sent. */
  expect_reply(c, "fast", "fast");
  atomic_store(&slow_released, true);
  ck_assert(sk_test_wait_tcp_stat(t.srv, SK_STAT_MESSAGES_IN, 2, WAIT_MS));
  expect_reply(c, "after", "after");
  uint64_t accepted = 0;
  sk_tcp_server_stat(t.srv, SK_STAT_CONNECTIONS_ACCEPTED, &accepted);
  ck_assert_uint_eq(accepted, 2);
  sk_tcp_client_destroy(c);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* A raw server on a thread: accepts one connection, reads a request, sends
 * `reply` (possibly a cut-off frame) and closes. */
typedef struct raw_server {
  int fd;
  char address[64];
  const char *reply;
  size_t reply_len;
  pthread_t thread;
  atomic_int result; /* 1 done, -1 failed */
} raw_server;

static void *raw_serve(void *arg) {
  raw_server *r = arg;
  struct pollfd p = {.fd = r->fd, .events = POLLIN};
  int result = -1;
  if (poll(&p, 1, WAIT_MS) == 1) {
    int conn = accept(r->fd, NULL, NULL);
    char buf[256];
    struct pollfd q = {.fd = conn, .events = POLLIN};
    if (conn >= 0 && poll(&q, 1, WAIT_MS) == 1 && recv(conn, buf, sizeof buf, 0) > 0 &&
        sk_test_send_all(conn, r->reply, r->reply_len) == 0)
      result = 1;
    if (conn >= 0)
      close(conn);
  }
  atomic_store(&r->result, result);
  return NULL;
}

static void raw_start(raw_server *r, const char *reply, size_t len) {
  r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(r->fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  ck_assert_int_eq(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(r->fd, 4), 0);
  ck_assert_int_eq(getsockname(r->fd, (struct sockaddr *)&a, &alen), 0);
  snprintf(r->address, sizeof r->address, "127.0.0.1:%d", ntohs(a.sin_port));
  r->reply = reply;
  r->reply_len = len;
  atomic_init(&r->result, 0);
  ck_assert_int_eq(pthread_create(&r->thread, NULL, raw_serve, r), 0);
}

static void raw_stop(raw_server *r) {
  ck_assert_int_eq(sk_test_join(r->thread, WAIT_MS), 0);
  ck_assert_int_eq(atomic_load(&r->result), 1);
  close(r->fd);
}

START_TEST(test_server_closes_mid_reply_is_eclosed) {
  /* A LENGTH frame announcing 10 bytes, of which 4 arrive before the close. */
  raw_server r;
  raw_start(&r,
            "\0\0\0\x0a"
            "half",
            8);
  sk_tcp_client *c = new_client(r.address, SK_FRAME_LENGTH);
  const char *reply = "unchanged";
  ck_assert_int_eq(sk_tcp_client_request(c, "give me ten", &reply), SK_ECLOSED);
  ck_assert_ptr_null(reply);
  raw_stop(&r);
  /* The connection is gone: receiving now is a state error. */
  ck_assert_int_eq(sk_tcp_client_recv(c, &reply, 0), SK_ESTATE);
  sk_tcp_client_destroy(c);

  /* A LINE reply without its newline, then the close. */
  raw_start(&r, "no newline", 10);
  c = new_client(r.address, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_request(c, "hi", &reply), SK_ECLOSED);
  raw_stop(&r);
  sk_tcp_client_destroy(c);

  /* A reply with a NUL byte is a protocol error. */
  raw_start(&r, "a\0b\n", 4);
  c = new_client(r.address, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_request(c, "hi", &reply), SK_EPROTO);
  raw_stop(&r);
  sk_tcp_client_destroy(c);
}
END_TEST

static const char *big_reply_service(const char *request, void *user) {
  (void)user;
  if (strcmp(request, "big") == 0) {
    static _Thread_local char big[1001];
    memset(big, 'x', 1000);
    big[1000] = '\0';
    return big;
  }
  return request;
}

START_TEST(test_reply_too_large_is_emsgsize) {
  static const int framings[] = {SK_FRAME_LINE, SK_FRAME_LENGTH, SK_FRAME_RAW};
  for (size_t i = 0; i < 3; i++) {
    sk_test_tcp t;
    ck_assert_int_eq(
        sk_test_tcp_start_server(&t, new_server("127.0.0.1:0", big_reply_service, framings[i])),
        SK_OK);
    sk_tcp_client *c = new_client(t.address, framings[i]);
    ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_MAX_MESSAGE, 100), SK_OK);
    const char *reply = "unchanged";
    ck_assert_int_eq(sk_tcp_client_request(c, "big", &reply), SK_EMSGSIZE);
    ck_assert_ptr_null(reply);
    expect_reply(c, "small", "small"); /* over a new connection */
    /* A request over the limit is refused before anything is sent. */
    char over[102];
    memset(over, 'o', 101);
    over[101] = '\0';
    ck_assert_int_eq(sk_tcp_client_request(c, over, &reply), SK_EMSGSIZE);
    expect_reply(c, "still", "still");
    uint64_t accepted = 0;
    sk_tcp_server_stat(t.srv, SK_STAT_CONNECTIONS_ACCEPTED, &accepted);
    ck_assert_uint_eq(accepted, 2);
    sk_tcp_client_destroy(c);
    ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  }
}
END_TEST

/* Collects warnings, to check what the client logged. */
static atomic_int warnings;

static void count_warnings(int level, const char *message, void *user) {
  (void)message;
  (void)user;
  if (level == SK_LOG_WARN)
    atomic_fetch_add(&warnings, 1);
}

/* RAW framing on the server: each request arrives with its newline, and
 * replies go out as they are -- here, for "two", two lines. */
static const char *two_lines_service(const char *request, void *user) {
  (void)user;
  return strcmp(request, "two\n") == 0 ? "first\nsecond\n" : request;
}

START_TEST(test_unasked_data_and_idle_close_reconnect) {
  /* A server that answers one request with two lines (a LINE server
   * refuses such a reply; a hand-made one may send it): the second must
   * not be taken for the reply to the next request. */
  sk_test_tcp t;
  sk_tcp_server *srv = new_server("127.0.0.1:0", two_lines_service, SK_FRAME_RAW);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IDLE_TIMEOUT_MS, 100), SK_OK);
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  sk_tcp_client *c = new_client(t.address, SK_FRAME_LINE);
  atomic_store(&warnings, 0);
  sk_set_log_handler(count_warnings, NULL);
  expect_reply(c, "two", "first");
  expect_reply(c, "next", "next");
  sk_set_log_handler(NULL, NULL);
  ck_assert_int_eq(atomic_load(&warnings), 1);
  uint64_t n = 0;
  sk_tcp_server_stat(t.srv, SK_STAT_CONNECTIONS_ACCEPTED, &n);
  ck_assert_uint_eq(n, 2);

  /* The server closes the idle connection; the next request notices and
   * connects again instead of failing. */
  ck_assert(sk_test_wait_tcp_stat_eq(t.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  expect_reply(c, "again", "again");
  sk_tcp_server_stat(t.srv, SK_STAT_CONNECTIONS_ACCEPTED, &n);
  ck_assert_uint_eq(n, 3);
  sk_tcp_client_destroy(c);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_send_and_recv_one_way) {
  sk_test_tcp t;
  ck_assert_int_eq(
      sk_test_tcp_start_server(&t, new_server("127.0.0.1:0", sk_test_echo, SK_FRAME_LENGTH)),
      SK_OK);
  sk_tcp_client *c = new_client(t.address, SK_FRAME_LENGTH);
  const char *m = "unchanged";
  ck_assert_int_eq(sk_tcp_client_recv(c, &m, 0), SK_ESTATE); /* not connected */
  ck_assert_ptr_null(m);
  ck_assert_int_eq(sk_tcp_client_send(c, "one"), SK_OK);
  ck_assert_int_eq(sk_tcp_client_send(c, "two"), SK_OK);
  ck_assert_int_eq(sk_tcp_client_recv(c, &m, WAIT_MS), SK_OK);
  ck_assert_str_eq(m, "one");
  ck_assert_int_eq(sk_tcp_client_recv(c, &m, WAIT_MS), SK_OK);
  ck_assert_str_eq(m, "two");
  /* Nothing more is owed: a bounded wait times out and keeps the
   * connection. */
  ck_assert_int_eq(sk_tcp_client_recv(c, &m, 0), SK_ETIMEDOUT);
  ck_assert_int_eq(sk_tcp_client_recv(c, &m, 50), SK_ETIMEDOUT);
  expect_reply(c, "three", "three");
  uint64_t accepted = 0;
  sk_tcp_server_stat(t.srv, SK_STAT_CONNECTIONS_ACCEPTED, &accepted);
  ck_assert_uint_eq(accepted, 1);
  sk_tcp_client_destroy(c);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_arguments_options_and_addresses) {
  sk_tcp_client *c = (sk_tcp_client *)1;
  ck_assert_int_eq(sk_tcp_client_create(NULL, "127.0.0.1:1"), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_create(&c, NULL), SK_EINVAL);
  ck_assert_ptr_null(c);
  static const char *const bad[] = {"",      "nonsense", "1.2.3.4:0", "1.2.3.4:99999", "::1:80",
                                    "[::1]", "[::1]80",  "[]:80",     "host:",         "host:12ab",
                                    "unix:", "host:+80", "1.2.3.4:-1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    c = (sk_tcp_client *)1;
    ck_assert_msg(sk_tcp_client_create(&c, bad[i]) == SK_EADDR, "'%s' accepted", bad[i]);
    ck_assert_ptr_null(c);
  }
  static const char *const good[] = {
      "127.0.0.1:1", "localhost:80",     "[::1]:80",   "80",
      ":80",         "unix:/tmp/x.sock", "unix:@name", "[fe80::1%lo]:80"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    ck_assert_msg(sk_tcp_client_create(&c, good[i]) == SK_OK, "'%s' refused", good[i]);
    sk_tcp_client_destroy(c);
  }
  sk_tcp_client_destroy(NULL);

  ck_assert_int_eq(sk_tcp_client_create(&c, "127.0.0.1:1"), SK_OK);
  static const struct {
    int option;
    long long def, min, max;
  } opts[] = {
      {SK_OPT_ATTEMPTS, 5, 1, 1000},
      {SK_OPT_RETRY_DELAY_MS, 1000, 0, 2147483647},
      {SK_OPT_BACKOFF, SK_BACKOFF_FIXED, SK_BACKOFF_FIXED, SK_BACKOFF_EXPONENTIAL},
      {SK_OPT_RETRY_MAX_MS, 30000, 0, 2147483647},
      {SK_OPT_CONNECT_TIMEOUT_MS, 5000, 1, 2147483647},
      {SK_OPT_REQUEST_TIMEOUT_MS, 5000, 1, 2147483647},
      {SK_OPT_MAX_MESSAGE, 65536, 1, 64LL << 20},
      {SK_OPT_FRAMING, SK_FRAME_LINE, SK_FRAME_LINE, SK_FRAME_RAW},
  };
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    long long v = -1;
    ck_assert_int_eq(sk_tcp_client_get(c, opts[i].option, &v), SK_OK);
    ck_assert_int_eq(v, opts[i].def);
    ck_assert_int_eq(sk_tcp_client_set(c, opts[i].option, opts[i].min - 1), SK_EINVAL);
    ck_assert_int_eq(sk_tcp_client_set(c, opts[i].option, opts[i].max + 1), SK_EINVAL);
    ck_assert_int_eq(sk_tcp_client_set(c, opts[i].option, opts[i].max), SK_OK);
    ck_assert_int_eq(sk_tcp_client_get(c, opts[i].option, &v), SK_OK);
    ck_assert_int_eq(v, opts[i].max);
    ck_assert_int_eq(sk_tcp_client_set(c, opts[i].option, opts[i].def), SK_OK);
  }
  long long v;
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_BACKLOG, 10), SK_EINVAL); /* a server option */
  ck_assert_int_eq(sk_tcp_client_get(c, SK_OPT_BACKLOG, &v), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_set(NULL, SK_OPT_ATTEMPTS, 1), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_get(c, SK_OPT_ATTEMPTS, NULL), SK_EINVAL);
  int attempts = -1;
  ck_assert_int_eq(sk_tcp_client_attempts(c, &attempts), SK_OK);
  ck_assert_int_eq(attempts, 0);
  ck_assert_int_eq(sk_tcp_client_attempts(c, NULL), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_connect(NULL, 0), SK_EINVAL);
  const char *reply = "unchanged";
  ck_assert_int_eq(sk_tcp_client_request(c, NULL, &reply), SK_EINVAL);
  ck_assert_ptr_null(reply);
  ck_assert_int_eq(sk_tcp_client_request(c, "x", NULL), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_send(c, NULL), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_recv(c, NULL, 0), SK_EINVAL);
  /* Requests the framing cannot carry are refused before connecting. */
  ck_assert_int_eq(sk_tcp_client_request(c, "two\nlines", &reply), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_send(c, "two\nlines"), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_FRAMING, SK_FRAME_RAW), SK_OK);
  ck_assert_int_eq(sk_tcp_client_request(c, "", &reply), SK_EINVAL);
  sk_tcp_client_destroy(c);

  /* Framing is fixed while connected. */
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  c = new_client(t.address, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_connect(c, WAIT_MS), SK_OK);
  ck_assert_int_eq(sk_tcp_client_connect(c, WAIT_MS), SK_OK); /* already connected */
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_FRAMING, SK_FRAME_LENGTH), SK_ESTATE);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_FRAMING, 7), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_ATTEMPTS, 2), SK_OK);
  /* A request also makes sure the server runs before it is stopped (a
   * server stopped before it runs reports SK_ESTATE). */
  expect_reply(c, "x", "x");
  sk_tcp_client_destroy(c);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* Many clients, each on its own thread, against one server. */
enum { THREADS = 8, REQUESTS = 200 };

typedef struct worker {
  const char *address;
  int index;
  pthread_t thread;
  int ok;       /* replies that matched their request */
  int first_rc; /* the first failure, for the message */
} worker;

static void *worker_run(void *arg) {
  worker *w = arg;
  sk_tcp_client *c = NULL;
  w->first_rc = sk_tcp_client_create(&c, w->address);
  if (w->first_rc != SK_OK)
    return NULL;
  sk_tcp_client_set(c, SK_OPT_FRAMING, SK_FRAME_LENGTH);
  for (int i = 0; i < REQUESTS; i++) {
    char request[64];
    snprintf(request, sizeof request, "thread %d request %d", w->index, i);
    const char *reply = NULL;
    int rc = sk_tcp_client_request(c, request, &reply);
    if (rc == SK_OK && strcmp(reply, request) == 0)
      w->ok++;
    else if (w->first_rc == SK_OK)
      w->first_rc = rc == SK_OK ? -1000 : rc;
  }
  sk_tcp_client_destroy(c);
  return NULL;
}

START_TEST(test_many_clients_on_threads) {
  sk_tcp_server *srv = new_server("127.0.0.1:0", sk_test_echo, SK_FRAME_LENGTH);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IO_THREADS, 2), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  worker w[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){.address = t.address, .index = i};
    ck_assert_int_eq(pthread_create(&w[i].thread, NULL, worker_run, &w[i]), 0);
  }
  for (int i = 0; i < THREADS; i++)
    ck_assert_int_eq(sk_test_join(w[i].thread, 60000), 0);
  for (int i = 0; i < THREADS; i++)
    ck_assert_msg(w[i].ok == REQUESTS, "thread %d: %d of %d replies right; first failure %s", i,
                  w[i].ok, REQUESTS, sk_status_name(w[i].first_rc));
  uint64_t accepted = 0;
  sk_tcp_server_stat(t.srv, SK_STAT_CONNECTIONS_ACCEPTED, &accepted);
  ck_assert_uint_eq(accepted, THREADS);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_no_descriptor_leaks) {
  int before = sk_test_fd_count();
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  for (int i = 0; i < 20; i++) {
    sk_tcp_client *c = new_client(t.address, SK_FRAME_LINE);
    expect_reply(c, "x", "x");
    sk_tcp_client_destroy(c);
  }
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  int port;
  int held = sk_test_refusing_port(SOCK_STREAM, &port);
  ck_assert_int_ge(held, 0);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  sk_tcp_client *c = new_client(address, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_ATTEMPTS, 2), SK_OK);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_RETRY_DELAY_MS, 0), SK_OK);
  ck_assert_int_eq(sk_tcp_client_connect(c, -1), SK_ECONNECT);
  sk_tcp_client_destroy(c);
  close(held);
  ck_assert_int_eq(sk_test_fd_count(), before);
}
END_TEST

/* SK_OPT_CONNECT_TIMEOUT_MS bounds one attempt: a listener whose queue is
 * full (backlog 0, one connection waiting, never accepted) drops further
 * handshakes, so an attempt waits until its own timeout, then the next. */
START_TEST(test_connect_timeout_bounds_each_attempt) {
  int lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  ck_assert_int_eq(bind(lst, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(lst, 0), 0);
  ck_assert_int_eq(getsockname(lst, (struct sockaddr *)&a, &alen), 0);
  /* Fill the queue: connect until a handshake no longer completes. */
  int fill[8], nfill = 0;
  bool full = false;
  while (nfill < 8 && !full) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    fill[nfill++] = fd;
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    full = rc != 0 && poll(&p, 1, 200) == 0;
  }
  ck_assert_msg(full, "the listen queue never filled");
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", ntohs(a.sin_port));
  sk_tcp_client *c = new_client(address, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_ATTEMPTS, 2), SK_OK);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_RETRY_DELAY_MS, 0), SK_OK);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_CONNECT_TIMEOUT_MS, 300), SK_OK);
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_tcp_client_connect(c, -1), SK_ETIMEDOUT);
  long long elapsed = sk_test_now_ms() - start;
  int attempts = 0;
  sk_tcp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 2);
  /* Two attempts of 300 ms: not the 5 s default, not at once. */
  ck_assert_msg(elapsed >= 550 && elapsed < 3000, "took %lld ms", elapsed);
  sk_tcp_client_destroy(c);
  for (int i = 0; i < nfill; i++)
    close(fill[i]);
  close(lst);
}
END_TEST

static Suite *tcp_client_suite(void) {
  Suite *s = suite_create("tcp_client");
  TCase *tc = tcase_create("tcp_client");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_request_reply_every_framing);
  tcase_add_test(tc, test_ipv6_unix_and_names);
  tcase_add_test(tc, test_connect_retries_until_server_listens);
  tcase_add_test(tc, test_all_attempts_refused_is_econnect);
  tcase_add_test(tc, test_exponential_backoff_with_jitter);
  tcase_add_test(tc, test_reply_timeout_closes_connection);
  tcase_add_test(tc, test_server_closes_mid_reply_is_eclosed);
  tcase_add_test(tc, test_reply_too_large_is_emsgsize);
  tcase_add_test(tc, test_unasked_data_and_idle_close_reconnect);
  tcase_add_test(tc, test_send_and_recv_one_way);
  tcase_add_test(tc, test_arguments_options_and_addresses);
  tcase_add_test(tc, test_many_clients_on_threads);
  tcase_add_test(tc, test_no_descriptor_leaks);
  tcase_add_test(tc, test_connect_timeout_bounds_each_attempt);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(tcp_client_suite());
}
