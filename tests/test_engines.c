/* test_engines.c -- real HAProxy and nginx (stream) on loopback in front of
 * library servers that take their PROXY protocol headers: the service sees
 * the real client, connections spread, and a backend may stop mid-run. */
#include <check.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 10000
#define MAX_BACKENDS 4

/* ---- backends: library servers that say who they are ------------------- */

/* A library TCP server on 127.0.0.1:0, behind the proxy, that answers each
 * request with its id, the request and the client the proxy's header
 * named, so that a client can tell who answered, that the answer is to its
 * own request, and that the backend saw its real address. */
typedef struct backend {
  sk_tcp_server *srv;
  char id[8];
  int port;
} backend;

static const char *reply_with_id(const char *request, void *user) {
  const backend *b = user;
  const char *client = sk_peer_address(), *proxy = sk_peer_proxy_address();
  /* The proxy is on loopback; a reply naming the proxy as the client
   * would mean the header was not used. */
  size_t len = 0;
  const char *uid = sk_peer_proxy_unique_id(&len);
  return sk_replyf("%s %s %s via %s%s%.*s", b->id, request, client ? client : "?",
                   proxy ? proxy : "?", uid ? " id=" : "", uid ? (int)len : 0, uid ? uid : "");
}

/* Backend n takes headers of version `proxy` (SK_PROXY_V1, ...) from the
 * senders in `trusted`. */
static void start_backend_trusting(backend *b, int n, int proxy, const char *trusted) {
  memset(b, 0, sizeof *b);
  snprintf(b->id, sizeof b->id, "b%d", n);
  ck_assert_int_eq(sk_tcp_server_create(&b->srv, "127.0.0.1:0", reply_with_id, b), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(b->srv, SK_OPT_PROXY_PROTOCOL, proxy), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set_proxy_trusted(b->srv, trusted), SK_OK);
  /* A stop must not wait long for connections an engine keeps open. */
  ck_assert_int_eq(sk_tcp_server_set(b->srv, SK_OPT_DRAIN_TIMEOUT_MS, 1000), SK_OK);
  ck_assert_int_eq(sk_tcp_server_start(b->srv), SK_OK);
  ck_assert_int_eq(sk_tcp_server_port(b->srv, &b->port), SK_OK);
}

/* ... from the proxies on loopback. */
static void start_backend(backend *b, int n, int proxy) {
  start_backend_trusting(b, n, proxy, "127.0.0.0/8");
}

/* No header the proxy sent was refused (its checks' included). */
static void expect_no_proxy_errors(const backend *b) {
  uint64_t errors = 1, rejected = 1;
  ck_assert_int_eq(sk_tcp_server_stat(b->srv, SK_STAT_PROXY_ERRORS, &errors), SK_OK);
  ck_assert_int_eq(sk_tcp_server_stat(b->srv, SK_STAT_PROXY_REJECTED, &rejected), SK_OK);
  ck_assert_msg(errors == 0 && rejected == 0, "%s: %llu PROXY errors, %llu rejected", b->id,
                (unsigned long long)errors, (unsigned long long)rejected);
}

static void stop_backend(backend *b) {
  if (!b->srv)
    return;
  sk_tcp_server_stop(b->srv);
  sk_tcp_server_destroy(b->srv);
  b->srv = NULL;
}

/* ---- engines: HAProxy and nginx as child processes --------------------- */

/* The engine of the running test: its process, the frontend port it
 * listens on, and its directory (config, log, pid file). One at a time, so
 * that the fixture's teardown can find it. */
typedef struct engine {
  const char *name;
  pid_t pid; /* 0 when none runs */
  int port;
  char *dir;
  char conf[512];
  char log[512];
} engine;

static engine running_engine;
static backend backends[MAX_BACKENDS];

/* The path of `name` in $PATH or the sbin directories (which a user's PATH
 * may lack), or false. */
static bool find_program(const char *name, char *path, size_t size) {
  const char *env = getenv("PATH");
  char dirs[1024];
  snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/usr/local/sbin:/sbin", env ? env : "/usr/bin:/bin");
  char *save = NULL;
  for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    snprintf(path, size, "%s/%s", d, name);
    if (access(path, X_OK) == 0)
      return true;
  }
  return false;
}

