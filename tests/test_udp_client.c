/* test_udp_client.c -- the UDP client against the library's own server and
 * small raw servers: retransmission, refusals, stale and foreign datagrams,
 * truncation, addresses, one-way use and many clients on threads. */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 5000

static sk_udp_client *new_client(const char *address) {
  sk_udp_client *c = NULL;
  ck_assert_int_eq(sk_udp_client_create(&c, address), SK_OK);
  return c;
}

static void expect_reply(sk_udp_client *c, const char *request, const char *want) {
  const char *reply = NULL;
  int rc = sk_udp_client_request(c, request, &reply);
  ck_assert_msg(rc == SK_OK, "request '%.40s': %s", request, sk_status_name(rc));
  ck_assert_ptr_nonnull(reply);
  ck_assert_str_eq(reply, want);
}

/* Echo through a server at `address`; the client uses the server's bound
 * address, or `host_prefix` followed by the port. */
static void echo_at(const char *address, const char *host_prefix) {
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, address, sk_test_echo, NULL), SK_OK);
  char own[256];
  snprintf(own, sizeof own, "%s%d", host_prefix ? host_prefix : "", t.port);
  sk_udp_client *c = new_client(host_prefix ? own : t.address);
  expect_reply(c, "hello", "hello");
  expect_reply(c, "", "");
  /* A reply may be sent back as the next request. */
  const char *reply = NULL;
  ck_assert_int_eq(sk_udp_client_request(c, "chain", &reply), SK_OK);
  ck_assert_int_eq(sk_udp_client_request(c, reply, &reply), SK_OK);
  ck_assert_str_eq(reply, "chain");
  int attempts = 0;
  ck_assert_int_eq(sk_udp_client_attempts(c, &attempts), SK_OK);
  ck_assert_int_eq(attempts, 1);
  sk_udp_client_destroy(c);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}

START_TEST(test_request_reply_every_address_form) {
  echo_at("127.0.0.1:0", NULL);
  echo_at("127.0.0.1:0", "localhost:"); /* ::1, if it comes first, refuses */
  echo_at(":0", "");                    /* the port alone: this machine */
  if (sk_test_have_ipv6())
    echo_at("[::1]:0", NULL);
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char address[256];
  snprintf(address, sizeof address, "unix:%s/d.sock", dir);
  echo_at(address, NULL);
  sk_test_rmdir(dir);
  snprintf(address, sizeof address, "unix:@sktest-udp-client-%d", (int)getpid());
  echo_at(address, NULL);
}
END_TEST

START_TEST(test_next_address_at_once_after_refusal) {
  /* The port alone resolves to ::1 and 127.0.0.1 (in the resolver's order);
   * only 127.0.0.1 has a server. A refusal from ::1 moves the client on at
   * once, not after the one-second retry delay. */
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  char address[16];
  snprintf(address, sizeof address, "%d", t.port);
  sk_udp_client *c = new_client(address);
  long long start = sk_test_now_ms();
  expect_reply(c, "first", "first");
  long long elapsed = sk_test_now_ms() - start;
  ck_assert_msg(elapsed < 900, "took %lld ms", elapsed);
  int attempts = 0;
  sk_udp_client_attempts(c, &attempts);
  ck_assert_int_le(attempts, 2);
  /* The client stays with the address that answered. */
  expect_reply(c, "second", "second");
  sk_udp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 1);
  sk_udp_client_destroy(c);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* Answers each request only the second time it arrives. */
typedef struct drop_first {
  pthread_mutex_t lock;
  char seen[32][64];
  int nseen;
} drop_first;

static const char *drop_first_service(const char *request, void *user) {
  drop_first *d = user;
  pthread_mutex_lock(&d->lock);
  bool seen = false;
  for (int i = 0; i < d->nseen && !seen; i++)
    seen = strcmp(d->seen[i], request) == 0;
  if (!seen && d->nseen < 32)
    snprintf(d->seen[d->nseen++], sizeof d->seen[0], "%s", request);
  pthread_mutex_unlock(&d->lock);
  return seen ? request : NULL;
}

