/* test_cmd_service.c -- the sk-cmd-server example as a client sees it:
 * allowed commands work, injection, file disclosure, clock setting and
 * abuse are refused and leave no trace, commands run confined (user, no
 * new privileges, limits), timeouts kill whole process groups, output is
 * capped. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 10000

/* The policy most tests use. {MARK} in the sleep rule is replaced by this
 * process's id, so that parallel runs of this test never mistake one
 * another's sleepers for their own. */
static const char test_policy[] = "# test commands\n"
                                  "echo  /usr/bin/echo  *\n"
                                  "uname /usr/bin/uname\n"
                                  "ls    /usr/bin/ls    -1 <path>\n"
                                  "sleep /usr/bin/sleep 30.*\n"
                                  "yes   /usr/bin/yes\n"
                                  "false /usr/bin/false\n";

/* A running sk-cmd-server: its pid, address, the directory it serves and
 * runs in (watched: nothing may appear there) and its stderr log. */
typedef struct cmd_server {
  pid_t pid;
  char address[SK_ADDRSTRLEN];
  char *dir;  /* the served directory and the server's working directory */
  char *side; /* allow file and log, outside the served directory */
  char log[512];
  char allow[512];
} cmd_server;

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

/* The whole of a small file, NUL-terminated (empty if it cannot be read). */
static void read_file(const char *path, char *buf, size_t size) {
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, size - 1, f) : 0;
  buf[n] = '\0';
  if (f)
    fclose(f);
}

static bool as_root(void) {
  return geteuid() == 0;
}

/* Say visibly that a check cannot run here, rather than pass in silence. */
static void skip(const char *reason) {
  sk_test_skip("cmd_service", reason);
}

/* Start sk-cmd-server in `dir` with `argv` (NULL-terminated, without the
 * program), stdout into a pipe returned in *out, stderr into `log`. */
static pid_t spawn_server(const char *dir, const char *log, const char *const *args, int *out) {
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (chdir(dir) != 0 || fd < 0)
      _exit(99);
    dup2(p[1], 1);
    dup2(fd, 2);
    close(p[0]);
    const char *argv[40] = {SK_CMD_SERVER};
    int n = 1;
    for (int i = 0; args[i] && n < 39; i++)
      argv[n++] = args[i];
    argv[n] = NULL;
    execv(SK_CMD_SERVER, (char **)argv);
    _exit(98);
  }
  close(p[1]);
  *out = p[0];
  return pid;
}

/* Start the server with `policy` as its allow file (NULL: the built-in
 * defaults) and extra arguments; it binds port 0 and we learn its address
 * from the "listening on" line. As root it is told to become nobody. */
static void start_server(cmd_server *s, const char *policy, const char *const *args) {
  memset(s, 0, sizeof *s);
  s->dir = sk_test_tmpdir();
  s->side = sk_test_tmpdir();
  ck_assert_ptr_nonnull(s->dir);
  ck_assert_ptr_nonnull(s->side);
  ck_assert_int_eq(chmod(s->dir, 0755), 0); /* nobody must be able to enter */
  snprintf(s->log, sizeof s->log, "%s/server.log", s->side);
  snprintf(s->allow, sizeof s->allow, "%s/allow", s->side);
  const char *argv[40];
  int n = 0;
  if (policy) {
    write_file(s->allow, policy);
    argv[n++] = "--allow";
    argv[n++] = s->allow;
  }
  if (as_root()) {
    argv[n++] = "--user";
    argv[n++] = "nobody";
  }
  argv[n++] = "--timeout";
  argv[n++] = "500";
  for (int i = 0; args && args[i] && n < 37; i++)
    argv[n++] = args[i];
  argv[n++] = "127.0.0.1:0";
  argv[n] = NULL;
  int out;
  s->pid = spawn_server(s->dir, s->log, argv, &out);
  char line[512];
  sk_test_read_line(out, line, sizeof line, WAIT_MS);
  close(out);
  char transport[8], log[1024];
  read_file(s->log, log, sizeof log);
  ck_assert_msg(sscanf(line, "listening on %7s %127s", transport, s->address) == 2,
                "server said '%s', logged '%s'", line, log);
}

