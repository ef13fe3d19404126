/* test_client_bytes.c -- the clients' binary calls (*_bytes) against peers
 * the test owns: every byte value in each framing and over UDP, large and
 * pushed messages, timeouts, and the string calls still refusing a NUL. */
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 5000

/* The library's servers cannot carry a NUL yet, so the peers here are plain
 * sockets. A peer either echoes what it reads (byte for byte, which serves
 * every framing: the client decodes its own frame) or answers each read
 * with one canned reply. */
enum { ECHO, CANNED };

typedef struct peer {
  int fd; /* listening (TCP) or bound (UDP) */
  char address[64];
  int mode;
  const char *canned;
  size_t canned_len;
  pthread_t thread;
  bool running;
  atomic_bool stop;
  atomic_int accepted; /* TCP connections */
} peer;

/* A socket of `type` bound to an ephemeral port on loopback. */
static void peer_bind(peer *p, int type) {
  *p = (peer){.fd = socket(AF_INET, type | SOCK_CLOEXEC, 0)};
  ck_assert_int_ge(p->fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  ck_assert_int_eq(bind(p->fd, (struct sockaddr *)&a, sizeof a), 0);
  if (type == SOCK_STREAM)
    ck_assert_int_eq(listen(p->fd, 8), 0);
  ck_assert_int_eq(getsockname(p->fd, (struct sockaddr *)&a, &alen), 0);
  snprintf(p->address, sizeof p->address, "127.0.0.1:%d", ntohs(a.sin_port));
  atomic_init(&p->stop, false);
  atomic_init(&p->accepted, 0);
}

/* Wait briefly for fd to be readable, so that the loops see `stop`. */
static bool readable(int fd) {
  struct pollfd q = {.fd = fd, .events = POLLIN};
  return poll(&q, 1, 20) == 1;
}

/* Serve one TCP connection until the client closes it. */
static void serve_stream(peer *p, int conn) {
  static _Thread_local char buf[65536];
  while (!atomic_load(&p->stop)) {
    if (!readable(conn))
      continue;
    ssize_t n = recv(conn, buf, sizeof buf, 0);
    if (n <= 0)
      return;
    bool echo = p->mode == ECHO;
    if (sk_test_send_all(conn, echo ? buf : p->canned, echo ? (size_t)n : p->canned_len) != 0)
      return;
  }
}

static void *run_stream(void *arg) {
  peer *p = arg;
  while (!atomic_load(&p->stop)) {
    if (!readable(p->fd))
      continue;
    int conn = accept(p->fd, NULL, NULL);
    if (conn < 0)
      continue;
    atomic_fetch_add(&p->accepted, 1);
    /* A client that stops reading cannot hold the peer past its join. */
    struct timeval tv = {2, 0};
    setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    serve_stream(p, conn);
    close(conn);
  }
  return NULL;
}

static void *run_dgram(void *arg) {
  peer *p = arg;
  static _Thread_local char buf[65536];
  while (!atomic_load(&p->stop)) {
    if (!readable(p->fd))
      continue;
    struct sockaddr_storage from;
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(p->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
    if (n < 0)
      continue;
    bool echo = p->mode == ECHO;
    sendto(p->fd, echo ? buf : p->canned, echo ? (size_t)n : p->canned_len, 0,
           (struct sockaddr *)&from, flen);
  }
  return NULL;
}

static void peer_start(peer *p, int type, int mode, const char *canned, size_t canned_len) {
  peer_bind(p, type);
  p->mode = mode;
  p->canned = canned;
  p->canned_len = canned_len;
  ck_assert_int_eq(
      pthread_create(&p->thread, NULL, type == SOCK_STREAM ? run_stream : run_dgram, p), 0);
  p->running = true;
}

static void peer_stop(peer *p) {
  atomic_store(&p->stop, true);
  if (p->running)
    ck_assert_int_eq(sk_test_join(p->thread, WAIT_MS), 0);
  close(p->fd);
}

static sk_tcp_client *tcp_client(const char *address, int framing) {
  sk_tcp_client *c = NULL;
  ck_assert_int_eq(sk_tcp_client_create(&c, address), SK_OK);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_FRAMING, framing), SK_OK);
  return c;
}