/* nginx's stream module where distributions put it: Debian and Ubuntu
 * (libnginx-mod-stream), Fedora. A build with the module compiled in is
 * not recognised and skips. */
static bool find_stream_module(char *path, size_t size) {
  static const char *const candidates[] = {
      "/usr/lib/nginx/modules/ngx_stream_module.so",
      "/usr/lib64/nginx/modules/ngx_stream_module.so",
      "/usr/share/nginx/modules/ngx_stream_module.so",
  };
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
    if (access(candidates[i], R_OK) == 0) {
      snprintf(path, size, "%s", candidates[i]);
      return true;
    }
  return false;
}

/* A port on 127.0.0.1 that was free a moment ago. Another program may take
 * it before the engine binds it: start_engine then tries another. */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_ge(fputs(text, f), 0);
  ck_assert_int_eq(fclose(f), 0);
}

static bool connects(int port) {
  char address[32];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  int fd = sk_test_tcp_connect(address);
  if (fd < 0)
    return false;
  close(fd);
  return true;
}

/* Until the engine accepts on its frontend port, or has exited. */
static bool up_or_exited(void *arg) {
  engine *e = arg;
  int status;
  if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
    e->pid = 0;
    return true;
  }
  return connects(e->port);
}

/* Writes the engine's config for its current port. */
typedef void (*config_writer)(const engine *e, const void *arg);

/* Make the directory of the next engine, `name`: its config DIR/NAME.conf
 * and log DIR/NAME.log, which the caller's command line may name. */
static engine *prepare_engine(const char *name) {
  engine *e = &running_engine;
  ck_assert_int_eq(e->pid, 0);
  e->name = name;
  e->dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(e->dir);
  snprintf(e->conf, sizeof e->conf, "%s/%s.conf", e->dir, name);
  snprintf(e->log, sizeof e->log, "%s/%s.log", e->dir, name);
  return e;
}

/* Run the prepared engine as `argv`, its config written by `write_config`
 * for each port tried, and wait until its frontend accepts. A port taken
 * meanwhile makes it exit at once: then a new port, a few times. */
static void run_engine(const char *const *argv, config_writer write_config, const void *arg) {
  engine *e = &running_engine;
  for (int attempt = 0; attempt < 5; attempt++) {
    e->port = free_port();
    write_config(e, arg);
    e->pid = sk_test_spawn(argv, NULL, e->log);
    ck_assert_int_gt(e->pid, 0);
    ck_assert_msg(sk_test_wait(up_or_exited, e, WAIT_MS), "%s does not accept on port %d", e->name,
                  e->port);
    if (e->pid != 0)
      return;
    fprintf(stderr, "%s exited at start (port %d taken?); trying another port\n", e->name, e->port);
  }
  ck_abort_msg("%s does not start; see its log %s", e->name, e->log);
}

/* Stop the engine (SIGTERM, then SIGKILL if it lingers) and remove its
 * directory. Returns its exit status as sk_test_wait_exit says, or 0 if
 * none ran. */
static int stop_engine(void) {
  engine *e = &running_engine;
  int status = 0;
  if (e->pid > 0) {
    kill(e->pid, SIGTERM);
    status = sk_test_wait_exit(e->pid, WAIT_MS);
    kill(-e->pid, SIGKILL); /* anything it started, in its process group */
    e->pid = 0;
  }
  if (e->dir) {
    sk_test_rmdir(e->dir); /* config, log, pid file */
    e->dir = NULL;
  }
  return status;
}

/* The fixture's teardown: whatever a test left, also when it failed in
 * the same process (CK_FORK=no). A forked test that fails ends at once,
 * and the engine dies with it (sk_test_spawn). */
static void teardown(void) {
  stop_engine();
  for (int i = 0; i < MAX_BACKENDS; i++)
    stop_backend(&backends[i]);
}

/* HAProxy's servers: backend ports, each server line ending in its
 * suffix (e.g. " send-proxy-v2"). */
typedef struct haproxy_args {
  const int *ports;
  int n;
  const char *const *server_suffixes;
} haproxy_args;

