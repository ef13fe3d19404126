/* test_activate.c -- servers on adopted sockets: "fd:N" for each kind of
 * socket, what is refused, and the systemd protocol in forked children. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 5000

/* ---- sockets to adopt --------------------------------------------------- */

/* A blocking socket without close-on-exec (what a parent hands down),
 * bound to 127.0.0.1:0 or to `path`, listening if `listening`. */
static int make_socket(int type, const char *path, bool listening) {
  int family = path ? AF_UNIX : AF_INET;
  int fd = socket(family, type, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  if (path)
    snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
  int rc = path ? bind(fd, (struct sockaddr *)&un, sizeof un)
                : bind(fd, (struct sockaddr *)&in, sizeof in);
  if (rc != 0 || (listening && listen(fd, 16) != 0)) {
    close(fd);
    return -1;
  }
  return fd;
}

static int port_of(int fd) {
  struct sockaddr_in in;
  socklen_t len = sizeof in;
  if (getsockname(fd, (struct sockaddr *)&in, &len) != 0 || in.sin_family != AF_INET)
    return -1;
  return ntohs(in.sin_port);
}

static bool is_open(int fd) {
  return fcntl(fd, F_GETFD) >= 0;
}

static void expect_tcp_echo(const char *address) {
  int c = sk_test_tcp_connect(address);
  ck_assert_int_ge(c, 0);
  ck_assert_int_eq(sk_test_send_all(c, "ping\n", 5), 0);
  char got[8];
  ck_assert_int_eq(sk_test_read_exact(c, got, 5, WAIT_MS), 5);
  ck_assert(memcmp(got, "ping\n", 5) == 0);
  close(c);
}

static void expect_udp_echo(const char *address) {
  int c = sk_test_udp_socket(address);
  ck_assert_int_ge(c, 0);
  char got[16];
  ck_assert_int_eq(sk_test_udp_exchange(c, "ping", 4, got, sizeof got, WAIT_MS), 4);
  ck_assert_str_eq(got, "ping");
  close(c);
}

/* The adopted socket was made ready for the server's loops. */
static void expect_prepared(int fd) {
  ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
  ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* ---- "fd:N" --------------------------------------------------------------- */

/* A TCP or UNIX stream listener serves through the server; a stop and the
 * end of the run leave it open, destroy closes it (and never unlinks). */
static void serve_stream(const char *path, int io_threads) {
  int fd = make_socket(SOCK_STREAM, path, true);
  ck_assert_int_ge(fd, 0);
  char address[32], want[128], got[128];
  snprintf(address, sizeof address, "fd:%d", fd);
  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IO_THREADS, io_threads), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  expect_prepared(fd);
  if (path)
    snprintf(want, sizeof want, "unix:%s", path);
  else
    snprintf(want, sizeof want, "127.0.0.1:%d", port_of(fd));
  ck_assert_int_eq(sk_tcp_server_address(srv, got, sizeof got), SK_OK);
  ck_assert_str_eq(got, want);
  ck_assert_int_eq(t.port, path ? 0 : port_of(fd));
  for (int i = 0; i < 2 * io_threads; i++)
    expect_tcp_echo(t.address);
  ck_assert_int_eq(sk_tcp_server_stop(srv), SK_OK);
  ck_assert_int_eq(sk_test_join(t.thread, WAIT_MS), 0);
  ck_assert_int_eq(atomic_load(&t.rc), SK_OK);
  ck_assert(is_open(fd));
  sk_tcp_server_destroy(srv);
  ck_assert(!is_open(fd));
  if (path)
    ck_assert_int_eq(access(path, F_OK), 0);
}

static void serve_datagram(const char *path) {
  int fd = make_socket(SOCK_DGRAM, path, false);
  ck_assert_int_ge(fd, 0);
  char address[32], want[128];
  snprintf(address, sizeof address, "fd:%d", fd);
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_RCVBUF, 200000), SK_OK);
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start_server(&t, srv), SK_OK);
  expect_prepared(fd);
  int rcvbuf = 0;
  socklen_t len = sizeof rcvbuf;
  ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len), 0);
  ck_assert_int_ge(rcvbuf, 200000); /* the option reached the adopted socket */
  if (path)
    snprintf(want, sizeof want, "unix:%s", path);
  else
    snprintf(want, sizeof want, "127.0.0.1:%d", port_of(fd));
  ck_assert_str_eq(t.address, want);
  ck_assert_int_eq(t.port, path ? 0 : port_of(fd));
  expect_udp_echo(t.address);
  expect_udp_echo(t.address);
  ck_assert_int_eq(sk_udp_server_stop(srv), SK_OK);
  ck_assert_int_eq(sk_test_join(t.thread, WAIT_MS), 0);
  ck_assert(is_open(fd));
  sk_udp_server_destroy(srv);
  ck_assert(!is_open(fd));
  if (path)
    ck_assert_int_eq(access(path, F_OK), 0);
}

