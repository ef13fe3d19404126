/* test_overload.c -- the TCP and UDP servers under overload and hostile or
 * broken peers: thousands of clients, slow-loris, non-readers, resets,
 * floods, crashing and odd services, and a thousand lifecycles. */
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
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"
#include "tcp.h" /* SK_TCP_READ_CHUNK: the most one read can bring */

/* Generous: these bound waits for conditions, they are not expectations. */
#define WAIT_MS 30000

/* Every size below goes through sk_test_scaled(), so SK_TEST_SCALE=10 (the
 * valgrind run) makes the whole suite ten times lighter. */

static void pause_ms(int ms) {
  struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&d, NULL);
}

static uint64_t stat_of(sk_tcp_server *srv, int stat) {
  uint64_t v = 0;
  ck_assert_int_eq(sk_tcp_server_stat(srv, stat, &v), SK_OK);
  return v;
}

static uint64_t udp_stat_of(sk_udp_server *srv, int stat) {
  uint64_t v = 0;
  ck_assert_int_eq(sk_udp_server_stat(srv, stat, &v), SK_OK);
  return v;
}

static sk_tcp_server *new_server(sk_service service, int model, int io_threads) {
  sk_tcp_server *srv = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", service, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MODEL, model), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IO_THREADS, io_threads), SK_OK);
  if (model == SK_MODEL_WORKER_POOL)
    ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WORKERS, 2), SK_OK);
  return srv;
}

static void expect_bytes(int fd, const char *want, size_t len) {
  char got[256];
  ck_assert_uint_le(len, sizeof got);
  ck_assert_int_eq(sk_test_read_exact(fd, got, len, WAIT_MS), (ssize_t)len);
  ck_assert_msg(memcmp(got, want, len) == 0, "got '%.*s', want '%.*s'", (int)len, got, (int)len,
                want);
}

/* One echo round trip on a fresh connection: the server still serves. */
static void expect_served(const char *address) {
  int fd = sk_test_tcp_connect(address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "probe\n", 6), 0);
  expect_bytes(fd, "probe\n", 6);
  /* A half-close reaches the server even where a fork-model child holds a
   * copy of this socket, which a plain close would not. */
  shutdown(fd, SHUT_WR);
  close(fd);
}

/* A connection closed with RST rather than FIN. */
static void abort_connection(int fd) {
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

/* Warnings are expected by design here (crashes, resets); count the
 * fork model's reports of children killed by a signal, show errors. */
static atomic_int children_killed;
static atomic_int accept_failures; /* accept failed for want of a descriptor */
static void log_handler(int level, const char *message, void *user) {
  (void)user;
  if (strstr(message, "killed by signal"))
    atomic_fetch_add(&children_killed, 1);
  if (strstr(message, "tcp: accept: "))
    atomic_fetch_add(&accept_failures, 1);
  if (level <= SK_LOG_ERROR || getenv("SK_TEST_DEBUG"))
    fprintf(stderr, "sockkit: %s\n", message);
}

/* Replies of a few MiB, built once; const, so any thread may return it. */
#define HUGE_LEN (16u << 20)
static char *huge_reply(void) {
  static char *huge;
  if (!huge) {
    huge = malloc(HUGE_LEN + 1);
    ck_assert_ptr_nonnull(huge);
    for (size_t i = 0; i < HUGE_LEN; i++)
      huge[i] = (char)('a' + i % 26);
    huge[HUGE_LEN] = '\0';
  }
  return huge;
}

/* "null" -> no reply, "empty" -> "", "huge" -> 16 MiB, else an echo. */
static const char *odd_service(const char *request, void *user) {
  (void)user;
  if (strcmp(request, "null") == 0)
    return NULL;
  if (strcmp(request, "empty") == 0)
    return "";
  if (strcmp(request, "huge") == 0)
    return huge_reply();
  return request;
}

/* ---- 5,000 concurrent connections ------------------------------------- */

typedef struct herd_conn {
  int fd;
  int round;
  int got;
  int want;
  char expect[64];
  char buf[64];
} herd_conn;

/* One client thread drives its share of the connections through every
 * round with non-blocking sockets and epoll. */
typedef struct herd {
  herd_conn *conns;
  int first;
  int count;
  int rounds;
  int verified;
  int wrong;
  int errors;
} herd;

/* The request of connection i in round r, its length varying with both. */
static int herd_request(char *buf, size_t size, int i, int r) {
  int pad = (i * 7 + r * 3) % 24;
  return snprintf(buf, size, "conn %05d round %d %.*s\n", i, r, pad, "abcdefghijklmnopqrstuvwx");
}

static bool herd_send(herd_conn *c, int index) {
  c->want = herd_request(c->expect, sizeof c->expect, index, c->round);
  c->got = 0;
  return send(c->fd, c->expect, (size_t)c->want, MSG_NOSIGNAL) == c->want;
}

static void *herd_thread(void *arg) {
  herd *h = arg;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    h->errors = h->count;
    return NULL;
  }
  int open_conns = 0;
  for (int i = 0; i < h->count; i++) {
    herd_conn *c = &h->conns[h->first + i];
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0 || !herd_send(c, h->first + i))
      h->errors++;
    else
      open_conns++;
  }
  long long deadline = sk_test_now_ms() + WAIT_MS;
  struct epoll_event events[256];
  while (open_conns > 0 && sk_test_now_ms() < deadline) {
    int n = epoll_wait(ep, events, 256, 100);
    for (int k = 0; k < n; k++) {
      int i = (int)events[k].data.u32;
      herd_conn *c = &h->conns[h->first + i];
      ssize_t got = recv(c->fd, c->buf + c->got, sizeof c->buf - (size_t)c->got, MSG_DONTWAIT);
      if (got < 0 && errno == EAGAIN)
        continue;
      bool done = false;
      if (got <= 0) {
        h->errors++;
        done = true;
      } else if ((c->got += (int)got) >= c->want) {
        if (c->got != c->want || memcmp(c->buf, c->expect, (size_t)c->want) != 0) {
          h->wrong++;
          done = true;
        } else {
          h->verified++;
          done = ++c->round == h->rounds || !herd_send(c, h->first + i);
          if (done && c->round != h->rounds)
            h->errors++;
        }
      }
      if (done) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        open_conns--;
      }
    }
  }
  close(ep);
  return NULL;
}

