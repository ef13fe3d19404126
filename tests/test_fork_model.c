/* test_fork_model.c -- what a process-per-connection child inherits from its
 * parent (the server's descriptors, other servers' connections, the log
 * lock) must harm neither the service nor anyone else's clients. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"
#include "tcp.h" /* sk_tcp_server: the stop descriptor's number; sk__log */

#define WAIT_MS 10000

static void pause_ms(int ms) {
  struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&d, NULL);
}

static void expect_bytes(int fd, const char *want) {
  char got[256];
  size_t len = strlen(want);
  ck_assert_uint_le(len, sizeof got);
  ssize_t n = sk_test_read_exact(fd, got, len, WAIT_MS);
  ck_assert_msg(n == (ssize_t)len, "read %zd of %zu bytes", n, len);
  ck_assert_msg(memcmp(got, want, len) == 0, "got '%.*s', want '%s'", (int)len, got, want);
}

static void exchange(int fd, const char *line) {
  ck_assert_int_eq(sk_test_send_all(fd, line, strlen(line)), 0);
  expect_bytes(fd, line);
}

/* A half-close first: a plain close does not reach a fork-model child
 * that shares the socket with the process that forked it. */
static void hang_up(int fd) {
  shutdown(fd, SHUT_WR);
  close(fd);
}

static sk_tcp_server *new_server(int model, sk_service service) {
  sk_tcp_server *srv = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", service, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MODEL, model), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, 1000), SK_OK);
  return srv;
}

/* ---- a process of servers ---------------------------------------------- */

/* What a server process reports once its servers listen. */
typedef struct proc_report {
  int ok;
  char address[2][128];
} proc_report;

/* A process of its own for the servers of a test: a fork-model server must
 * not inherit this test's client sockets (see sk_test_proc), and some tests
 * need threads of their own beside the servers. `body` runs there: it
 * starts the servers, reports, waits for the end (wait_for_end) and
 * returns the exit status. */
typedef int (*proc_body)(int report_fd, int ctl_fd);

typedef struct server_proc {
  pid_t pid;
  int ctl; /* closing it (or this process dying) ends the server process */
  proc_report report;
} server_proc;

static void send_report(int report_fd, proc_report *r) {
  ssize_t n = write(report_fd, r, sizeof *r); /* under PIPE_BUF: one piece */
  (void)n;
  close(report_fd);
}

static void wait_for_end(int ctl_fd) {
  char c;
  while (read(ctl_fd, &c, 1) != 0 && errno == EINTR)
    ;
}

static void proc_start(server_proc *p, proc_body body) {
  int report[2], ctl[2];
  ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
  p->pid = fork();
  ck_assert_int_ge(p->pid, 0);
  if (p->pid == 0) {
    close(report[0]);
    close(ctl[1]);
    _exit(body(report[1], ctl[0]));
  }
  close(report[1]);
  close(ctl[0]);
  p->ctl = ctl[1];
  memset(&p->report, 0, sizeof p->report);
  struct pollfd pfd = {.fd = report[0], .events = POLLIN};
  ssize_t n = poll(&pfd, 1, WAIT_MS) == 1 ? read(report[0], &p->report, sizeof p->report) : -1;
  close(report[0]);
  ck_assert_msg(n == (ssize_t)sizeof p->report && p->report.ok, "the server process failed");
}

/* End the server process; its exit status, or -1 if it had to be killed. */
static int proc_stop(server_proc *p) {
  close(p->ctl);
  long long deadline = sk_test_now_ms() + WAIT_MS;
  for (;;) {
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r < 0 || sk_test_now_ms() >= deadline) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, NULL, 0);
      return -1;
    }
    pause_ms(2);
  }
}

/* In a server process: 0 if no fork-model child is left behind. */
static int no_children_left(void) {
  return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD ? 0 : 1;
}

/* ---- 1: stop called in a child ---------------------------------------- */

static sk_tcp_server *stop_target;
static int old_stopfd;
static char stop_file[300];

/* In the child: open a file under the number the server's stop descriptor
 * had, then do what a SIGINT handler inherited from the parent does. */
