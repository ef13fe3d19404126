/* test_hardening.c -- promises of the header attacked the hard way: clock
 * wrap, pipelined floods of huge replies, replies that cannot be queued,
 * descriptor reuse under the pool, oversize RAW writes, services that never
 * return, large messages trickled in, allocation failure. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "internal.h"
#include "loop.h"
#include "support.h"
#include "tcp.h"

#define WAIT_MS 10000

static const int models[] = {SK_MODEL_EVENT_LOOP, SK_MODEL_WORKER_POOL,
                             SK_MODEL_THREAD_PER_CONNECTION};
#define NMODELS ((int)(sizeof models / sizeof models[0]))

static sk_tcp_server *server(const char *address, sk_service service, int model) {
  sk_tcp_server *srv = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&srv, address, service, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MODEL, model), SK_OK);
  if (model == SK_MODEL_WORKER_POOL)
    ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WORKERS, 2), SK_OK);
  return srv;
}

static uint64_t stat_of(sk_tcp_server *srv, int stat) {
  uint64_t v = 0;
  ck_assert_int_eq(sk_tcp_server_stat(srv, stat, &v), SK_OK);
  return v;
}

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Move the library's clock so that its low 32 bits wrap `ms` from now. */
static void clock_wraps_in(int64_t ms) {
  atomic_store(&sk__clock_offset_ms, 0);
  int64_t now = sk__clock_ms();
  atomic_store(&sk__clock_offset_ms, ((int64_t)1 << 32) - ms - (now % ((int64_t)1 << 32)));
}

/* ---- 1: the 32-bit clock wraps ----------------------------------------- */

START_TEST(test_loop_timer_across_clock_wrap) {
  clock_wraps_in(150);
  sk_loop loop;
  ck_assert_int_eq(sk__loop_init(&loop), SK_OK);
  struct epoll_event ev[4];
  /* Each armed wait lasts its time, on both sides of the wrap: none fires
   * at once (before the fix, one armed past the wrap fired forever). */
  for (int round = 0; round < 3; round++) {
    long long start = sk_test_now_ms();
    sk__loop_arm(&loop, 200);
    int n = 0;
    for (int spins = 0; n == 0 && spins < 100; spins++)
      n = sk__loop_wait(&loop, ev, 4, 3000);
    long long took = sk_test_now_ms() - start;
    ck_assert_int_eq(n, 1);
    ck_assert(ev[0].data.u64 == SK_LOOP_TIMER);
    ck_assert_msg(took >= 150 && took < 2500, "round %d: the timer fired after %lld ms", round,
                  took);
  }
  sk__loop_close(&loop);
  atomic_store(&sk__clock_offset_ms, 0);
}
END_TEST

START_TEST(test_idle_timeout_across_clock_wrap) {
  clock_wraps_in(500);
  sk_tcp_server *srv = server("127.0.0.1:0", sk_test_echo, SK_MODEL_EVENT_LOOP);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IDLE_TIMEOUT_MS, 1500), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  double cpu0 = cpu_seconds();
  long long start = sk_test_now_ms();
  char buf[16];
  ssize_t n = sk_test_read_to_eof(fd, buf, sizeof buf, WAIT_MS);
  long long took = sk_test_now_ms() - start;
  double cpu = cpu_seconds() - cpu0;
  ck_assert_int_eq(n, 0); /* closed by the server, not a timeout (-2) */
  ck_assert_msg(took >= 1000 && took < 6000, "the idle client was closed after %lld ms", took);
  /* An idle loop sleeps: spinning on a timer in the past would burn the
   * whole wall time. */
  ck_assert_msg(cpu < 0.3 * (double)took / 1000, "%.2f s of CPU in %lld ms idle", cpu, took);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_CONNECTIONS_TIMED_OUT), 1);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  atomic_store(&sk__clock_offset_ms, 0);
}
END_TEST

/* ---- 2: output limits bound memory ------------------------------------- */

#define HUGE_REPLY (256 * 1024)
static char huge_reply[HUGE_REPLY + 1];

static const char *huge(const char *request, void *user) {
  (void)request;
  return huge_reply;
}

/* A client that asks for many huge replies in one write and reads none:
 * the connection's output stays within the high-water mark plus one
 * reply, and every reply still arrives, in order, once the client reads. */