static void stop_server(cmd_server *s) {
  kill(s->pid, SIGTERM);
  ck_assert_int_eq(sk_test_wait_exit(s->pid, WAIT_MS), 0);
  unlink(s->allow);
  unlink(s->log);
  sk_test_rmdir(s->side);
  sk_test_rmdir(s->dir);
}

/* Run the server with `args` (a port-0 address is added) until it exits,
 * as it should at once; its exit status, and its stderr into `log`. */
static int server_exit_status(const char *dir, const char *const *args, char *log, size_t size) {
  char *side = sk_test_tmpdir();
  ck_assert_ptr_nonnull(side);
  char path[512];
  snprintf(path, sizeof path, "%s/server.log", side);
  const char *argv[40];
  int n = 0;
  for (int i = 0; args[i] && n < 38; i++)
    argv[n++] = args[i];
  argv[n++] = "127.0.0.1:0";
  argv[n] = NULL;
  int out;
  pid_t pid = spawn_server(dir, path, argv, &out);
  char line[512];
  sk_test_read_line(out, line, sizeof line, WAIT_MS);
  close(out);
  if (line[0]) /* it started after all: stop it, and fail below */
    kill(pid, SIGTERM);
  int status = sk_test_wait_exit(pid, WAIT_MS);
  read_file(path, log, size);
  unlink(path);
  sk_test_rmdir(side);
  ck_assert_msg(!line[0], "server started: '%s'", line);
  return status;
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

/* Ask, and expect a one-line refusal. */
static void expect_refused(int fd, const char *request) {
  char reply[4096];
  ck_assert_msg(ask_str(fd, request, reply, sizeof reply) >= 0, "no reply to '%s'", request);
  ck_assert_msg(strncmp(reply, "error: ", 7) == 0 && !strchr(reply, '\n'), "'%s' was answered '%s'",
                request, reply);
}

/* Ask, and expect exactly `want`. */
static void expect_reply(int fd, const char *request, const char *want) {
  char reply[8192];
  ck_assert_msg(ask_str(fd, request, reply, sizeof reply) >= 0, "no reply to '%s'", request);
  ck_assert_msg(strcmp(reply, want) == 0, "'%s' was answered '%s', not '%s'", request, reply, want);
}

/* The values of one line of /proc/PID/limits, e.g. "Max cpu time". */
static bool limit_values(const char *limits, const char *name, char *soft, char *hard) {
  const char *line = strstr(limits, name);
  return line && sscanf(line + strlen(name), "%31s %31s", soft, hard) == 2;
}

START_TEST(test_allowed_commands_give_real_output) {
  cmd_server s;
  start_server(&s, test_policy, NULL);
  int fd = sk_test_tcp_connect(s.address);
  expect_reply(fd, "echo hi", "hi");
  struct utsname u;
  uname(&u);
  expect_reply(fd, "uname", u.sysname);
  expect_reply(fd, "echo a  b   c", "a b c");
  /* Multi-line output arrives whole in one LENGTH-framed reply. */
  char listing[512], path[600];
  snprintf(listing, sizeof listing, "%s/listing", s.dir);
  ck_assert_int_eq(mkdir(listing, 0755), 0);
  const char *names[] = {"alpha", "beta", "gamma"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", listing, names[i]);
    write_file(path, "x");
  }
  expect_reply(fd, "ls -1 listing", "alpha\nbeta\ngamma");
  /* An absolute path inside the served directory is fine too. */
  char request[700];
  snprintf(request, sizeof request, "ls -1 %s", listing);
  expect_reply(fd, request, "alpha\nbeta\ngamma");
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", listing, names[i]);
    unlink(path);
  }
  rmdir(listing);
  /* A failing command reports its exit status. */
  expect_reply(fd, "false", "[exit status 1]");
  close(fd);
  stop_server(&s);
}
END_TEST

/* The built-in policy: real answers for what it offers, and nothing about
 * any file outside the served directory, however asked. */