static const char *stop_then_echo(const char *request, void *user) {
  (void)user;
  if (strcmp(request, "stop") != 0)
    return request;
  int f = open(stop_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  /* Usually there already (the child closed the stop descriptor, the
   * lowest of the server's); made certain if that number is free. */
  if (f >= 0 && f != old_stopfd && fcntl(old_stopfd, F_GETFD) < 0 && errno == EBADF &&
      dup2(f, old_stopfd) == old_stopfd) {
    close(f);
    f = old_stopfd;
  }
  sk_tcp_server_stop(stop_target);
  bool at_number = f == old_stopfd;
  close(f);
  return at_number ? "stopped" : "file elsewhere";
}

START_TEST(test_stop_in_child_writes_no_file) {
  char *dir = sk_test_tmpdir();
  snprintf(stop_file, sizeof stop_file, "%s/service-file", dir);
  sk_tcp_server *srv = new_server(SK_MODEL_PROCESS_PER_CONNECTION, stop_then_echo);
  stop_target = srv;
  old_stopfd = srv->core.stopfd;
  sk_test_proc p;
  ck_assert_int_eq(sk_test_proc_start(&p, srv), SK_OK);

  int fd = sk_test_tcp_connect(p.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "stop\n", 5), 0);
  expect_bytes(fd, "stopped\n");
  /* The child's connection goes on as before, and so does the parent. */
  exchange(fd, "after stop\n");
  int other = sk_test_tcp_connect(p.address);
  ck_assert_int_ge(other, 0);
  exchange(other, "other client\n");
  hang_up(other);
  hang_up(fd);
  struct stat st;
  ck_assert_int_eq(stat(stop_file, &st), 0);
  ck_assert_msg(st.st_size == 0, "stop wrote %lld bytes into the service's file",
                (long long)st.st_size);
  ck_assert_int_eq(sk_test_proc_stop(&p, WAIT_MS), 0);
  sk_test_rmdir(dir);
}
END_TEST

/* ---- 2: another server's close while a child lives --------------------- */

/* The other server's model, and how its connection comes to be closed. */
static const struct {
  int model;
  bool by_idle_timeout; /* else the client half-closes */
} close_configs[] = {
    {SK_MODEL_EVENT_LOOP, false},           {SK_MODEL_EVENT_LOOP, true},
    {SK_MODEL_WORKER_POOL, false},          {SK_MODEL_THREAD_PER_CONNECTION, false},
    {SK_MODEL_THREAD_PER_CONNECTION, true},
};
static int close_config;

/* Server 0: the model under test; server 1: the fork model. */
static int two_servers(int report_fd, int ctl_fd) {
  proc_report r = {0};
  sk_tcp_server *srv[2] = {NULL, NULL};
  int rc = sk_tcp_server_create(&srv[0], "127.0.0.1:0", sk_test_echo, NULL);
  if (rc == SK_OK)
    rc = sk_tcp_server_set(srv[0], SK_OPT_MODEL, close_configs[close_config].model);
  if (rc == SK_OK && close_configs[close_config].by_idle_timeout)
    rc = sk_tcp_server_set(srv[0], SK_OPT_IDLE_TIMEOUT_MS, 300);
  if (rc == SK_OK)
    rc = sk_tcp_server_create(&srv[1], "127.0.0.1:0", sk_test_echo, NULL);
  if (rc == SK_OK)
    rc = sk_tcp_server_set(srv[1], SK_OPT_MODEL, SK_MODEL_PROCESS_PER_CONNECTION);
  if (rc == SK_OK)
    rc = sk_tcp_server_set(srv[1], SK_OPT_DRAIN_TIMEOUT_MS, 1000);
  for (int i = 0; i < 2 && rc == SK_OK; i++)
    if ((rc = sk_tcp_server_start(srv[i])) == SK_OK)
      rc = sk_tcp_server_address(srv[i], r.address[i], sizeof r.address[i]);
  r.ok = rc == SK_OK;
  send_report(report_fd, &r);
  wait_for_end(ctl_fd);
  sk_tcp_server_destroy(srv[0]);
  sk_tcp_server_destroy(srv[1]);
  return rc == SK_OK ? no_children_left() : 1;
}

static double cpu_seconds(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_other_servers_close_reaches_client_while_child_lives) {
  close_config = _i;
  server_proc p;
  proc_start(&p, two_servers);
  int client = sk_test_tcp_connect(p.report.address[0]);
  ck_assert_int_ge(client, 0);
  exchange(client, "accepted\n");
  /* Forked now: the child holds a copy of the server end of `client`. */
  int held = sk_test_tcp_connect(p.report.address[1]);
  ck_assert_int_ge(held, 0);
  exchange(held, "child alive\n");

  if (!close_configs[_i].by_idle_timeout) {
    ck_assert_int_eq(sk_test_send_all(client, "last\n", 5), 0);
    shutdown(client, SHUT_WR);
    expect_bytes(client, "last\n");
  }
  char rest[64];
  ck_assert_int_eq(sk_test_read_to_eof(client, rest, sizeof rest, 5000), 0);
  close(client);
  /* Closed and gone from the loop: nothing keeps waking it up. */
  clockid_t cpu;
  ck_assert_int_eq(clock_getcpuclockid(p.pid, &cpu), 0);
  double cpu_before = cpu_seconds(cpu);
  long long wall_before = sk_test_now_ms();
  pause_ms(300);
  double used = cpu_seconds(cpu) - cpu_before;
  double wall = (double)(sk_test_now_ms() - wall_before) / 1000.0;
  ck_assert_msg(used < 0.3 * wall, "the servers used %.3f s of CPU in %.3f s", used, wall);
  /* Both servers still serve. */
  int again = sk_test_tcp_connect(p.report.address[0]);
  ck_assert_int_ge(again, 0);
  exchange(again, "again\n");
  hang_up(again);
  exchange(held, "still there\n");
  hang_up(held);
  ck_assert_int_eq(proc_stop(&p), 0);
}
END_TEST