START_TEST(test_retransmission_after_a_dropped_datagram) {
  drop_first d = {.lock = PTHREAD_MUTEX_INITIALIZER};
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", drop_first_service, &d), SK_OK);
  sk_udp_client *c = new_client(t.address);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_RETRY_DELAY_MS, 100), SK_OK);
  long long start = sk_test_now_ms();
  expect_reply(c, "once more", "once more");
  long long elapsed = sk_test_now_ms() - start;
  int attempts = 0;
  sk_udp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 2);
  ck_assert_msg(elapsed >= 95 && elapsed < 3000, "took %lld ms", elapsed);
  uint64_t in = 0;
  sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_IN, &in);
  ck_assert_uint_eq(in, 2); /* the service saw the request twice */

  /* With exponential back-off too. */
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_BACKOFF, SK_BACKOFF_EXPONENTIAL), SK_OK);
  expect_reply(c, "backing off", "backing off");
  sk_udp_client_attempts(c, &attempts);
  ck_assert_int_ge(attempts, 2);
  sk_udp_client_destroy(c);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

static const char *never_service(const char *request, void *user) {
  (void)request;
  (void)user;
  return NULL;
}

START_TEST(test_timeout_after_all_attempts) {
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", never_service, NULL), SK_OK);
  sk_udp_client *c = new_client(t.address);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_ATTEMPTS, 3), SK_OK);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_RETRY_DELAY_MS, 100), SK_OK);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_REQUEST_TIMEOUT_MS, 600), SK_OK);
  const char *reply = "unchanged";
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_udp_client_request(c, "hello?", &reply), SK_ETIMEDOUT);
  long long elapsed = sk_test_now_ms() - start;
  ck_assert_ptr_null(reply);
  ck_assert_msg(elapsed >= 595 && elapsed < 5000, "took %lld ms", elapsed);
  int attempts = 0;
  sk_udp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 3);
  ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_IN, 3, WAIT_MS));

  /* A request timeout shorter than the pauses cuts the attempts short. */
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_RETRY_DELAY_MS, 1000), SK_OK);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_REQUEST_TIMEOUT_MS, 100), SK_OK);
  start = sk_test_now_ms();
  ck_assert_int_eq(sk_udp_client_request(c, "hello?", &reply), SK_ETIMEDOUT);
  ck_assert_int_lt(sk_test_now_ms() - start, 1000);
  sk_udp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 1);
  sk_udp_client_destroy(c);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_refused_is_econnect) {
  int port;
  int held = sk_test_refusing_port(SOCK_DGRAM, &port);
  ck_assert_int_ge(held, 0);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  sk_udp_client *c = new_client(address);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_ATTEMPTS, 3), SK_OK);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_RETRY_DELAY_MS, 100), SK_OK);
  const char *reply = "unchanged";
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_udp_client_request(c, "anyone?", &reply), SK_ECONNECT);
  long long elapsed = sk_test_now_ms() - start;
  ck_assert_int_eq(sk_last_os_error(), ECONNREFUSED);
  ck_assert_ptr_null(reply);
  int attempts = 0;
  sk_udp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 3);
  /* Refusals come at once; the pauses between attempts remain. */
  ck_assert_msg(elapsed >= 195 && elapsed < 3000, "took %lld ms", elapsed);
  sk_udp_client_destroy(c);
  close(held);

  /* No socket at a UNIX path. */
  c = new_client("unix:/nonexistent/sktest.sock");
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_ATTEMPTS, 1), SK_OK);
  ck_assert_int_eq(sk_udp_client_request(c, "anyone?", &reply), SK_ECONNECT);
  ck_assert_int_eq(sk_last_os_error(), ENOENT);
  ck_assert_int_eq(sk_udp_client_send(c, "anyone?"), SK_ECONNECT);
  sk_udp_client_destroy(c);
}
END_TEST

/* Answers "slow" only after it is released (or 5 s pass), on a pool thread. */
static atomic_bool slow_released;

static const char *slow_service(const char *request, void *user) {
  (void)user;
  if (strcmp(request, "slow") == 0)
    for (int i = 0; i < 2500 && !atomic_load(&slow_released); i++) {
      struct timespec pause = {0, 2 * 1000 * 1000};
      nanosleep(&pause, NULL);
    }
  return request;
}