START_TEST(fd_tcp) {
  serve_stream(NULL, 1);
  serve_stream(NULL, 2);
}
END_TEST

START_TEST(fd_udp) {
  serve_datagram(NULL);
}
END_TEST

START_TEST(fd_unix) {
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char stream[256], dgram[256];
  snprintf(stream, sizeof stream, "%s/stream.sock", dir);
  snprintf(dgram, sizeof dgram, "%s/dgram.sock", dir);
  serve_stream(stream, 2);
  serve_datagram(dgram);
  sk_test_rmdir(dir);
}
END_TEST

/* ---- what is refused ------------------------------------------------------ */

/* The log lines of the current test, one after another. */
static char logged[4096];
static void capture(int level, const char *message, void *user) {
  (void)level;
  (void)user;
  size_t n = strlen(logged);
  snprintf(logged + n, sizeof logged - n, "%s\n", message);
}

/* Listen on "fd:N" fails with SK_EADDR and a warning naming N and `why`;
 * N stays open, still the caller's. */
static void expect_refused(int type, int fd, const char *why) {
  char address[32], name[32];
  snprintf(address, sizeof address, "fd:%d", fd);
  snprintf(name, sizeof name, "fd:%d ", fd);
  logged[0] = '\0';
  sk_set_log_handler(capture, NULL);
  int rc;
  if (type == SOCK_STREAM) {
    sk_tcp_server *srv;
    ck_assert_int_eq(sk_tcp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
    rc = sk_tcp_server_listen(srv);
    sk_tcp_server_destroy(srv);
  } else {
    sk_udp_server *srv;
    ck_assert_int_eq(sk_udp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
    rc = sk_udp_server_listen(srv);
    sk_udp_server_destroy(srv);
  }
  sk_set_log_handler(NULL, NULL);
  ck_assert_int_eq(rc, SK_EADDR);
  ck_assert_msg(strstr(logged, name) && strstr(logged, why), "log: %s", logged);
}

START_TEST(fd_refused) {
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  expect_refused(SOCK_STREAM, p[0], "is a pipe or FIFO, not a socket");
  ck_assert(is_open(p[0]));

  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char file[256];
  snprintf(file, sizeof file, "%s/plain", dir);
  int f = open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ck_assert_int_ge(f, 0);
  expect_refused(SOCK_DGRAM, f, "is a regular file, not a socket");
  ck_assert(is_open(f));
  close(f);
  sk_test_rmdir(dir);

  /* A high number: the server's own descriptors take the lowest free. */
  int gone = fcntl(p[1], F_DUPFD_CLOEXEC, 500);
  ck_assert_int_ge(gone, 0);
  close(gone);
  expect_refused(SOCK_STREAM, gone, "is not an open descriptor");
  close(p[0]);
  close(p[1]);

  int udp = make_socket(SOCK_DGRAM, NULL, false);
  ck_assert_int_ge(udp, 0);
  expect_refused(SOCK_STREAM, udp, "is a UDP socket; a TCP server needs a listening stream socket");
  ck_assert(is_open(udp));
  close(udp);

  int tcp = make_socket(SOCK_STREAM, NULL, true);
  ck_assert_int_ge(tcp, 0);
  expect_refused(SOCK_DGRAM, tcp, "is a TCP socket; a UDP server needs a bound datagram socket");
  ck_assert(is_open(tcp));
  close(tcp);

  int idle = make_socket(SOCK_STREAM, NULL, false);
  ck_assert_int_ge(idle, 0);
  expect_refused(SOCK_STREAM, idle, "is a TCP socket that is not listening");
  ck_assert(is_open(idle));
  ck_assert(!(fcntl(idle, F_GETFL) & O_NONBLOCK)); /* left as it was */
  close(idle);

  int unbound = socket(AF_INET, SOCK_DGRAM, 0);
  ck_assert_int_ge(unbound, 0);
  expect_refused(SOCK_DGRAM, unbound, "is a UDP socket that is not bound to an address");
  close(unbound);
}
END_TEST

static const char *const malformed[] = {
    "fd:",
    "fd:-1",
    "fd:3x",
    "fd: 3",
    "fd:+3",
    "fd:0x3",
    "fd:2147483648",
    "fd:99999999999",
    "systemd:",
    "systemd:a:b",
    "systemd:tab\there",
    "systemd:caf\xc3\xa9",
    "systemd ",
};

START_TEST(malformed_forms) {
  const char *text = malformed[_i];
  sk_tcp_server *tcp = (sk_tcp_server *)1;
  sk_udp_server *udp = (sk_udp_server *)1;
  ck_assert_int_eq(sk_tcp_server_create(&tcp, text, sk_test_echo, NULL), SK_EADDR);
  ck_assert_ptr_null(tcp);
  ck_assert_int_eq(sk_udp_server_create(&udp, text, sk_test_echo, NULL), SK_EADDR);
  ck_assert_ptr_null(udp);
}
END_TEST

START_TEST(well_formed) {
  char longest[300] = "systemd:";
  memset(longest + 8, 'n', 255);
  const char *good[] = {"fd:0", "fd:007", "fd:2147483647", "systemd", "systemd:web", longest};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    sk_tcp_server *srv;
    ck_assert_int_eq(sk_tcp_server_create(&srv, good[i], sk_test_echo, NULL), SK_OK);
    sk_tcp_server_destroy(srv);
  }
  longest[8 + 255] = 'n'; /* 256 characters */
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, longest, sk_test_echo, NULL), SK_EADDR);
}
END_TEST

