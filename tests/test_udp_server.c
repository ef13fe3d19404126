/* test_udp_server.c -- the UDP server over IPv4, IPv6 and UNIX datagram
 * sockets: echo, concurrency, no-reply, bad input, lifecycle and stop. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "support.h"

#define WAIT_MS 5000

/* Replies "request|peer address", so a test can see what the server saw. */
static const char *peer_service(const char *request, void *user) {
  (void)user;
  const char *peer = sk_peer_address();
  socklen_t len = 0;
  const struct sockaddr *sa = sk_peer_sockaddr(&len);
  if (!peer || !sa || len == 0)
    return "no peer";
  return sk_replyf("%s|%s", request, peer);
}

/* Replies to everything except "silent". */
static const char *picky_service(const char *request, void *user) {
  (void)user;
  return strcmp(request, "silent") == 0 ? NULL : request;
}

/* Echo through a server on server_address; the client sends to client_host
 * at the server's port, or to the server's own address if it is NULL. */
static void echo_once(const char *server_address, const char *client_host) {
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, server_address, peer_service, NULL), SK_OK);
  char target[160];
  if (client_host)
    snprintf(target, sizeof target, "%s:%d", client_host, t.port);
  else
    snprintf(target, sizeof target, "%s", t.address);
  int fd = sk_test_udp_socket(target);
  ck_assert_int_ge(fd, 0);

  struct sockaddr_storage self;
  socklen_t self_len = sizeof self;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&self, &self_len), 0);

  char reply[512];
  ck_assert_int_eq(sk_test_udp_exchange(fd, "hello", 5, reply, sizeof reply, WAIT_MS),
                   (ssize_t)strlen(reply));
  ck_assert_msg(strncmp(reply, "hello|", 6) == 0, "reply was '%s'", reply);
  /* The peer text names the client's own address (port included for IP). */
  if (self.ss_family == AF_INET) {
    char want[64];
    snprintf(want, sizeof want, "hello|127.0.0.1:%d",
             ntohs(((struct sockaddr_in *)&self)->sin_port));
    ck_assert_str_eq(reply, want);
  } else if (self.ss_family == AF_INET6) {
    char want[80];
    snprintf(want, sizeof want, "hello|[::1]:%d", ntohs(((struct sockaddr_in6 *)&self)->sin6_port));
    ck_assert_str_eq(reply, want);
  } else {
    ck_assert_msg(strncmp(reply, "hello|unix:@", 12) == 0, "reply was '%s'", reply);
  }
  /* Empty datagrams are valid requests with an empty reply prefix. */
  ck_assert_int_ge(sk_test_udp_exchange(fd, "", 0, reply, sizeof reply, WAIT_MS), 1);
  ck_assert_msg(reply[0] == '|', "reply was '%s'", reply);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}

START_TEST(test_echo_ipv4) {
  echo_once("127.0.0.1:0", NULL);
}
END_TEST

START_TEST(test_echo_ipv6) {
  if (!sk_test_have_ipv6())
    return;
  echo_once("[::1]:0", NULL);
}
END_TEST

START_TEST(test_echo_unix) {
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char address[256];
  snprintf(address, sizeof address, "unix:%s/echo.sock", dir);
  echo_once(address, NULL);
  /* destroy removed the socket file */
  ck_assert_int_ne(access(address + 5, F_OK), 0);
  sk_test_rmdir(dir);
}
END_TEST

START_TEST(test_echo_abstract_unix) {
  char address[64];
  snprintf(address, sizeof address, "unix:@sktest-%d", (int)getpid());
  echo_once(address, NULL);
}
END_TEST

/* A wildcard server answers from the address each request was sent to, so
 * connected client sockets (which filter on source) accept the reply. */
START_TEST(test_wildcard_replies_from_destination) {
  echo_once(":0", "127.0.0.1");
  if (sk_test_have_ipv6())
    echo_once(":0", "[::1]");
  echo_once("0.0.0.0:0", "127.0.0.1");
}
END_TEST

START_TEST(test_stale_unix_socket_replaced_other_file_kept) {
  char *dir = sk_test_tmpdir();
  char address[256];
  snprintf(address, sizeof address, "unix:%s/s.sock", dir);
  /* A socket file left behind by a crashed server is replaced... */
  int stale = socket(AF_UNIX, SOCK_DGRAM, 0);
  sk_addr un;
  ck_assert_int_eq(sk__addr_parse(&un, address), 0);
  ck_assert_int_eq(bind(stale, (struct sockaddr *)&un.ss, un.len), 0);
  close(stale);
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_OK);
  sk_udp_server_destroy(srv);
  /* ...but a regular file is never deleted. */
  FILE *f = fopen(address + 5, "w");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  ck_assert_int_eq(sk_udp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_EBIND);
  ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);
  sk_udp_server_destroy(srv);
  ck_assert_int_eq(access(address + 5, F_OK), 0);
  sk_test_rmdir(dir);
}
END_TEST