/* ---- 3: a child forked while another thread holds the log lock --------- */

/* Another thread of the server process sets the log handler over and over
 * (each time under the log lock) and is stopped by a signal at a moment
 * when it holds the lock: found by a probe thread that cannot set the
 * handler then. The fork happens while it is parked there. */
static atomic_bool hammer_stop, parked, probe_done;
static int park_pipe[2];

static void quiet(int level, const char *message, void *user) {
  (void)level;
  (void)message;
  (void)user;
}

static void park(int sig) {
  (void)sig;
  int saved_errno = errno;
  atomic_store(&parked, true);
  char c;
  while (read(park_pipe[0], &c, 1) < 0 && errno == EINTR)
    ;
  atomic_store(&parked, false);
  errno = saved_errno;
}

static void *hammer(void *arg) {
  (void)arg;
  while (!atomic_load(&hammer_stop))
    sk_set_log_handler(quiet, NULL);
  return NULL;
}

static void *probe(void *arg) {
  (void)arg;
  sk_set_log_handler(quiet, NULL);
  atomic_store(&probe_done, true);
  return NULL;
}

static bool flag_set(void *flag) {
  return atomic_load((atomic_bool *)flag);
}

static bool flag_clear(void *flag) {
  return !atomic_load((atomic_bool *)flag);
}

static bool have_child(void *arg) {
  (void)arg;
  siginfo_t info = {0};
  /* Sees a child that exists, exited or not, without reaping it. */
  return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

static const char *log_then_echo(const char *request, void *user) {
  (void)user;
  sk__log(SK_LOG_WARN, "test: a forked child logs");
  return request;
}

static bool accepted_one(void *srv) {
  uint64_t n = 0;
  return sk_tcp_server_stat(srv, SK_STAT_CONNECTIONS_ACCEPTED, &n) == SK_OK && n > 0;
}

static int logging_server(int report_fd, int ctl_fd) {
  proc_report r = {0};
  sk_set_log_handler(quiet, NULL);
  sk_tcp_server *srv = NULL;
  int rc = sk_tcp_server_create(&srv, "127.0.0.1:0", log_then_echo, NULL);
  if (rc == SK_OK)
    rc = sk_tcp_server_set(srv, SK_OPT_MODEL, SK_MODEL_PROCESS_PER_CONNECTION);
  if (rc == SK_OK)
    rc = sk_tcp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, 1000);
  if (rc == SK_OK && (rc = sk_tcp_server_start(srv)) == SK_OK)
    rc = sk_tcp_server_address(srv, r.address[0], sizeof r.address[0]);
  if (rc != SK_OK || pipe2(park_pipe, O_CLOEXEC) != 0) {
    send_report(report_fd, &r);
    sk_tcp_server_destroy(srv);
    return 1;
  }
  struct sigaction sa = {.sa_handler = park};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  pthread_t h, pr;
  pthread_create(&h, NULL, hammer, NULL);
  bool held = false, probing = false;
  for (int attempt = 0; attempt < 500 && !held; attempt++) {
    pthread_kill(h, SIGUSR1);
    if (!sk_test_wait(flag_set, &parked, WAIT_MS))
      break;
    atomic_store(&probe_done, false);
    pthread_create(&pr, NULL, probe, NULL);
    probing = true;
    if (sk_test_wait(flag_set, &probe_done, 200)) {
      pthread_join(pr, NULL);
      probing = false;
      ssize_t n = write(park_pipe[1], "x", 1);
      (void)n;
      sk_test_wait(flag_clear, &parked, WAIT_MS);
    } else {
      held = true; /* the probe waits for the lock the hammer holds */
    }
  }
  r.ok = held;
  send_report(report_fd, &r);
  /* The client connects: the server forks, or (with the lock taken around
   * fork) waits to. Released once there is a child, or after a while. */
  if (held && sk_test_wait(accepted_one, srv, WAIT_MS))
    sk_test_wait(have_child, NULL, 500);
  ssize_t n = write(park_pipe[1], "x", 1);
  (void)n;
  wait_for_end(ctl_fd);
  atomic_store(&hammer_stop, true);
  pthread_join(h, NULL);
  if (probing)
    pthread_join(pr, NULL);
  sk_tcp_server_destroy(srv);
  return held ? no_children_left() : 1;
}

