/* test_tcp_server.c -- the TCP server: framings, many concurrent clients,
 * pipelining, half-close, resets, protocol errors, UNIX/IPv6 and stop. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "addr.h"
#include "support.h"

#define WAIT_MS 5000

static const char *peer_service(const char *request, void *user) {
  (void)user;
  const char *peer = sk_peer_address();
  return sk_replyf("%s|%s", request, peer ? peer : "none");
}

static sk_tcp_server *new_server(const char *address, sk_service service, int framing,
                                 long long max_message) {
  sk_tcp_server *srv = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&srv, address, service, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_FRAMING, framing), SK_OK);
  if (max_message)
    ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_MESSAGE, max_message), SK_OK);
  return srv;
}

static void expect_bytes(int fd, const char *want, size_t len) {
  char got[4096];
  ck_assert_uint_le(len, sizeof got);
  ssize_t n = sk_test_read_exact(fd, got, len, WAIT_MS);
  ck_assert_int_eq(n, (ssize_t)len);
  ck_assert_msg(memcmp(got, want, len) == 0, "got '%.*s', want '%.*s'", (int)len, got, (int)len,
                want);
}

/* The client's own address as the server must show it: "[::1]:port",
 * "127.0.0.1:port", or "unix:" for an unbound UNIX client. */
static void own_address(int fd, char *buf, size_t size) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  if (ss.ss_family == AF_INET6)
    snprintf(buf, size, "[::1]:%d", ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
  else if (ss.ss_family == AF_INET)
    snprintf(buf, size, "127.0.0.1:%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  else
    snprintf(buf, size, "unix:");
}

/* Both replies whole, each with the client's full address. */
static void line_echo_at(const char *address) {
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, address, peer_service, NULL), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "a\nb\r\n", 5), 0);
  char self[128], want[300];
  own_address(fd, self, sizeof self);
  int len = snprintf(want, sizeof want, "a|%s\nb|%s\n", self, self);
  expect_bytes(fd, want, (size_t)len);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}

START_TEST(test_line_echo_ipv4_with_peer) {
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", peer_service, NULL), SK_OK);
  ck_assert_int_gt(t.port, 0);
  int fd = sk_test_tcp_connect(t.address);
  struct sockaddr_in self;
  socklen_t len = sizeof self;
  getsockname(fd, (struct sockaddr *)&self, &len);
  ck_assert_int_eq(sk_test_send_all(fd, "a\nb\r\n", 5), 0);
  char want[128];
  int n = snprintf(want, sizeof want, "a|127.0.0.1:%d\nb|127.0.0.1:%d\n", ntohs(self.sin_port),
                   ntohs(self.sin_port));
  expect_bytes(fd, want, (size_t)n);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_line_echo_ipv6_and_dual_stack) {
  if (!sk_test_have_ipv6()) {
    sk_test_skip("test_line_echo_ipv6_and_dual_stack", "no IPv6 on this host");
    return;
  }
  line_echo_at("[::1]:0");
  /* The port-only form serves IPv4 clients too, shown as IPv4. */
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, ":0", peer_service, NULL), SK_OK);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", t.port);
  int fd = sk_test_tcp_connect(target);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "v4\n", 3), 0);
  char self[128], want[160];
  own_address(fd, self, sizeof self);
  int len = snprintf(want, sizeof want, "v4|%s\n", self);
  expect_bytes(fd, want, (size_t)len);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_unix_stream_echo_and_socket_file) {
  char *dir = sk_test_tmpdir();
  char address[256];
  snprintf(address, sizeof address, "unix:%s/tcp.sock", dir);
  line_echo_at(address);
  ck_assert_int_ne(access(address + 5, F_OK), 0); /* removed by destroy */
  sk_test_rmdir(dir);
}
END_TEST