/* An unbound UNIX sender cannot be answered: the request is still served,
 * the reply is a counted drop, and bound clients keep being answered. */
START_TEST(test_unix_unbound_sender_is_counted_drop) {
  char *dir = sk_test_tmpdir();
  char address[256];
  snprintf(address, sizeof address, "unix:%s/u.sock", dir);
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, address, sk_test_echo, NULL), SK_OK);
  int anon = socket(AF_UNIX, SOCK_DGRAM, 0);
  sk_addr un;
  ck_assert_int_eq(sk__addr_parse(&un, address), 0);
  ck_assert_int_eq(sendto(anon, "x", 1, 0, (struct sockaddr *)&un.ss, un.len), 1);
  ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_DROPS_NO_ADDRESS, 1, WAIT_MS));
  int fd = sk_test_udp_socket(address);
  char reply[64];
  ck_assert_int_eq(sk_test_udp_exchange(fd, "ok", 2, reply, sizeof reply, WAIT_MS), 2);
  ck_assert_str_eq(reply, "ok");
  uint64_t in = 0;
  ck_assert_int_eq(sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_IN, &in), SK_OK);
  ck_assert_uint_eq(in, 2);
  close(anon);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  sk_test_rmdir(dir);
}
END_TEST

/* 8 client sockets on threads, 125 requests each, at most 4 outstanding,
 * resending on loss; every reply must match a request of its own socket. */
#define CLIENTS 8
#define PER_CLIENT 125
#define WINDOW 4

typedef struct load_client {
  int port;
  int id;
  int verified;
  int wrong;
  int gave_up;
} load_client;

static void *load_thread(void *arg) {
  load_client *c = arg;
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", c->port);
  int fd = sk_test_udp_socket(target);
  if (fd < 0) {
    c->gave_up = 1;
    return NULL;
  }
  bool answered[PER_CLIENT] = {false};
  int next = 0;    /* next request number to send for the first time */
  int pending = 0; /* sent, not yet answered */
  int resends = 0;
  char msg[64], reply[128];
  while (c->verified < PER_CLIENT && resends < 2000) {
    while (pending < WINDOW && next < PER_CLIENT) {
      int len = snprintf(msg, sizeof msg, "client %d request %d", c->id, next++);
      send(fd, msg, (size_t)len, 0);
      pending++;
    }
    ssize_t n = sk_test_udp_recv(fd, reply, sizeof reply, 200);
    if (n == -2) {
      /* Loss: resend every request still unanswered among those sent. */
      for (int i = 0; i < next; i++)
        if (!answered[i]) {
          int len = snprintf(msg, sizeof msg, "client %d request %d", c->id, i);
          send(fd, msg, (size_t)len, 0);
          resends++;
        }
      continue;
    }
    if (n < 0)
      break;
    int id = -1, k = -1;
    if (sscanf(reply, "client %d request %d", &id, &k) != 2 || id != c->id || k < 0 || k >= next) {
      c->wrong++;
      continue;
    }
    snprintf(msg, sizeof msg, "client %d request %d", c->id, k);
    if (strcmp(msg, reply) != 0) {
      c->wrong++;
      continue;
    }
    if (!answered[k]) { /* a duplicate after a resend is not a second answer */
      answered[k] = true;
      c->verified++;
      pending--;
    }
  }
  close(fd);
  return NULL;
}