START_TEST(test_child_forked_while_log_lock_held_can_log) {
  server_proc p;
  proc_start(&p, logging_server);
  int fd = sk_test_tcp_connect(p.report.address[0]);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "log\n", 4), 0);
  char got[8];
  ssize_t n = sk_test_read_exact(fd, got, 4, 5000);
  ck_assert_msg(n == 4, "no reply from a child that logs (%zd): it is stuck on the log lock", n);
  ck_assert(memcmp(got, "log\n", 4) == 0);
  exchange(fd, "and again\n");
  hang_up(fd);
  ck_assert_int_eq(proc_stop(&p), 0);
}
END_TEST

/* ---- 4: a client that resets during a large reply ----------------------- */

/* A reply far larger than the socket buffers, so that the child is still
 * sending it when its client goes. */
#define BIG_REPLY (4u << 20)
static char big_reply[BIG_REPLY + 1];

static const char *big_or_echo(const char *request, void *user) {
  (void)user;
  return strcmp(request, "big") == 0 ? big_reply : request;
}

static atomic_int killed;
static void count_killed(int level, const char *message, void *user) {
  (void)level;
  (void)user;
  if (strstr(message, "killed by signal"))
    atomic_fetch_add(&killed, 1);
}

/* The server process: 0 once every child counted its client's reset (a
 * child killed by SIGPIPE counts nothing) and none was killed by a signal. */
static int sigpipe_server(int report_fd, int ctl_fd) {
  proc_report r = {0};
  memset(big_reply, 'x', BIG_REPLY);
  sk_set_log_handler(count_killed, NULL);
  sk_tcp_server *srv = NULL;
  int rc = sk_tcp_server_create(&srv, "127.0.0.1:0", big_or_echo, NULL);
  if (rc == SK_OK)
    rc = sk_tcp_server_set(srv, SK_OPT_MODEL, SK_MODEL_PROCESS_PER_CONNECTION);
  if (rc == SK_OK)
    rc = sk_tcp_server_set(srv, SK_OPT_SNDBUF, 65536);
  if (rc == SK_OK && (rc = sk_tcp_server_start(srv)) == SK_OK)
    rc = sk_tcp_server_address(srv, r.address[0], sizeof r.address[0]);
  r.ok = rc == SK_OK;
  send_report(report_fd, &r);
  if (rc != SK_OK) {
    sk_tcp_server_destroy(srv);
    return 1;
  }
  wait_for_end(ctl_fd);
  /* Within proc_stop's patience (WAIT_MS), so that the status tells why. */
  bool counted = sk_test_wait_tcp_stat(srv, SK_STAT_CONNECTIONS_RESET, 3, WAIT_MS / 4);
  bool idle = sk_test_wait_tcp_stat_eq(srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS / 4);
  sk_tcp_server_destroy(srv);
  if (!counted)
    return 2;
  if (!idle)
    return 3;
  return atomic_load(&killed) == 0 ? no_children_left() : 4;
}

/* "The server never raises SIGPIPE", in the process model too: a client
 * half-closes and resets while its child still sends a large reply, so the
 * child's next send fails with EPIPE. Without MSG_NOSIGNAL the child would
 * die of SIGPIPE before it counts the reset. */
START_TEST(test_client_reset_mid_reply_kills_no_child) {
  server_proc p;
  proc_start(&p, sigpipe_server);
  for (int round = 0; round < 3; round++)
    ck_assert_int_eq(sk_test_reset_mid_reply(p.report.address[0], "big\n", 65536), 0);
  int fd = sk_test_tcp_connect(p.report.address[0]);
  ck_assert_int_ge(fd, 0);
  exchange(fd, "alive\n");
  hang_up(fd);
  int status = proc_stop(&p);
  ck_assert_msg(status == 0,
                "server process: %d (2: a reset went uncounted, 3: a child lived on, "
                "4: a child was killed by a signal)",
                status);
}
END_TEST

static Suite *fork_model_suite(void) {
  Suite *s = suite_create("fork_model");
  TCase *tc = tcase_create("inheritance");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_stop_in_child_writes_no_file);
  tcase_add_loop_test(tc, test_other_servers_close_reaches_client_while_child_lives, 0,
                      (int)(sizeof close_configs / sizeof close_configs[0]));
  tcase_add_test(tc, test_child_forked_while_log_lock_held_can_log);
  tcase_add_test(tc, test_client_reset_mid_reply_kills_no_child);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(fork_model_suite());
}