START_TEST(test_stale_reply_is_discarded) {
  atomic_store(&slow_released, false);
  sk_udp_server *srv = NULL;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", slow_service, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MODEL, SK_MODEL_WORKER_POOL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_WORKERS, 2), SK_OK);
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start_server(&t, srv), SK_OK);
  sk_udp_client *c = new_client(t.address);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_ATTEMPTS, 1), SK_OK);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_REQUEST_TIMEOUT_MS, 100), SK_OK);
  const char *reply;
  ck_assert_int_eq(sk_udp_client_request(c, "slow", &reply), SK_ETIMEDOUT);
  /* Let the late reply arrive and wait in the client's socket. */
  atomic_store(&slow_released, true);
  ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_OUT, 1, WAIT_MS));
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_REQUEST_TIMEOUT_MS, WAIT_MS), SK_OK);
  expect_reply(c, "fast", "fast");
  sk_udp_client_destroy(c);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* A raw server on a thread: answers one request first from a second socket
 * (another address, which the client must ignore), then from the right one. */
typedef struct two_faced {
  int fd, other;
  char address[64];
  pthread_t thread;
  atomic_int result;
} two_faced;

static void *two_faced_serve(void *arg) {
  two_faced *s = arg;
  struct pollfd p = {.fd = s->fd, .events = POLLIN};
  char buf[256];
  struct sockaddr_storage from;
  socklen_t len = sizeof from;
  int result = -1;
  if (poll(&p, 1, WAIT_MS) == 1 &&
      recvfrom(s->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len) > 0 &&
      sendto(s->other, "impostor", 8, 0, (struct sockaddr *)&from, len) == 8 &&
      sendto(s->fd, "genuine", 7, 0, (struct sockaddr *)&from, len) == 7)
    result = 1;
  atomic_store(&s->result, result);
  return NULL;
}

static int udp_loopback_socket(int *port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  *port = ntohs(a.sin_port);
  return fd;
}

START_TEST(test_datagrams_from_other_senders_are_ignored) {
  two_faced s;
  int port = 0, other_port = 0;
  s.fd = udp_loopback_socket(&port);
  s.other = udp_loopback_socket(&other_port);
  ck_assert_int_ge(s.fd, 0);
  ck_assert_int_ge(s.other, 0);
  snprintf(s.address, sizeof s.address, "127.0.0.1:%d", port);
  atomic_init(&s.result, 0);
  ck_assert_int_eq(pthread_create(&s.thread, NULL, two_faced_serve, &s), 0);
  sk_udp_client *c = new_client(s.address);
  expect_reply(c, "who is there?", "genuine");
  ck_assert_int_eq(sk_test_join(s.thread, WAIT_MS), 0);
  ck_assert_int_eq(atomic_load(&s.result), 1);
  sk_udp_client_destroy(c);
  close(s.fd);
  close(s.other);
}
END_TEST

static const char *size_service(const char *request, void *user) {
  (void)user;
  static _Thread_local char big[2001];
  int n = atoi(request);
  if (n <= 0 || n > 2000)
    return request;
  memset(big, 'y', (size_t)n);
  big[n] = '\0';
  return big;
}

