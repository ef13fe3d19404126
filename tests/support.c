/* support.c -- helpers shared by the tests (see support.h). */
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool sk_test_wait(bool (*cond)(void *), void *arg, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    if (cond(arg))
      return true;
    if (now_ms() >= deadline)
      return cond(arg);
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

typedef struct stat_wait {
  sk_udp_server *srv;
  int stat;
  uint64_t want;
} stat_wait;

static bool udp_stat_reached(void *arg) {
  stat_wait *w = arg;
  uint64_t v = 0;
  return sk_udp_server_stat(w->srv, w->stat, &v) == SK_OK && v >= w->want;
}

bool sk_test_wait_udp_stat(sk_udp_server *srv, int stat, uint64_t want, int timeout_ms) {
  stat_wait w = {srv, stat, want};
  return sk_test_wait(udp_stat_reached, &w, timeout_ms);
}

static int count_entries(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

int sk_test_fd_count(void) {
  return count_entries("/proc/self/fd") - 1; /* the directory stream's own descriptor */
}

int sk_test_thread_count(void) {
  return count_entries("/proc/self/task");
}

static void *record_tid(void *arg) {
  *(pid_t *)arg = gettid();
  return NULL;
}

static bool task_gone(void *tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d", (int)*(pid_t *)tid);
  return access(path, F_OK) != 0;
}

int sk_test_thread_baseline(void) {
  pthread_t t;
  pid_t tid = 0;
  if (pthread_create(&t, NULL, record_tid, &tid) == 0) {
    pthread_join(t, NULL);
    sk_test_wait(task_gone, &tid, 5000);
  }
  return sk_test_thread_count();
}

static bool threads_back_to(void *want) {
  return sk_test_thread_count() == *(int *)want;
}

bool sk_test_wait_threads(int want, int timeout_ms) {
  return sk_test_wait(threads_back_to, &want, timeout_ms);
}

char *sk_test_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  char path[256];
  snprintf(path, sizeof path, "%s/sktest.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(path))
    return NULL;
  return strdup(path);
}

void sk_test_rmdir(char *dir) {
  if (!dir)
    return;
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      char path[512];
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
  free(dir);
}

bool sk_test_have_ipv6(void) {
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* A stop that lands before the thread enters run makes run return
 * SK_ESTATE (a server runs once); for these helpers that is still the
 * clean stop the test asked for. */
static void *udp_run(void *arg) {
  sk_test_udp *t = arg;
  int rc = sk_udp_server_run(t->srv);
  atomic_store(&t->rc, rc == SK_ESTATE && atomic_load(&t->stopping) ? SK_OK : rc);
  atomic_store(&t->done, true);
  return NULL;
}

int sk_test_udp_start(sk_test_udp *t, const char *address, sk_service service, void *user) {
  sk_udp_server *srv;
  int rc = sk_udp_server_create(&srv, address, service, user);
  if (rc != SK_OK)
    return rc;
  return sk_test_udp_start_server(t, srv);
}

int sk_test_udp_start_server(sk_test_udp *t, sk_udp_server *srv) {
  memset(t, 0, sizeof *t);
  t->srv = srv;
  int rc = SK_OK;
  if ((rc = sk_udp_server_listen(t->srv)) != SK_OK ||
      (rc = sk_udp_server_address(t->srv, t->address, sizeof t->address)) != SK_OK ||
      (rc = sk_udp_server_port(t->srv, &t->port)) != SK_OK)
    goto fail;
  if (pthread_create(&t->thread, NULL, udp_run, t) != 0) {
    rc = SK_ESYS;
    goto fail;
  }
  return SK_OK;
fail:
  sk_udp_server_destroy(t->srv);
  t->srv = NULL;
  return rc;
}

int sk_test_udp_stop(sk_test_udp *t, int timeout_ms) {
  atomic_store(&t->stopping, true);
  sk_udp_server_stop(t->srv);
  if (sk_test_join(t->thread, timeout_ms) != 0)
    return -1000;
  sk_udp_server_destroy(t->srv);
  t->srv = NULL;
  return atomic_load(&t->rc);
}

int sk_test_udp_socket(const char *address) {
  sk_addr a;
  if (sk__addr_parse(&a, address) != 0)
    return -1;
  int fd = socket(a.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (a.ss.ss_family == AF_UNIX) {
    /* Binding with only the family asks Linux for an abstract autobind
     * address, so the server has somewhere to send the reply. */
    struct sockaddr_un self = {.sun_family = AF_UNIX};
    if (bind(fd, (struct sockaddr *)&self, sizeof(sa_family_t)) != 0)
      goto fail;
  }
  if (connect(fd, (struct sockaddr *)&a.ss, a.len) != 0)
    goto fail;
  return fd;
fail:
  close(fd);
  return -1;
}

ssize_t sk_test_udp_recv(int fd, char *reply, size_t size, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n = poll(&p, 1, timeout_ms);
  if (n < 0)
    return -1;
  if (n == 0)
    return -2;
  ssize_t got = recv(fd, reply, size - 1, 0);
  if (got < 0)
    return -1;
  reply[got] = '\0';
  return got;
}

ssize_t sk_test_udp_exchange(int fd, const void *msg, size_t len, char *reply, size_t size,
                             int timeout_ms) {
  if (send(fd, msg, len, 0) != (ssize_t)len)
    return -1;
  return sk_test_udp_recv(fd, reply, size, timeout_ms);
}

const char *sk_test_echo(const char *request, void *user) {
  (void)user;
  return request;
}

static void *tcp_run(void *arg) {
  sk_test_tcp *t = arg;
  int rc = sk_tcp_server_run(t->srv);
  atomic_store(&t->rc, rc == SK_ESTATE && atomic_load(&t->stopping) ? SK_OK : rc);
  return NULL;
}

int sk_test_tcp_start_server(sk_test_tcp *t, sk_tcp_server *srv) {
  memset(t, 0, sizeof *t);
  t->srv = srv;
  int rc = SK_OK;
  int port = 0;
  if ((sk_tcp_server_port(srv, &port) == SK_ESTATE && (rc = sk_tcp_server_listen(srv)) != SK_OK) ||
      (rc = sk_tcp_server_address(srv, t->address, sizeof t->address)) != SK_OK ||
      (rc = sk_tcp_server_port(srv, &t->port)) != SK_OK)
    goto fail;
  if (pthread_create(&t->thread, NULL, tcp_run, t) != 0) {
    rc = SK_ESYS;
    goto fail;
  }
  return SK_OK;
fail:
  sk_tcp_server_destroy(srv);
  t->srv = NULL;
  return rc;
}

int sk_test_tcp_start(sk_test_tcp *t, const char *address, sk_service service, void *user) {
  sk_tcp_server *srv;
  int rc = sk_tcp_server_create(&srv, address, service, user);
  if (rc != SK_OK)
    return rc;
  return sk_test_tcp_start_server(t, srv);
}

int sk_test_join(pthread_t thread, int timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  return pthread_timedjoin_np(thread, NULL, &deadline);
}

int sk_test_tcp_stop(sk_test_tcp *t, int timeout_ms) {
  atomic_store(&t->stopping, true);
  sk_tcp_server_stop(t->srv);
  if (sk_test_join(t->thread, timeout_ms) != 0)
    return -1000;
  sk_tcp_server_destroy(t->srv);
  t->srv = NULL;
  return atomic_load(&t->rc);
}

typedef struct tcp_stat_wait {
  sk_tcp_server *srv;
  int stat;
  uint64_t want;
  bool exact;
} tcp_stat_wait;

static bool tcp_stat_reached(void *arg) {
  tcp_stat_wait *w = arg;
  uint64_t v = 0;
  if (sk_tcp_server_stat(w->srv, w->stat, &v) != SK_OK)
    return false;
  return w->exact ? v == w->want : v >= w->want;
}

bool sk_test_wait_tcp_stat(sk_tcp_server *srv, int stat, uint64_t want, int timeout_ms) {
  tcp_stat_wait w = {srv, stat, want, false};
  return sk_test_wait(tcp_stat_reached, &w, timeout_ms);
}

bool sk_test_wait_tcp_stat_eq(sk_tcp_server *srv, int stat, uint64_t want, int timeout_ms) {
  tcp_stat_wait w = {srv, stat, want, true};
  return sk_test_wait(tcp_stat_reached, &w, timeout_ms);
}

int sk_test_tcp_connect(const char *address) {
  return sk_test_tcp_connect_rcvbuf(address, 0);
}

int sk_test_tcp_connect_rcvbuf(const char *address, int rcvbuf) {
  sk_addr a;
  if (sk__addr_parse(&a, address) != 0)
    return -1;
  int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  /* Before connect: the window offered in the handshake fits the buffer. */
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) {
    close(fd);
    return -1;
  }
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a.ss, a.len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int sk_test_send_all(int fd, const void *bytes, size_t len) {
  const char *p = bytes;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

ssize_t sk_test_read_exact(int fd, void *buf, size_t len, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  size_t got = 0;
  while (got < len) {
    long long left = deadline - now_ms();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = left > 0 ? poll(&p, 1, (int)left) : 0;
    if (r == 0)
      return -2;
    if (r < 0)
      return -1;
    ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
    if (n == 0)
      return (ssize_t)got;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return -1;
    }
    got += (size_t)n;
  }
  return (ssize_t)got;
}

ssize_t sk_test_read_to_eof(int fd, char *buf, size_t size, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  size_t got = 0;
  char sink[4096];
  for (;;) {
    long long left = deadline - now_ms();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = left > 0 ? poll(&p, 1, (int)left) : 0;
    if (r == 0)
      return -2;
    if (r < 0)
      return -1;
    char *dst = got < size ? buf + got : sink;
    size_t room = got < size ? size - got : sizeof sink;
    ssize_t n = recv(fd, dst, room, MSG_DONTWAIT);
    if (n == 0)
      return (ssize_t)(got < size ? got : size);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return -1;
    }
    if (got < size)
      got += (size_t)n;
  }
}

static sk_tcp_server *proc_server;
static void proc_on_term(int sig) {
  (void)sig;
  sk_tcp_server_stop(proc_server);
}

int sk_test_proc_start(sk_test_proc *p, sk_tcp_server *srv) {
  memset(p, 0, sizeof *p);
  int rc = SK_OK, port;
  if ((sk_tcp_server_port(srv, &port) == SK_ESTATE && (rc = sk_tcp_server_listen(srv)) != SK_OK) ||
      (rc = sk_tcp_server_address(srv, p->address, sizeof p->address)) != SK_OK) {
    sk_tcp_server_destroy(srv);
    return rc;
  }
  /* SIGTERM stays blocked until the child's handler is in place. */
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &old);
  p->pid = fork();
  if (p->pid == 0) {
    proc_server = srv;
    struct sigaction sa = {.sa_handler = proc_on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    rc = sk_tcp_server_run(srv);
    sk_tcp_server_destroy(srv);
    bool no_children = waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
    _exit(rc == SK_OK && no_children ? 0 : 1);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  sk_tcp_server_destroy(srv);
  return p->pid > 0 ? SK_OK : SK_ESYS;
}

int sk_test_proc_stop(sk_test_proc *p, int timeout_ms) {
  kill(p->pid, SIGTERM);
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r < 0 || now_ms() >= deadline) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, NULL, 0);
      return -1;
    }
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

/* ---- other programs ------------------------------------------------------ */

pid_t sk_test_spawn(const char *const *argv, int *out, const char *log) {
  int p[2] = {-1, -1};
  if (out && pipe2(p, O_CLOEXEC) != 0)
    return -1;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    /* Dies with the test: Check's failed assertions end the test process
     * at once, before any cleanup of its own could run. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
      _exit(126);
    setpgid(0, 0);
    int in = open("/dev/null", O_RDONLY);
    int err = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0600) : open("/dev/null", O_WRONLY);
    int o = out ? p[1] : open("/dev/null", O_WRONLY);
    if (in < 0 || err < 0 || o < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(err, 2) < 0)
      _exit(125);
    /* The signals a test blocks or ignores are not the program's. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  if (pid > 0)
    setpgid(pid, pid); /* also here, so that it holds once fork returns */
  if (out) {
    close(p[1]);
    if (pid > 0)
      *out = p[0];
    else
      close(p[0]);
  }
  return pid;
}

void sk_test_read_line(int fd, char *line, size_t size, int timeout_ms) {
  size_t len = 0;
  long long deadline = now_ms() + timeout_ms;
  line[0] = '\0';
  while (!strchr(line, '\n') && len < size - 1) {
    long long left = deadline - now_ms();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
      break;
    ssize_t n = read(fd, line + len, 1); /* a byte at a time: nothing past the line */
    if (n <= 0)
      break; /* EOF: the program exited */
    len += (size_t)n;
    line[len] = '\0';
  }
}

int sk_test_wait_exit(pid_t pid, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0 || now_ms() >= deadline) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      return -1;
    }
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

int sk_test_children(pid_t pid, pid_t *out, int max) {
  DIR *d = opendir("/proc");
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long child = strtol(e->d_name, &end, 10);
    if (*end != '\0' || child <= 0)
      continue;
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", child);
    FILE *f = fopen(path, "r");
    if (!f)
      continue; /* gone meanwhile */
    size_t len = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[len] = '\0';
    /* "pid (comm) state ppid ...": comm may hold anything, even ')'. */
    char *close_paren = strrchr(line, ')');
    char state;
    long ppid;
    if (!close_paren || sscanf(close_paren + 1, " %c %ld", &state, &ppid) != 2 || ppid != pid)
      continue;
    if (n < max)
      out[n] = (pid_t)child;
    n++;
  }
  closedir(d);
  return n;
}