/* Connect count non-blocking sockets in batches small enough for the
 * listen backlog, each batch waiting until the server accepted it. */
static int connect_herd(sk_tcp_server *srv, int port, herd_conn *conns, int count) {
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int done = 0;
  while (done < count) {
    int batch = count - done < 250 ? count - done : 250;
    for (int i = done; i < done + batch; i++) {
      conns[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (conns[i].fd < 0)
        return i;
      int on = 1;
      setsockopt(conns[i].fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      if (connect(conns[i].fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS)
        return i;
    }
    done += batch;
    if (!sk_test_wait_tcp_stat(srv, SK_STAT_CONNECTIONS_ACCEPTED, (uint64_t)done, WAIT_MS))
      return done - batch;
  }
  return done;
}

START_TEST(test_five_thousand_concurrent_connections) {
  const int count = sk_test_scaled(5000, 200);
  const int rounds = 4;
  /* Both ends of every connection live in this process. */
  int fds_before = sk_test_fd_count();
  struct rlimit old;
  getrlimit(RLIMIT_NOFILE, &old);
  long need = 2L * count + fds_before + 64;
  if (sk_test_raise_nofile(need) < need) {
    char why[96];
    snprintf(why, sizeof why, "cannot raise RLIMIT_NOFILE to %ld", need);
    sk_test_skip("test_five_thousand_concurrent_connections", why);
    return;
  }
  int threads_before = sk_test_thread_baseline();

  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, new_server(sk_test_echo, SK_MODEL_EVENT_LOOP, 2)),
                   SK_OK);
  herd_conn *conns = calloc((size_t)count, sizeof *conns);
  ck_assert_ptr_nonnull(conns);
  ck_assert_int_eq(connect_herd(t.srv, t.port, conns, count), count);
  /* All of them open at once before the first request. */
  ck_assert(sk_test_wait_tcp_stat_eq(t.srv, SK_STAT_CONNECTIONS_ACTIVE, (uint64_t)count, WAIT_MS));

  herd herds[2] = {{conns, 0, count / 2, rounds, 0, 0, 0},
                   {conns, count / 2, count - count / 2, rounds, 0, 0, 0}};
  pthread_t threads[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&threads[i], NULL, herd_thread, &herds[i]), 0);
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(sk_test_join(threads[i], WAIT_MS + 10000), 0);
  int verified = herds[0].verified + herds[1].verified;
  ck_assert_int_eq(herds[0].wrong + herds[1].wrong, 0);
  ck_assert_int_eq(herds[0].errors + herds[1].errors, 0);
  ck_assert_int_eq(verified, count * rounds); /* none lost */

  uint64_t bytes = 0;
  for (int i = 0; i < count; i++)
    for (int r = 0; r < rounds; r++) {
      char buf[64];
      bytes += (uint64_t)herd_request(buf, sizeof buf, i, r) - 1; /* without the newline */
    }
  for (int i = 0; i < count; i++)
    close(conns[i].fd);
  free(conns);
  ck_assert(sk_test_wait_tcp_stat_eq(t.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_CONNECTIONS_ACCEPTED), (uint64_t)count);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_MESSAGES_IN), (uint64_t)count * rounds);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_MESSAGES_OUT), (uint64_t)count * rounds);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_BYTES_IN), bytes);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_BYTES_OUT), bytes);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_CONNECTIONS_REJECTED), 0);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_CONNECTIONS_RESET), 0);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_CONNECTIONS_TIMED_OUT), 0);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_BYTES_BUFFERED), 0);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
  ck_assert(sk_test_wait_threads(threads_before, WAIT_MS));
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}
END_TEST

/* ---- slow-loris ------------------------------------------------------- */

/* A client of the normal kind: request, reply, verify, until told to stop. */
typedef struct steady_client {
  const char *address;
  int id;
  atomic_bool *stop;
  int verified;
  int failed;
} steady_client;

static void *steady_thread(void *arg) {
  steady_client *c = arg;
  int fd = sk_test_tcp_connect(c->address);
  if (fd < 0) {
    c->failed++;
    return NULL;
  }
  for (int k = 0; !atomic_load(c->stop) && c->failed == 0; k++) {
    char req[64], got[64];
    int len = snprintf(req, sizeof req, "steady %d request %d\n", c->id, k);
    if (sk_test_send_all(fd, req, (size_t)len) != 0 ||
        sk_test_read_exact(fd, got, (size_t)len, WAIT_MS) != len ||
        memcmp(got, req, (size_t)len) != 0)
      c->failed++;
    else
      c->verified++;
  }
  close(fd);
  return NULL;
}

#define STEADY 4

typedef struct steady_group {
  atomic_bool stop;
  pthread_t threads[STEADY];
  steady_client clients[STEADY];
} steady_group;

static void steady_start(steady_group *g, const char *address) {
  atomic_store(&g->stop, false);
  for (int i = 0; i < STEADY; i++) {
    g->clients[i] = (steady_client){.address = address, .id = i, .stop = &g->stop};
    ck_assert_int_eq(pthread_create(&g->threads[i], NULL, steady_thread, &g->clients[i]), 0);
  }
}

/* Stop and join; every client must have been served without a failure.
 * Returns the replies verified. */
static int steady_finish(steady_group *g, int min_each) {
  atomic_store(&g->stop, true);
  int total = 0;
  for (int i = 0; i < STEADY; i++) {
    ck_assert_int_eq(sk_test_join(g->threads[i], WAIT_MS + 5000), 0);
    ck_assert_msg(g->clients[i].failed == 0, "steady client %d failed", i);
    ck_assert_int_ge(g->clients[i].verified, min_each);
    total += g->clients[i].verified;
  }
  return total;
}