START_TEST(test_defaults_disclose_nothing_outside_root) {
  cmd_server s;
  start_server(&s, NULL, NULL);
  char path[1024], sibling[512];
  snprintf(path, sizeof path, "%s/visible", s.dir);
  write_file(path, "x");
  snprintf(path, sizeof path, "%s/etc-link", s.dir);
  ck_assert_int_eq(symlink("/etc", path), 0);
  snprintf(path, sizeof path, "%s/passwd-link", s.dir);
  ck_assert_int_eq(symlink("/etc/passwd", path), 0);
  /* A sibling whose name starts with the root's: a prefix test would let
   * it in. */
  snprintf(sibling, sizeof sibling, "%s-sibling", s.dir);
  ck_assert_int_eq(mkdir(sibling, 0755), 0);
  snprintf(path, sizeof path, "%s/outside-secret", sibling);
  write_file(path, "secret");
  snprintf(path, sizeof path, "%s/sibling-link", s.dir);
  ck_assert_int_eq(symlink(sibling, path), 0);

  int fd = sk_test_tcp_connect(s.address);
  char reply[8192], request[PATH_MAX + 128];
  ck_assert_int_ge(ask_str(fd, "date +%Y", reply, sizeof reply), 0);
  ck_assert_msg(strlen(reply) == 4 && atoi(reply) >= 2024, "date +%%Y said '%s'", reply);
  struct utsname u;
  uname(&u);
  expect_reply(fd, "uname -s", u.sysname);
  expect_reply(fd, "ls -1", "etc-link\npasswd-link\nsibling-link\nvisible");
  char root[PATH_MAX];
  ck_assert_ptr_nonnull(realpath(s.dir, root));
  expect_reply(fd, "pwd", root);
  /* ls -R stays inside: it does not follow the symlinks. */
  ck_assert_int_ge(ask_str(fd, "ls -R -a", reply, sizeof reply), 0);
  ck_assert_msg(!strstr(reply, "shadow") && !strstr(reply, "outside-secret"), "ls -R: '%s'", reply);
  /* date's error for extra operands goes to stderr, which is not sent. */
  ck_assert_int_ge(ask_str(fd, "date +%Y +%m", reply, sizeof reply), 0);
  ck_assert_msg(strcmp(reply, "[exit status 1]") == 0, "reply was '%s'", reply);

  const char *attacks[] = {
      "date -f /etc/shadow",
      "date -f /etc/passwd",
      "date --file=/etc/passwd",
      "date -f/etc/passwd",
      "date -fpasswd-link",
      "date -f passwd-link",
      "date -r /etc/passwd",
      "date --reference=/etc/shadow",
      "date --fi=/etc/passwd",
      "ls /",
      "ls /etc",
      "ls ..",
      "ls ../..",
      "ls ../../etc",
      "ls /tmp/../etc",
      "ls etc-link",
      "ls etc-link/",
      "ls etc-link/passwd",
      "ls -l passwd-link",
      "ls -L",
      "ls -L -R",
      "ls -H etc-link",
      "ls --dereference",
      "ls --dereference-command-line etc-link",
      "ls -l --dereference etc-link",
      "ls sibling-link",
      "ls /proc/self/root",
      "ls /proc/self/cwd/..",
      "ls /proc/1/root/etc",
      "ls -I x /",
      "ls --hide=x /etc",
      "ls -R /",
      "uname -a /etc/passwd",
      "uptime -s /etc/passwd",
      "whoami /etc/passwd",
      "pwd -P /",
      "cat /etc/passwd",
      "df",
  };
  for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++)
    expect_refused(fd, attacks[i]);
  /* Absolute paths outside: the sibling, and the root through a symlink. */
  snprintf(request, sizeof request, "ls %s", sibling);
  expect_refused(fd, request);
  snprintf(request, sizeof request, "ls %s/outside-secret", sibling);
  expect_refused(fd, request);
  snprintf(request, sizeof request, "ls %s/etc-link", root);
  expect_refused(fd, request);
  snprintf(request, sizeof request, "ls %s/sibling-link/outside-secret", root);
  expect_refused(fd, request);
  /* A missing path and one outside get the same answer: no oracle. */
  char missing[4096], outside[4096];
  ck_assert_int_ge(ask_str(fd, "ls no-such-file", missing, sizeof missing), 0);
  ck_assert_int_ge(ask_str(fd, "ls /etc/passwd", outside, sizeof outside), 0);
  ck_assert_str_eq(missing, outside);
  close(fd);

  /* The same holds for a policy that serves file contents (the sample). */
  cmd_server t;
  start_server(&t, NULL, (const char *const[]){"--allow", SK_CMD_SAMPLE, "--root", s.dir, NULL});
  fd = sk_test_tcp_connect(t.address);
  expect_reply(fd, "cat visible", "x");
  snprintf(request, sizeof request, "cat %s/visible", root);
  expect_reply(fd, request, "x");
  const char *reads[] = {"cat /etc/passwd",
                         "cat passwd-link",
                         "cat etc-link/shadow",
                         "cat /proc/self/environ",
                         "cat sibling-link/outside-secret",
                         "wc -c /etc/shadow",
                         "du -s /"};
  for (size_t i = 0; i < sizeof reads / sizeof *reads; i++)
    expect_refused(fd, reads[i]);
  snprintf(request, sizeof request, "cat %s/outside-secret", sibling);
  expect_refused(fd, request);
  /* The sample's cat has <stderr>: its complaint reaches the client. */
  ck_assert_int_ge(ask_str(fd, "cat .", reply, sizeof reply), 0);
  ck_assert_msg(strstr(reply, "Is a directory") && strstr(reply, "[exit status 1]"), "'%s'", reply);
  close(fd);
  stop_server(&t);

  snprintf(path, sizeof path, "%s/outside-secret", sibling);
  unlink(path);
  rmdir(sibling);
  stop_server(&s);
}
END_TEST