START_TEST(test_truncated_reply_is_emsgsize) {
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", size_service, NULL), SK_OK);
  sk_udp_client *c = new_client(t.address);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_MAX_MESSAGE, 100), SK_OK);
  const char *reply = "unchanged";
  ck_assert_int_eq(sk_udp_client_request(c, "1000", &reply), SK_EMSGSIZE);
  ck_assert_ptr_null(reply);
  ck_assert_int_eq(sk_udp_client_request(c, "100", &reply), SK_OK); /* exactly the limit */
  ck_assert_uint_eq(strlen(reply), 100);
  reply = "unchanged";
  ck_assert_int_eq(sk_udp_client_request(c, "101", &reply), SK_EMSGSIZE); /* one byte over */
  ck_assert_ptr_null(reply);
  expect_reply(c, "small", "small");
  char over[102];
  memset(over, 'o', 101);
  over[101] = '\0';
  ck_assert_int_eq(sk_udp_client_request(c, over, &reply), SK_EMSGSIZE);
  ck_assert_int_eq(sk_udp_client_send(c, over), SK_EMSGSIZE);
  sk_udp_client_destroy(c);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_send_and_recv_one_way) {
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  sk_udp_client *c = new_client(t.address);
  const char *m = "unchanged";
  ck_assert_int_eq(sk_udp_client_recv(c, &m, 0), SK_ESTATE); /* no socket yet */
  ck_assert_ptr_null(m);
  ck_assert_int_eq(sk_udp_client_send(c, "one"), SK_OK);
  ck_assert_int_eq(sk_udp_client_send(c, "two"), SK_OK);
  ck_assert_int_eq(sk_udp_client_recv(c, &m, WAIT_MS), SK_OK);
  ck_assert_str_eq(m, "one");
  ck_assert_int_eq(sk_udp_client_recv(c, &m, WAIT_MS), SK_OK);
  ck_assert_str_eq(m, "two");
  ck_assert_int_eq(sk_udp_client_recv(c, &m, 0), SK_ETIMEDOUT);
  ck_assert_int_eq(sk_udp_client_recv(c, &m, 50), SK_ETIMEDOUT);
  /* An unread reply is thrown away by the next request, not returned. */
  ck_assert_int_eq(sk_udp_client_send(c, "unread"), SK_OK);
  ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_OUT, 3, WAIT_MS));
  expect_reply(c, "three", "three");
  sk_udp_client_destroy(c);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_arguments_options_and_addresses) {
  sk_udp_client *c = (sk_udp_client *)1;
  ck_assert_int_eq(sk_udp_client_create(NULL, "127.0.0.1:1"), SK_EINVAL);
  ck_assert_int_eq(sk_udp_client_create(&c, NULL), SK_EINVAL);
  ck_assert_ptr_null(c);
  static const char *const bad[] = {"", "x", "1.2.3.4:0", "::1:53", "[::1]", "unix:", "h:99999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    c = (sk_udp_client *)1;
    ck_assert_msg(sk_udp_client_create(&c, bad[i]) == SK_EADDR, "'%s' accepted", bad[i]);
    ck_assert_ptr_null(c);
  }
  sk_udp_client_destroy(NULL);

  ck_assert_int_eq(sk_udp_client_create(&c, "127.0.0.1:1"), SK_OK);
  static const struct {
    int option;
    long long def, min, max;
  } opts[] = {
      {SK_OPT_ATTEMPTS, 5, 1, 1000},
      {SK_OPT_RETRY_DELAY_MS, 1000, 0, 2147483647},
      {SK_OPT_BACKOFF, SK_BACKOFF_FIXED, SK_BACKOFF_FIXED, SK_BACKOFF_EXPONENTIAL},
      {SK_OPT_RETRY_MAX_MS, 30000, 0, 2147483647},
      {SK_OPT_REQUEST_TIMEOUT_MS, 5000, 1, 2147483647},
      {SK_OPT_MAX_MESSAGE, 65507, 1, 65507},
  };
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    long long v = -1;
    ck_assert_int_eq(sk_udp_client_get(c, opts[i].option, &v), SK_OK);
    ck_assert_int_eq(v, opts[i].def);
    ck_assert_int_eq(sk_udp_client_set(c, opts[i].option, opts[i].min - 1), SK_EINVAL);
    ck_assert_int_eq(sk_udp_client_set(c, opts[i].option, opts[i].max + 1), SK_EINVAL);
    ck_assert_int_eq(sk_udp_client_set(c, opts[i].option, opts[i].min), SK_OK);
    ck_assert_int_eq(sk_udp_client_set(c, opts[i].option, opts[i].def), SK_OK);
  }
  /* TCP-only options. */
  long long v;
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_FRAMING, SK_FRAME_LINE), SK_EINVAL);
  ck_assert_int_eq(sk_udp_client_get(c, SK_OPT_FRAMING, &v), SK_EINVAL);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_CONNECT_TIMEOUT_MS, 100), SK_EINVAL);
  ck_assert_int_eq(sk_udp_client_set(NULL, SK_OPT_ATTEMPTS, 1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_client_get(c, SK_OPT_ATTEMPTS, NULL), SK_EINVAL);
  int attempts = -1;
  ck_assert_int_eq(sk_udp_client_attempts(c, &attempts), SK_OK);
  ck_assert_int_eq(attempts, 0);
  ck_assert_int_eq(sk_udp_client_attempts(NULL, &attempts), SK_EINVAL);
  const char *reply = "unchanged";
  ck_assert_int_eq(sk_udp_client_request(c, NULL, &reply), SK_EINVAL);
  ck_assert_ptr_null(reply);
  ck_assert_int_eq(sk_udp_client_request(c, "x", NULL), SK_EINVAL);
  ck_assert_int_eq(sk_udp_client_send(c, NULL), SK_EINVAL);
  ck_assert_int_eq(sk_udp_client_recv(c, NULL, 0), SK_EINVAL);
  sk_udp_client_destroy(c);
}
END_TEST