START_TEST(test_slow_loris_closed_by_idle_timeout_others_served) {
  const int count = sk_test_scaled(500, 20);
  const int idle_ms = 1000;
  struct rlimit old;
  getrlimit(RLIMIT_NOFILE, &old);
  long need = 2L * count + sk_test_fd_count() + 64;
  if (sk_test_raise_nofile(need) < need) {
    sk_test_skip("test_slow_loris_closed_by_idle_timeout_others_served",
                 "cannot raise RLIMIT_NOFILE far enough");
    return;
  }
  sk_tcp_server *srv = new_server(sk_test_echo, SK_MODEL_EVENT_LOOP, 1);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IDLE_TIMEOUT_MS, idle_ms), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);

  int *fds = calloc((size_t)count, sizeof *fds);
  long long *opened = calloc((size_t)count, sizeof *opened);
  int *sent = calloc((size_t)count, sizeof *sent);
  ck_assert(fds && opened && sent);
  for (int i = 0; i < count; i++) {
    fds[i] = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(fds[i], 0);
    int on = 1;
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    opened[i] = sk_test_now_ms();
  }
  steady_group g;
  steady_start(&g, t.address);

  /* One byte per client every 100 ms, never a newline. */
  int closed = 0, replied = 0, min_sent = 1 << 30;
  long long min_alive = 1LL << 40;
  long long deadline = sk_test_now_ms() + 4 * idle_ms + WAIT_MS;
  while (closed < count && sk_test_now_ms() < deadline) {
    for (int i = 0; i < count; i++) {
      if (fds[i] < 0)
        continue;
      char b;
      ssize_t n = recv(fds[i], &b, 1, MSG_DONTWAIT);
      if (n > 0)
        replied++;
      bool gone = n == 0 || (n < 0 && errno != EAGAIN);
      if (!gone && send(fds[i], "x", 1, MSG_NOSIGNAL) != 1)
        gone = true;
      if (!gone) {
        sent[i]++;
        continue;
      }
      long long alive = sk_test_now_ms() - opened[i];
      min_alive = alive < min_alive ? alive : min_alive;
      min_sent = sent[i] < min_sent ? sent[i] : min_sent;
      close(fds[i]);
      fds[i] = -1;
      closed++;
    }
    pause_ms(100);
  }
  int served = steady_finish(&g, 1);

  ck_assert_int_eq(closed, count);
  ck_assert_int_eq(replied, 0);
  /* They trickled for a while and went at the idle timeout, not before. */
  ck_assert_int_ge(min_alive, idle_ms / 2);
  ck_assert_int_ge(min_sent, 3);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_CONNECTIONS_TIMED_OUT), (uint64_t)count);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_MESSAGES_IN), (uint64_t)served);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_MESSAGES_OUT), (uint64_t)served);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_DROPS_TRUNCATED), 0);
  ck_assert(sk_test_wait_tcp_stat_eq(t.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_CONNECTIONS_ACCEPTED), (uint64_t)count + STEADY);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  free(fds);
  free(opened);
  free(sent);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}
END_TEST

/* ---- clients that pipeline and never read ----------------------------- */

typedef struct hog {
  sk_tcp_server *srv;
  int fd;
  size_t sent;
} hog;

/* True once the server has taken no request for `ms`. */
static bool server_quiet(sk_tcp_server *srv, int ms) {
  uint64_t before = 0, after = 0;
  sk_tcp_server_stat(srv, SK_STAT_MESSAGES_IN, &before);
  pause_ms(ms);
  sk_tcp_server_stat(srv, SK_STAT_MESSAGES_IN, &after);
  return before == after;
}

/* Pipeline 32-byte requests without reading until the socket takes
 * nothing more and the server has stopped serving requests (a slow server,
 * e.g. under a sanitizer, still working is not yet a server that stopped
 * reading), or `limit` bytes are out. */
static void *hog_thread(void *arg) {
  hog *h = arg;
  static const char line[] = "0123456789abcdef0123456789abcde\n";
  char chunk[16384];
  for (size_t i = 0; i < sizeof chunk; i += 32)
    memcpy(chunk + i, line, 32);
  const size_t limit = 16u << 20;
  long long deadline = sk_test_now_ms() + WAIT_MS / 2;
  while (h->sent < limit && sk_test_now_ms() < deadline) {
    ssize_t n = send(h->fd, chunk, sizeof chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      h->sent += (size_t)n;
      continue;
    }
    if (n < 0 && errno != EAGAIN)
      break;
    struct pollfd p = {.fd = h->fd, .events = POLLOUT};
    if (poll(&p, 1, 100) == 0 && server_quiet(h->srv, 200))
      break;
  }
  return NULL;
}

static bool quiet_for_300ms(void *srv) {
  return server_quiet(srv, 300);
}

