/* test_cmd_service.c -- the sk-cmd-server example as a client sees it:
 * allowed commands work, injection and abuse are refused and leave no
 * trace, timeouts kill whole process groups, output is capped. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 10000

/* A running sk-cmd-server: its pid, address, the empty directory it runs
 * in (watched: nothing may appear there) and its stderr log. */
typedef struct cmd_server {
  pid_t pid;
  char address[SK_ADDRSTRLEN];
  char *dir;  /* the server's working directory */
  char *side; /* allow file and log, outside the watched directory */
  char log[512];
} cmd_server;

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

/* Start the server with extra arguments; wait for its "listening on" line. */
static void start_server(cmd_server *s, const char *const *args) {
  memset(s, 0, sizeof *s);
  s->dir = sk_test_tmpdir();
  s->side = sk_test_tmpdir();
  ck_assert_ptr_nonnull(s->dir);
  ck_assert_ptr_nonnull(s->side);
  snprintf(s->log, sizeof s->log, "%s/server.log", s->side);
  char allow[512];
  snprintf(allow, sizeof allow, "%s/allow", s->side);
  write_file(allow, "# test commands\n"
                    "echo /usr/bin/echo\n"
                    "uname /usr/bin/uname\n"
                    "ls /usr/bin/ls\n"
                    "sleep /usr/bin/sleep\n"
                    "yes /usr/bin/yes\n");
  int out[2];
  ck_assert_int_eq(pipe(out), 0);
  s->pid = fork();
  ck_assert_int_ge(s->pid, 0);
  if (s->pid == 0) {
    if (chdir(s->dir) != 0)
      _exit(99);
    int log = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out[1], 1);
    dup2(log, 2);
    close(out[0]);
    const char *argv[16] = {SK_CMD_SERVER, "--allow", allow, "--timeout", "500"};
    int n = 5;
    for (int i = 0; args && args[i] && n < 15; i++)
      argv[n++] = args[i];
    argv[n] = NULL;
    execv(SK_CMD_SERVER, (char **)argv);
    _exit(98);
  }
  close(out[1]);
  char line[256] = "";
  size_t len = 0;
  for (int i = 0; i < 500 && !strchr(line, '\n'); i++) {
    struct pollfd p = {.fd = out[0], .events = POLLIN};
    if (poll(&p, 1, 20) > 0) {
      ssize_t n = read(out[0], line + len, sizeof line - 1 - len);
      if (n <= 0)
        break;
      len += (size_t)n;
      line[len] = '\0';
    }
  }
  close(out[0]);
  char transport[8];
  ck_assert_msg(sscanf(line, "listening on %7s %127s", transport, s->address) == 2,
                "server said '%s'", line);
}

static void stop_server(cmd_server *s) {
  kill(s->pid, SIGTERM);
  int status = -1;
  for (int i = 0; i < 500; i++) {
    if (waitpid(s->pid, &status, WNOHANG) == s->pid)
      break;
    struct timespec d = {0, 10 * 1000000L};
    nanosleep(&d, NULL);
  }
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  char path[600];
  snprintf(path, sizeof path, "%s/allow", s->side);
  unlink(path);
  unlink(s->log);
  sk_test_rmdir(s->side);
  sk_test_rmdir(s->dir);
}

/* Entries of the watched directory. */
static int dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  if (d)
    closedir(d);
  return n;
}

/* One LENGTH-framed request; the reply into buf (NUL-terminated). Returns
 * its length, or -1 if the connection closed or failed. */
static ssize_t ask(int fd, const char *request, size_t len, char *buf, size_t size) {
  unsigned char header[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                             (unsigned char)(len >> 8), (unsigned char)len};
  if (sk_test_send_all(fd, header, 4) != 0 || sk_test_send_all(fd, request, len) != 0)
    return -1;
  if (sk_test_read_exact(fd, header, 4, WAIT_MS) != 4)
    return -1;
  size_t n = (size_t)header[0] << 24 | (size_t)header[1] << 16 | (size_t)header[2] << 8 | header[3];
  if (n >= size || sk_test_read_exact(fd, buf, n, WAIT_MS) != (ssize_t)n)
    return -1;
  buf[n] = '\0';
  return (ssize_t)n;
}