int sk_test_socket_count(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char link[320], target[64];
    snprintf(link, sizeof link, "%s/%s", path, e->d_name);
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (len > 0) {
      target[len] = '\0';
      n += strncmp(target, "socket:", 7) == 0;
    }
  }
  closedir(d);
  return n;
}

bool sk_test_file_contains(const char *path, const char *text) {
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  size_t size = 1 << 16;
  char *buf = malloc(size);
  size_t len = buf ? fread(buf, 1, size - 1, f) : 0;
  fclose(f);
  if (!buf)
    return false;
  buf[len] = '\0';
  bool found = strstr(buf, text) != NULL;
  free(buf);
  return found;
}

long long sk_test_now_ms(void) {
  return now_ms();
}

int sk_test_refusing_port(int type, int *port) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int one = 1;
  if ((type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) ||
      bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0 ||
      (type == SOCK_DGRAM && connect(fd, (struct sockaddr *)&a, len) != 0)) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

int sk_test_wait_closed(int fd, int timeout_ms) {
  char sink[4096];
  ssize_t n = sk_test_read_to_eof(fd, sink, sizeof sink, timeout_ms);
  return n >= 0 ? 0 : (int)n;
}

int sk_test_reset_mid_reply(const char *address, const char *request, size_t head) {
  int fd = sk_test_tcp_connect(address);
  if (fd < 0)
    return -1;
  char *buf = malloc(head);
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  int rc = buf && sk_test_send_all(fd, request, strlen(request)) == 0 &&
                   sk_test_read_exact(fd, buf, head, 10000) == (ssize_t)head &&
                   shutdown(fd, SHUT_WR) == 0 &&
                   setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0
               ? 0
               : -1;
  free(buf);
  close(fd); /* RST, with most of the reply unsent */
  return rc;
}