START_TEST(test_length_framing) {
  sk_test_tcp t;
  ck_assert_int_eq(
      sk_test_tcp_start_server(&t, new_server("127.0.0.1:0", sk_test_echo, SK_FRAME_LENGTH, 0)),
      SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  /* Two messages in one write, one of them empty, then one split in three. */
  const char two[] = "\0\0\0\x05hello\0\0\0\0";
  ck_assert_int_eq(sk_test_send_all(fd, two, 13), 0);
  expect_bytes(fd, "\0\0\0\x05hello\0\0\0\0", 13);
  ck_assert_int_eq(sk_test_send_all(fd, "\0\0", 2), 0);
  ck_assert_int_eq(sk_test_send_all(fd, "\0\x03g", 3), 0);
  ck_assert_int_eq(sk_test_send_all(fd, "oo", 2), 0);
  expect_bytes(fd, "\0\0\0\x03goo", 7);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* Replies of N spaces for a request "N", echo otherwise. */
static const char *spaces(const char *request, void *user) {
  (void)user;
  long n = strtol(request, NULL, 10);
  return n > 0 ? sk_replyf("%*s", (int)n, "") : request;
}

/* LENGTH replies carry their whole length in the 4-byte big-endian header,
 * whichever of its bytes are non-zero: under 256, under 64 KiB, up to
 * 16 MiB (second byte set), and beyond (first byte set). */
START_TEST(test_length_framing_reply_sizes) {
  sk_tcp_server *srv = new_server("127.0.0.1:0", spaces, SK_FRAME_LENGTH, 0);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, 64 << 20), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  static const uint32_t sizes[] = {7, 300, 65535, 65536, 100000, 0x00ABCDEF, 0x01000001};
  static char body[0x01000001];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char req[16];
    int len = snprintf(req + 4, sizeof req - 4, "%u", sizes[i]);
    uint32_t be = htonl((uint32_t)len);
    memcpy(req, &be, 4);
    ck_assert_int_eq(sk_test_send_all(fd, req, 4 + (size_t)len), 0);
    unsigned char head[4];
    ck_assert_int_eq(sk_test_read_exact(fd, head, 4, WAIT_MS), 4);
    uint32_t got =
        (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
    ck_assert_msg(got == sizes[i], "reply of %u bytes framed as %u", sizes[i], got);
    ck_assert_int_eq(sk_test_read_exact(fd, body, sizes[i], WAIT_MS), (ssize_t)sizes[i]);
    ck_assert(body[0] == ' ' && body[sizes[i] - 1] == ' ');
  }
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_raw_framing) {
  sk_test_tcp t;
  ck_assert_int_eq(
      sk_test_tcp_start_server(&t, new_server("127.0.0.1:0", sk_test_echo, SK_FRAME_RAW, 0)),
      SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_eq(sk_test_send_all(fd, "hello raw", 9), 0);
  expect_bytes(fd, "hello raw", 9);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* 100 clients x 200 messages, driven round-robin by 10 threads of 10
 * connections each; every reply checked in order. */
#define THREADS 10
#define CONNS_PER_THREAD 10
#define MESSAGES 200

typedef struct many_client {
  int port;
  int id;
  int verified;
  int failed;
} many_client;

static void *many_thread(void *arg) {
  many_client *m = arg;
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", m->port);
  int fds[CONNS_PER_THREAD];
  for (int i = 0; i < CONNS_PER_THREAD; i++)
    if ((fds[i] = sk_test_tcp_connect(target)) < 0)
      m->failed++;
  for (int k = 0; k < MESSAGES && !m->failed; k++) {
    char msg[64], got[64];
    for (int i = 0; i < CONNS_PER_THREAD; i++) {
      int len = snprintf(msg, sizeof msg, "t%d c%d m%d\n", m->id, i, k);
      if (sk_test_send_all(fds[i], msg, (size_t)len) != 0)
        m->failed++;
    }
    for (int i = 0; i < CONNS_PER_THREAD; i++) {
      int len = snprintf(msg, sizeof msg, "t%d c%d m%d\n", m->id, i, k);
      if (sk_test_read_exact(fds[i], got, (size_t)len, WAIT_MS) != len ||
          memcmp(got, msg, (size_t)len) != 0)
        m->failed++;
      else
        m->verified++;
    }
  }
  for (int i = 0; i < CONNS_PER_THREAD; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  return NULL;
}

/* Replies that point into the request: its tail after the first space,
 * a word in its middle (copied out), or the request itself; "long" a
 * static string longer than the request. */
static const char *pointing_service(const char *request, void *user) {
  (void)user;
  if (strcmp(request, "long") == 0)
    return "a reply much longer than the request that asked for it";
  if (strncmp(request, "mid ", 4) == 0)
    return sk_replyf("%.3s", request + 4);
  const char *space = strchr(request, ' ');
  return space ? space + 1 : request;
}

/* However a reply lies in memory -- inside the request's bytes or not --
 * it goes out whole and exact, CRLF lines included, many per read. */
START_TEST(test_replies_pointing_into_requests) {
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", pointing_service, NULL), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  static const char req[] = "echo\nkey value\r\nlong\nmid abcdef\n\r\nx y z\nlast \n";
  static const char want[] =
      "echo\nvalue\na reply much longer than the request that asked for it\nabc\n\ny z\n\n";
  for (int round = 0; round < 50; round++)
    ck_assert_int_eq(sk_test_send_all(fd, req, sizeof req - 1), 0);
  for (int round = 0; round < 50; round++) {
    char got[sizeof want];
    ck_assert_int_eq(sk_test_read_exact(fd, got, sizeof want - 1, WAIT_MS),
                     (ssize_t)(sizeof want - 1));
    ck_assert_msg(memcmp(got, want, sizeof want - 1) == 0, "round %d: got '%.*s'", round,
                  (int)(sizeof want - 1), got);
  }
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_hundred_clients_in_order) {
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  pthread_t threads[THREADS];
  many_client m[THREADS];
  for (int i = 0; i < THREADS; i++) {
    m[i] = (many_client){.port = t.port, .id = i};
    ck_assert_int_eq(pthread_create(&threads[i], NULL, many_thread, &m[i]), 0);
  }
  int total = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    ck_assert_int_eq(m[i].failed, 0);
    total += m[i].verified;
  }
  ck_assert_int_eq(total, THREADS * CONNS_PER_THREAD * MESSAGES);
  uint64_t accepted = 0;
  sk_tcp_server_stat(t.srv, SK_STAT_CONNECTIONS_ACCEPTED, &accepted);
  ck_assert_uint_eq(accepted, THREADS * CONNS_PER_THREAD);
  ck_assert(sk_test_wait_tcp_stat_eq(t.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* A client pipelines MiBs of requests while reading nothing for as long as
 * the server keeps taking them, then reads: every reply arrives, in order. */
START_TEST(test_pipelining_without_reading) {
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  int small = 16384;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

  enum { COUNT = 200000 }; /* 200,000 lines of 20 bytes: about 4 MiB */
  const size_t line = 20;
  char *sendbuf = malloc((size_t)COUNT * line + 1);
  for (int i = 0; i < COUNT; i++)
    snprintf(sendbuf + (size_t)i * line, line + 1, "request %011d\n", i);
  size_t total = (size_t)COUNT * line, sent = 0, received = 0;
  char *recvbuf = malloc(total);
  int stalls = 0;
  /* Phase 1: write only, until the server stops taking bytes for 200 ms. */
  while (sent < total) {
    ssize_t n = send(fd, sendbuf + sent, total - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += (size_t)n;
      continue;
    }
    ck_assert_msg(n < 0 && errno == EAGAIN, "send failed: %s", strerror(errno));
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, 200) == 0 && ++stalls >= 1)
      break;
  }
  ck_assert_uint_gt(sent, 1u << 20); /* the server took over a MiB unread */
  /* Phase 2: read and write until every reply is back. */
  for (int rounds = 0; received < total && rounds < 1000000; rounds++) {
    struct pollfd p = {.fd = fd, .events = POLLIN | (sent < total ? POLLOUT : 0)};
    ck_assert_int_gt(poll(&p, 1, WAIT_MS), 0);
    if (p.revents & POLLOUT) {
      ssize_t n = send(fd, sendbuf + sent, total - sent, MSG_NOSIGNAL);
      if (n > 0)
        sent += (size_t)n;
    }
    if (p.revents & POLLIN) {
      ssize_t n = recv(fd, recvbuf + received, total - received, 0);
      ck_assert_int_gt(n, 0);
      received += (size_t)n;
    }
  }
  ck_assert_uint_eq(received, total);
  ck_assert(memcmp(sendbuf, recvbuf, total) == 0);
  free(sendbuf);
  free(recvbuf);
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_half_close_gets_every_reply) {
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_eq(sk_test_send_all(fd, "x\ny\nincomplete", 14), 0);
  ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
  char got[64];
  ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), 4);
  ck_assert(memcmp(got, "x\ny\n", 4) == 0);
  close(fd);
  ck_assert(sk_test_wait_tcp_stat_eq(t.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  /* The line the end of the stream cut short is counted, not served. */
  uint64_t incomplete = 0;
  ck_assert_int_eq(sk_tcp_server_stat(t.srv, SK_STAT_DROPS_INCOMPLETE, &incomplete), SK_OK);
  ck_assert_uint_eq(incomplete, 1);
  /* A clean end (the last line whole) is not. */
  fd = sk_test_tcp_connect(t.address);
  ck_assert_int_eq(sk_test_send_all(fd, "z\n", 2), 0);
  ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
  ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), 2);
  close(fd);
  ck_assert(sk_test_wait_tcp_stat_eq(t.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  ck_assert_int_eq(sk_tcp_server_stat(t.srv, SK_STAT_DROPS_INCOMPLETE, &incomplete), SK_OK);
  ck_assert_uint_eq(incomplete, 1);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

static void abort_connection(int fd) {
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd); /* sends RST */
}

START_TEST(test_reset_mid_message_leaves_others_served) {
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  int other = sk_test_tcp_connect(t.address);
  for (int i = 0; i < 20; i++) {
    int fd = sk_test_tcp_connect(t.address);
    ck_assert_int_eq(sk_test_send_all(fd, "done\npartial mess", 17), 0);
    if (i % 2)
      expect_bytes(fd, "done\n", 5); /* some reset after the reply, some before */
    abort_connection(fd);
  }
  ck_assert_int_eq(sk_test_send_all(other, "still here\n", 11), 0);
  expect_bytes(other, "still here\n", 11);
  close(other);
  ck_assert(sk_test_wait_tcp_stat_eq(t.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  uint64_t accepted = 0;
  sk_tcp_server_stat(t.srv, SK_STAT_CONNECTIONS_ACCEPTED, &accepted);
  ck_assert_uint_eq(accepted, 21);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* The owed replies arrive, then a clean EOF (not a reset), and only this
 * connection is affected. */
static void protocol_error_case(const char *bad, size_t bad_len, int stat) {
  sk_test_tcp t;
  ck_assert_int_eq(
      sk_test_tcp_start_server(&t, new_server("127.0.0.1:0", sk_test_echo, SK_FRAME_LINE, 16)),
      SK_OK);
  int other = sk_test_tcp_connect(t.address);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_eq(sk_test_send_all(fd, "ok1\nok2\n", 8), 0);
  ck_assert_int_eq(sk_test_send_all(fd, bad, bad_len), 0);
  ck_assert_int_eq(sk_test_send_all(fd, "after\n", 6), 0);
  char got[64];
  ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), 8);
  ck_assert(memcmp(got, "ok1\nok2\n", 8) == 0);
  close(fd);
  ck_assert_int_eq(sk_test_send_all(other, "fine\n", 5), 0);
  expect_bytes(other, "fine\n", 5);
  uint64_t drops = 0;
  sk_tcp_server_stat(t.srv, stat, &drops);
  ck_assert_uint_eq(drops, 1);
  close(other);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}

START_TEST(test_oversize_line_closes_only_that_connection) {
  char bad[64];
  memset(bad, 'x', sizeof bad);
  bad[sizeof bad - 1] = '\n';
  protocol_error_case(bad, sizeof bad, SK_STAT_DROPS_TRUNCATED);
  /* Without a newline at all, the limit still applies. */
  protocol_error_case(bad, sizeof bad - 1, SK_STAT_DROPS_TRUNCATED);
}
END_TEST

START_TEST(test_nul_byte_closes_only_that_connection) {
  protocol_error_case("a\0b\n", 4, SK_STAT_DROPS_NUL);
}
END_TEST

/* The server looks for NUL once per read: good messages before the bad one
 * in the same segment are still served, and the bad one is caught wherever
 * it sits, in every framing. */
START_TEST(test_nul_byte_after_good_messages_in_one_read) {
  static const struct {
    int framing;
    const char *bytes;
    size_t len;
    const char *want;
    size_t want_len;
  } cases[] = {
      {SK_FRAME_LINE, "ok1\nok2\nx\0y\nafter\n", 18, "ok1\nok2\n", 8},
      {SK_FRAME_LINE, "ok1\r\n\0\n", 7, "ok1\n", 4},
      {SK_FRAME_LENGTH, "\0\0\0\2ok\0\0\0\2\0k", 12, "\0\0\0\2ok", 6},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sk_test_tcp t;
    ck_assert_int_eq(
        sk_test_tcp_start_server(&t, new_server("127.0.0.1:0", sk_test_echo, cases[i].framing, 16)),
        SK_OK);
    int fd = sk_test_tcp_connect(t.address);
    ck_assert_int_eq(sk_test_send_all(fd, cases[i].bytes, cases[i].len), 0);
    char got[64];
    ck_assert_int_eq(sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS), (ssize_t)cases[i].want_len);
    ck_assert(memcmp(got, cases[i].want, cases[i].want_len) == 0);
    uint64_t drops = 0;
    sk_tcp_server_stat(t.srv, SK_STAT_DROPS_NUL, &drops);
    ck_assert_uint_eq(drops, 1);
    close(fd);
    ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  }
}
END_TEST

START_TEST(test_stop_with_clients_connected) {
  int fds_before = sk_test_fd_count();
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  int clients[20];
  for (int i = 0; i < 20; i++) {
    clients[i] = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(clients[i], 0);
    ck_assert_int_eq(sk_test_send_all(clients[i], "hi\n", 3), 0);
    expect_bytes(clients[i], "hi\n", 3);
  }
  ck_assert_int_eq(sk_test_tcp_stop(&t, 2000), SK_OK);
  /* Every client sees its connection end. */
  for (int i = 0; i < 20; i++) {
    char got[8];
    ck_assert_int_eq(sk_test_read_to_eof(clients[i], got, sizeof got, WAIT_MS), 0);
    close(clients[i]);
  }
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
}
END_TEST

START_TEST(test_lifecycle_and_options) {
  sk_tcp_server *srv = (sk_tcp_server *)1;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "1.2.3:4", sk_test_echo, NULL), SK_EADDR);
  ck_assert_ptr_null(srv);
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", NULL, NULL), SK_EINVAL);
  sk_tcp_server_destroy(NULL);

  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  long long v;
  ck_assert_int_eq(sk_tcp_server_get(srv, SK_OPT_MAX_MESSAGE, &v), SK_OK);
  ck_assert_int_eq(v, 65536);
  ck_assert_int_eq(sk_tcp_server_get(srv, SK_OPT_FRAMING, &v), SK_OK);
  ck_assert_int_eq(v, SK_FRAME_LINE);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_FRAMING, 3), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_BACKLOG, 0), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_MESSAGE, 0), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, 12345, 0), SK_EINVAL);
  /* Each option's documented range, at both ends. */
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, 1023), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, 1024), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, (1LL << 30) + 1), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, 1LL << 30), SK_OK);
  ck_assert_int_eq(sk_tcp_server_get(srv, SK_OPT_OUTPUT_HIGH_WATER, &v), SK_OK);
  ck_assert_int_eq(v, 1LL << 30);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_OUTPUT_HIGH_WATER, 1 << 20), SK_OK);
  /* Statistics: the TCP ones only; never one past the last. */
  uint64_t count = 7;
  static const int not_tcp[] = {0,
                                -1,
                                SK_STAT_DROPS_NO_ADDRESS,
                                SK_STAT_DROPS_WOULD_BLOCK,
                                SK_STAT_DROPS_SEND_ERROR,
                                SK_STAT_DROPS_QUEUE_FULL,
                                SK_STAT_PROXY_ERRORS + 1,
                                SK_STAT_PROXY_ERRORS + 2,
                                1000};
  for (size_t i = 0; i < sizeof not_tcp / sizeof not_tcp[0]; i++)
    ck_assert_msg(sk_tcp_server_stat(srv, not_tcp[i], &count) == SK_EINVAL,
                  "sk_tcp_server_stat(%d) was accepted", not_tcp[i]);
  ck_assert_uint_eq(count, 7);
  ck_assert_int_eq(sk_tcp_server_stat(srv, SK_STAT_BYTES_BUFFERED, &count), SK_OK);
  ck_assert_uint_eq(count, 0);
  ck_assert_int_eq(sk_tcp_server_stat(srv, SK_STAT_MESSAGES_IN, NULL), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_BACKLOG, 16), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(srv), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_BACKLOG, 32), SK_ESTATE);
  int port;
  ck_assert_int_eq(sk_tcp_server_port(srv, &port), SK_OK);

  /* The same port again: SK_EBIND with the OS reason. */
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  sk_tcp_server *second;
  ck_assert_int_eq(sk_tcp_server_create(&second, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_run(second), SK_EBIND);
  ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);
  sk_tcp_server_destroy(second);

  /* Run once; after stop, run refuses. */
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_eq(sk_test_send_all(fd, "up\n", 3), 0);
  expect_bytes(fd, "up\n", 3);
  close(fd);
  sk_tcp_server_stop(srv);
  pthread_join(t.thread, NULL);
  ck_assert_int_eq(atomic_load(&t.rc), SK_OK);
  ck_assert_int_eq(sk_tcp_server_run(srv), SK_ESTATE);
  sk_tcp_server_destroy(srv);

  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  sk_tcp_server_stop(srv);
  ck_assert_int_eq(sk_tcp_server_run(srv), SK_ESTATE);
  sk_tcp_server_destroy(srv);
}
END_TEST