START_TEST(test_non_reading_pipeliners_stay_under_memory_bound) {
  const int model = _i == 0 ? SK_MODEL_EVENT_LOOP : SK_MODEL_WORKER_POOL;
  const int nhogs = sk_test_scaled(16, 4);
  const long long high_water = 65536, max_buffered = 262144, max_message = 1024;
  sk_tcp_server *srv = new_server(sk_test_echo, model, 1);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, high_water), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_BUFFERED, max_buffered), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_MESSAGE, max_message), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WRITE_TIMEOUT_MS, 0), SK_OK);
  /* Small kernel buffers, so user-space buffering is what is measured. */
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_RCVBUF, 65536), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_SNDBUF, 65536), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);

  hog hogs[16];
  pthread_t threads[16];
  for (int i = 0; i < nhogs; i++) {
    hogs[i] = (hog){.srv = srv, .fd = sk_test_tcp_connect(t.address)};
    ck_assert_int_ge(hogs[i].fd, 0);
    int small = 4096;
    setsockopt(hogs[i].fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, (uint64_t)nhogs, WAIT_MS));
  long rss_before = sk_test_rss_kib();
  for (int i = 0; i < nhogs; i++)
    ck_assert_int_eq(pthread_create(&threads[i], NULL, hog_thread, &hogs[i]), 0);
  size_t sent = 0;
  for (int i = 0; i < nhogs; i++) {
    ck_assert_int_eq(sk_test_join(threads[i], WAIT_MS), 0);
    sent += hogs[i].sent;
  }
  ck_assert(sk_test_wait(quiet_for_300ms, srv, WAIT_MS));
  long rss_after = sk_test_rss_kib();
  uint64_t buffered = stat_of(srv, SK_STAT_BYTES_BUFFERED);
  /* Past the cap no connection with output is read, but each may have
   * had one read in progress: its replies come on top. */
  uint64_t burst = (uint64_t)SK_TCP_READ_CHUNK + (uint64_t)max_message + 8;
  uint64_t bound = (uint64_t)max_buffered + (uint64_t)nhogs * burst;
  ck_assert_uint_gt(buffered, 0);
  ck_assert_msg(buffered <= bound, "%llu bytes buffered, bound %llu", (unsigned long long)buffered,
                (unsigned long long)bound);
  ck_assert_uint_gt(sent, bound); /* the clients did push more than that */
  if (!sk_test_sanitized() && rss_before > 0 && rss_after > 0)
    ck_assert_msg(rss_after - rss_before < (long)(bound / 1024) + 16384,
                  "resident size grew by %ld KiB for %zu bytes pipelined", rss_after - rss_before,
                  sent);
  /* Meanwhile everybody else is served. */
  expect_served(t.address);
  for (int i = 0; i < nhogs; i++)
    close(hogs[i].fd);
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_BYTES_BUFFERED, 0, WAIT_MS));
  ck_assert_uint_eq(stat_of(srv, SK_STAT_CONNECTIONS_TIMED_OUT), 0);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_DROPS_TRUNCATED), 0);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* A paused connection resumes once its output drains below half the
 * high-water mark, not only when all of it has left: a client that reads
 * steadily but slowly keeps being served, without stalls of a whole
 * high-water mark each. */
#define RESUME_REPLY 32768
static char resume_reply[RESUME_REPLY + 1]; /* filled before the server starts */
static const char *resume_service(const char *request, void *user) {
  (void)request;
  (void)user;
  return resume_reply;
}

START_TEST(test_paused_connection_resumes_below_half_high_water) {
  const int model = _i == 0 ? SK_MODEL_EVENT_LOOP : SK_MODEL_WORKER_POOL;
  const long long high_water = 2 << 20;
  const size_t each = RESUME_REPLY + 1; /* the reply and its '\n' */
  memset(resume_reply, 'r', RESUME_REPLY);
  sk_tcp_server *srv = new_server(resume_service, model, 1);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, high_water), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WRITE_TIMEOUT_MS, 0), SK_OK);
  /* Small kernel buffers: what the kernel holds stays far below half the
   * mark, so what the server holds is known from what the client read. */
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_SNDBUF, 65536), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect_rcvbuf(t.address, 16384);
  ck_assert_int_ge(fd, 0);

  /* Four times the mark in requests, sent at once; the server serves
   * until its output reaches the mark, then pauses. */
  const size_t requests = (size_t)(4 * high_water) / each;
  char *burst = malloc(requests * 2);
  ck_assert_ptr_nonnull(burst);
  for (size_t i = 0; i < requests; i++)
    memcpy(burst + 2 * i, "x\n", 2);
  ck_assert_int_eq(sk_test_send_all(fd, burst, requests * 2), 0);
  free(burst);
  ck_assert(sk_test_wait_tcp_stat(srv, SK_STAT_BYTES_BUFFERED, (uint64_t)high_water, WAIT_MS));
  ck_assert(sk_test_wait(quiet_for_300ms, srv, WAIT_MS));
  uint64_t served = stat_of(srv, SK_STAT_MESSAGES_OUT);
  uint64_t buffered = stat_of(srv, SK_STAT_BYTES_BUFFERED);
  ck_assert_uint_lt(served, requests);
  ck_assert_uint_ge(buffered, (uint64_t)high_water);
  ck_assert_uint_le(buffered, (uint64_t)high_water + 2 * each);

  /* Read all but half the mark less one reply: whatever the kernel holds,
   * the server now holds less than half the mark, but far from nothing. */
  size_t produced = (size_t)served * each;
  size_t take = produced - (size_t)high_water / 2 + each;
  char *got = malloc(take);
  ck_assert_ptr_nonnull(got);
  ck_assert_int_eq(sk_test_read_exact(fd, got, take, WAIT_MS), (ssize_t)take);
  for (size_t i = 0; i < take; i++)
    ck_assert_int_eq(got[i], i % each == RESUME_REPLY ? '\n' : 'r');
  free(got);
  ck_assert_msg(sk_test_wait_tcp_stat(srv, SK_STAT_MESSAGES_OUT, served + 1, WAIT_MS),
                "no reply served after the output fell below half the mark (%llu bytes held)",
                (unsigned long long)stat_of(srv, SK_STAT_BYTES_BUFFERED));
  close(fd);
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_BYTES_BUFFERED, 0, WAIT_MS));
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* ---- broken clients --------------------------------------------------- */

/* The models whose clients may live in this process (see the fork test). */
static const int local_models[] = {SK_MODEL_EVENT_LOOP, SK_MODEL_WORKER_POOL,
                                   SK_MODEL_THREAD_PER_CONNECTION};

/* Each client asks for 16 MiB, reads a little of it and resets. */
START_TEST(test_reset_mid_reply) {
  const int model = local_models[_i];
  const int count = sk_test_scaled(40, 4);
  huge_reply();
  sk_tcp_server *srv = new_server(odd_service, model, 1);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_SNDBUF, 65536), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  for (int i = 0; i < count; i++) {
    int fd = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(fd, 0);
    int small = 16384;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ck_assert_int_eq(sk_test_send_all(fd, "huge\n", 5), 0);
    char got[4096];
    ck_assert_int_eq(sk_test_read_exact(fd, got, sizeof got, WAIT_MS), (ssize_t)sizeof got);
    ck_assert(memcmp(got, huge_reply(), sizeof got) == 0);
    abort_connection(fd);
    if (i % 8 == 0)
      expect_served(t.address);
  }
  int probes = (count + 7) / 8;
  /* Every reset is seen and counted, and its unsent reply is released. */
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_RESET, (uint64_t)count, WAIT_MS));
  ck_assert_uint_eq(stat_of(srv, SK_STAT_BYTES_BUFFERED), 0);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_MESSAGES_IN), (uint64_t)(count + probes));
  ck_assert_uint_eq(stat_of(srv, SK_STAT_CONNECTIONS_ACCEPTED), (uint64_t)(count + probes));
  ck_assert_uint_eq(stat_of(srv, SK_STAT_CONNECTIONS_TIMED_OUT), 0);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