static ssize_t ask_str(int fd, const char *request, char *buf, size_t size) {
  return ask(fd, request, strlen(request), buf, size);
}

START_TEST(test_allowed_commands_give_real_output) {
  cmd_server s;
  start_server(&s, NULL);
  int fd = sk_test_tcp_connect(s.address);
  char reply[4096];
  ck_assert_int_ge(ask_str(fd, "echo hi", reply, sizeof reply), 0);
  ck_assert_str_eq(reply, "hi");
  struct utsname u;
  uname(&u);
  ck_assert_int_ge(ask_str(fd, "uname", reply, sizeof reply), 0);
  ck_assert_str_eq(reply, u.sysname);
  ck_assert_int_ge(ask_str(fd, "echo a  b   c", reply, sizeof reply), 0);
  ck_assert_str_eq(reply, "a b c");
  /* Multi-line output arrives whole in one LENGTH-framed reply. */
  char *listing = sk_test_tmpdir();
  const char *names[] = {"alpha", "beta", "gamma"};
  for (int i = 0; i < 3; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", listing, names[i]);
    write_file(path, "x");
  }
  char request[600];
  snprintf(request, sizeof request, "ls -1 %s", listing);
  ck_assert_int_ge(ask_str(fd, request, reply, sizeof reply), 0);
  ck_assert_str_eq(reply, "alpha\nbeta\ngamma");
  sk_test_rmdir(listing);
  /* A failing command reports its exit status. */
  ck_assert_int_ge(ask_str(fd, "ls /nonexistent-sk-test", reply, sizeof reply), 0);
  ck_assert_ptr_nonnull(strstr(reply, "[exit status 2]"));
  close(fd);
  stop_server(&s);
}
END_TEST

/* Every one is refused with "error: ..." and nothing runs. */
static const char *const attacks[] = {
    "rm -rf pwned",
    "/bin/rm pwned",
    "/usr/bin/echo hi",
    "./echo hi",
    "../bin/echo hi",
    "echo/../echo hi",
    "ls; touch pwned",
    ";touch pwned",
    "echo hi;touch pwned",
    "echo hi && touch pwned",
    "echo hi || touch pwned",
    "echo hi | tee pwned",
    "echo hi > pwned",
    "echo hi >> pwned",
    ">pwned",
    "echo <pwned",
    "echo $(touch pwned)",
    "echo `touch pwned`",
    "echo ${IFS}touch",
    "echo $HOME",
    "echo 'quoted'",
    "echo \"quoted\"",
    "echo *",
    "echo ?",
    "echo [ab]",
    "echo {a,b}",
    "echo ~",
    "echo a\\ b",
    "echo hi &",
    "echo hi # comment",
    "echo !!",
    "echo (subshell)",
    "echo ^",
    "touch pwned",
    "sh -c touch",
    "bash",
    "env",
    "find . -delete",
    "unlink pwned",
    "mv a b",
    "kill 1",
    "while true",
    "ECHO hi",
    "echo\thi",
    "echo hi\x1b[31m",
    "echo \xef\xbc\x9btouch pwned", /* fullwidth semicolon */
    "echo \xe2\x80\xaepwned",       /* right-to-left override */
    "echo caf\xc3\xa9",
    "ls ../..",
    "ls /tmp/../etc",
    "",
    "   ",
    /* more arguments than allowed (one literal, split over two lines) */
    ("echo 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 "
     "32 33"),
};