START_TEST(test_concurrent_clients_all_replies_verified) {
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  pthread_t threads[CLIENTS];
  load_client clients[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    clients[i] = (load_client){.port = t.port, .id = i};
    ck_assert_int_eq(pthread_create(&threads[i], NULL, load_thread, &clients[i]), 0);
  }
  int verified = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(threads[i], NULL);
    ck_assert_int_eq(clients[i].gave_up, 0);
    ck_assert_int_eq(clients[i].wrong, 0);
    ck_assert_int_eq(clients[i].verified, PER_CLIENT);
    verified += clients[i].verified;
  }
  ck_assert_int_eq(verified, CLIENTS * PER_CLIENT);
  /* The counter moves just after sendmsg returns, which may be a moment
   * after the client already has the reply. */
  ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_OUT, CLIENTS * PER_CLIENT, WAIT_MS));
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_null_reply_sends_nothing) {
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", picky_service, NULL), SK_OK);
  int fd = sk_test_udp_socket(t.address);
  char reply[64];
  ck_assert_int_eq(send(fd, "silent", 6, 0), 6);
  /* Datagrams from one socket are served in order, so if "silent" had been
   * answered, that answer would arrive before the answer to "after". */
  ck_assert_int_eq(sk_test_udp_exchange(fd, "after", 5, reply, sizeof reply, WAIT_MS), 5);
  ck_assert_str_eq(reply, "after");
  ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_OUT, 1, WAIT_MS));
  uint64_t in = 0, out = 0;
  sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_IN, &in);
  sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_OUT, &out);
  ck_assert_uint_eq(in, 2);
  ck_assert_uint_eq(out, 1);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

typedef struct log_count {
  atomic_int warnings;
} log_count;

static void count_log(int level, const char *message, void *user) {
  log_count *c = user;
  if (level == SK_LOG_WARN && strstr(message, "127.0.0.1:"))
    atomic_fetch_add(&c->warnings, 1);
}

START_TEST(test_bad_datagrams_dropped_counted_logged) {
  log_count logs = {0};
  sk_set_log_handler(count_log, &logs);
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MAX_MESSAGE, 16), SK_OK);
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start_server(&t, srv), SK_OK);

  int fd = sk_test_udp_socket(t.address);
  char big[17];
  memset(big, 'x', sizeof big);
  ck_assert_int_eq(send(fd, big, 17, 0), 17);  /* one byte over the maximum */
  ck_assert_int_eq(send(fd, "a\0b", 3, 0), 3); /* NUL inside */
  char reply[64];
  ck_assert_int_eq(sk_test_udp_exchange(fd, big, 16, reply, sizeof reply, WAIT_MS), 16);
  uint64_t v = 0;
  sk_udp_server_stat(srv, SK_STAT_DROPS_TRUNCATED, &v);
  ck_assert_uint_eq(v, 1);
  sk_udp_server_stat(srv, SK_STAT_DROPS_NUL, &v);
  ck_assert_uint_eq(v, 1);
  sk_udp_server_stat(srv, SK_STAT_MESSAGES_IN, &v);
  ck_assert_uint_eq(v, 1);
  sk_udp_server_stat(srv, SK_STAT_BYTES_IN, &v);
  ck_assert_uint_eq(v, 16);
  ck_assert_int_eq(atomic_load(&logs.warnings), 2);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  sk_set_log_handler(NULL, NULL);
}
END_TEST

START_TEST(test_port_in_use_is_ebind_eaddrinuse) {
  sk_udp_server *a, *b;
  ck_assert_int_eq(sk_udp_server_create(&a, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(a), SK_OK);
  int port = 0;
  ck_assert_int_eq(sk_udp_server_port(a, &port), SK_OK);
  ck_assert_int_gt(port, 0);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  ck_assert_int_eq(sk_udp_server_create(&b, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(b), SK_EBIND);
  ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);
  /* SO_REUSEPORT on both lets them share the port only when both ask. */
  sk_udp_server_destroy(b);
  sk_udp_server_destroy(a);
}
END_TEST

START_TEST(test_arguments_and_options) {
  sk_udp_server *srv = (sk_udp_server *)1;
  ck_assert_int_eq(sk_udp_server_create(&srv, "nonsense", sk_test_echo, NULL), SK_EADDR);
  ck_assert_ptr_null(srv);
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", NULL, NULL), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_create(&srv, NULL, sk_test_echo, NULL), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_create(NULL, "127.0.0.1:0", sk_test_echo, NULL), SK_EINVAL);
  sk_udp_server_destroy(NULL);

  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  long long v = 0;
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_MAX_MESSAGE, &v), SK_OK);
  ck_assert_int_eq(v, 65507);
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_REUSEPORT, &v), SK_OK);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MAX_MESSAGE, 0), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MAX_MESSAGE, 65508), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_REUSEPORT, 2), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_RCVBUF, -1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, 9999, 1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_get(srv, 9999, &v), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_RCVBUF, 1 << 16), SK_OK);
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_RCVBUF, &v), SK_OK);
  ck_assert_int_eq(v, 1 << 16);
  int port;
  ck_assert_int_eq(sk_udp_server_port(srv, &port), SK_ESTATE);
  char text[128];
  ck_assert_int_eq(sk_udp_server_address(srv, text, sizeof text), SK_ESTATE);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_RCVBUF, 1 << 17), SK_ESTATE);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_ESTATE);
  ck_assert_int_eq(sk_udp_server_address(srv, text, 4), SK_EINVAL);
  uint64_t s;
  ck_assert_int_eq(sk_udp_server_stat(srv, 0, &s), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(srv, 9999, &s), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(srv, SK_STAT_MESSAGES_IN, &s), SK_OK);
  ck_assert_uint_eq(s, 0);
  sk_udp_server_destroy(srv);
}
END_TEST