static sk_udp_client *udp_client(const char *address) {
  sk_udp_client *c = NULL;
  ck_assert_int_eq(sk_udp_client_create(&c, address), SK_OK);
  return c;
}

/* A reply must be the bytes expected, followed by the uncounted NUL. */
static void expect_bytes(int rc, const void *got, size_t got_len, const void *want, size_t len) {
  ck_assert_msg(rc == SK_OK, "%zu bytes: %s", len, sk_status_name(rc));
  ck_assert_ptr_nonnull(got);
  ck_assert_uint_eq(got_len, len);
  ck_assert(len == 0 || memcmp(got, want, len) == 0);
  ck_assert_int_eq(((const char *)got)[len], '\0');
}

static void tcp_round_trip(sk_tcp_client *c, const void *msg, size_t len) {
  const void *reply = NULL;
  size_t reply_len = 0;
  int rc = sk_tcp_client_request_bytes(c, msg, len, &reply, &reply_len);
  expect_bytes(rc, reply, reply_len, msg, len);
}

static void udp_round_trip(sk_udp_client *c, const void *msg, size_t len) {
  const void *reply = NULL;
  size_t reply_len = 0;
  int rc = sk_udp_client_request_bytes(c, msg, len, &reply, &reply_len);
  expect_bytes(rc, reply, reply_len, msg, len);
}

/* Messages every carrier must take: all 256 byte values, a run of NULs,
 * NULs at both ends. */
static unsigned char every_byte[256], nuls[1000];
static const char nul_ends[] = "\0middle\0";

static void fill_every_byte(void) {
  for (int i = 0; i < 256; i++)
    every_byte[i] = (unsigned char)i;
  memset(nuls, 0, sizeof nuls);
}

START_TEST(test_tcp_every_byte_in_length_and_raw) {
  fill_every_byte();
  static const int framings[] = {SK_FRAME_LENGTH, SK_FRAME_RAW};
  for (size_t i = 0; i < 2; i++) {
    peer p;
    peer_start(&p, SOCK_STREAM, ECHO, NULL, 0);
    sk_tcp_client *c = tcp_client(p.address, framings[i]);
    tcp_round_trip(c, every_byte, sizeof every_byte);
    tcp_round_trip(c, nuls, sizeof nuls);
    tcp_round_trip(c, nul_ends, sizeof nul_ends - 1);
    tcp_round_trip(c, "\n\r\n", 3);
    const void *reply = "unchanged";
    size_t len = 99;
    if (framings[i] == SK_FRAME_LENGTH) {
      tcp_round_trip(c, NULL, 0); /* an empty message; NULL is fine for 0 bytes */
      tcp_round_trip(c, "", 0);
    } else {
      /* RAW cannot carry an empty message: nothing would be sent. */
      ck_assert_int_eq(sk_tcp_client_request_bytes(c, NULL, 0, &reply, &len), SK_EINVAL);
      ck_assert_ptr_null(reply);
      ck_assert_uint_eq(len, 0);
    }
    /* A reply may be sent back as the next request: it is copied first. */
    ck_assert_int_eq(sk_tcp_client_request_bytes(c, nul_ends, 8, &reply, &len), SK_OK);
    ck_assert_int_eq(sk_tcp_client_request_bytes(c, reply, len, &reply, &len), SK_OK);
    expect_bytes(SK_OK, reply, len, nul_ends, 8);
    /* One-way: send, then read the echo. */
    ck_assert_int_eq(sk_tcp_client_send_bytes(c, every_byte, 100), SK_OK);
    ck_assert_int_eq(sk_tcp_client_recv_bytes(c, &reply, &len, WAIT_MS), SK_OK);
    expect_bytes(SK_OK, reply, len, every_byte, 100);
    sk_tcp_client_destroy(c);
    ck_assert_int_eq(atomic_load(&p.accepted), 1); /* all over one connection */
    peer_stop(&p);
  }
}
END_TEST