START_TEST(test_injection_and_abuse_refused) {
  cmd_server s;
  start_server(&s, NULL);
  int fd = sk_test_tcp_connect(s.address);
  char reply[4096];
  int n = (int)(sizeof attacks / sizeof attacks[0]);
  ck_assert_int_ge(n, 40);
  for (int i = 0; i < n; i++) {
    ck_assert_msg(ask_str(fd, attacks[i], reply, sizeof reply) >= 0, "no reply to '%s'",
                  attacks[i]);
    ck_assert_msg(strncmp(reply, "error: ", 7) == 0 && !strchr(reply, '\n'),
                  "'%s' was answered '%s'", attacks[i], reply);
  }
  close(fd);
  /* A NUL byte or an over-long line never reaches the service: the library
   * closes that connection (and only it). */
  int bad = sk_test_tcp_connect(s.address);
  ck_assert_int_lt(ask(bad, "echo a\0touch pwned", 18, reply, sizeof reply), 0);
  close(bad);
  static char huge[5000];
  memset(huge, 'a', sizeof huge);
  memcpy(huge, "echo ", 5);
  bad = sk_test_tcp_connect(s.address);
  ck_assert_int_lt(ask(bad, huge, sizeof huge, reply, sizeof reply), 0);
  close(bad);
  fd = sk_test_tcp_connect(s.address);
  ck_assert_int_ge(ask_str(fd, "echo still fine", reply, sizeof reply), 0);
  ck_assert_str_eq(reply, "still fine");
  close(fd);
  ck_assert_int_eq(dir_entries(s.dir), 0);
  /* Each refusal was logged with the client's address. */
  FILE *log = fopen(s.log, "r");
  char line[512];
  int logged = 0;
  while (log && fgets(line, sizeof line, log))
    if (strstr(line, "refused") && strstr(line, "from 127.0.0.1:"))
      logged++;
  if (log)
    fclose(log);
  ck_assert_int_eq(logged, n);
  stop_server(&s);
}
END_TEST

/* True while some process runs with `marker` among its arguments. */
static bool process_with_arg(const char *marker) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  bool found = false;
  while (d && !found && (e = readdir(d))) {
    char path[300], args[256];
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
      continue;
    ssize_t n = read(fd, args, sizeof args - 1);
    close(fd);
    for (ssize_t i = 0; i < n; i++)
      if (args[i] == '\0')
        args[i] = ' ';
    if (n > 0) {
      args[n] = '\0';
      found = strstr(args, marker) != NULL;
    }
  }
  if (d)
    closedir(d);
  return found;
}

static bool sleeper_gone(void *marker) {
  return !process_with_arg(marker);
}
static bool sleeper_running(void *marker) {
  return process_with_arg(marker);
}

START_TEST(test_timeout_kills_and_others_are_served) {
  cmd_server s;
  start_server(&s, NULL);
  int slow = sk_test_tcp_connect(s.address);
  int quick = sk_test_tcp_connect(s.address);
  const char *request = "sleep 30.4242";
  static char marker[] = "30.4242";
  unsigned char header[4] = {0, 0, 0, (unsigned char)strlen(request)};
  ck_assert_int_eq(sk_test_send_all(slow, header, 4), 0);
  ck_assert_int_eq(sk_test_send_all(slow, request, strlen(request)), 0);
  ck_assert(sk_test_wait(sleeper_running, marker, WAIT_MS));
  /* While the sleeper holds a worker, another client is served at once. */
  char reply[4096];
  ck_assert_int_ge(ask_str(quick, "echo meanwhile", reply, sizeof reply), 0);
  ck_assert_str_eq(reply, "meanwhile");
  struct pollfd p = {.fd = slow, .events = POLLIN};
  ck_assert_int_eq(poll(&p, 1, 0), 0); /* the sleeper has not answered yet */
  ck_assert_int_eq(sk_test_read_exact(slow, header, 4, WAIT_MS), 4);
  size_t n = header[3];
  ck_assert_int_eq(sk_test_read_exact(slow, reply, n, WAIT_MS), (ssize_t)n);
  reply[n] = '\0';
  ck_assert_msg(strstr(reply, "killed after 500 ms"), "reply was '%s'", reply);
  ck_assert(sk_test_wait(sleeper_gone, marker, WAIT_MS));
  close(slow);
  close(quick);
  stop_server(&s);
}
END_TEST

START_TEST(test_output_is_capped) {
  cmd_server s;
  start_server(&s, NULL);
  int fd = sk_test_tcp_connect(s.address);
  static char reply[512 * 1024];
  ssize_t n = ask_str(fd, "yes", reply, sizeof reply);
  ck_assert_int_gt(n, 200 * 1024);
  ck_assert_int_le(n, 256 * 1024 + 64);
  ck_assert_ptr_nonnull(strstr(reply, "...[truncated]"));
  close(fd);
  stop_server(&s);

  /* Over UDP, about one packet: a small datagram cannot buy a big reply. */
  const char *udp[] = {"--udp", NULL};
  start_server(&s, udp);
  fd = sk_test_udp_socket(s.address);
  ck_assert_int_ge(fd, 0);
  n = sk_test_udp_exchange(fd, "yes", 3, reply, sizeof reply, WAIT_MS);
  ck_assert_int_gt(n, 1000);
  ck_assert_int_le(n, 1300);
  ck_assert_ptr_nonnull(strstr(reply, "[truncated]"));
  ck_assert_int_eq(sk_test_udp_exchange(fd, "echo over udp", 13, reply, sizeof reply, WAIT_MS), 8);
  ck_assert_str_eq(reply, "over udp");
  close(fd);
  stop_server(&s);
}
END_TEST