/* ---- "systemd" and "systemd:NAME", in forked children ---------------------- */

/* Where a child reports what went wrong, out of the way of 3, 4, ... */
#define REPORT_FD 200

#define CHILD_CHECK(cond)                                                                          \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      dprintf(REPORT_FD, "line %d: %s", __LINE__, #cond);                                          \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

/* Move the sockets to 3, 4, ... (through high numbers first, so that
 * none is overwritten on the way) and say so in the environment as
 * systemd does; `names` NULL leaves LISTEN_FDNAMES unset. */
static bool pass_sockets(int *fds, int n, const char *names) {
  for (int i = 0; i < n; i++) {
    int high = fcntl(fds[i], F_DUPFD, 100);
    if (high < 0)
      return false;
    close(fds[i]);
    fds[i] = high;
  }
  for (int i = 0; i < n; i++) {
    if (dup2(fds[i], 3 + i) != 3 + i)
      return false;
    close(fds[i]);
    fds[i] = 3 + i;
  }
  char text[32];
  snprintf(text, sizeof text, "%d", (int)getpid());
  setenv("LISTEN_PID", text, 1);
  snprintf(text, sizeof text, "%d", n);
  setenv("LISTEN_FDS", text, 1);
  unsetenv("LISTEN_PIDFDID");
  if (names)
    setenv("LISTEN_FDNAMES", names, 1);
  else
    unsetenv("LISTEN_FDNAMES");
  return true;
}

/* The usual pair: a TCP listener at 3 ("web"), a UDP socket at 4 ("dns"). */
static bool pass_pair(int *ports, const char *names) {
  int fds[2] = {make_socket(SOCK_STREAM, NULL, true), make_socket(SOCK_DGRAM, NULL, false)};
  if (fds[0] < 0 || fds[1] < 0)
    return false;
  ports[0] = port_of(fds[0]);
  ports[1] = port_of(fds[1]);
  return pass_sockets(fds, 2, names);
}

static int tcp_listen_rc(const char *address) {
  sk_tcp_server *srv;
  int rc = sk_tcp_server_create(&srv, address, sk_test_echo, NULL);
  if (rc == SK_OK)
    rc = sk_tcp_server_listen(srv);
  sk_tcp_server_destroy(srv);
  return rc;
}

/* Our pidfd's inode number, or 0 where pidfds have none (as activate.c). */
static unsigned long long own_pidfd_id(void) {
  int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  struct statfs fs;
  struct stat st;
  unsigned long long id = 0;
  if (fd >= 0 && fstatfs(fd, &fs) == 0 && fs.f_type == 0x50494446 && fstat(fd, &st) == 0)
    id = (unsigned long long)st.st_ino;
  if (fd >= 0)
    close(fd);
  return id;
}