/* ---- sharing a port, and failures of the system ----------------------- */

static const char *say_a(const char *request, void *user) {
  (void)request;
  (void)user;
  return "A";
}
static const char *say_b(const char *request, void *user) {
  (void)request;
  (void)user;
  return "B";
}

/* SK_OPT_REUSEPORT=1 lets a second server -- and any socket with
 * SO_REUSEPORT -- bind the same port, and the kernel spreads clients over
 * both; without it the port is taken (SK_EBIND, EADDRINUSE). */
START_TEST(test_reuseport_shares_the_port) {
  sk_tcp_server *a, *b, *c;
  ck_assert_int_eq(sk_tcp_server_create(&a, "127.0.0.1:0", say_a, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(a, SK_OPT_REUSEPORT, 1), SK_OK);
  sk_test_tcp ta;
  ck_assert_int_eq(sk_test_tcp_start_server(&ta, a), SK_OK);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", ta.port);

  /* Without the option the port is taken. */
  ck_assert_int_eq(sk_tcp_server_create(&c, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(c), SK_EBIND);
  ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);
  sk_tcp_server_destroy(c);

  /* With it, a second server and a plain socket share it. */
  ck_assert_int_eq(sk_tcp_server_create(&b, address, say_b, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(b, SK_OPT_REUSEPORT, 1), SK_OK);
  sk_test_tcp tb;
  ck_assert_int_eq(sk_test_tcp_start_server(&tb, b), SK_OK);
  ck_assert_int_eq(tb.port, ta.port);
  int plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ck_assert_int_eq(setsockopt(plain, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)ta.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(plain, (struct sockaddr *)&sa, sizeof sa), 0);
  close(plain);

  /* Both serve: each connection lands on one of them, by its hash. */
  bool seen_a = false, seen_b = false;
  for (int i = 0; i < 64 && !(seen_a && seen_b); i++) {
    int fd = sk_test_tcp_connect(address);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(sk_test_send_all(fd, "who\n", 4), 0);
    char got[2];
    ck_assert_int_eq(sk_test_read_exact(fd, got, 2, WAIT_MS), 2);
    seen_a |= got[0] == 'A';
    seen_b |= got[0] == 'B';
    close(fd);
  }
  ck_assert(seen_a && seen_b);
  ck_assert_int_eq(sk_test_tcp_stop(&tb, WAIT_MS), SK_OK);
  ck_assert_int_eq(sk_test_tcp_stop(&ta, WAIT_MS), SK_OK);
}
END_TEST

/* Make every new descriptor fail (EMFILE) by lowering the limit to the
 * lowest free descriptor number; returns the old limit to restore. */
static struct rlimit no_more_descriptors(void) {
  struct rlimit old;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  int lowest = dup(0);
  ck_assert_int_ge(lowest, 0);
  close(lowest);
  struct rlimit none = {.rlim_cur = (rlim_t)lowest, .rlim_max = old.rlim_max};
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &none), 0);
  return old;
}