static void write_haproxy_config(const engine *e, const void *arg) {
  const haproxy_args *h = arg;
  char text[4096];
  /* Roundrobin over servers checked every 100 ms; a connection refused by
   * a server is retried and, the last time, sent to another one. */
  int len = snprintf(text, sizeof text,
                     "# written by test_engines.c\n"
                     "global\n"
                     "  maxconn 256\n"
                     "defaults\n"
                     "  mode tcp\n"
                     "  timeout connect 500ms\n"
                     "  timeout client 10s\n"
                     "  timeout server 10s\n"
                     "frontend fe\n"
                     "  bind 127.0.0.1:%d\n"
                     "  unique-id-format %%ci_%%cp\n"
                     "  default_backend be\n"
                     "backend be\n"
                     "  balance roundrobin\n"
                     "  option redispatch\n"
                     "  retries 3\n",
                     e->port);
  for (int i = 0; i < h->n; i++)
    len += snprintf(text + len, sizeof text - (size_t)len,
                    "  server s%d 127.0.0.1:%d check inter 100ms%s\n", i, h->ports[i],
                    h->server_suffixes[i]);
  ck_assert_int_lt(len, (int)sizeof text);
  write_file(e->conf, text);
}

/* Start HAProxy in front of the backends at `ports`, server i's line
 * ending in server_suffixes[i]. False (after a SKIP line) if it is not
 * installed. */
static bool start_haproxy(const int *ports, int n, const char *const *server_suffixes) {
  char program[512];
  if (!find_program("haproxy", program, sizeof program)) {
    sk_test_skip("engines", "haproxy is not installed (Debian: apt-get install haproxy)");
    return false;
  }
  engine *e = prepare_engine("haproxy");
  haproxy_args h = {ports, n, server_suffixes};
  /* -db: in the foreground, never a daemon. */
  const char *argv[] = {program, "-db", "-f", e->conf, NULL};
  run_engine(argv, write_haproxy_config, &h);
  return true;
}

typedef struct nginx_args {
  const char *module;
  int backend_port;
  bool proxy_protocol;
} nginx_args;

static void write_nginx_config(const engine *e, const void *arg) {
  const nginx_args *a = arg;
  char text[2048];
  /* One process, no master and workers, so that nothing outlives the
   * test; every path inside the engine's directory. */
  int len = snprintf(text, sizeof text,
                     "# written by test_engines.c\n"
                     "load_module %s;\n"
                     "master_process off;\n"
                     "pid %s/nginx.pid;\n"
                     "error_log %s info;\n"
                     "events { worker_connections 64; }\n"
                     "stream {\n"
                     "  server {\n"
                     "    listen 127.0.0.1:%d;\n"
                     "    proxy_pass 127.0.0.1:%d;\n"
                     "    proxy_connect_timeout 1s;\n"
                     "%s"
                     "  }\n"
                     "}\n",
                     a->module, e->dir, e->log, e->port, a->backend_port,
                     a->proxy_protocol ? "    proxy_protocol on;\n" : "");
  ck_assert_int_lt(len, (int)sizeof text);
  write_file(e->conf, text);
}

/* Start nginx's stream proxy in front of one backend, sending it a PROXY
 * header if `proxy_protocol`. False (after a SKIP line) if nginx or its
 * stream module is not installed. */
static bool start_nginx(int backend_port, bool proxy_protocol) {
  char program[512], module[512], prefix[600];
  if (!find_program("nginx", program, sizeof program)) {
    sk_test_skip("engines", "nginx is not installed (Debian: apt-get install nginx)");
    return false;
  }
  if (!find_stream_module(module, sizeof module)) {
    sk_test_skip("engines", "nginx's stream module is not installed (Debian: apt-get install "
                            "libnginx-mod-stream)");
    return false;
  }
  engine *e = prepare_engine("nginx");
  nginx_args a = {module, backend_port, proxy_protocol};
  snprintf(prefix, sizeof prefix, "%s/", e->dir);
  /* -p: the prefix of relative paths; -e: the log until the config is
   * read (else the compiled-in path, which may not be writable). */
  const char *argv[] = {program, "-p",   prefix, "-c",          e->conf,
                        "-e",    e->log, "-g",   "daemon off;", NULL};
  run_engine(argv, write_nginx_config, &a);
  return true;
}