START_TEST(test_tcp_line_carries_all_but_newline) {
  fill_every_byte();
  peer p;
  peer_start(&p, SOCK_STREAM, ECHO, NULL, 0);
  sk_tcp_client *c = tcp_client(p.address, SK_FRAME_LINE);
  const void *reply = "unchanged";
  size_t len = 99;
  /* Refused before connecting: the '\n' would make two messages. */
  ck_assert_int_eq(sk_tcp_client_request_bytes(c, every_byte, 256, &reply, &len), SK_EINVAL);
  ck_assert_ptr_null(reply);
  ck_assert_uint_eq(len, 0);
  ck_assert_int_eq(sk_tcp_client_request_bytes(c, "a\nb", 3, &reply, &len), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_send_bytes(c, "\n", 1), SK_EINVAL);
  ck_assert_int_eq(atomic_load(&p.accepted), 0);
  /* '\r' and the other bytes, without NUL, then with NUL: the framing
   * looks for '\n' only. */
  tcp_round_trip(c, "carriage\rreturn\r inside", 23);
  unsigned char text[254];
  for (int i = 0; i < 254; i++)
    text[i] = (unsigned char)(i < 9 ? i + 1 : i + 2); /* 1..255 without '\n' */
  tcp_round_trip(c, text, sizeof text);
  tcp_round_trip(c, "a\0b", 3);
  tcp_round_trip(c, NULL, 0);
  /* A final '\r' is part of the line end "\r\n" to the receiver, which
   * here is the client reading its echo. */
  ck_assert_int_eq(sk_tcp_client_request_bytes(c, "cr\r", 3, &reply, &len), SK_OK);
  expect_bytes(SK_OK, reply, len, "cr", 2);
  sk_tcp_client_destroy(c);
  ck_assert_int_eq(atomic_load(&p.accepted), 1);
  peer_stop(&p);
}
END_TEST

START_TEST(test_tcp_reply_over_64_kib_in_length) {
  enum { BIG = 200 * 1024 };
  char *frame = malloc(4 + BIG);
  ck_assert_ptr_nonnull(frame);
  frame[0] = 0;
  frame[1] = (char)(BIG >> 16);
  frame[2] = (char)(BIG >> 8 & 0xff);
  frame[3] = (char)(BIG & 0xff);
  for (int i = 0; i < BIG; i++)
    frame[4 + i] = (char)(i * 7 + i / 256);
  peer p;
  peer_start(&p, SOCK_STREAM, CANNED, frame, 4 + BIG);
  sk_tcp_client *c = tcp_client(p.address, SK_FRAME_LENGTH);
  const void *reply = "unchanged";
  size_t len = 99;
  /* Over the default maximum of 64 KiB: refused from its header. */
  ck_assert_int_eq(sk_tcp_client_request_bytes(c, "big", 3, &reply, &len), SK_EMSGSIZE);
  ck_assert_ptr_null(reply);
  ck_assert_uint_eq(len, 0);
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_MAX_MESSAGE, 1 << 20), SK_OK);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(sk_tcp_client_request_bytes(c, "big", 3, &reply, &len), SK_OK);
    expect_bytes(SK_OK, reply, len, frame + 4, BIG);
  }
  sk_tcp_client_destroy(c);
  ck_assert_int_eq(atomic_load(&p.accepted), 2); /* the refusal closed the first */
  peer_stop(&p);
  free(frame);
}
END_TEST

/* The test plays the server itself: connect, then accept on the peer. */
static int accept_client(peer *p, sk_tcp_client *c) {
  ck_assert_int_eq(sk_tcp_client_connect(c, WAIT_MS), SK_OK);
  int conn = accept(p->fd, NULL, NULL);
  ck_assert_int_ge(conn, 0);
  return conn;
}