/* Out of descriptors: create reports SK_ESYS (no wake-up descriptor),
 * listen SK_ESOCKET (no socket), with the OS error; nothing is leaked and
 * the same calls work once descriptors are back. A server that listened
 * before holds every descriptor it needs: it runs all the same. */
START_TEST(test_out_of_descriptors_is_esys) {
  int before = sk_test_fd_count();
  sk_tcp_server *ready, *listening;
  ck_assert_int_eq(sk_tcp_server_create(&ready, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_create(&listening, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(listening, SK_OPT_IO_THREADS, 2), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(listening), SK_OK);
  struct rlimit old = no_more_descriptors();
  int start_rc = sk_tcp_server_start(listening);
  sk_tcp_server *srv = (sk_tcp_server *)1;
  int create_rc = sk_tcp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL);
  int create_err = sk_last_os_error();
  int listen_rc = sk_tcp_server_listen(ready);
  int listen_err = sk_last_os_error();
  sk_udp_server *usrv = (sk_udp_server *)1;
  int udp_rc = sk_udp_server_create(&usrv, "127.0.0.1:0", sk_test_echo, NULL);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  ck_assert_int_eq(start_rc, SK_OK);
  ck_assert_int_eq(sk_tcp_server_stop(listening), SK_OK);
  sk_tcp_server_destroy(listening);
  ck_assert_int_eq(create_rc, SK_ESYS);
  ck_assert_int_eq(create_err, EMFILE);
  ck_assert_ptr_null(srv);
  ck_assert_int_eq(listen_rc, SK_ESOCKET);
  ck_assert_int_eq(listen_err, EMFILE);
  ck_assert_int_eq(udp_rc, SK_ESYS);
  ck_assert_ptr_null(usrv);
  ck_assert_int_eq(sk_tcp_server_listen(ready), SK_OK);
  sk_tcp_server_destroy(ready);
  ck_assert_int_eq(sk_test_fd_count(), before);
}
END_TEST

/* listen() of this program, for the one test that needs it to fail: the
 * library is linked in statically, so its listen() calls come here. */
static atomic_bool fail_listen;
int listen(int fd, int backlog) {
  if (atomic_load(&fail_listen)) {
    errno = EADDRINUSE;
    return -1;
  }
  return (int)syscall(SYS_listen, fd, backlog);
}

/* A failing listen() is SK_ELISTEN with its OS error, the socket is not
 * leaked, and the server can listen once it works again. */
START_TEST(test_failing_listen_is_elisten) {
  int before = sk_test_fd_count();
  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  atomic_store(&fail_listen, true);
  int rc = sk_tcp_server_listen(srv);
  atomic_store(&fail_listen, false);
  ck_assert_int_eq(rc, SK_ELISTEN);
  ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);
  ck_assert_int_eq(sk_tcp_server_listen(srv), SK_OK);
  sk_tcp_server_destroy(srv);
  ck_assert_int_eq(sk_test_fd_count(), before);
}
END_TEST

