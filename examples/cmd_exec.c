/* cmd_exec.c -- fork and exec one command of sk-cmd-server with its
 * limits, no new privileges and no shell; collect its output. */
#define _GNU_SOURCE /* pipe2, close_range */

#include "cmd_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char TRUNCATED[] = "...[truncated]";

/* The environment commands run with: nothing inherited from the server. */
static char env_path[] = "PATH=/usr/bin:/bin";
static char env_locale[] = "LC_ALL=C";
static char *clean_env[] = {env_path, env_locale, NULL};

void cmd_output_append(struct cmd_output *o, const char *bytes, size_t n) {
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 1024;
    while (cap < o->len + n + 1)
      cap *= 2;
    char *grown = realloc(o->data, cap);
    if (!grown)
      return; /* keep what fits; the reply is still a valid string */
    o->data = grown;
    o->cap = cap;
  }
  memcpy(o->data + o->len, bytes, n);
  o->len += n;
  o->data[o->len] = '\0';
}

void cmd_output_appendf(struct cmd_output *o, const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0)
    cmd_output_append(o, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The steps of the child, named in the reply when one fails. */
enum step { STEP_STDIO, STEP_CHDIR, STEP_NO_NEW_PRIVS, STEP_RLIMIT, STEP_EXEC };
static const char *const step_names[] = {"stdio", "chdir", "no_new_privs", "setrlimit", "exec"};

/* How the child tells the parent which step failed, through a close-on-exec
 * pipe: nothing arrives when exec succeeds. */
struct failure {
  int step, error;
};

static int limit(int resource, rlim_t soft, rlim_t hard) {
  struct rlimit r = {.rlim_cur = soft, .rlim_max = hard};
  return setrlimit(resource, &r);
}

/* The child, between fork and exec. The server has threads, so only
 * async-signal-safe calls are allowed here: another thread may have held
 * the malloc or stdio lock at the fork. The calls below are all in POSIX's
 * list, except prctl, setrlimit and close_range, which are plain system
 * calls in glibc that take no lock. Never returns. */
static void child(const struct cmd_command *c, char **argv, const char *workdir,
                  const struct cmd_limits *l, int out, int report) {
  struct failure f = {STEP_STDIO, 0};
  /* A group of its own, so that a timeout can kill all it starts. */
  setpgid(0, 0);
  /* The library's threads block every signal and the server catches some:
   * the command starts with none blocked and default actions. */
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &dfl, NULL); /* fails harmlessly for SIGKILL, SIGSTOP */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);

  int in = open("/dev/null", O_RDONLY);
  int err = c->show_stderr ? out : open("/dev/null", O_WRONLY);
  if (in < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
    goto fail;
  f.step = STEP_CHDIR;
  if (chdir(workdir) != 0)
    goto fail;
  /* No setuid bit or file capability can raise what the command runs with. */
  f.step = STEP_NO_NEW_PRIVS;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    goto fail;
  f.step = STEP_RLIMIT;
  if (limit(RLIMIT_CPU, l->cpu_seconds, l->cpu_seconds + 1) != 0 ||
      limit(RLIMIT_AS, l->memory, l->memory) != 0 ||
      limit(RLIMIT_NPROC, l->processes, l->processes) != 0 ||
      limit(RLIMIT_FSIZE, l->file_size, l->file_size) != 0 || limit(RLIMIT_CORE, 0, 0) != 0)
    goto fail;
  /* Every descriptor of the server should be close-on-exec already; this
   * makes sure of it (older kernels lack close_range: then we rely on it). */
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0 && errno != ENOSYS && errno != EINVAL)
    goto fail;
  f.step = STEP_EXEC;
  execve(c->program, argv, clean_env);
fail:
  f.error = errno;
  if (write(report, &f, sizeof f) < 0) {
    /* nothing more can be done: the parent then sees exit status 127 */
  }
  _exit(127);
}

/* Start the command. Returns its pid and the read end of its output, or -1
 * with the reason appended to `o`. */
static pid_t start(const struct cmd_command *c, char **argv, const char *workdir,
                   const struct cmd_limits *l, int *out_fd, struct cmd_output *o) {
  int out[2], report[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    cmd_output_appendf(o, "error: cannot run %s: %s", c->name, strerror(errno));
    return -1;
  }
  if (pipe2(report, O_CLOEXEC) != 0) {
    cmd_output_appendf(o, "error: cannot run %s: %s", c->name, strerror(errno));
    close(out[0]);
    close(out[1]);
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0)
    child(c, argv, workdir, l, out[1], report[1]);
  int fork_error = errno;
  close(out[1]);
  close(report[1]);
  struct failure f;
  ssize_t n = -1;
  if (pid > 0) {
    /* Set the group from this side too, so it exists before any kill. It
     * fails once the child has run exec, when the child has set it. */
    setpgid(pid, pid);
    while ((n = read(report[0], &f, sizeof f)) < 0 && errno == EINTR)
      ;
  }
  close(report[0]);
  if (pid < 0 || n == (ssize_t)sizeof f) {
    if (pid < 0)
      cmd_output_appendf(o, "error: cannot run %s: fork: %s", c->name, strerror(fork_error));
    else
      cmd_output_appendf(o, "error: cannot run %s: %s: %s", c->name, step_names[f.step],
                         strerror(f.error));
    if (pid > 0)
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    close(out[0]);
    return -1;
  }
  *out_fd = out[0];
  return pid;
}

static const char *newline_if_needed(const struct cmd_output *o) {
  return o->len && o->data[o->len - 1] != '\n' ? "\n" : "";
}

void cmd_exec_run(const struct cmd_command *c, char **argv, const char *workdir,
                  const struct cmd_limits *l, struct cmd_output *o) {
  int fd;
  pid_t pid = start(c, argv, workdir, l, &fd, o);
  if (pid < 0)
    return;
  /* Leave room for the truncation marker within the cap. */
  size_t keep = l->output_cap - (sizeof TRUNCATED - 1);
  long long deadline = now_ms() + l->timeout_ms;
  bool timed_out = false, truncated = false;
  char chunk[4096];
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      timed_out = r == 0;
      break;
    }
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* EOF: the command (and all it started) closed its output */
    size_t room = keep - o->len;
    if ((size_t)n > room) {
      cmd_output_append(o, chunk, room);
      truncated = true;
      break;
    }
    cmd_output_append(o, chunk, (size_t)n);
  }
  close(fd);
  /* Timed out, or talked too much: end the whole group, not only the
   * leader, so that nothing it started outlives the request. */
  if (timed_out || truncated)
    kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  /* NUL bytes cannot travel in a C-string reply: show them as '?'. */
  for (size_t i = 0; i < o->len; i++)
    if (o->data[i] == '\0')
      o->data[i] = '?';
  if (truncated)
    cmd_output_append(o, TRUNCATED, sizeof TRUNCATED - 1);
  if (timed_out)
    cmd_output_appendf(o, "%serror: %s killed after %d ms", o->len ? "\n" : "", c->name,
                       l->timeout_ms);
  else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    cmd_output_appendf(o, "%s[exit status %d]", newline_if_needed(o), WEXITSTATUS(status));
  else if (WIFSIGNALED(status) && !truncated)
    cmd_output_appendf(o, "%s[killed by signal %d]", newline_if_needed(o), WTERMSIG(status));
}