/* Skips are counted in a shared mapping made before Check forks the tests,
 * so that the runner sees the skips of its children. */
static _Atomic int *skips;

void sk_test_skip(const char *test, const char *reason) {
  printf("SKIP: %s: %s\n", test, reason);
  fflush(stdout);
  if (skips)
    atomic_fetch_add(skips, 1);
}

int sk_test_run(Suite *s) {
  void *m = mmap(NULL, sizeof *skips, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  skips = m == MAP_FAILED ? NULL : m;
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  int skipped = skips ? atomic_load(skips) : 0;
  if (skips)
    munmap((void *)skips, sizeof *skips);
  skips = NULL;
  if (failed)
    return EXIT_FAILURE;
  if (skipped) {
    printf("%d test(s) or part(s) of tests skipped\n", skipped);
    return SK_TEST_SKIPPED;
  }
  return EXIT_SUCCESS;
}

/* ---- helpers of the reliability tests --------------------------------- */

int sk_test_scaled(int n, int min) {
  const char *env = getenv("SK_TEST_SCALE");
  int scale = env ? atoi(env) : 1;
  int v = scale > 1 ? n / scale : n;
  return v < min ? min : v;
}

bool sk_test_sanitized(void) {
  /* valgrind preloads its allocator into the program it runs. */
  const char *preload = getenv("LD_PRELOAD");
  if (preload && strstr(preload, "vgpreload"))
    return true;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

long sk_test_raise_nofile(long want) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) != 0)
    return -1;
  if (r.rlim_cur != RLIM_INFINITY && (long)r.rlim_cur < want) {
    struct rlimit up = r;
    up.rlim_cur = (rlim_t)want;
    if (up.rlim_max != RLIM_INFINITY && up.rlim_max < up.rlim_cur)
      up.rlim_max = up.rlim_cur; /* allowed for root only */
    if (setrlimit(RLIMIT_NOFILE, &up) != 0 && r.rlim_max != RLIM_INFINITY) {
      up.rlim_cur = r.rlim_max; /* as far as this process may go */
      up.rlim_max = r.rlim_max;
      setrlimit(RLIMIT_NOFILE, &up);
    }
    getrlimit(RLIMIT_NOFILE, &r);
  }
  return r.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)r.rlim_cur;
}