START_TEST(test_pipelined_huge_replies_stay_bounded) {
  int model = models[_i];
  memset(huge_reply, 'x', HUGE_REPLY);
  sk_tcp_server *srv = server("127.0.0.1:0", huge, model);
  long long high = 1 << 20;
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, high), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_BUFFERED, 4 << 20), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_INFLIGHT, 2), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  int small = 16384; /* the kernel holds little on our side */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  int requests = sk_test_scaled(100, 40);
  char *burst = malloc((size_t)requests * 2);
  for (int i = 0; i < requests; i++)
    memcpy(burst + 2 * i, "a\n", 2);
  ck_assert_int_eq(sk_test_send_all(fd, burst, (size_t)requests * 2), 0);
  free(burst);
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_MESSAGES_IN, 3, WAIT_MS));
  /* Give the server every chance to overrun: it must not serve more. */
  uint64_t cap = (uint64_t)(high + HUGE_REPLY + 1);
  for (int i = 0; i < 50; i++) {
    ck_assert_uint_le(stat_of(srv, SK_STAT_BYTES_BUFFERED), cap);
    struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  /* The kernel holds some replies too: up to 4 MiB in the server's send
   * buffer, a little in ours. */
  uint64_t served = stat_of(srv, SK_STAT_MESSAGES_IN);
  ck_assert_msg(served < 40, "%llu of %d requests served for a client that reads nothing",
                (unsigned long long)served, requests);
  /* Reading resumes the connection: every reply arrives. */
  char *reply = malloc(HUGE_REPLY + 1);
  for (int i = 0; i < requests; i++) {
    ck_assert_int_eq(sk_test_read_exact(fd, reply, HUGE_REPLY + 1, WAIT_MS), HUGE_REPLY + 1);
    ck_assert(reply[0] == 'x' && reply[HUGE_REPLY - 1] == 'x' && reply[HUGE_REPLY] == '\n');
  }
  free(reply);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_MESSAGES_IN), (uint64_t)requests);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* Many clients that read nothing: the server-wide cap holds across them
 * (each may go one reply over it). */
START_TEST(test_max_buffered_caps_all_connections) {
  memset(huge_reply, 'x', HUGE_REPLY);
  sk_tcp_server *srv = server("127.0.0.1:0", huge, SK_MODEL_EVENT_LOOP);
  long long max_buffered = 2 << 20;
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, 1 << 20), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_BUFFERED, max_buffered), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_SNDBUF, 4096), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  enum { CLIENTS = 8 };
  int fds[CLIENTS];
  char burst[200];
  for (size_t i = 0; i < sizeof burst; i += 2)
    memcpy(burst + i, "a\n", 2);
  for (int i = 0; i < CLIENTS; i++) {
    fds[i] = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(fds[i], 0);
    ck_assert_int_eq(sk_test_send_all(fds[i], burst, sizeof burst), 0);
  }
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_BYTES_BUFFERED, (uint64_t)max_buffered, WAIT_MS));
  uint64_t cap = (uint64_t)max_buffered + CLIENTS * (uint64_t)(HUGE_REPLY + 1);
  for (int i = 0; i < 50; i++) {
    ck_assert_uint_le(stat_of(srv, SK_STAT_BYTES_BUFFERED), cap);
    struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  for (int i = 0; i < CLIENTS; i++)
    close(fds[i]);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* ---- 3: a reply that cannot be queued ends the connection -------------- */

static char big_reply[2 << 20];

static const char *big_or_echo(const char *request, void *user) {
  (void)user;
  return strcmp(request, "big") == 0 ? big_reply : request;
}

static bool fail_large(int site, size_t size) {
  return (site == SK_ALLOC_BUFFER || site == SK_ALLOC_REPLY) && size >= (1u << 20);
}

START_TEST(test_lost_reply_closes_instead_of_shifting) {
  int model = models[_i];
  memset(big_reply, 'b', sizeof big_reply - 1);
  sk_tcp_server *srv = server("127.0.0.1:0", big_or_echo, model);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  atomic_store(&sk__alloc_fail, fail_large);
  const char burst[] = "a\nbig\nc\n";
  ck_assert_int_eq(sk_test_send_all(fd, burst, sizeof burst - 1), 0);
  char buf[64];
  ssize_t n = sk_test_read_to_eof(fd, buf, sizeof buf - 1, WAIT_MS);
  atomic_store(&sk__alloc_fail, NULL);
  /* "a" is answered; "c" never gets the reply owed to "big". */
  ck_assert_int_eq(n, 2);
  ck_assert(memcmp(buf, "a\n", 2) == 0);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_DROPS_TOO_LARGE), 1);
  ck_assert_uint_ge(stat_of(srv, SK_STAT_CONNECTIONS_RESET), 1);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* ---- 5: the pool never reports another client's address ---------------- */