/* "systemd" takes 3; two servers of one process take one socket each by
 * name; both serve through it. */
static int child_first_and_named(void) {
  int ports[2];
  CHILD_CHECK(pass_pair(ports, "web:dns"));
  sk_test_tcp t;
  sk_tcp_server *srv;
  CHILD_CHECK(sk_tcp_server_create(&srv, "systemd", sk_test_echo, NULL) == SK_OK);
  CHILD_CHECK(sk_test_tcp_start_server(&t, srv) == SK_OK);
  CHILD_CHECK(t.port == ports[0]);
  sk_test_udp u;
  sk_udp_server *usrv;
  CHILD_CHECK(sk_udp_server_create(&usrv, "systemd:dns", sk_test_echo, NULL) == SK_OK);
  CHILD_CHECK(sk_test_udp_start_server(&u, usrv) == SK_OK);
  CHILD_CHECK(u.port == ports[1]);
  int c = sk_test_tcp_connect(t.address);
  char got[8];
  CHILD_CHECK(c >= 0 && sk_test_send_all(c, "hi\n", 3) == 0);
  CHILD_CHECK(sk_test_read_exact(c, got, 3, WAIT_MS) == 3 && memcmp(got, "hi\n", 3) == 0);
  close(c);
  CHILD_CHECK((c = sk_test_udp_socket(u.address)) >= 0);
  CHILD_CHECK(sk_test_udp_exchange(c, "hi", 2, got, sizeof got, WAIT_MS) == 2);
  close(c);
  CHILD_CHECK(sk_test_tcp_stop(&t, WAIT_MS) == SK_OK && sk_test_udp_stop(&u, WAIT_MS) == SK_OK);
  CHILD_CHECK(!is_open(3) && !is_open(4));
  CHILD_CHECK(getenv("LISTEN_FDS") != NULL); /* left for others */
  return 0;
}

/* Without LISTEN_FDNAMES every socket is "unknown"; the first is a TCP
 * listener, so a UDP server refuses it. */
static int child_unnamed(void) {
  int ports[2];
  CHILD_CHECK(pass_pair(ports, NULL));
  sk_udp_server *usrv;
  CHILD_CHECK(sk_udp_server_create(&usrv, "systemd", sk_test_echo, NULL) == SK_OK);
  CHILD_CHECK(sk_udp_server_listen(usrv) == SK_EADDR);
  sk_udp_server_destroy(usrv);
  CHILD_CHECK(tcp_listen_rc("systemd:web") == SK_EADDR);
  sk_tcp_server *srv;
  CHILD_CHECK(sk_tcp_server_create(&srv, "systemd:unknown", sk_test_echo, NULL) == SK_OK);
  int port = 0;
  CHILD_CHECK(sk_tcp_server_listen(srv) == SK_OK && sk_tcp_server_port(srv, &port) == SK_OK);
  CHILD_CHECK(port == ports[0]);
  sk_tcp_server_destroy(srv);
  return 0;
}

/* Whatever is wrong with the environment, listen refuses with SK_EADDR. */
static int child_bad_environment(void) {
  int ports[2];
  CHILD_CHECK(pass_pair(ports, "web:dns"));
  CHILD_CHECK(tcp_listen_rc("systemd:nope") == SK_EADDR);
  char text[32];
  snprintf(text, sizeof text, "%d", (int)getppid());
  setenv("LISTEN_PID", text, 1);
  CHILD_CHECK(tcp_listen_rc("systemd") == SK_EADDR);
  setenv("LISTEN_PID", "x", 1);
  CHILD_CHECK(tcp_listen_rc("systemd") == SK_EADDR);
  unsetenv("LISTEN_PID");
  CHILD_CHECK(tcp_listen_rc("systemd") == SK_EADDR);
  CHILD_CHECK(pass_pair(ports, "web:dns"));
  static const char *const counts[] = {"0", "abc", "-2", "2x", "", "99999999999"};
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
    setenv("LISTEN_FDS", counts[i], 1);
    CHILD_CHECK(tcp_listen_rc("systemd") == SK_EADDR);
  }
  unsetenv("LISTEN_FDS");
  CHILD_CHECK(tcp_listen_rc("systemd") == SK_EADDR);
  setenv("LISTEN_FDS", "2", 1);
  setenv("LISTEN_FDNAMES", "web", 1);
  CHILD_CHECK(tcp_listen_rc("systemd") == SK_EADDR);
  setenv("LISTEN_FDNAMES", "web:dns:more", 1);
  CHILD_CHECK(tcp_listen_rc("systemd:web") == SK_EADDR);
  CHILD_CHECK(is_open(3) && is_open(4)); /* nothing taken: still systemd's */
  setenv("LISTEN_FDNAMES", "web:dns", 1);
  CHILD_CHECK(tcp_listen_rc("systemd:web") == SK_OK);
  CHILD_CHECK(!is_open(3)); /* taken, then closed by destroy */
  return 0;
}