#define HALF_REQUESTS 20

/* Clients that pipeline, leave an incomplete tail and half-close: every
 * whole request is answered, then EOF. */
typedef struct half_client {
  const char *address;
  int id;
  int clients;
  int verified;
  int failed;
} half_client;

static void *half_thread(void *arg) {
  half_client *c = arg;
  for (int n = 0; n < c->clients; n++) {
    char req[HALF_REQUESTS * 40 + 32];
    size_t len = 0;
    for (int k = 0; k < HALF_REQUESTS; k++)
      len += (size_t)snprintf(req + len, sizeof req - len, "half %d/%d #%d\n", c->id, n, k);
    size_t whole = len;
    len += (size_t)snprintf(req + len, sizeof req - len, "never completed");
    int fd = sk_test_tcp_connect(c->address);
    char got[sizeof req];
    if (fd < 0 || sk_test_send_all(fd, req, len) != 0 || shutdown(fd, SHUT_WR) != 0 ||
        sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS) != (ssize_t)whole ||
        memcmp(got, req, whole) != 0)
      c->failed++;
    else
      c->verified += HALF_REQUESTS;
    if (fd >= 0)
      close(fd);
  }
  return NULL;
}

START_TEST(test_half_close_and_vanishing_clients) {
  const int model = local_models[_i];
  const int per_thread = sk_test_scaled(25, 3), nthreads = 4;
  const int vanish = sk_test_scaled(50, 5);
  sk_tcp_server *srv = new_server(sk_test_echo, model, 1);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);

  pthread_t threads[4];
  half_client half[4];
  for (int i = 0; i < nthreads; i++) {
    half[i] = (half_client){.address = t.address, .id = i, .clients = per_thread};
    ck_assert_int_eq(pthread_create(&threads[i], NULL, half_thread, &half[i]), 0);
  }
  /* Meanwhile, five kinds of clients that vanish. */
  for (int i = 0; i < vanish; i++) {
    for (int kind = 0; kind < 5; kind++) {
      int fd = sk_test_tcp_connect(t.address);
      ck_assert_int_ge(fd, 0);
      if (kind == 1 || kind == 4)
        ck_assert_int_eq(sk_test_send_all(fd, "partial", 7), 0);
      if (kind == 3)
        ck_assert_int_eq(sk_test_send_all(fd, "unread\n", 7), 0); /* reply never read */
      if (kind >= 2 && kind != 3)
        abort_connection(fd);
      else
        close(fd);
    }
  }
  int verified = 0;
  for (int i = 0; i < nthreads; i++) {
    ck_assert_int_eq(sk_test_join(threads[i], WAIT_MS + 5000), 0);
    ck_assert_int_eq(half[i].failed, 0);
    verified += half[i].verified;
  }
  ck_assert_int_eq(verified, nthreads * per_thread * HALF_REQUESTS);
  expect_served(t.address);

  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  uint64_t clients = (uint64_t)nthreads * per_thread + 5u * vanish + 1;
  ck_assert_uint_eq(stat_of(srv, SK_STAT_CONNECTIONS_ACCEPTED), clients);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_MESSAGES_IN), (uint64_t)verified + vanish + 1);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_MESSAGES_OUT), (uint64_t)verified + vanish + 1);
  /* Resets: every client that sent RST (kinds 2 and 4), and perhaps those
   * whose reply met a closed socket (kind 3); nothing else. */
  uint64_t resets = stat_of(srv, SK_STAT_CONNECTIONS_RESET);
  ck_assert_uint_ge(resets, 2u * vanish);
  ck_assert_uint_le(resets, 3u * vanish);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_CONNECTIONS_TIMED_OUT), 0);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_BYTES_BUFFERED), 0);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* ---- a UDP flood next to TCP clients ---------------------------------- */

typedef struct flooder {
  const char *address;
  atomic_bool *stop;
  uint64_t sent;
  int failed;
} flooder;

static void *flood_thread(void *arg) {
  flooder *f = arg;
  int fd = sk_test_udp_socket(f->address);
  if (fd < 0) {
    f->failed = 1;
    return NULL;
  }
  char msg[64];
  memset(msg, 'u', sizeof msg);
  /* Full speed, bounded by the stop flag and a count. */
  while (!atomic_load(f->stop) && f->sent < 50000000) {
    if (send(fd, msg, sizeof msg, MSG_DONTWAIT) == (ssize_t)sizeof msg)
      f->sent++;
    else if (errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED)
      f->failed = 1;
  }
  close(fd);
  return NULL;
}