/* ---- clients -------------------------------------------------------------- */

/* One request on a new connection to the engine; the reply line (without
 * its newline) into reply, empty if none came, and the client's own
 * address into me. */
static void request(const char *msg, char *reply, size_t size, char *me, size_t me_size) {
  char address[32];
  snprintf(address, sizeof address, "127.0.0.1:%d", running_engine.port);
  reply[0] = '\0';
  int fd = sk_test_tcp_connect(address);
  ck_assert_msg(fd >= 0, "cannot connect to %s on %s", running_engine.name, address);
  struct sockaddr_in local;
  socklen_t local_len = sizeof local;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&local, &local_len), 0);
  snprintf(me, me_size, "127.0.0.1:%d", ntohs(local.sin_port));
  char line[128];
  snprintf(line, sizeof line, "%s\n", msg);
  ck_assert_int_eq(sk_test_send_all(fd, line, strlen(line)), 0);
  sk_test_read_line(fd, reply, size, WAIT_MS);
  close(fd);
  reply[strcspn(reply, "\n")] = '\0';
}

/* A request whose reply must come from one of the first `nbackends`
 * backends, be the reply to this very request, and name this client's own
 * address and port (from the proxy's header), with the proxy on loopback.
 * (The proxy's own port to the backend may equal the client's by chance:
 * the kernel picks both, for different destinations.) Returns the index
 * of the backend that answered. */
static int expect_reply(const char *msg, int nbackends) {
  char reply[200], me[32];
  request(msg, reply, sizeof reply, me, sizeof me);
  for (int i = 0; i < nbackends; i++) {
    char want[200];
    int n = snprintf(want, sizeof want, "%s %s %s via 127.0.0.1:", backends[i].id, msg, me);
    if (strncmp(reply, want, (size_t)n) != 0)
      continue;
    /* Behind HAProxy, b0 gets the unique id "client-ip_client-port"
     * (unique-id-format %ci_%cp); no other backend gets one. */
    char id[64];
    snprintf(id, sizeof id, " id=127.0.0.1_%s", me + 10);
    const char *at = strstr(reply, " id=");
    if (i == 0 && running_engine.name[0] == 'h')
      ck_assert_msg(at && strcmp(at, id) == 0, "b0's reply '%s' lacks '%s'", reply, id);
    else
      ck_assert_msg(!at, "the reply '%s' has a unique id", reply);
    return i;
  }
  ck_abort_msg("'%s' got the reply '%s' through %s", msg, reply, running_engine.name);
  return -1;
}

/* ---- the tests ------------------------------------------------------------ */

/* Two backends behind send-proxy-v2 and one behind send-proxy (v1). */
static const int haproxy_modes[3] = {SK_PROXY_V2, SK_PROXY_V2, SK_PROXY_V1};
/* s0 also sends the connection's unique id and a CRC32C of the header,
 * which the backend verifies. */
static const char *const haproxy_suffixes[3] = {" send-proxy-v2 proxy-v2-options crc32c,unique-id",
                                                " send-proxy-v2", " send-proxy"};

static bool start_three_behind_haproxy(void) {
  int ports[3];
  for (int i = 0; i < 3; i++) {
    start_backend(&backends[i], i, haproxy_modes[i]);
    ports[i] = backends[i].port;
  }
  return start_haproxy(ports, 3, haproxy_suffixes);
}

START_TEST(test_haproxy_spreads_over_backends) {
  if (!start_three_behind_haproxy())
    return;
  int seen[3] = {0, 0, 0};
  for (int i = 0; i < 30; i++) {
    char msg[32];
    snprintf(msg, sizeof msg, "request-%d", i);
    seen[expect_reply(msg, 3)]++;
  }
  ck_assert_msg(seen[0] > 0 && seen[1] > 0 && seen[2] > 0, "roundrobin gave %d, %d and %d requests",
                seen[0], seen[1], seen[2]);
  ck_assert_int_ne(stop_engine(), -1); /* it ends on SIGTERM, in time */
  for (int i = 0; i < 3; i++)
    expect_no_proxy_errors(&backends[i]);
}
END_TEST