START_TEST(test_clock_cannot_be_set) {
  cmd_server s;
  start_server(&s, NULL, NULL);
  int fd = sk_test_tcp_connect(s.address);
  const char *attempts[] = {
      "date -s @0",         "date --set=@0",    "date --set @0", "date -s2000-01-01",
      "date -s 2000-01-01", "date --s=@0",      "date --se=@0",  "date +%s -s @0",
      "date -u -s @0",      "date -u --set=@0", "date @0",       "date 010100002000",
      "date -d @0 -s now",  "date --date=@0",   "date -s+%s",    "date -R -s @0",
  };
  for (size_t i = 0; i < sizeof attempts / sizeof *attempts; i++)
    expect_refused(fd, attempts[i]);
  close(fd);
  stop_server(&s);
  ck_assert_int_gt(time(NULL), 1700000000); /* still this decade */

  /* Even a policy that wrongly allows -s cannot set it: commands run
   * unprivileged and with no new privileges. "now" keeps the probe
   * harmless should that ever fail. */
  start_server(&s, "date /usr/bin/date -s now <stderr>\n", NULL);
  fd = sk_test_tcp_connect(s.address);
  char reply[4096];
  ck_assert_int_ge(ask_str(fd, "date -s now", reply, sizeof reply), 0);
  ck_assert_msg(strstr(reply, "Operation not permitted") && strstr(reply, "[exit status 1]"),
                "date -s now said '%s'", reply);
  close(fd);
  stop_server(&s);
}
END_TEST

START_TEST(test_root_needs_an_unprivileged_user) {
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char log[2048];
  if (!as_root()) {
    skip("not root: cannot check that root without --user is refused");
    /* What can be checked: an ordinary user cannot become another. */
    struct passwd *pw = getpwnam("nobody");
    const char *other[] = {"--user", pw && pw->pw_uid == geteuid() ? "daemon" : "nobody", NULL};
    ck_assert_int_eq(server_exit_status(dir, other, log, sizeof log), 2);
    ck_assert_msg(strstr(log, "only root can change user"), "log: %s", log);
    sk_test_rmdir(dir);
    return;
  }
  const char *none[] = {NULL};
  ck_assert_int_eq(server_exit_status(dir, none, log, sizeof log), 2);
  ck_assert_msg(strstr(log, "refusing to run commands as root"), "log: %s", log);
  const char *root[] = {"--user", "root", NULL};
  ck_assert_int_eq(server_exit_status(dir, root, log, sizeof log), 2);
  ck_assert_msg(strstr(log, "not an unprivileged user"), "log: %s", log);
  const char *unknown[] = {"--user", "no-such-user-sk-test", NULL};
  ck_assert_int_eq(server_exit_status(dir, unknown, log, sizeof log), 2);
  ck_assert_msg(strstr(log, "no such user"), "log: %s", log);
  sk_test_rmdir(dir);
}
END_TEST

