/* test_processes.c -- sk-echo-server --processes N: workers share a port and stop together. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 10000
#define CLIENTS 60

/* A running sk-echo-server, its address (from the "listening on" line) and
 * its stderr log in a directory of its own. */
typedef struct echo_server {
  pid_t pid;
  char address[SK_ADDRSTRLEN];
  char *dir;
  char log[512];
} echo_server;

/* Start sk-echo-server with `args` (NULL-terminated, without the program)
 * and read its "listening on" line; the address is empty if none came. */
static void start_echo(echo_server *s, const char *const *args) {
  memset(s, 0, sizeof *s);
  s->dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(s->dir);
  snprintf(s->log, sizeof s->log, "%s/server.log", s->dir);
  const char *argv[16] = {SK_ECHO_SERVER};
  int n = 1;
  for (int i = 0; args[i] && n < 15; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  int out;
  s->pid = sk_test_spawn(argv, &out, s->log);
  ck_assert_int_gt(s->pid, 0);
  char line[256], transport[8];
  sk_test_read_line(out, line, sizeof line, WAIT_MS);
  close(out);
  if (sscanf(line, "listening on %7s %127s", transport, s->address) != 2)
    s->address[0] = '\0';
}

static void remove_echo(echo_server *s) {
  unlink(s->log);
  sk_test_rmdir(s->dir);
}

typedef struct children_wait {
  pid_t parent;
  int want;
  pid_t pids[8];
  int n;
} children_wait;

static bool has_children(void *arg) {
  children_wait *w = arg;
  w->n = sk_test_children(w->parent, w->pids, 8);
  return w->n == w->want;
}

/* Wait until pid has exactly `want` children; their pids into out. */
static void expect_children(pid_t pid, int want, pid_t *out) {
  children_wait w = {.parent = pid, .want = want};
  ck_assert_msg(sk_test_wait(has_children, &w, WAIT_MS), "%ld has %d children, want %d", (long)pid,
                w.n, want);
  memcpy(out, w.pids, sizeof(pid_t) * (size_t)want);
}

static bool gone(void *arg) {
  return kill(*(pid_t *)arg, 0) != 0 && errno == ESRCH;
}

/* The parent reaps its workers before it exits: none may be left. */
static void expect_gone(const pid_t *pids, int n) {
  for (int i = 0; i < n; i++)
    ck_assert_msg(sk_test_wait(gone, (void *)&pids[i], WAIT_MS), "worker %ld still runs",
                  (long)pids[i]);
}

/* One line out, the same line back, on a connected TCP socket. */
static void expect_echo(int fd, const char *line) {
  char got[64];
  size_t len = strlen(line);
  ck_assert_int_eq(sk_test_send_all(fd, line, len), 0);
  ssize_t n = sk_test_read_exact(fd, got, len, WAIT_MS);
  ck_assert_msg(n == (ssize_t)len && memcmp(got, line, len) == 0, "sent '%s', got %zd bytes", line,
                n);
}

typedef struct spread_wait {
  const pid_t *workers;
  const int *before;
  int delta[3];
  int total;
} spread_wait;

/* Each worker's sockets beyond its count before the clients came. */
static bool all_accepted(void *arg) {
  spread_wait *w = arg;
  w->total = 0;
  for (int i = 0; i < 3; i++) {
    w->delta[i] = sk_test_socket_count(w->workers[i]) - w->before[i];
    w->total += w->delta[i];
  }
  return w->total == CLIENTS;
}

START_TEST(test_tcp_workers_share_the_port) {
  echo_server s;
  start_echo(&s, (const char *const[]){"--tcp", "--processes", "3", "127.0.0.1:0", NULL});
  ck_assert_msg(s.address[0], "no listening line; log has the reason");
  pid_t workers[3];
  expect_children(s.pid, 3, workers);
  int before[3];
  for (int i = 0; i < 3; i++)
    ck_assert_int_ge(before[i] = sk_test_socket_count(workers[i]), 1);

  /* All connections first, so that they are open at once, then an echo on
   * each: once it came back, a worker has accepted that connection. */
  int fds[CLIENTS];
  for (int i = 0; i < CLIENTS; i++)
    ck_assert_int_ge(fds[i] = sk_test_tcp_connect(s.address), 0);
  for (int i = 0; i < CLIENTS; i++) {
    char line[32];
    snprintf(line, sizeof line, "client %d\n", i);
    expect_echo(fds[i], line);
  }
  /* Each accepted connection is one more socket in the worker holding it;
   * the kernel hashes connections over the three listeners, so all 60 on
   * one of them would be a broken REUSEPORT group (odds 3^-59 otherwise). */
  spread_wait w = {.workers = workers, .before = before};
  ck_assert_msg(sk_test_wait(all_accepted, &w, WAIT_MS), "workers hold %d+%d+%d connections",
                w.delta[0], w.delta[1], w.delta[2]);
  int busy = 0;
  for (int i = 0; i < 3; i++)
    busy += w.delta[i] > 0;
  ck_assert_msg(busy > 1, "one worker took every connection: %d+%d+%d", w.delta[0], w.delta[1],
                w.delta[2]);
  for (int i = 0; i < CLIENTS; i++)
    close(fds[i]);

  ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
  ck_assert_int_eq(sk_test_wait_exit(s.pid, WAIT_MS), 0);
  expect_gone(workers, 3);
  ck_assert(sk_test_file_contains(s.log, "3 workers stopped"));
  remove_echo(&s);
}
END_TEST

START_TEST(test_udp_workers_share_the_port) {
  echo_server s;
  start_echo(&s, (const char *const[]){"--udp", "--processes", "2", "127.0.0.1:0", NULL});
  ck_assert_msg(s.address[0], "no listening line; log has the reason");
  pid_t workers[2];
  expect_children(s.pid, 2, workers);
  /* Senders from many ports: each is hashed to one of the two sockets. */
  for (int i = 0; i < 20; i++) {
    int fd = sk_test_udp_socket(s.address);
    ck_assert_int_ge(fd, 0);
    char msg[32], reply[64];
    snprintf(msg, sizeof msg, "datagram %d", i);
    ssize_t n = sk_test_udp_exchange(fd, msg, strlen(msg), reply, sizeof reply, WAIT_MS);
    ck_assert_msg(n == (ssize_t)strlen(msg) && strcmp(reply, msg) == 0, "sent '%s', got %zd", msg,
                  n);
    close(fd);
  }
  ck_assert_int_eq(kill(s.pid, SIGINT), 0);
  ck_assert_int_eq(sk_test_wait_exit(s.pid, WAIT_MS), 0);
  expect_gone(workers, 2);
  remove_echo(&s);
}
END_TEST

typedef struct log_wait {
  const char *path;
  const char *text;
} log_wait;

static bool logged(void *arg) {
  log_wait *w = arg;
  return sk_test_file_contains(w->path, w->text);
}

START_TEST(test_dead_worker_is_reported_and_the_rest_serve) {
  echo_server s;
  start_echo(&s, (const char *const[]){"--tcp", "--processes", "2", "127.0.0.1:0", NULL});
  ck_assert_msg(s.address[0], "no listening line; log has the reason");
  pid_t workers[2];
  expect_children(s.pid, 2, workers);
  ck_assert_int_eq(kill(workers[0], SIGKILL), 0);
  log_wait w = {s.log, "was killed by"};
  ck_assert_msg(sk_test_wait(logged, &w, WAIT_MS), "the parent did not report the dead worker");
  pid_t left[1];
  expect_children(s.pid, 1, left); /* reaped, and not replaced */
  ck_assert_int_eq(left[0], workers[1]);
  for (int i = 0; i < 10; i++) {
    int fd = sk_test_tcp_connect(s.address);
    ck_assert_int_ge(fd, 0);
    expect_echo(fd, "still here\n");
    close(fd);
  }
  /* The survivor stops cleanly, but a worker died: the parent fails. */
  ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
  ck_assert_int_eq(sk_test_wait_exit(s.pid, WAIT_MS), 1);
  expect_gone(workers, 2);
  remove_echo(&s);
}
END_TEST

START_TEST(test_port_taken_fails_with_no_worker_left) {
  /* A listener without SO_REUSEPORT: the first worker cannot bind. */
  sk_tcp_server *holder;
  char address[SK_ADDRSTRLEN];
  ck_assert_int_eq(sk_tcp_server_create(&holder, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(holder), SK_OK);
  ck_assert_int_eq(sk_tcp_server_address(holder, address, sizeof address), SK_OK);
  echo_server s;
  start_echo(&s, (const char *const[]){"--tcp", "--processes", "3", address, NULL});
  ck_assert_str_eq(s.address, ""); /* no "listening on" line */
  ck_assert_int_eq(sk_test_wait_exit(s.pid, WAIT_MS), 1);
  ck_assert(sk_test_file_contains(s.log, "cannot listen on"));
  sk_tcp_server_destroy(holder);
  remove_echo(&s);
}
END_TEST

/* Bad arguments exit 2 at once, before any worker or socket exists. */
static void expect_usage_error(const char *const *args, const char *message) {
  echo_server s;
  start_echo(&s, args);
  ck_assert_str_eq(s.address, "");
  ck_assert_int_eq(sk_test_wait_exit(s.pid, WAIT_MS), 2);
  ck_assert_msg(sk_test_file_contains(s.log, message), "stderr lacks '%s'", message);
  remove_echo(&s);
}

START_TEST(test_usage_errors) {
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char address[320], path[300];
  snprintf(path, sizeof path, "%s/echo.sock", dir);
  snprintf(address, sizeof address, "unix:%s", path);
  expect_usage_error((const char *const[]){"--tcp", "--processes", "2", address, NULL},
                     "a UNIX socket address is bound by one socket only");
  expect_usage_error((const char *const[]){"--processes", "2", "--udp", address, NULL},
                     "a UNIX socket address is bound by one socket only");
  struct stat st;
  ck_assert_int_ne(stat(path, &st), 0); /* nothing was bound */
  const char *counts[] = {"0", "257", "-1", "3x", ""};
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
    expect_usage_error(
        (const char *const[]){"--tcp", "--processes", counts[i], "127.0.0.1:0", NULL},
        "--processes takes a number from 1 to 256");
  /* Options that a UDP server would ignore, or systemd sockets shared. */
  expect_usage_error((const char *const[]){"--udp", "--framing", "length", "127.0.0.1:0", NULL},
                     "--framing is for --tcp");
  expect_usage_error((const char *const[]){"--model", "thread", "--udp", "127.0.0.1:0", NULL},
                     "--model thread is for --tcp");
  expect_usage_error((const char *const[]){"--udp", "--proxy", "v2", "127.0.0.1:0", NULL},
                     "--proxy and --proxy-trusted are for --tcp");
  expect_usage_error((const char *const[]){"--tcp", "--proxy-trusted", "::1", "127.0.0.1:0", NULL},
                     "--proxy-trusted needs --proxy");
  expect_usage_error((const char *const[]){"--tcp", "--processes", "2", "systemd", NULL},
                     "names one that is already open");
  sk_test_rmdir(dir);
}
END_TEST

/* One datagram into buf (NUL-terminated) within timeout_ms; its length,
 * or -1 if none came. */
static ssize_t recv_datagram(int fd, char *buf, size_t size, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, timeout_ms) != 1)
    return -1;
  ssize_t n = recv(fd, buf, size - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return n;
}

/* Under systemd (Type=notify) the server says READY=1, with its address,
 * once it listens and STOPPING=1 when stopped; with --processes the
 * parent alone speaks, once. Tried with one process and with two. */
START_TEST(test_notify_ready_and_stopping) {
  for (int round = 0; round < 2; round++) {
    char *dir = sk_test_tmpdir();
    ck_assert_ptr_nonnull(dir);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/notify", dir);
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(sock, 0);
    ck_assert_int_eq(bind(sock, (struct sockaddr *)&sun, sizeof sun), 0);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", sun.sun_path, 1), 0);
    const char *one[] = {"--tcp", "127.0.0.1:0", NULL};
    const char *two[] = {"--tcp", "--processes", "2", "127.0.0.1:0", NULL};
    echo_server s;
    start_echo(&s, round ? two : one);
    unsetenv("NOTIFY_SOCKET");
    ck_assert_msg(s.address[0], "no listening line");
    char msg[256], want[256];
    ck_assert_int_gt(recv_datagram(sock, msg, sizeof msg, WAIT_MS), 0);
    snprintf(want, sizeof want, "READY=1\nSTATUS=listening on %s", s.address);
    ck_assert_str_eq(msg, want);
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    ck_assert_int_eq(sk_test_wait_exit(s.pid, WAIT_MS), 0);
    ck_assert_int_gt(recv_datagram(sock, msg, sizeof msg, WAIT_MS), 0);
    ck_assert_str_eq(msg, "STOPPING=1");
    /* Everyone has exited: nothing else was sent (no worker spoke). */
    ck_assert_int_eq(recv_datagram(sock, msg, sizeof msg, 0), -1);
    close(sock);
    unlink(sun.sun_path);
    sk_test_rmdir(dir);
    remove_echo(&s);
  }
}
END_TEST

static Suite *processes_suite(void) {
  Suite *s = suite_create("processes");
  TCase *tc = tcase_create("processes");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_tcp_workers_share_the_port);
  tcase_add_test(tc, test_udp_workers_share_the_port);
  tcase_add_test(tc, test_dead_worker_is_reported_and_the_rest_serve);
  tcase_add_test(tc, test_port_taken_fails_with_no_worker_left);
  tcase_add_test(tc, test_usage_errors);
  tcase_add_test(tc, test_notify_ready_and_stopping);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(processes_suite());
}