/* SK_OPT_BACKLOG reaches listen(): a server that listens but is not run
 * completes only about `backlog` handshakes (Linux: backlog + 1); further
 * connections wait. The default (SOMAXCONN) completes them all. */
static int handshakes_completed(const char *address, int tries, int *fds) {
  sk_addr a;
  ck_assert_int_eq(sk__addr_parse(&a, address), 0);
  int done = 0;
  for (int i = 0; i < tries; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fds[i], 0);
    int rc = connect(fds[i], (struct sockaddr *)&a.ss, a.len);
    ck_assert(rc == 0 || errno == EINPROGRESS);
    struct pollfd p = {.fd = fds[i], .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof err;
    if (rc == 0 || (poll(&p, 1, 200) == 1 &&
                    getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0))
      done++;
  }
  return done;
}

START_TEST(test_backlog_option_reaches_listen) {
  for (int round = 0; round < 2; round++) {
    sk_tcp_server *srv;
    ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
    if (round == 0)
      ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_BACKLOG, 1), SK_OK);
    ck_assert_int_eq(sk_tcp_server_listen(srv), SK_OK);
    char address[64];
    ck_assert_int_eq(sk_tcp_server_address(srv, address, sizeof address), SK_OK);
    int fds[6];
    int done = handshakes_completed(address, 6, fds);
    if (round == 0)
      ck_assert_msg(done >= 1 && done <= 3, "backlog 1: %d handshakes completed", done);
    else
      ck_assert_int_eq(done, 6);
    for (int i = 0; i < 6; i++)
      close(fds[i]);
    sk_tcp_server_destroy(srv);
  }
}
END_TEST