static atomic_int who_entered, who_release;

/* Holds the first call until released, then answers who asked. */
static const char *who(const char *request, void *user) {
  (void)request;
  atomic_store(&who_entered, 1);
  for (int i = 0; i < 2000 && !atomic_load(&who_release); i++) {
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  const char *peer = sk_peer_address();
  return sk_replyf("%s", peer ? peer : "(null)");
}

static bool entered(void *arg) {
  return atomic_load((atomic_int *)arg) != 0;
}

/* Client A's request waits in the pool while A resets and B is accepted
 * on A's descriptor number: the service must still see A. */
static char first_saw[SK_ADDRSTRLEN];
static atomic_int first_claimed, first_done;

static const char *who_once(const char *request, void *user) {
  const char *r = who(request, user);
  int no = 0;
  if (atomic_compare_exchange_strong(&first_claimed, &no, 1)) {
    snprintf(first_saw, sizeof first_saw, "%s", r);
    atomic_store(&first_done, 1);
  }
  return r;
}

START_TEST(test_pool_job_keeps_its_client_address) {
  atomic_store(&who_entered, 0);
  atomic_store(&who_release, 0);
  atomic_store(&first_done, 0);
  atomic_store(&first_claimed, 0);
  sk_tcp_server *srv = server("127.0.0.1:0", who_once, SK_MODEL_WORKER_POOL);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int a = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(a, 0);
  struct sockaddr_in local;
  socklen_t len = sizeof local;
  ck_assert_int_eq(getsockname(a, (struct sockaddr *)&local, &len), 0);
  char a_address[SK_ADDRSTRLEN];
  snprintf(a_address, sizeof a_address, "127.0.0.1:%d", ntohs(local.sin_port));
  ck_assert_int_eq(sk_test_send_all(a, "who\n", 4), 0);
  ck_assert(sk_test_wait(entered, &who_entered, WAIT_MS));
  struct linger now = {.l_onoff = 1, .l_linger = 0};
  setsockopt(a, SOL_SOCKET, SO_LINGER, &now, sizeof now);
  close(a);
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_CONNECTIONS_RESET, 1, WAIT_MS));
  int b = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(b, 0);
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_CONNECTIONS_ACCEPTED, 2, WAIT_MS));
  atomic_store(&who_release, 1);
  ck_assert(sk_test_wait(entered, &first_done, WAIT_MS));
  ck_assert_str_eq(first_saw, a_address);
  close(b);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* ---- 6: RAW reads never exceed the largest message --------------------- */

START_TEST(test_raw_write_larger_than_max_message) {
  int model = _i == 0 ? SK_MODEL_EVENT_LOOP : SK_MODEL_THREAD_PER_CONNECTION;
  sk_tcp_server *srv = server("127.0.0.1:0", sk_test_echo, model);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_FRAMING, SK_FRAME_RAW), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_MESSAGE, 100), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  char out[250], in[250];
  for (size_t i = 0; i < sizeof out; i++)
    out[i] = (char)('a' + i % 26);
  ck_assert_int_eq(sk_test_send_all(fd, out, sizeof out), 0);
  /* Echoed in pieces of at most 100 bytes, all of it, connection open. */
  ck_assert_int_eq(sk_test_read_exact(fd, in, sizeof in, WAIT_MS), (ssize_t)sizeof in);
  ck_assert(memcmp(in, out, sizeof in) == 0);
  ck_assert_uint_ge(stat_of(srv, SK_STAT_MESSAGES_IN), 3);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_DROPS_TRUNCATED), 0);
  ck_assert_int_eq(sk_test_send_all(fd, "again", 5), 0);
  ck_assert_int_eq(sk_test_read_exact(fd, in, 5, WAIT_MS), 5);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* ---- 10: stop honours the drain timeout -------------------------------- */