START_TEST(test_udp_flood_while_tcp_clients_served) {
  sk_test_udp u;
  ck_assert_int_eq(sk_test_udp_start(&u, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  atomic_bool stop = false;
  enum { FLOODERS = 3 };
  flooder f[FLOODERS];
  pthread_t threads[FLOODERS];
  for (int i = 0; i < FLOODERS; i++) {
    f[i] = (flooder){.address = u.address, .stop = &stop};
    ck_assert_int_eq(pthread_create(&threads[i], NULL, flood_thread, &f[i]), 0);
  }
  steady_group g;
  steady_start(&g, t.address);
  pause_ms(1500);
  atomic_store(&stop, true);
  uint64_t sent = 0;
  for (int i = 0; i < FLOODERS; i++) {
    ck_assert_int_eq(sk_test_join(threads[i], WAIT_MS), 0);
    ck_assert_int_eq(f[i].failed, 0);
    sent += f[i].sent;
  }
  int served = steady_finish(&g, 5);
  ck_assert_uint_eq(stat_of(t.srv, SK_STAT_MESSAGES_OUT), (uint64_t)served);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);

  /* Stopped, so the counters are final: every datagram taken was answered
   * or its reply counted as a drop, by reason. */
  sk_udp_server_stop(u.srv);
  ck_assert(sk_test_join(u.thread, WAIT_MS) == 0);
  uint64_t in = udp_stat_of(u.srv, SK_STAT_MESSAGES_IN);
  uint64_t out = udp_stat_of(u.srv, SK_STAT_MESSAGES_OUT);
  uint64_t drops =
      udp_stat_of(u.srv, SK_STAT_DROPS_WOULD_BLOCK) + udp_stat_of(u.srv, SK_STAT_DROPS_SEND_ERROR) +
      udp_stat_of(u.srv, SK_STAT_DROPS_TOO_LARGE) + udp_stat_of(u.srv, SK_STAT_DROPS_NO_ADDRESS);
  ck_assert_uint_gt(sent, 1000);
  ck_assert_uint_gt(in, 100);
  ck_assert_uint_le(in, sent);
  ck_assert_uint_eq(out + drops, in);
  ck_assert_uint_eq(udp_stat_of(u.srv, SK_STAT_BYTES_IN), in * 64);
  sk_udp_server_destroy(u.srv);
}
END_TEST

/* ---- services that crash or answer oddly ------------------------------ */

static const char *crashing_service(const char *request, void *user) {
  (void)user;
  if (strcmp(request, "abort") == 0)
    abort();
  if (strcmp(request, "kill") == 0)
    raise(SIGKILL);
  return request;
}

/* The fork model runs in this process (not sk_test_proc) so its counters
 * can be read. Its children inherit this process's client sockets, so
 * clients half-close: shutdown reaches the server whatever copies exist. */
START_TEST(test_fork_model_crash_kills_only_that_child) {
  const int count = sk_test_scaled(40, 8);
  int fds_before = sk_test_fd_count();
  atomic_store(&children_killed, 0);
  sk_tcp_server *srv = new_server(crashing_service, SK_MODEL_PROCESS_PER_CONNECTION, 1);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int ok = 0, crashed = 0, probes = 0;
  for (int i = 0; i < count; i++) {
    int fd = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(fd, 0);
    char req[32], got[32];
    int kind = i % 4; /* 0, 1: normal; 2: abort; 3: SIGKILL */
    int len = kind == 2   ? snprintf(req, sizeof req, "abort\n")
              : kind == 3 ? snprintf(req, sizeof req, "kill\n")
                          : snprintf(req, sizeof req, "client %d\n", i);
    ck_assert_int_eq(sk_test_send_all(fd, req, (size_t)len), 0);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ssize_t n = sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS);
    close(fd);
    if (kind < 2) {
      ck_assert_int_eq(n, len);
      ck_assert(memcmp(got, req, (size_t)len) == 0);
      ok++;
    } else {
      ck_assert_int_le(n, 0); /* EOF or reset, and no reply */
      crashed++;
      expect_served(t.address);
      probes++;
    }
  }
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  ck_assert_uint_eq(stat_of(srv, SK_STAT_CONNECTIONS_ACCEPTED), (uint64_t)(count + probes));
  /* Children count their requests in the parent's counters, those passed
   * to a service that then crashed too (SK_STAT_MESSAGES_IN: "requests
   * passed to the service"). */
  uint64_t in = stat_of(srv, SK_STAT_MESSAGES_IN);
  ck_assert_msg(in == (uint64_t)(count + probes),
                "%llu requests counted in, %d passed to the service", (unsigned long long)in,
                count + probes);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_MESSAGES_OUT), (uint64_t)(ok + probes));
  ck_assert_uint_eq(stat_of(srv, SK_STAT_CONNECTIONS_TIMED_OUT), 0);
  ck_assert_int_eq(atomic_load(&children_killed), crashed);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* every child reaped */
  ck_assert_int_eq(errno, ECHILD);
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
}
END_TEST

static const int odd_framings[] = {SK_FRAME_LINE, SK_FRAME_LENGTH, SK_FRAME_RAW};

/* Appends `payload` framed for `framing` to buf at *len. */
static void frame_into(char *buf, size_t *len, int framing, const char *payload, size_t n) {
  if (framing == SK_FRAME_LENGTH) {
    uint32_t be = htonl((uint32_t)n);
    memcpy(buf + *len, &be, 4);
    *len += 4;
  }
  memcpy(buf + *len, payload, n);
  *len += n;
  if (framing == SK_FRAME_LINE)
    buf[(*len)++] = '\n';
}