static Suite *tcp_suite(void) {
  Suite *s = suite_create("tcp_server");
  TCase *tc = tcase_create("tcp");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_line_echo_ipv4_with_peer);
  tcase_add_test(tc, test_line_echo_ipv6_and_dual_stack);
  tcase_add_test(tc, test_unix_stream_echo_and_socket_file);
  tcase_add_test(tc, test_length_framing);
  tcase_add_test(tc, test_length_framing_reply_sizes);
  tcase_add_test(tc, test_raw_framing);
  tcase_add_test(tc, test_replies_pointing_into_requests);
  tcase_add_test(tc, test_hundred_clients_in_order);
  tcase_add_test(tc, test_pipelining_without_reading);
  tcase_add_test(tc, test_half_close_gets_every_reply);
  tcase_add_test(tc, test_reset_mid_message_leaves_others_served);
  tcase_add_test(tc, test_oversize_line_closes_only_that_connection);
  tcase_add_test(tc, test_nul_byte_closes_only_that_connection);
  tcase_add_test(tc, test_nul_byte_after_good_messages_in_one_read);
  tcase_add_test(tc, test_stop_with_clients_connected);
  tcase_add_test(tc, test_lifecycle_and_options);
  tcase_add_test(tc, test_reuseport_shares_the_port);
  tcase_add_test(tc, test_out_of_descriptors_is_esys);
  tcase_add_test(tc, test_failing_listen_is_elisten);
  tcase_add_test(tc, test_backlog_option_reaches_listen);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  if (getenv("SK_TEST_DEBUG"))
    sk_set_log_level(SK_LOG_DEBUG);
  return sk_test_run(tcp_suite());
}