static atomic_int hang_entered, hang_release, hang_returned;

static const char *hang(const char *request, void *user) {
  (void)request;
  atomic_store(&hang_entered, 1);
  /* Bounded so a failing test cannot leave it running forever. */
  for (int i = 0; i < 4000 && !atomic_load(&hang_release); i++) {
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  atomic_store(&hang_returned, 1);
  return "late";
}

START_TEST(test_stop_does_not_wait_for_a_hung_service) {
  int model = _i == 0 ? SK_MODEL_THREAD_PER_CONNECTION : SK_MODEL_WORKER_POOL;
  int baseline = sk_test_thread_baseline();
  atomic_store(&hang_entered, 0);
  atomic_store(&hang_release, 0);
  atomic_store(&hang_returned, 0);
  sk_tcp_server *srv = server("127.0.0.1:0", hang, model);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, 200), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "x\n", 2), 0);
  ck_assert(sk_test_wait(entered, &hang_entered, WAIT_MS));
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  long long took = sk_test_now_ms() - start;
  ck_assert_msg(took < 3000, "stop with a 200 ms drain took %lld ms", took);
  ck_assert_int_eq(atomic_load(&hang_returned), 0);
  /* The client is cut off at once, without the late reply. */
  char buf[16];
  ssize_t n = sk_test_read_to_eof(fd, buf, sizeof buf, WAIT_MS);
  ck_assert_msg(n == 0 || n == -1, "read after the drain: %zd", n);
  close(fd);
  /* The service ends on its own; its thread then frees the server. */
  atomic_store(&hang_release, 1);
  ck_assert(sk_test_wait(entered, &hang_returned, WAIT_MS));
  ck_assert(sk_test_wait_threads(baseline, WAIT_MS));
}
END_TEST

/* A thread-model client that never reads, with no write timeout: stop
 * still returns once the drain time is over. */
START_TEST(test_stop_with_stalled_reader_and_no_write_timeout) {
  memset(huge_reply, 'x', HUGE_REPLY);
  sk_tcp_server *srv = server("127.0.0.1:0", huge, SK_MODEL_THREAD_PER_CONNECTION);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, 200), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WRITE_TIMEOUT_MS, 0), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  char burst[100];
  for (size_t i = 0; i < sizeof burst; i += 2)
    memcpy(burst + i, "a\n", 2);
  ck_assert_int_eq(sk_test_send_all(fd, burst, sizeof burst), 0);
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_MESSAGES_IN, 2, WAIT_MS));
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  long long took = sk_test_now_ms() - start;
  ck_assert_msg(took < 3000, "stop with a 200 ms drain took %lld ms", took);
  close(fd);
}
END_TEST

/* UDP pool: a hung service does not hold up run either. */
START_TEST(test_udp_stop_does_not_wait_for_a_hung_service) {
  int baseline = sk_test_thread_baseline();
  atomic_store(&hang_entered, 0);
  atomic_store(&hang_release, 0);
  atomic_store(&hang_returned, 0);
  sk_udp_server *srv = NULL;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", hang, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MODEL, SK_MODEL_WORKER_POOL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_WORKERS, 1), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, 200), SK_OK);
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start_server(&t, srv), SK_OK);
  int fd = sk_test_udp_socket(t.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(send(fd, "x", 1, 0), 1);
  ck_assert(sk_test_wait(entered, &hang_entered, WAIT_MS));
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  long long took = sk_test_now_ms() - start;
  ck_assert_msg(took < 3000, "stop with a 200 ms drain took %lld ms", took);
  atomic_store(&hang_release, 1);
  ck_assert(sk_test_wait(entered, &hang_returned, WAIT_MS));
  ck_assert(sk_test_wait_threads(baseline, WAIT_MS));
  /* The late reply was discarded. */
  char buf[16];
  ck_assert_int_eq(sk_test_udp_recv(fd, buf, sizeof buf, 200), -2);
  close(fd);
}
END_TEST

/* ---- 12: a large message costs linear copying -------------------------- */

static const char *ok_reply(const char *request, void *user) {
  (void)request;
  return "ok";
}