enum { THREADS = 8, REQUESTS = 200 };

typedef struct worker {
  const char *address;
  int index;
  pthread_t thread;
  int ok;
  int first_rc;
} worker;

static void *worker_run(void *arg) {
  worker *w = arg;
  sk_udp_client *c = NULL;
  w->first_rc = sk_udp_client_create(&c, w->address);
  if (w->first_rc != SK_OK)
    return NULL;
  /* Loopback rarely drops, but a busy sanitizer run might: retransmit soon. */
  sk_udp_client_set(c, SK_OPT_RETRY_DELAY_MS, 200);
  for (int i = 0; i < REQUESTS; i++) {
    char request[64];
    snprintf(request, sizeof request, "thread %d request %d", w->index, i);
    const char *reply = NULL;
    int rc = sk_udp_client_request(c, request, &reply);
    if (rc == SK_OK && strcmp(reply, request) == 0)
      w->ok++;
    else if (w->first_rc == SK_OK)
      w->first_rc = rc == SK_OK ? -1000 : rc;
  }
  sk_udp_client_destroy(c);
  return NULL;
}

START_TEST(test_many_clients_on_threads) {
  sk_udp_server *srv = NULL;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_IO_THREADS, 2), SK_OK);
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start_server(&t, srv), SK_OK);
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
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* A name that moves. The client looks names up with getaddrinfo(); this
 * program defines its own, which answers for one made-up name with the
 * address in moving_host (or fails to find it while that is empty) and
 * hands every other name to the C library's. That moves a name without
 * touching the system's /etc/hosts or name servers, while the library's
 * own lookup code runs unchanged. */
#define MOVING_NAME "moving.sktest.invalid"
static char moving_host[64];
static atomic_int moving_lookups;

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);
static getaddrinfo_fn real_getaddrinfo;
static pthread_once_t real_getaddrinfo_once = PTHREAD_ONCE_INIT;

static void find_real_getaddrinfo(void) {
  void *sym = dlsym(RTLD_NEXT, "getaddrinfo");
  memcpy(&real_getaddrinfo, &sym, sizeof real_getaddrinfo);
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  pthread_once(&real_getaddrinfo_once, find_real_getaddrinfo);
  if (node && strcmp(node, MOVING_NAME) == 0) {
    atomic_fetch_add(&moving_lookups, 1);
    if (moving_host[0] == '\0')
      return EAI_NONAME;
    node = moving_host;
  }
  return real_getaddrinfo(node, service, hints, res);
}

static void move_name(const char *host) {
  snprintf(moving_host, sizeof moving_host, "%s", host);
}

/* Replies with the server's name, given as its user pointer. */
static const char *named_service(const char *request, void *user) {
  (void)request;
  return user;
}

/* Server `name` on host:port (port 0: any), running on a thread. */
static void start_named(sk_test_udp *t, const char *host, int port, const char *name) {
  char address[64];
  snprintf(address, sizeof address, "%s:%d", host, port);
  ck_assert_int_eq(sk_test_udp_start(t, address, named_service, (void *)name), SK_OK);
}

static sk_udp_client *moving_client(int port) {
  char address[64];
  snprintf(address, sizeof address, MOVING_NAME ":%d", port);
  sk_udp_client *c = new_client(address);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_RETRY_DELAY_MS, 50), SK_OK);
  return c;
}

/* The server moves to another address and the old one refuses: once every
 * address of the name has refused, the client looks the name up again
 * within the same request. While requests succeed it does not look again. */
START_TEST(test_name_looked_up_again_after_refusals) {
  atomic_store(&moving_lookups, 0);
  move_name("127.0.0.2");
  sk_test_udp a;
  start_named(&a, "127.0.0.2", 0, "A");
  sk_udp_client *c = moving_client(a.port);
  expect_reply(c, "who?", "A");
  expect_reply(c, "who?", "A");
  ck_assert_int_eq(atomic_load(&moving_lookups), 1); /* not a lookup per request */

  int port = a.port;
  ck_assert_int_eq(sk_test_udp_stop(&a, WAIT_MS), SK_OK);
  sk_test_udp b;
  start_named(&b, "127.0.0.3", port, "B");
  move_name("127.0.0.3");
  expect_reply(c, "who?", "B");
  int attempts = 0;
  sk_udp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 2); /* refused by 127.0.0.2, answered at 127.0.0.3 */
  ck_assert_int_eq(atomic_load(&moving_lookups), 2);
  expect_reply(c, "who?", "B");
  ck_assert_int_eq(atomic_load(&moving_lookups), 2);
  sk_udp_client_destroy(c);
  ck_assert_int_eq(sk_test_udp_stop(&b, WAIT_MS), SK_OK);
}
END_TEST