START_TEST(test_commands_run_as_the_user) {
  if (!as_root()) {
    skip("not root: --user cannot change user");
    return;
  }
  struct passwd *pw = getpwnam("nobody");
  ck_assert_ptr_nonnull(pw);
  char uid[32], gid[32];
  snprintf(uid, sizeof uid, "%u", (unsigned)pw->pw_uid);
  snprintf(gid, sizeof gid, "%u", (unsigned)pw->pw_gid);
  cmd_server s;
  start_server(&s,
               "id     /usr/bin/id     -u -g -G\n"
               "whoami /usr/bin/whoami\n",
               NULL);
  int fd = sk_test_tcp_connect(s.address);
  expect_reply(fd, "id -u", uid);
  expect_reply(fd, "id -g", gid);
  expect_reply(fd, "id -G", gid); /* root's supplementary groups are gone */
  expect_reply(fd, "whoami", "nobody");
  close(fd);
  /* The server itself dropped root too, for good. */
  char path[64], status[4096], want[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)s.pid);
  read_file(path, status, sizeof status);
  snprintf(want, sizeof want, "Uid:\t%s\t%s\t%s\t%s\n", uid, uid, uid, uid);
  ck_assert_msg(strstr(status, want), "server status: %s", status);
  stop_server(&s);
}
END_TEST

/* What a command runs with: no new privileges, no capabilities, the
 * limits, stdin and stderr on /dev/null, the chosen working directory. */
START_TEST(test_commands_run_confined) {
  char *work = sk_test_tmpdir();
  ck_assert_ptr_nonnull(work);
  ck_assert_int_eq(chmod(work, 0755), 0);
  const char *args[] = {"--chdir",         work,  "--max-cpu",   "3",
                        "--max-memory",    "128", "--max-procs", "50",
                        "--max-file-size", "64",  NULL};
  cmd_server s;
  start_server(&s,
               "cat      /usr/bin/cat      /proc/self/status /proc/self/limits\n"
               "readlink /usr/bin/readlink /proc/self/fd/0 /proc/self/fd/2\n"
               "pwd      /usr/bin/pwd\n",
               args);
  int fd = sk_test_tcp_connect(s.address);
  static char reply[65536];
  ck_assert_int_ge(ask_str(fd, "cat /proc/self/status", reply, sizeof reply), 0);
  ck_assert_msg(strstr(reply, "NoNewPrivs:\t1\n"), "status: %s", reply);
  ck_assert_msg(strstr(reply, "CapEff:\t0000000000000000\n"), "status: %s", reply);
  ck_assert_int_ge(ask_str(fd, "cat /proc/self/limits", reply, sizeof reply), 0);
  const struct {
    const char *name, *soft, *hard;
  } want[] = {
      {"Max cpu time", "3", "4"},       {"Max file size", "65536", "65536"},
      {"Max processes", "50", "50"},    {"Max address space", "134217728", "134217728"},
      {"Max core file size", "0", "0"},
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    char soft[32], hard[32];
    ck_assert_msg(limit_values(reply, want[i].name, soft, hard), "no '%s' in %s", want[i].name,
                  reply);
    ck_assert_msg(strcmp(soft, want[i].soft) == 0 && strcmp(hard, want[i].hard) == 0, "%s: %s %s",
                  want[i].name, soft, hard);
  }
  expect_reply(fd, "readlink /proc/self/fd/0", "/dev/null");
  expect_reply(fd, "readlink /proc/self/fd/2", "/dev/null");
  char real[PATH_MAX];
  ck_assert_ptr_nonnull(realpath(work, real));
  expect_reply(fd, "pwd", real);
  close(fd);
  stop_server(&s);
  sk_test_rmdir(work);
}
END_TEST

/* Commands that would burn CPU, fill the disk or eat memory are stopped by
 * their limits long before the (long) timeout. */