START_TEST(test_large_message_copies_linear) {
  size_t size = (size_t)sk_test_scaled(16 << 20, 2 << 20);
  sk_tcp_server *srv = server("127.0.0.1:0", ok_reply,
                              _i == 0 ? SK_MODEL_EVENT_LOOP : SK_MODEL_THREAD_PER_CONNECTION);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_FRAMING, SK_FRAME_LENGTH), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_MESSAGE, 64 << 20), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  char *msg = malloc(size + 4);
  msg[0] = (char)(size >> 24);
  msg[1] = (char)(size >> 16);
  msg[2] = (char)(size >> 8);
  msg[3] = (char)size;
  memset(msg + 4, 'm', size);
  uint64_t before = atomic_load(&sk__buf_bytes_moved);
  /* Small writes, so the server sees many reads of one message. */
  for (size_t at = 0; at < size + 4; at += 16384) {
    size_t n = size + 4 - at < 16384 ? size + 4 - at : 16384;
    ck_assert_int_eq(sk_test_send_all(fd, msg + at, n), 0);
  }
  char reply[6];
  ck_assert_int_eq(sk_test_read_exact(fd, reply, 6, WAIT_MS), 6);
  ck_assert(memcmp(reply + 4, "ok", 2) == 0);
  uint64_t moved = atomic_load(&sk__buf_bytes_moved) - before;
  ck_assert_msg(moved <= 4 * (uint64_t)size, "%llu bytes moved for a message of %zu",
                (unsigned long long)moved, size);
  free(msg);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* ---- 13: collecting pool completions cannot lose a job ----------------- */

static bool fail_tables(int site, size_t size) {
  (void)size;
  return site == SK_ALLOC_TABLE;
}

START_TEST(test_pool_completions_survive_allocation_failure) {
  sk_tcp_server *srv = server("127.0.0.1:0", sk_test_echo, SK_MODEL_WORKER_POOL);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  enum { CLIENTS = 100 };
  int fds[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    fds[i] = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(fds[i], 0);
  }
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_CONNECTIONS_ACCEPTED, CLIENTS, WAIT_MS));
  /* From now on no per-descriptor table can grow. */
  atomic_store(&sk__alloc_fail, fail_tables);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < CLIENTS; i++)
      ck_assert_int_eq(sk_test_send_all(fds[i], "ping\n", 5), 0);
    for (int i = 0; i < CLIENTS; i++) {
      char buf[5];
      ck_assert_int_eq(sk_test_read_exact(fds[i], buf, 5, WAIT_MS), 5);
      ck_assert(memcmp(buf, "ping\n", 5) == 0);
    }
  }
  atomic_store(&sk__alloc_fail, NULL);
  for (int i = 0; i < CLIENTS; i++)
    close(fds[i]);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* ---- 9: the OS error of the last failure ------------------------------ */

START_TEST(test_os_error_reset_by_failures_without_os_cause) {
  sk_tcp_server *a = NULL, *b = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&a, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(a), SK_OK);
  char address[SK_ADDRSTRLEN];
  ck_assert_int_eq(sk_tcp_server_address(a, address, sizeof address), SK_OK);
  ck_assert_int_eq(sk_tcp_server_create(&b, address, sk_test_echo, NULL), SK_OK);
  /* Each failure without an OS cause, after one with it, says 0. */
  for (int step = 0; step < 6; step++) {
    ck_assert_int_eq(sk_tcp_server_listen(b), SK_EBIND);
    ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);
    int port = 0;
    ck_assert_int_eq(sk_tcp_server_port(a, &port), SK_OK); /* success: unchanged */
    ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);
    int rc = 0;
    char tiny[2];
    uint64_t v;
    sk_tcp_server *none = NULL;
    switch (step) {
    case 0:
      rc = sk_tcp_server_set(b, 12345, 1);
      break;
    case 1:
      rc = sk_tcp_server_create(&none, NULL, sk_test_echo, NULL);
      break;
    case 2:
      rc = sk_tcp_server_address(a, tiny, sizeof tiny);
      break;
    case 3:
      rc = sk_tcp_server_stat(a, 9999, &v);
      break;
    case 4:
      rc = sk_udp_server_create(&(sk_udp_server *){NULL}, "nonsense", sk_test_echo, NULL);
      break;
    case 5:
      rc = sk_set_log_level(99);
      break;
    }
    ck_assert_msg(rc < 0, "step %d: %d", step, rc);
    ck_assert_msg(sk_last_os_error() == 0, "step %d left the OS error at %d", step,
                  sk_last_os_error());
  }
  sk_tcp_server_destroy(b);
  sk_tcp_server_destroy(a);
}
END_TEST