START_TEST(test_line_framing_for_nc) {
  const char *line[] = {"--framing", "line", NULL};
  cmd_server s;
  start_server(&s, line);
  int fd = sk_test_tcp_connect(s.address);
  ck_assert_int_eq(sk_test_send_all(fd, "echo one\necho two\n", 18), 0);
  shutdown(fd, SHUT_WR); /* as nc -q1 does */
  char got[64];
  ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), 8);
  ck_assert(memcmp(got, "one\ntwo\n", 8) == 0);
  close(fd);
  stop_server(&s);
}
END_TEST

/* Run a program, collect its stdout; returns its exit status or -1. */
static int run_program(const char *const *argv, char *out, size_t size) {
  int p[2];
  if (pipe(p) != 0)
    return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    execv(argv[0], (char **)argv);
    _exit(127);
  }
  close(p[1]);
  size_t len = 0;
  ssize_t n;
  /* The child ends within its own reply timeout, so this read ends too. */
  while (len < size - 1 && (n = read(p[0], out + len, size - 1 - len)) > 0)
    len += (size_t)n;
  out[len] = '\0';
  close(p[0]);
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
    return -1;
  return WEXITSTATUS(status);
}

START_TEST(test_cmd_client_one_shot) {
  cmd_server s;
  start_server(&s, NULL);
  char out[4096];
  const char *ok[] = {SK_CMD_CLIENT, s.address, "--", "echo", "hello", "there", NULL};
  ck_assert_int_eq(run_program(ok, out, sizeof out), 0);
  ck_assert_str_eq(out, "hello there\n");
  const char *bad[] = {SK_CMD_CLIENT, s.address, "--", "rm", "-rf", "x", NULL};
  ck_assert_int_eq(run_program(bad, out, sizeof out), 3);
  ck_assert_str_eq(out, "error: command not allowed\n");
  stop_server(&s);
}
END_TEST

#define CLIENTS 20

typedef struct cmd_client {
  const char *address;
  int id;
  bool ok;
} cmd_client;

static void *client_thread(void *arg) {
  cmd_client *c = arg;
  int fd = sk_test_tcp_connect(c->address);
  char request[64], want[64], reply[256];
  snprintf(request, sizeof request, "echo client %d", c->id);
  snprintf(want, sizeof want, "client %d", c->id);
  c->ok = fd >= 0 && ask_str(fd, request, reply, sizeof reply) >= 0 && strcmp(reply, want) == 0;
  if (fd >= 0)
    close(fd);
  return NULL;
}

START_TEST(test_twenty_clients_at_once) {
  cmd_server s;
  start_server(&s, NULL);
  pthread_t threads[CLIENTS];
  cmd_client clients[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    clients[i] = (cmd_client){.address = s.address, .id = i};
    ck_assert_int_eq(pthread_create(&threads[i], NULL, client_thread, &clients[i]), 0);
  }
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(threads[i], NULL);
    ck_assert_msg(clients[i].ok, "client %d", i);
  }
  stop_server(&s);
}
END_TEST

static Suite *cmd_suite(void) {
  Suite *s = suite_create("cmd_service");
  TCase *tc = tcase_create("cmd");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_allowed_commands_give_real_output);
  tcase_add_test(tc, test_injection_and_abuse_refused);
  tcase_add_test(tc, test_timeout_kills_and_others_are_served);
  tcase_add_test(tc, test_output_is_capped);
  tcase_add_test(tc, test_line_framing_for_nc);
  tcase_add_test(tc, test_twenty_clients_at_once);
  tcase_add_test(tc, test_cmd_client_one_shot);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(cmd_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