START_TEST(test_resource_limits_stop_commands) {
  const char *args[] = {"--timeout", "30000",        "--max-cpu", "1", "--max-file-size",
                        "64",        "--max-memory", "64",        NULL};
  cmd_server s;
  start_server(&s,
               "md5sum /usr/bin/md5sum /dev/zero\n"
               "dd     /usr/bin/dd     if=/dev/zero of=big bs=64k count=64\n"
               "tail   /usr/bin/tail   -n 1 /dev/zero <stderr>\n",
               args);
  ck_assert_int_eq(chmod(s.dir, 0777), 0); /* dd may write here */
  int fd = sk_test_tcp_connect(s.address);
  char reply[4096];
  /* CPU: SIGXCPU (24) after one CPU second. */
  ck_assert_int_ge(ask_str(fd, "md5sum /dev/zero", reply, sizeof reply), 0);
  ck_assert_msg(strcmp(reply, "[killed by signal 24]") == 0, "md5sum: '%s'", reply);
  /* File size: SIGXFSZ (25) at 64 KiB, and the file is no bigger. */
  ck_assert_int_ge(ask_str(fd, "dd if=/dev/zero of=big bs=64k count=64", reply, sizeof reply), 0);
  ck_assert_msg(strcmp(reply, "[killed by signal 25]") == 0, "dd: '%s'", reply);
  char path[600];
  snprintf(path, sizeof path, "%s/big", s.dir);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_int_le(st.st_size, 64 * 1024);
  unlink(path);
  /* Memory: tail keeps the endless "line" and runs out of address space. */
  ck_assert_int_ge(ask_str(fd, "tail -n 1 /dev/zero", reply, sizeof reply), 0);
  ck_assert_msg(strstr(reply, "memory exhausted") && strstr(reply, "[exit status 1]"), "tail: '%s'",
                reply);
  close(fd);
  stop_server(&s);
}
END_TEST