START_TEST(test_tcp_pushed_messages_and_timeouts) {
  peer p;
  peer_bind(&p, SOCK_STREAM);
  sk_tcp_client *c = tcp_client(p.address, SK_FRAME_LENGTH);
  const void *m = "unchanged";
  size_t len = 99;
  ck_assert_int_eq(sk_tcp_client_recv_bytes(c, &m, &len, 0), SK_ESTATE); /* not connected */
  ck_assert_ptr_null(m);
  int conn = accept_client(&p, c);
  ck_assert_int_eq(sk_tcp_client_recv_bytes(c, &m, &len, 0), SK_ETIMEDOUT);
  ck_assert_int_eq(sk_tcp_client_recv_bytes(c, &m, &len, 50), SK_ETIMEDOUT);
  ck_assert_ptr_null(m);
  ck_assert_uint_eq(len, 0);

  /* Pushed by the server, NULs and all. */
  ck_assert_int_eq(sk_test_send_all(conn, "\0\0\0\x06\0push\0", 10), 0);
  ck_assert_int_eq(sk_tcp_client_recv_bytes(c, &m, &len, WAIT_MS), SK_OK);
  expect_bytes(SK_OK, m, len, "\0push\0", 6);
  /* Half a message times out and stays buffered for the next call. */
  ck_assert_int_eq(sk_test_send_all(conn, "\0\0\0\x04\0a", 6), 0);
  ck_assert_int_eq(sk_tcp_client_recv_bytes(c, &m, &len, 50), SK_ETIMEDOUT);
  ck_assert_int_eq(sk_test_send_all(conn, "b\0", 2), 0);
  ck_assert_int_eq(sk_tcp_client_recv_bytes(c, &m, &len, WAIT_MS), SK_OK);
  expect_bytes(SK_OK, m, len, "\0ab\0", 4);

  /* What send_bytes puts on the wire: the header, then the bytes. */
  ck_assert_int_eq(sk_tcp_client_send_bytes(c, "\0\xff\0", 3), SK_OK);
  char wire[7];
  ck_assert_int_eq(sk_test_read_exact(conn, wire, 7, WAIT_MS), 7);
  ck_assert(memcmp(wire, "\0\0\0\x03\0\xff\0", 7) == 0);

  /* The string call refuses a pushed NUL and closes the connection. */
  ck_assert_int_eq(sk_test_send_all(conn, "\0\0\0\x03x\0y", 7), 0);
  const char *s = "unchanged";
  ck_assert_int_eq(sk_tcp_client_recv(c, &s, WAIT_MS), SK_EPROTO);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(sk_tcp_client_recv_bytes(c, &m, &len, 0), SK_ESTATE);
  close(conn);

  /* A request nobody answers: the request timeout, then a new connection. */
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_REQUEST_TIMEOUT_MS, 200), SK_OK);
  conn = accept_client(&p, c);
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_tcp_client_request_bytes(c, "\0?", 2, &m, &len), SK_ETIMEDOUT);
  long long elapsed = sk_test_now_ms() - start;
  ck_assert_msg(elapsed >= 195 && elapsed < 3000, "took %lld ms", elapsed);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(sk_tcp_client_recv_bytes(c, &m, &len, 0), SK_ESTATE); /* closed */
  sk_tcp_client_destroy(c);
  close(conn);
  peer_stop(&p);
}
END_TEST