/* LISTEN_PIDFDID: garbage is refused, another process's id too, and ours
 * is taken. Where pidfds have no inode number (no pidfd_open, as under
 * valgrind 3.19, or no pidfs) a number is ignored, as systemd ignores it. */
static int child_pidfdid(void) {
  int ports[2];
  CHILD_CHECK(pass_pair(ports, NULL));
  unsigned long long id = own_pidfd_id();
  char text[32];
  setenv("LISTEN_PIDFDID", "12x", 1);
  CHILD_CHECK(tcp_listen_rc("systemd") == SK_EADDR);
  snprintf(text, sizeof text, "%llu", id + 1);
  setenv("LISTEN_PIDFDID", text, 1);
  CHILD_CHECK(tcp_listen_rc("systemd") == (id ? SK_EADDR : SK_OK));
  if (!id)
    return 0; /* nothing to tell ours from another's */
  snprintf(text, sizeof text, "%llu", id);
  setenv("LISTEN_PIDFDID", text, 1);
  CHILD_CHECK(tcp_listen_rc("systemd") == SK_OK);
  return 0;
}

typedef struct child_wait {
  pid_t pid;
  int status;
} child_wait;

static bool child_ended(void *arg) {
  child_wait *w = arg;
  return waitpid(w->pid, &w->status, WNOHANG) == w->pid;
}

/* Run `fn` in a child of its own: it may rearrange its descriptors and
 * environment freely. Its exit status is the result. */
static void in_child(int (*fn)(void), const char *name) {
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    sk_set_log_level(SK_LOG_ERROR); /* the refusals are expected */
    if (dup2(p[1], REPORT_FD) != REPORT_FD)
      _exit(2);
    close(p[0]);
    close(p[1]);
    _exit(fn());
  }
  close(p[1]);
  child_wait w = {pid, 0};
  if (!sk_test_wait(child_ended, &w, 4 * WAIT_MS)) {
    kill(pid, SIGKILL);
    waitpid(pid, &w.status, 0);
    ck_abort_msg("%s: the child did not end in time", name);
  }
  char why[256] = "";
  ssize_t n = read(p[0], why, sizeof why - 1);
  why[n > 0 ? n : 0] = '\0';
  close(p[0]);
  ck_assert_msg(WIFEXITED(w.status), "%s: the child was killed by signal %d", name,
                WTERMSIG(w.status));
  ck_assert_msg(WEXITSTATUS(w.status) == 0, "%s: %s (exit %d)", name, why, WEXITSTATUS(w.status));
}

START_TEST(systemd_first_and_named) {
  in_child(child_first_and_named, "systemd_first_and_named");
}
END_TEST

START_TEST(systemd_unnamed) {
  in_child(child_unnamed, "systemd_unnamed");
}
END_TEST

START_TEST(systemd_bad_environment) {
  in_child(child_bad_environment, "systemd_bad_environment");
}
END_TEST

START_TEST(systemd_pidfdid) {
  in_child(child_pidfdid, "systemd_pidfdid");
}
END_TEST

static Suite *activate_suite(void) {
  Suite *s = suite_create("activate");
  TCase *tc = tcase_create("fd");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, fd_tcp);
  tcase_add_test(tc, fd_udp);
  tcase_add_test(tc, fd_unix);
  tcase_add_test(tc, fd_refused);
  tcase_add_loop_test(tc, malformed_forms, 0, (int)(sizeof malformed / sizeof malformed[0]));
  tcase_add_test(tc, well_formed);
  suite_add_tcase(s, tc);
  tc = tcase_create("systemd");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, systemd_first_and_named);
  tcase_add_test(tc, systemd_unnamed);
  tcase_add_test(tc, systemd_bad_environment);
  tcase_add_test(tc, systemd_pidfdid);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(activate_suite());
}