/* Bad allow files and a dangerous default root stop the server at start. */
START_TEST(test_startup_refusals) {
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char allow[600], log[2048];
  snprintf(allow, sizeof allow, "%s/allow", dir);
  /* As root it needs --user, or it would stop for that reason instead. */
  const char *args[] = {"--allow", allow, NULL, NULL, NULL};
  const char *plain[] = {NULL, NULL, NULL};
  if (as_root()) {
    args[2] = plain[0] = "--user";
    args[3] = plain[1] = "nobody";
  }
  const struct {
    const char *file, *message;
  } bad[] = {
      {"# fine\n\nls bin/ls\n", "allow:3: expected NAME /absolute/program"},
      {"ls /usr/bin/ls <file>\n", "allow:1: unknown keyword"},
      {"ls /no/such/program\n", "allow:1: the program is not an executable file"},
      {"ls /usr/bin/ls\nls /usr/bin/ls -l\n", "allow:2: command listed twice"},
      {"l;s /usr/bin/ls\n", "allow:1: bad command name"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    write_file(allow, bad[i].file);
    ck_assert_int_eq(server_exit_status(dir, args, log, sizeof log), 2);
    ck_assert_msg(strstr(log, bad[i].message), "'%s' logged '%s'", bad[i].file, log);
  }
  unlink(allow);
  /* Started in / without --root, it would serve the whole machine. */
  ck_assert_int_eq(server_exit_status("/", plain, log, sizeof log), 2);
  ck_assert_msg(strstr(log, "refusing to serve / by default"), "log: %s", log);
  sk_test_rmdir(dir);
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
    "echo hi\ntouch pwned",
    "echo hi\rtouch pwned",
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
    "ls -1 /",
    "uname -a",   /* the test policy gives uname no arguments */
    "sleep 1000", /* nor sleep this one */
    "",
    "   ",
    /* more arguments than allowed (one literal, split over two lines) */
    ("echo 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 "
     "32 33"),
};

START_TEST(test_injection_and_abuse_refused) {
  cmd_server s;
  start_server(&s, test_policy, NULL);
  int fd = sk_test_tcp_connect(s.address);
  int n = (int)(sizeof attacks / sizeof attacks[0]);
  ck_assert_int_ge(n, 40);
  for (int i = 0; i < n; i++)
    expect_refused(fd, attacks[i]);
  close(fd);
  /* A NUL byte or an over-long line never reaches the service: the library
   * closes that connection (and only it). */
  char reply[4096];
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
  expect_reply(fd, "echo still fine", "still fine");
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
  start_server(&s, test_policy, NULL);
  int slow = sk_test_tcp_connect(s.address);
  int quick = sk_test_tcp_connect(s.address);
  /* Unique to this process, so that parallel runs do not see each other's. */
  char marker[32], request[64];
  snprintf(marker, sizeof marker, "30.%d", (int)getpid());
  snprintf(request, sizeof request, "sleep %s", marker);
  unsigned char header[4] = {0, 0, 0, (unsigned char)strlen(request)};
  ck_assert_int_eq(sk_test_send_all(slow, header, 4), 0);
  ck_assert_int_eq(sk_test_send_all(slow, request, strlen(request)), 0);
  ck_assert(sk_test_wait(sleeper_running, marker, WAIT_MS));
  /* While the sleeper holds a worker, another client is served at once. */
  char reply[4096];
  expect_reply(quick, "echo meanwhile", "meanwhile");
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
  start_server(&s, test_policy, NULL);
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
  start_server(&s, test_policy, udp);
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
  start_server(&s, test_policy, line);
  int fd = sk_test_tcp_connect(s.address);
  ck_assert_int_eq(sk_test_send_all(fd, "echo one\necho two\n", 18), 0);
  shutdown(fd, SHUT_WR); /* as nc -q1 does */
  char got[64];
  ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), 8);
  ck_assert(memcmp(got, "one\ntwo\n", 8) == 0);
  close(fd);
  /* Output of several lines stays one reply line: newlines inside it go
   * as "\\n" (the library refuses a LINE reply with a newline in it). */
  fd = sk_test_tcp_connect(s.address);
  ck_assert_int_eq(sk_test_send_all(fd, "echo start\nyes\necho end\n", 25), 0);
  shutdown(fd, SHUT_WR);
  static char all[512 * 1024];
  ssize_t n = sk_test_read_to_eof(fd, all, sizeof all - 1, WAIT_MS);
  ck_assert_int_gt(n, 0);
  all[n] = '\0';
  char *first = all, *second = strchr(first, '\n');
  ck_assert_ptr_nonnull(second);
  *second++ = '\0';
  ck_assert_str_eq(first, "start");
  char *third = strchr(second, '\n');
  ck_assert_ptr_nonnull(third);
  *third++ = '\0';
  ck_assert_msg(strncmp(second, "y\\ny\\ny\\n", 9) == 0, "yes: '%.20s'", second);
  ck_assert_str_eq(third, "end\n");
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
  start_server(&s, test_policy, NULL);
  char out[4096];
  const char *ok[] = {SK_CMD_CLIENT, s.address, "--", "echo", "hello", "there", NULL};
  ck_assert_int_eq(run_program(ok, out, sizeof out), 0);
  ck_assert_str_eq(out, "hello there\n");
  const char *bad[] = {SK_CMD_CLIENT, s.address, "--", "rm", "-rf", "x", NULL};
  ck_assert_int_eq(run_program(bad, out, sizeof out), 3);
  ck_assert_str_eq(out, "error: command not allowed\n");
  const char *arg[] = {SK_CMD_CLIENT, s.address, "--", "ls", "/", NULL};
  ck_assert_int_eq(run_program(arg, out, sizeof out), 3);
  ck_assert_str_eq(out, "error: argument not allowed\n");
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
  start_server(&s, test_policy, NULL);
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
  /* The security review's findings: each attack, and each confinement. */
  TCase *sec = tcase_create("confinement");
  tcase_set_timeout(sec, 90);
  tcase_add_test(sec, test_defaults_disclose_nothing_outside_root);
  tcase_add_test(sec, test_clock_cannot_be_set);
  tcase_add_test(sec, test_root_needs_an_unprivileged_user);
  tcase_add_test(sec, test_commands_run_as_the_user);
  tcase_add_test(sec, test_commands_run_confined);
  tcase_add_test(sec, test_resource_limits_stop_commands);
  tcase_add_test(sec, test_startup_refusals);
  suite_add_tcase(s, sec);
  return s;
}

int main(void) {
  /* The policies name programs by their /usr/bin paths: a host that lacks
   * one cannot run these tests, which is a skip, not a failure. */
  static const char *const programs[] = {"echo",     "uname", "ls",     "sleep",  "yes",
                                         "false",    "date",  "id",     "whoami", "cat",
                                         "readlink", "pwd",   "md5sum", "dd",     "tail"};
  for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
    char path[64];
    snprintf(path, sizeof path, "/usr/bin/%s", programs[i]);
    if (access(path, X_OK) != 0) {
      char why[96];
      snprintf(why, sizeof why, "%s is missing", path);
      sk_test_skip("cmd_service", why);
      return SK_TEST_SKIPPED;
    }
  }
  return sk_test_run(cmd_suite());
}