START_TEST(test_haproxy_fails_over_when_a_backend_stops) {
  if (!start_three_behind_haproxy())
    return;
  int seen[3] = {0, 0, 0};
  for (int i = 0; i < 15; i++) {
    char msg[32];
    snprintf(msg, sizeof msg, "before-%d", i);
    seen[expect_reply(msg, 3)]++;
  }
  ck_assert(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
  /* Mid-run, b0 goes: its port refuses from now on. Every later client
   * must still get its own reply, with its own address, from b1 or b2:
   * HAProxy retries, redispatches, and its checks soon mark s0 down. */
  stop_backend(&backends[0]);
  int after[3] = {0, 0, 0};
  for (int i = 0; i < 30; i++) {
    char msg[32];
    snprintf(msg, sizeof msg, "after-%d", i);
    int who = expect_reply(msg, 3);
    ck_assert_int_ne(who, 0);
    after[who]++;
  }
  ck_assert_msg(after[1] > 0 && after[2] > 0, "after the stop: %d and %d", after[1], after[2]);
  ck_assert_int_ne(stop_engine(), -1);
  expect_no_proxy_errors(&backends[1]);
  expect_no_proxy_errors(&backends[2]);
}
END_TEST

START_TEST(test_nginx_stream_forwards_to_its_backend) {
  start_backend(&backends[0], 0, SK_PROXY_V1);
  if (!start_nginx(backends[0].port, true))
    return;
  for (int i = 0; i < 10; i++) {
    char msg[32];
    snprintf(msg, sizeof msg, "request-%d", i);
    ck_assert_int_eq(expect_reply(msg, 1), 0);
  }
  ck_assert_int_ne(stop_engine(), -1);
  expect_no_proxy_errors(&backends[0]);
}
END_TEST

/* A backend that takes headers, reached past the proxies by a client that
 * forges one: from a sender outside the trusted list (10.0.0.0/8 here) it
 * is refused unread. */
START_TEST(test_forged_header_past_the_proxy_refused) {
  start_backend_trusting(&backends[0], 0, SK_PROXY_ANY, "10.0.0.0/8");
  char address[32];
  snprintf(address, sizeof address, "127.0.0.1:%d", backends[0].port);
  int fd = sk_test_tcp_connect(address);
  ck_assert_int_ge(fd, 0);
  const char *forged = "PROXY TCP4 10.9.9.9 127.0.0.1 1234 80\r\nsteal\n";
  (void)sk_test_send_all(fd, forged, strlen(forged));
  char got[64];
  ssize_t n = sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS);
  ck_assert_msg(n == 0 || n == -1, "the forged header got %zd bytes back", n);
  close(fd);
  ck_assert(sk_test_wait_tcp_stat(backends[0].srv, SK_STAT_PROXY_REJECTED, 1, WAIT_MS));
}
END_TEST

static Suite *engines_suite(void) {
  Suite *s = suite_create("engines");
  TCase *tc = tcase_create("engines");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_haproxy_spreads_over_backends);
  tcase_add_test(tc, test_haproxy_fails_over_when_a_backend_stops);
  tcase_add_test(tc, test_nginx_stream_forwards_to_its_backend);
  tcase_add_test(tc, test_forged_header_past_the_proxy_refused);
  suite_add_tcase(s, tc);
  return s;
}

/* nftw's callback: remove what it walks, deepest first. */
static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  remove(path);
  return 0;
}

int main(void) {
  /* Every engine's directory goes under one of the suite's own, removed
   * at the end whatever the tests did: a forked test that fails ends at
   * once, before its engine's directory could be cleaned up. */
  const char *tmp = getenv("TMPDIR");
  char base[256];
  snprintf(base, sizeof base, "%s/skengines.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(base) || setenv("TMPDIR", base, 1) != 0) {
    perror("test_engines: a directory for the engines");
    return 1;
  }
  int rc = sk_test_run(engines_suite());
  nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  return rc;
}