/* The old address swallows requests (a server that no longer answers, or
 * a host that is gone): the request times out, and the next one looks the
 * name up again before it is sent. */
START_TEST(test_name_looked_up_again_after_a_failed_request) {
  atomic_store(&moving_lookups, 0);
  move_name("127.0.0.2");
  sk_test_udp a;
  ck_assert_int_eq(sk_test_udp_start(&a, "127.0.0.2:0", never_service, NULL), SK_OK);
  sk_udp_client *c = moving_client(a.port);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_ATTEMPTS, 2), SK_OK);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_REQUEST_TIMEOUT_MS, 300), SK_OK);
  const char *reply = NULL;
  ck_assert_int_eq(sk_udp_client_request(c, "who?", &reply), SK_ETIMEDOUT);
  ck_assert_int_eq(atomic_load(&moving_lookups), 1);

  sk_test_udp b;
  start_named(&b, "127.0.0.3", a.port, "B");
  move_name("127.0.0.3");
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_REQUEST_TIMEOUT_MS, WAIT_MS), SK_OK);
  expect_reply(c, "who?", "B");
  int attempts = 0;
  sk_udp_client_attempts(c, &attempts);
  ck_assert_int_eq(attempts, 1);
  ck_assert_int_eq(atomic_load(&moving_lookups), 2);
  ck_assert_int_eq(sk_test_udp_stop(&a, WAIT_MS), SK_OK);

  /* A lookup that fails keeps the addresses it had: the name server being
   * down does not stop a client that knows where its server is. */
  move_name("");
  int port = b.port;
  ck_assert_int_eq(sk_test_udp_stop(&b, WAIT_MS), SK_OK);
  ck_assert_int_eq(sk_udp_client_request(c, "who?", &reply), SK_ECONNECT);
  ck_assert_int_ge(atomic_load(&moving_lookups), 3);
  start_named(&b, "127.0.0.3", port, "B again");
  expect_reply(c, "who?", "B again");
  sk_udp_client_destroy(c);
  ck_assert_int_eq(sk_test_udp_stop(&b, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_no_descriptor_leaks) {
  int before = sk_test_fd_count();
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  for (int i = 0; i < 20; i++) {
    sk_udp_client *c = new_client(t.address);
    expect_reply(c, "x", "x");
    sk_udp_client_destroy(c);
  }
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  int port;
  int held = sk_test_refusing_port(SOCK_DGRAM, &port);
  ck_assert_int_ge(held, 0);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  sk_udp_client *c = new_client(address);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_ATTEMPTS, 2), SK_OK);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_RETRY_DELAY_MS, 0), SK_OK);
  const char *reply;
  ck_assert_int_eq(sk_udp_client_request(c, "x", &reply), SK_ECONNECT);
  sk_udp_client_destroy(c);
  close(held);
  ck_assert_int_eq(sk_test_fd_count(), before);
}
END_TEST

static Suite *udp_client_suite(void) {
  Suite *s = suite_create("udp_client");
  TCase *tc = tcase_create("udp_client");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_request_reply_every_address_form);
  tcase_add_test(tc, test_next_address_at_once_after_refusal);
  tcase_add_test(tc, test_retransmission_after_a_dropped_datagram);
  tcase_add_test(tc, test_timeout_after_all_attempts);
  tcase_add_test(tc, test_refused_is_econnect);
  tcase_add_test(tc, test_stale_reply_is_discarded);
  tcase_add_test(tc, test_datagrams_from_other_senders_are_ignored);
  tcase_add_test(tc, test_truncated_reply_is_emsgsize);
  tcase_add_test(tc, test_send_and_recv_one_way);
  tcase_add_test(tc, test_arguments_options_and_addresses);
  tcase_add_test(tc, test_many_clients_on_threads);
  tcase_add_test(tc, test_name_looked_up_again_after_refusals);
  tcase_add_test(tc, test_name_looked_up_again_after_a_failed_request);
  tcase_add_test(tc, test_no_descriptor_leaks);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(udp_client_suite());
}