START_TEST(test_tcp_string_calls_still_refuse_a_nul_reply) {
  static const struct {
    int framing;
    const char *reply;
    size_t len;
  } cases[] = {{SK_FRAME_LINE, "a\0b\n", 4},
               {SK_FRAME_LENGTH,
                "\0\0\0\x03"
                "a\0b",
                7},
               {SK_FRAME_RAW, "a\0b", 3}};
  for (size_t i = 0; i < 3; i++) {
    peer p;
    peer_start(&p, SOCK_STREAM, CANNED, cases[i].reply, cases[i].len);
    sk_tcp_client *c = tcp_client(p.address, cases[i].framing);
    const char *s = "unchanged";
    ck_assert_int_eq(sk_tcp_client_request(c, "hi", &s), SK_EPROTO);
    ck_assert_ptr_null(s);
    const void *m = NULL;
    size_t len = 0;
    ck_assert_int_eq(sk_tcp_client_request_bytes(c, "hi", 2, &m, &len), SK_OK);
    expect_bytes(SK_OK, m, len, "a\0b", 3);
    sk_tcp_client_destroy(c);
    ck_assert_int_eq(atomic_load(&p.accepted), 2); /* the refusal closed the first */
    peer_stop(&p);
  }
}
END_TEST

START_TEST(test_tcp_null_arguments_and_limits) {
  sk_tcp_client *c = tcp_client("127.0.0.1:1", SK_FRAME_LENGTH);
  const void *m = "unchanged";
  size_t len = 99;
  ck_assert_int_eq(sk_tcp_client_request_bytes(NULL, "x", 1, &m, &len), SK_EINVAL);
  ck_assert_ptr_null(m);
  ck_assert_uint_eq(len, 0);
  ck_assert_int_eq(sk_tcp_client_request_bytes(c, NULL, 1, &m, &len), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_request_bytes(c, "x", 1, NULL, &len), SK_EINVAL);
  m = "unchanged";
  ck_assert_int_eq(sk_tcp_client_request_bytes(c, "x", 1, &m, NULL), SK_EINVAL);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(sk_tcp_client_send_bytes(NULL, "x", 1), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_send_bytes(c, NULL, 1), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_client_recv_bytes(NULL, &m, &len, 0), SK_EINVAL);
  len = 99;
  ck_assert_int_eq(sk_tcp_client_recv_bytes(c, NULL, &len, 0), SK_EINVAL);
  ck_assert_uint_eq(len, 0);
  m = "unchanged";
  ck_assert_int_eq(sk_tcp_client_recv_bytes(c, &m, NULL, 0), SK_EINVAL);
  ck_assert_ptr_null(m);
  /* Over the maximum: refused before connecting (nothing listens here). */
  ck_assert_int_eq(sk_tcp_client_set(c, SK_OPT_MAX_MESSAGE, 10), SK_OK);
  ck_assert_int_eq(sk_tcp_client_request_bytes(c, nuls, 11, &m, &len), SK_EMSGSIZE);
  ck_assert_int_eq(sk_tcp_client_send_bytes(c, nuls, 11), SK_EMSGSIZE);
  int attempts = -1;
  ck_assert_int_eq(sk_tcp_client_attempts(c, &attempts), SK_OK);
  ck_assert_int_eq(attempts, 0);
  sk_tcp_client_destroy(c);
}
END_TEST

START_TEST(test_udp_every_byte) {
  fill_every_byte();
  peer p;
  peer_start(&p, SOCK_DGRAM, ECHO, NULL, 0);
  sk_udp_client *c = udp_client(p.address);
  udp_round_trip(c, every_byte, sizeof every_byte);
  udp_round_trip(c, nuls, sizeof nuls);
  udp_round_trip(c, nul_ends, sizeof nul_ends - 1);
  udp_round_trip(c, NULL, 0); /* an empty datagram */
  udp_round_trip(c, "line\nbreaks\r\n", 13);
  /* The largest datagram a UDP client takes, of NULs and every byte. */
  char *big = calloc(1, 65507);
  ck_assert_ptr_nonnull(big);
  memcpy(big + 1000, every_byte, sizeof every_byte);
  udp_round_trip(c, big, 65507);
  free(big);
  /* A reply may be sent back as the next request. */
  const void *reply = NULL;
  size_t len = 0;
  ck_assert_int_eq(sk_udp_client_request_bytes(c, nul_ends, 8, &reply, &len), SK_OK);
  ck_assert_int_eq(sk_udp_client_request_bytes(c, reply, len, &reply, &len), SK_OK);
  expect_bytes(SK_OK, reply, len, nul_ends, 8);
  int attempts = 0;
  ck_assert_int_eq(sk_udp_client_attempts(c, &attempts), SK_OK);
  ck_assert_int_eq(attempts, 1);
  sk_udp_client_destroy(c);
  peer_stop(&p);
}
END_TEST