long sk_test_rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "re");
  if (!f)
    return -1;
  long pages = 0, resident = 0;
  int n = fscanf(f, "%ld %ld", &pages, &resident);
  fclose(f);
  return n == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

long long sk_test_heap_bytes(void) {
  if (sk_test_sanitized())
    return -1;
  struct mallinfo2 m = mallinfo2();
  return (long long)(m.uordblks + m.hblkhd);
}

sk_tcp_server *sk_test_model_server(const sk_test_model *m, const char *address,
                                    sk_service service) {
  sk_tcp_server *srv = NULL;
  if (sk_tcp_server_create(&srv, address, service, NULL) != SK_OK ||
      sk_tcp_server_set(srv, SK_OPT_MODEL, m->model) != SK_OK ||
      sk_tcp_server_set(srv, SK_OPT_IO_THREADS, m->io_threads) != SK_OK ||
      sk_tcp_server_set(srv, SK_OPT_WORKERS, m->workers) != SK_OK) {
    fprintf(stderr, "support: cannot make a %s server on %s\n", m->name, address);
    sk_tcp_server_destroy(srv);
    return NULL;
  }
  return srv;
}

int sk_test_running_start(sk_test_running *r, sk_tcp_server *srv) {
  memset(r, 0, sizeof *r);
  long long model = SK_MODEL_EVENT_LOOP;
  (void)sk_tcp_server_get(srv, SK_OPT_MODEL, &model);
  r->forked = model == SK_MODEL_PROCESS_PER_CONNECTION;
  int rc = r->forked ? sk_test_proc_start(&r->p, srv) : sk_test_tcp_start_server(&r->t, srv);
  r->address = r->forked ? r->p.address : r->t.address;
  r->srv = r->forked ? NULL : r->t.srv;
  return rc;
}

int sk_test_running_stop(sk_test_running *r, int timeout_ms) {
  return r->forked ? sk_test_proc_stop(&r->p, timeout_ms) : sk_test_tcp_stop(&r->t, timeout_ms);
}