/* ---- 15: every listener of a wildcard server is dual-stack -------------- */

START_TEST(test_wildcard_listeners_all_dual_stack) {
  if (!sk_test_have_ipv6()) {
    sk_test_skip("test_wildcard_listeners_all_dual_stack", "no IPv6 on this host");
    return;
  }
  sk_tcp_server *srv = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&srv, ":0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IO_THREADS, 3), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(srv), SK_OK);
  /* With net.ipv6.bindv6only=1 a listener without IPV6_V6ONLY=0 would
   * take no IPv4 client: every one must have it off, not only the first. */
  for (int i = 0; i < srv->core.nfds; i++) {
    int v6only = -1;
    socklen_t len = sizeof v6only;
    ck_assert_int_eq(getsockopt(srv->core.fds[i], IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
    ck_assert_msg(v6only == 0, "listener %d is IPv6-only", i);
  }
  sk_tcp_server_destroy(srv);
}
END_TEST

/* ---- 15: warnings about bad input are rate-limited -------------------- */

static atomic_int nul_warnings;

static void count_nul_warnings(int level, const char *message, void *user) {
  (void)user;
  if (level == SK_LOG_WARN && strstr(message, "NUL byte"))
    atomic_fetch_add(&nul_warnings, 1);
}

START_TEST(test_protocol_error_warnings_rate_limited) {
  atomic_store(&nul_warnings, 0);
  sk_set_log_handler(count_nul_warnings, NULL);
  sk_tcp_server *srv = server("127.0.0.1:0", sk_test_echo, SK_MODEL_EVENT_LOOP);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  enum { CLIENTS = 60 };
  long long start = sk_test_now_ms();
  for (int i = 0; i < CLIENTS; i++) {
    int fd = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(sk_test_send_all(fd, "bad\0line\n", 9), 0);
    char buf[8];
    ck_assert_int_eq(sk_test_read_to_eof(fd, buf, sizeof buf, WAIT_MS), 0);
    close(fd);
  }
  long long seconds = (sk_test_now_ms() - start) / 1000 + 2;
  ck_assert_uint_eq(stat_of(srv, SK_STAT_DROPS_NUL), CLIENTS); /* every one counted */
  int lines = atomic_load(&nul_warnings);
  ck_assert_msg(lines >= 1 && lines <= SK_LOG_BURST * seconds,
                "%d warnings for %d bad clients in under %lld s", lines, CLIENTS, seconds);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  sk_set_log_handler(NULL, NULL);
}
END_TEST

static Suite *hardening_suite(void) {
  Suite *s = suite_create("hardening");
  TCase *tc = tcase_create("hardening");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_loop_timer_across_clock_wrap);
  tcase_add_test(tc, test_idle_timeout_across_clock_wrap);
  tcase_add_loop_test(tc, test_pipelined_huge_replies_stay_bounded, 0, NMODELS);
  tcase_add_test(tc, test_max_buffered_caps_all_connections);
  tcase_add_loop_test(tc, test_lost_reply_closes_instead_of_shifting, 0, NMODELS);
  tcase_add_test(tc, test_pool_job_keeps_its_client_address);
  tcase_add_loop_test(tc, test_raw_write_larger_than_max_message, 0, 2);
  tcase_add_loop_test(tc, test_stop_does_not_wait_for_a_hung_service, 0, 2);
  tcase_add_test(tc, test_stop_with_stalled_reader_and_no_write_timeout);
  tcase_add_test(tc, test_udp_stop_does_not_wait_for_a_hung_service);
  tcase_add_loop_test(tc, test_large_message_copies_linear, 0, 2);
  tcase_add_test(tc, test_pool_completions_survive_allocation_failure);
  tcase_add_test(tc, test_os_error_reset_by_failures_without_os_cause);
  tcase_add_test(tc, test_wildcard_listeners_all_dual_stack);
  tcase_add_test(tc, test_protocol_error_warnings_rate_limited);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(hardening_suite());
}