START_TEST(test_udp_pushed_datagrams_and_timeouts) {
  peer p;
  peer_bind(&p, SOCK_DGRAM);
  sk_udp_client *c = udp_client(p.address);
  const void *m = "unchanged";
  size_t len = 99;
  ck_assert_int_eq(sk_udp_client_recv_bytes(c, &m, &len, 0), SK_ESTATE); /* no socket yet */
  ck_assert_ptr_null(m);
  ck_assert_int_eq(sk_udp_client_send_bytes(c, "\0hi\0", 4), SK_OK);
  char got[16];
  struct sockaddr_storage from;
  socklen_t flen = sizeof from;
  struct pollfd q = {.fd = p.fd, .events = POLLIN};
  ck_assert_int_eq(poll(&q, 1, WAIT_MS), 1);
  ck_assert_int_eq(recvfrom(p.fd, got, sizeof got, 0, (struct sockaddr *)&from, &flen), 4);
  ck_assert(memcmp(got, "\0hi\0", 4) == 0);
  ck_assert_int_eq(sk_udp_client_recv_bytes(c, &m, &len, 0), SK_ETIMEDOUT);
  ck_assert_int_eq(sk_udp_client_recv_bytes(c, &m, &len, 50), SK_ETIMEDOUT);
  ck_assert_ptr_null(m);

  /* Datagrams nobody asked for: the bytes call takes a NUL, the string
   * call still refuses it; an empty datagram is a message of 0 bytes. */
  ck_assert_int_eq(sendto(p.fd, "\0\0x", 3, 0, (struct sockaddr *)&from, flen), 3);
  ck_assert_int_eq(sendto(p.fd, "y\0", 2, 0, (struct sockaddr *)&from, flen), 2);
  ck_assert_int_eq(sendto(p.fd, "", 0, 0, (struct sockaddr *)&from, flen), 0);
  ck_assert_int_eq(sk_udp_client_recv_bytes(c, &m, &len, WAIT_MS), SK_OK);
  expect_bytes(SK_OK, m, len, "\0\0x", 3);
  const char *s = "unchanged";
  ck_assert_int_eq(sk_udp_client_recv(c, &s, WAIT_MS), SK_EPROTO);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(sk_udp_client_recv_bytes(c, &m, &len, WAIT_MS), SK_OK);
  expect_bytes(SK_OK, m, len, "", 0);

  /* A request nobody answers: sent again, then the request timeout. */
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_ATTEMPTS, 2), SK_OK);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_RETRY_DELAY_MS, 50), SK_OK);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_REQUEST_TIMEOUT_MS, 200), SK_OK);
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_udp_client_request_bytes(c, "\0?", 2, &m, &len), SK_ETIMEDOUT);
  long long elapsed = sk_test_now_ms() - start;
  ck_assert_msg(elapsed >= 195 && elapsed < 3000, "took %lld ms", elapsed);
  ck_assert_ptr_null(m);
  ck_assert_uint_eq(len, 0);
  int attempts = 0;
  ck_assert_int_eq(sk_udp_client_attempts(c, &attempts), SK_OK);
  ck_assert_int_eq(attempts, 2);
  for (int i = 0; i < 2; i++) { /* both transmissions, byte for byte */
    ck_assert_int_eq(poll(&q, 1, WAIT_MS), 1);
    ck_assert_int_eq(recv(p.fd, got, sizeof got, 0), 2);
    ck_assert(memcmp(got, "\0?", 2) == 0);
  }
  sk_udp_client_destroy(c);
  peer_stop(&p);
}
END_TEST