/* NULL, "" and 16 MiB replies, in every model (not fork) and framing. */
START_TEST(test_service_returns_null_empty_and_huge) {
  const int model = local_models[_i / 3], framing = odd_framings[_i % 3];
  huge_reply();
  sk_tcp_server *srv = new_server(odd_service, model, 1);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_FRAMING, framing), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);

  static const char *const script[] = {"a", "null", "empty", "huge", "b", "null", "c"};
  const int steps = (int)(sizeof script / sizeof script[0]);
  size_t want_len = 0;
  uint64_t want_out = 0, want_bytes = 0;
  char *want = malloc(HUGE_LEN + 1024), *got = malloc(HUGE_LEN + 1024);
  ck_assert(want && got);
  size_t step_end[8];
  for (int k = 0; k < steps; k++) {
    const char *reply = odd_service(script[k], NULL);
    if (reply) {
      frame_into(want, &want_len, framing, reply, strlen(reply));
      want_out++;
      want_bytes += strlen(reply);
    }
    step_end[k] = want_len;
  }
  if (framing != SK_FRAME_RAW) {
    /* Pipelined in one write. */
    char req[256];
    size_t len = 0;
    for (int k = 0; k < steps; k++)
      frame_into(req, &len, framing, script[k], strlen(script[k]));
    ck_assert_int_eq(sk_test_send_all(fd, req, len), 0);
    ck_assert_int_eq(sk_test_read_exact(fd, got, want_len, WAIT_MS), (ssize_t)want_len);
  } else {
    /* One read is one message: each goes once the last was served, and
     * its reply is read before the next (past the high-water mark the
     * server would not read the next request before that). */
    for (int k = 0; k < steps; k++) {
      ck_assert_int_eq(sk_test_send_all(fd, script[k], strlen(script[k])), 0);
      ck_assert_msg(sk_test_wait_tcp_stat(srv, SK_STAT_MESSAGES_IN, (uint64_t)k + 1, WAIT_MS),
                    "request %d (%s) not served", k, script[k]);
      size_t from = k ? step_end[k - 1] : 0;
      ck_assert_int_eq(sk_test_read_exact(fd, got + from, step_end[k] - from, WAIT_MS),
                       (ssize_t)(step_end[k] - from));
    }
  }
  ck_assert(memcmp(got, want, want_len) == 0);
  /* Nothing more: the NULL replies really sent nothing. */
  ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
  char extra[16];
  ck_assert_int_eq(sk_test_read_to_eof(fd, extra, sizeof extra, WAIT_MS), 0);
  close(fd);
  ck_assert(sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  ck_assert_uint_eq(stat_of(srv, SK_STAT_MESSAGES_IN), (uint64_t)steps);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_MESSAGES_OUT), want_out);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_BYTES_OUT), want_bytes);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_DROPS_TOO_LARGE), 0);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_BYTES_BUFFERED), 0);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  free(got);
  free(want);
}
END_TEST

/* ---- a thousand lifecycles -------------------------------------------- */

static const int cycle_models[][2] = {
    /* model, I/O threads */
    {SK_MODEL_EVENT_LOOP, 1},
    {SK_MODEL_EVENT_LOOP, 2},
    {SK_MODEL_WORKER_POOL, 1},
    {SK_MODEL_THREAD_PER_CONNECTION, 1},
    {SK_MODEL_PROCESS_PER_CONNECTION, 1},
};

/* Cycle i: create -> options -> start -> (every tenth: one request) ->
 * stop -> destroy. Returns the number of requests made. */
static int tcp_cycle(int i, const char *unix_address) {
  const int *m = cycle_models[i % 5];
  const char *address = i % 3 == 2 ? unix_address : "127.0.0.1:0";
  sk_tcp_server *srv = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MODEL, m[0]), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IO_THREADS, m[1]), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_WORKERS, 2), SK_OK);
  ck_assert_int_eq(sk_tcp_server_start(srv), SK_OK);
  /* Not in the fork model: its child would hold this test's sockets. */
  bool ask = i % 10 == 0 && m[0] != SK_MODEL_PROCESS_PER_CONNECTION;
  if (ask) {
    char bound[SK_ADDRSTRLEN];
    ck_assert_int_eq(sk_tcp_server_address(srv, bound, sizeof bound), SK_OK);
    int fd = sk_test_tcp_connect(bound);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(sk_test_send_all(fd, "cycle\n", 6), 0);
    expect_bytes(fd, "cycle\n", 6);
    close(fd);
  }
  ck_assert_int_eq(sk_tcp_server_stop(srv), SK_OK);
  sk_tcp_server_destroy(srv);
  return ask;
}

static int udp_cycle(int i, const char *unix_address) {
  const int *m = cycle_models[i % 3]; /* UDP: loop, two loops, pool */
  const char *address = i % 3 == 2 ? unix_address : "127.0.0.1:0";
  sk_udp_server *srv = NULL;
  ck_assert_int_eq(sk_udp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MODEL, m[0]), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_IO_THREADS, m[1]), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_WORKERS, 2), SK_OK);
  ck_assert_int_eq(sk_udp_server_start(srv), SK_OK);
  bool ask = i % 10 == 0;
  if (ask) {
    char bound[SK_ADDRSTRLEN], reply[16];
    ck_assert_int_eq(sk_udp_server_address(srv, bound, sizeof bound), SK_OK);
    int fd = sk_test_udp_socket(bound);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(sk_test_udp_exchange(fd, "cycle", 5, reply, sizeof reply, WAIT_MS), 5);
    close(fd);
  }
  ck_assert_int_eq(sk_udp_server_stop(srv), SK_OK);
  sk_udp_server_destroy(srv);
  return ask;
}

START_TEST(test_thousand_lifecycles_leak_nothing) {
  const bool tcp = _i == 0;
  const int cycles = sk_test_scaled(1000, 50);
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char unix_address[256];
  snprintf(unix_address, sizeof unix_address, "unix:%s/cycle.sock", dir);
  /* A few rounds first, so that one-time allocations (thread arenas, the
   * per-thread reply buffers of this thread) are in the baseline. */
  for (int i = 0; i < 10; i++)
    tcp ? tcp_cycle(i, unix_address) : udp_cycle(i, unix_address);
  int fds_before = sk_test_fd_count();
  int threads_before = sk_test_thread_baseline();
  long long heap_before = sk_test_heap_bytes();
  int asked = 0;
  for (int i = 0; i < cycles; i++)
    asked += tcp ? tcp_cycle(i, unix_address) : udp_cycle(i, unix_address);
  ck_assert_int_eq(asked, (cycles + 9) / 10);
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
  ck_assert(sk_test_wait_threads(threads_before, WAIT_MS));
  long long heap_after = sk_test_heap_bytes();
  /* Under 32 bytes a cycle: a leak of even one small block per server
   * would pass that. (Sanitized builds: LeakSanitizer checks instead.) */
  if (heap_before >= 0)
    ck_assert_msg(heap_after - heap_before < 32LL * cycles, "heap grew by %lld bytes in %d cycles",
                  heap_after - heap_before, cycles);
  struct stat st;
  ck_assert_int_ne(stat(unix_address + 5, &st), 0); /* destroy removed it */
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
  sk_test_rmdir(dir);
}
END_TEST

/* ---- descriptors run out on several loops ------------------------------ */

/* Several loops, on TCP (a listener each) and on a UNIX path (one listener
 * shared with EPOLLEXCLUSIVE). */