START_TEST(test_run_once_and_after_stop) {
  int fds_before = sk_test_fd_count();
  /* Stopped before it ran: run refuses. */
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_stop(srv), SK_OK);
  ck_assert_int_eq(sk_udp_server_run(srv), SK_ESTATE);
  sk_udp_server_destroy(srv);

  /* Ran and stopped: run again refuses, the port stays readable. */
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  int fd = sk_test_udp_socket(t.address);
  char reply[16];
  ck_assert_int_eq(sk_test_udp_exchange(fd, "up?", 3, reply, sizeof reply, WAIT_MS), 3);
  close(fd);
  sk_udp_server_stop(t.srv);
  pthread_join(t.thread, NULL);
  ck_assert_int_eq(atomic_load(&t.rc), SK_OK);
  ck_assert_int_eq(sk_udp_server_run(t.srv), SK_ESTATE);
  ck_assert_int_eq(sk_udp_server_stop(t.srv), SK_OK); /* idempotent */
  int port = 0;
  ck_assert_int_eq(sk_udp_server_port(t.srv, &port), SK_OK);
  ck_assert_int_eq(port, t.port);
  sk_udp_server_destroy(t.srv);
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
}
END_TEST

START_TEST(test_stop_from_other_thread_returns_promptly) {
  int fds_before = sk_test_fd_count();
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  int fd = sk_test_udp_socket(t.address);
  char reply[16];
  ck_assert_int_eq(sk_test_udp_exchange(fd, "up?", 3, reply, sizeof reply, WAIT_MS), 3);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, 2000), SK_OK);
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
}
END_TEST

static sk_udp_server *signal_target;
static void on_signal(int sig) {
  (void)sig;
  sk_udp_server_stop(signal_target);
}

typedef struct signaller {
  int port;
  pthread_t main_thread;
  int answered;
} signaller;

/* Waits until the server answers, then signals the thread running it. */
static void *signal_thread(void *arg) {
  signaller *s = arg;
  char target[64], reply[16];
  snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
  int fd = sk_test_udp_socket(target);
  for (int i = 0; i < 50 && !s->answered; i++)
    s->answered = sk_test_udp_exchange(fd, "hi", 2, reply, sizeof reply, 100) == 2;
  close(fd);
  pthread_kill(s->main_thread, SIGUSR1);
  return NULL;
}

START_TEST(test_stop_from_signal_handler) {
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_OK);
  signal_target = srv;
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
  signaller s = {.main_thread = pthread_self()};
  sk_udp_server_port(srv, &s.port);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, signal_thread, &s), 0);
  /* Blocks here until the handler stops the server; Check's timeout bounds it. */
  ck_assert_int_eq(sk_udp_server_run(srv), SK_OK);
  pthread_join(t, NULL);
  ck_assert_int_eq(s.answered, 1);
  sk_udp_server_destroy(srv);
  signal(SIGUSR1, SIG_DFL);
}
END_TEST

static Suite *udp_suite(void) {
  Suite *s = suite_create("udp_server");
  TCase *tc = tcase_create("udp");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_echo_ipv4);
  tcase_add_test(tc, test_echo_ipv6);
  tcase_add_test(tc, test_echo_unix);
  tcase_add_test(tc, test_echo_abstract_unix);
  tcase_add_test(tc, test_wildcard_replies_from_destination);
  tcase_add_test(tc, test_stale_unix_socket_replaced_other_file_kept);
  tcase_add_test(tc, test_unix_unbound_sender_is_counted_drop);
  tcase_add_test(tc, test_concurrent_clients_all_replies_verified);
  tcase_add_test(tc, test_null_reply_sends_nothing);
  tcase_add_test(tc, test_bad_datagrams_dropped_counted_logged);
  tcase_add_test(tc, test_port_in_use_is_ebind_eaddrinuse);
  tcase_add_test(tc, test_arguments_and_options);
  tcase_add_test(tc, test_run_once_and_after_stop);
  tcase_add_test(tc, test_stop_from_other_thread_returns_promptly);
  tcase_add_test(tc, test_stop_from_signal_handler);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(udp_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