START_TEST(test_udp_string_calls_still_refuse_a_nul_reply) {
  peer p;
  peer_start(&p, SOCK_DGRAM, CANNED, "a\0b", 3);
  sk_udp_client *c = udp_client(p.address);
  const char *s = "unchanged";
  ck_assert_int_eq(sk_udp_client_request(c, "hi", &s), SK_EPROTO);
  ck_assert_ptr_null(s);
  const void *m = NULL;
  size_t len = 0;
  ck_assert_int_eq(sk_udp_client_request_bytes(c, "hi", 2, &m, &len), SK_OK);
  expect_bytes(SK_OK, m, len, "a\0b", 3);
  sk_udp_client_destroy(c);
  peer_stop(&p);
}
END_TEST

START_TEST(test_udp_null_arguments_and_limits) {
  sk_udp_client *c = udp_client("127.0.0.1:1");
  const void *m = "unchanged";
  size_t len = 99;
  ck_assert_int_eq(sk_udp_client_request_bytes(NULL, "x", 1, &m, &len), SK_EINVAL);
  ck_assert_ptr_null(m);
  ck_assert_uint_eq(len, 0);
  ck_assert_int_eq(sk_udp_client_request_bytes(c, NULL, 1, &m, &len), SK_EINVAL);
  ck_assert_int_eq(sk_udp_client_request_bytes(c, "x", 1, NULL, &len), SK_EINVAL);
  m = "unchanged";
  ck_assert_int_eq(sk_udp_client_request_bytes(c, "x", 1, &m, NULL), SK_EINVAL);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(sk_udp_client_send_bytes(NULL, "x", 1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_client_send_bytes(c, NULL, 1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_client_recv_bytes(NULL, &m, &len, 0), SK_EINVAL);
  len = 99;
  ck_assert_int_eq(sk_udp_client_recv_bytes(c, NULL, &len, 0), SK_EINVAL);
  ck_assert_uint_eq(len, 0);
  m = "unchanged";
  ck_assert_int_eq(sk_udp_client_recv_bytes(c, &m, NULL, 0), SK_EINVAL);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(sk_udp_client_set(c, SK_OPT_MAX_MESSAGE, 10), SK_OK);
  ck_assert_int_eq(sk_udp_client_request_bytes(c, nuls, 11, &m, &len), SK_EMSGSIZE);
  ck_assert_int_eq(sk_udp_client_send_bytes(c, nuls, 11), SK_EMSGSIZE);
  int attempts = -1;
  ck_assert_int_eq(sk_udp_client_attempts(c, &attempts), SK_OK);
  ck_assert_int_eq(attempts, 0); /* nothing was sent */
  sk_udp_client_destroy(c);
}
END_TEST

static Suite *client_bytes_suite(void) {
  Suite *s = suite_create("client_bytes");
  TCase *tc = tcase_create("client_bytes");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_tcp_every_byte_in_length_and_raw);
  tcase_add_test(tc, test_tcp_line_carries_all_but_newline);
  tcase_add_test(tc, test_tcp_reply_over_64_kib_in_length);
  tcase_add_test(tc, test_tcp_pushed_messages_and_timeouts);
  tcase_add_test(tc, test_tcp_string_calls_still_refuse_a_nul_reply);
  tcase_add_test(tc, test_tcp_null_arguments_and_limits);
  tcase_add_test(tc, test_udp_every_byte);
  tcase_add_test(tc, test_udp_pushed_datagrams_and_timeouts);
  tcase_add_test(tc, test_udp_string_calls_still_refuse_a_nul_reply);
  tcase_add_test(tc, test_udp_null_arguments_and_limits);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(client_bytes_suite());
}