static const struct {
  bool unix_path;
  int io_threads;
} emfile_configs[] = {{false, 2}, {false, 3}, {true, 2}, {true, 3}};

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool accept_failed(void *arg) {
  (void)arg;
  return atomic_load(&accept_failures) > 0;
}

/* The limit is lowered to the lowest free descriptor number, so every
 * number below it is taken and no descriptor can be created at all -- not
 * even the server's reserve again once it gives it up (its number lies
 * above the limit), so the loops can only rest their listeners. The test's
 * clients are sockets created beforehand: connect() needs no descriptor. */
START_TEST(test_descriptor_exhaustion_on_several_loops_does_not_spin) {
  /* valgrind checks new descriptors against the limit itself, closing
   * what the kernel accepted beyond it: valgrind would be under test. */
  const char *preload = getenv("LD_PRELOAD");
  if (preload && strstr(preload, "vgpreload"))
    return;
  const bool unix_path = emfile_configs[_i].unix_path;
  const int nio = emfile_configs[_i].io_threads;
  char *dir = NULL, address[256] = "127.0.0.1:0";
  if (unix_path) {
    dir = sk_test_tmpdir();
    snprintf(address, sizeof address, "unix:%s/s", dir);
  }
  int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ck_assert_int_ge(probe, 0);
  close(probe); /* probe: the lowest free number, below the server's */
  sk_tcp_server *srv = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IO_THREADS, nio), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  sk_addr a;
  ck_assert_int_eq(sk__addr_parse(&a, t.address), 0);
  enum { NCLIENTS = 8 };
  int clients[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++) {
    clients[i] = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(clients[i], 0);
  }
  atomic_store(&accept_failures, 0);
  struct rlimit old;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  struct rlimit none = {.rlim_cur = (rlim_t)probe, .rlim_max = old.rlim_max};
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &none), 0);

  int connected = 0;
  for (int i = 0; i < NCLIENTS; i++)
    connected += connect(clients[i], (struct sockaddr *)&a.ss, a.len) == 0;
  bool failed = sk_test_wait(accept_failed, NULL, WAIT_MS);
  /* While nothing can be accepted the loops rest; they do not spin. */
  int failures_before = atomic_load(&accept_failures);
  double cpu_before = cpu_seconds();
  long long wall_before = sk_test_now_ms();
  pause_ms(600);
  double cpu = cpu_seconds() - cpu_before;
  double wall = (double)(sk_test_now_ms() - wall_before) / 1000.0;
  int failures = atomic_load(&accept_failures) - failures_before;
  uint64_t accepted = stat_of(srv, SK_STAT_CONNECTIONS_ACCEPTED);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);

  ck_assert_int_eq(connected, NCLIENTS);
  ck_assert(failed);
  ck_assert_msg(cpu < 0.3 * wall, "%d loop(s) used %.3f s of CPU in %.3f s", nio, cpu, wall);
  /* A loop rests ACCEPT_PAUSE_MS (100 ms) between attempts: a handful each. */
  ck_assert_msg(failures <= 20 * nio, "%d failed accepts in %.3f s", failures, wall);
  /* No client was taken on while no descriptor was free. */
  ck_assert_uint_eq(accepted, 0);
  /* Descriptors are back: the waiting clients are served (or shed, had a
   * reserve been usable), and so is a new one. */
  int served = 0, shed = 0;
  for (int i = 0; i < NCLIENTS; i++) {
    char line[32], got[32];
    int len = snprintf(line, sizeof line, "client %d\n", i);
    if (sk_test_send_all(clients[i], line, (size_t)len) == 0 &&
        sk_test_read_exact(clients[i], got, (size_t)len, WAIT_MS) == len) {
      ck_assert(memcmp(got, line, (size_t)len) == 0);
      served++;
    } else {
      shed++;
    }
    close(clients[i]);
  }
  expect_served(t.address);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_CONNECTIONS_ACCEPTED), (uint64_t)served + 1);
  ck_assert_uint_eq(stat_of(srv, SK_STAT_CONNECTIONS_REJECTED), (uint64_t)shed);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  if (dir)
    sk_test_rmdir(dir);
}
END_TEST

static Suite *overload_suite(void) {
  Suite *s = suite_create("overload");
  TCase *load = tcase_create("load");
  tcase_set_timeout(load, 120);
  tcase_add_test(load, test_five_thousand_concurrent_connections);
  tcase_add_test(load, test_slow_loris_closed_by_idle_timeout_others_served);
  tcase_add_loop_test(load, test_non_reading_pipeliners_stay_under_memory_bound, 0, 2);
  tcase_add_loop_test(load, test_paused_connection_resumes_below_half_high_water, 0, 2);
  tcase_add_test(load, test_udp_flood_while_tcp_clients_served);
  suite_add_tcase(s, load);
  TCase *faults = tcase_create("faults");
  tcase_set_timeout(faults, 120);
  tcase_add_loop_test(faults, test_reset_mid_reply, 0, 3);
  tcase_add_loop_test(faults, test_half_close_and_vanishing_clients, 0, 3);
  tcase_add_test(faults, test_fork_model_crash_kills_only_that_child);
  tcase_add_loop_test(faults, test_service_returns_null_empty_and_huge, 0, 9);
  suite_add_tcase(s, faults);
  TCase *life = tcase_create("lifecycle");
  tcase_set_timeout(life, 120);
  tcase_add_loop_test(life, test_thousand_lifecycles_leak_nothing, 0, 2);
  suite_add_tcase(s, life);
  TCase *descriptors = tcase_create("descriptors");
  tcase_set_timeout(descriptors, 60);
  tcase_add_loop_test(descriptors, test_descriptor_exhaustion_on_several_loops_does_not_spin, 0, 4);
  suite_add_tcase(s, descriptors);
  return s;
}

int main(void) {
  sk_set_log_handler(log_handler, NULL);
  if (getenv("SK_TEST_DEBUG"))
    sk_set_log_level(SK_LOG_DEBUG);
  return sk_test_run(overload_suite());
}
