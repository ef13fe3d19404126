/* test_proxy_server.c -- TCP servers behind a proxy: PROXY headers taken
 * in every model, split, slow, late, forged, missing or malformed; trusted
 * senders; the client and the proxy as the service sees them. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cidr.h"
#include "support.h"

#define WAIT_MS 10000

typedef sk_test_model model_config;

static const model_config configs[] = {
    {"event loop", SK_MODEL_EVENT_LOOP, 1, 0},
    {"two event loops", SK_MODEL_EVENT_LOOP, 2, 0},
    {"worker pool", SK_MODEL_WORKER_POOL, 1, 3},
    {"thread per connection", SK_MODEL_THREAD_PER_CONNECTION, 1, 0},
    {"process per connection", SK_MODEL_PROCESS_PER_CONNECTION, 1, 0},
};
#define NCONFIGS ((int)(sizeof configs / sizeof configs[0]))

/* Replies "request|client|proxy" as the service sees them. */
static const char *who(const char *request, void *user) {
  (void)user;
  const char *client = sk_peer_address(), *proxy = sk_peer_proxy_address();
  return sk_replyf("%s|%s|%s", request, client ? client : "none", proxy ? proxy : "none");
}

typedef sk_test_running running;

/* A server of `service` on `address` in model cfg, taking PROXY headers
 * of `mode`. */
static sk_tcp_server *proxy_server(const model_config *cfg, const char *address, sk_service service,
                                   int mode) {
  sk_tcp_server *srv = sk_test_model_server(cfg, address, service);
  ck_assert_ptr_nonnull(srv);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_PROXY_PROTOCOL, mode), SK_OK);
  return srv;
}

static void run_start(running *r, const model_config *cfg, sk_tcp_server *srv) {
  (void)cfg;
  ck_assert_int_eq(sk_test_running_start(r, srv), SK_OK);
}

static void run_stop(running *r) {
  ck_assert_int_eq(sk_test_running_stop(r, WAIT_MS), 0);
}

/* ---- headers ----------------------------------------------------------- */

static const unsigned char v2_signature[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                               0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A v2 PROXY (or LOCAL) header for TCP over IPv4, with `tlv_len` bytes of
 * TLVs after the addresses. Returns its length. */
static size_t v2_inet(unsigned char *out, bool local, const char *src, int sport, const char *dst,
                      int dport, const unsigned char *tlvs, size_t tlv_len) {
  memcpy(out, v2_signature, 12);
  out[12] = local ? 0x20 : 0x21;
  out[13] = 0x11;
  size_t body = 12 + tlv_len;
  out[14] = (unsigned char)(body >> 8);
  out[15] = (unsigned char)body;
  ck_assert_int_eq(inet_pton(AF_INET, src, out + 16), 1);
  ck_assert_int_eq(inet_pton(AF_INET, dst, out + 20), 1);
  out[24] = (unsigned char)(sport >> 8);
  out[25] = (unsigned char)sport;
  out[26] = (unsigned char)(dport >> 8);
  out[27] = (unsigned char)dport;
  if (tlv_len)
    memcpy(out + 28, tlvs, tlv_len);
  return 28 + tlv_len;
}

static int local_port(int fd) {
  struct sockaddr_in me;
  socklen_t len = sizeof me;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&me, &len), 0);
  return ntohs(me.sin_port);
}

static void expect_reply(int fd, const char *want) {
  char got[512];
  size_t len = strlen(want);
  ck_assert_uint_lt(len, sizeof got);
  ssize_t n = sk_test_read_exact(fd, got, len, WAIT_MS);
  ck_assert_msg(n == (ssize_t)len, "read %zd of %zu bytes (want '%s')", n, len, want);
  ck_assert_msg(memcmp(got, want, len) == 0, "got '%.*s', want '%s'", (int)len, got, want);
}

/* Closed by the server, with nothing sent first. */
static void expect_closed(int fd, const char *what) {
  char got[64];
  ssize_t n = sk_test_read_to_eof(fd, got, sizeof got, WAIT_MS);
  ck_assert_msg(n != -2, "%s: not closed within %d ms", what, WAIT_MS);
  ck_assert_msg(n <= 0, "%s: got '%.*s' before the close", what, (int)n, got);
}

/* Client nanoseconds apart: a slow proxy, not a wait for the server. */
static void pause_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- every model -------------------------------------------------------- */

/* v2 header and two pipelined requests in one write: the service sees the
 * header's client and the real peer as the proxy, for every request. */
START_TEST(test_v2_client_and_proxy_every_model) {
  const model_config *cfg = &configs[_i];
  running r;
  run_start(&r, cfg, proxy_server(cfg, "127.0.0.1:0", who, SK_PROXY_V2));
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  unsigned char msg[256];
  size_t n = v2_inet(msg, false, "203.0.113.7", 4242, "198.51.100.1", 80, NULL, 0);
  memcpy(msg + n, "a\nb\n", 4);
  ck_assert_int_eq(sk_test_send_all(fd, msg, n + 4), 0);
  char want[256];
  int port = local_port(fd);
  snprintf(want, sizeof want, "a|203.0.113.7:4242|127.0.0.1:%d\nb|203.0.113.7:4242|127.0.0.1:%d\n",
           port, port);
  expect_reply(fd, want);
  /* And later requests on the connection too. */
  ck_assert_int_eq(sk_test_send_all(fd, "c\n", 2), 0);
  snprintf(want, sizeof want, "c|203.0.113.7:4242|127.0.0.1:%d\n", port);
  expect_reply(fd, want);
  close(fd);
  run_stop(&r);
}
END_TEST

/* A v1 header sent a byte at a time, by a slow proxy: taken across that
 * many reads, then the request that follows it in the last one. */
START_TEST(test_v1_split_every_byte_every_model) {
  const model_config *cfg = &configs[_i];
  running r;
  run_start(&r, cfg, proxy_server(cfg, "127.0.0.1:0", who, SK_PROXY_ANY));
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  const char *msg = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 443\r\nx\n";
  size_t n = strlen(msg);
  for (size_t i = 0; i < n - 3; i++) {
    ck_assert_int_eq(sk_test_send_all(fd, msg + i, 1), 0);
    if (i % 8 == 0)
      pause_ms(1);
  }
  ck_assert_int_eq(sk_test_send_all(fd, msg + n - 3, 3), 0); /* "\nx\n": header end, request */
  char want[256];
  snprintf(want, sizeof want, "x|[2001:db8::1]:65535|127.0.0.1:%d\n", local_port(fd));
  expect_reply(fd, want);
  close(fd);
  run_stop(&r);
}
END_TEST

/* Without a header (a trusted sender that forgot send-proxy) the
 * connection is closed unanswered: the server never guesses. */
START_TEST(test_missing_header_closed_every_model) {
  const model_config *cfg = &configs[_i];
  running r;
  run_start(&r, cfg, proxy_server(cfg, "127.0.0.1:0", who, SK_PROXY_ANY));
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "hello\n", 6), 0);
  expect_closed(fd, cfg->name);
  close(fd);
  if (r.srv)
    ck_assert(sk_test_wait_tcp_stat(r.srv, SK_STAT_PROXY_ERRORS, 1, WAIT_MS));
  /* The server still serves the next, well-behaved, connection. */
  fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  const char *ok = "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nq\n";
  ck_assert_int_eq(sk_test_send_all(fd, ok, strlen(ok)), 0);
  char want[128];
  snprintf(want, sizeof want, "q|192.0.2.1:1|127.0.0.1:%d\n", local_port(fd));
  expect_reply(fd, want);
  close(fd);
  run_stop(&r);
}
END_TEST

/* Half a header, then silence: closed once SK_OPT_PROXY_TIMEOUT_MS has
 * passed, not before, and counted; the idle timeout is not what ends it. */
START_TEST(test_header_timeout_every_model) {
  const model_config *cfg = &configs[_i];
  running r;
  sk_tcp_server *srv = proxy_server(cfg, "127.0.0.1:0", who, SK_PROXY_V1);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_PROXY_TIMEOUT_MS, 200), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_IDLE_TIMEOUT_MS, 60000), SK_OK);
  run_start(&r, cfg, srv);
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  long long start = sk_test_now_ms();
  ck_assert_int_eq(sk_test_send_all(fd, "PROXY TCP4 ", 11), 0);
  expect_closed(fd, cfg->name);
  long long took = sk_test_now_ms() - start;
  ck_assert_msg(took >= 190, "%s: closed after %lld ms, before the 200 ms timeout", cfg->name,
                took);
  close(fd);
  if (r.srv) {
    ck_assert(sk_test_wait_tcp_stat(r.srv, SK_STAT_PROXY_ERRORS, 1, WAIT_MS));
    uint64_t timed_out = 99;
    ck_assert_int_eq(sk_tcp_server_stat(r.srv, SK_STAT_CONNECTIONS_TIMED_OUT, &timed_out), SK_OK);
    ck_assert_uint_eq(timed_out, 0);
  }
  run_stop(&r);
}
END_TEST

/* A forged header from a sender outside the trusted list is never read:
 * the connection is closed at accept and counted; a trusted one works. */
START_TEST(test_untrusted_sender_refused_every_model) {
  const model_config *cfg = &configs[_i];
  running r;
  sk_tcp_server *srv = proxy_server(cfg, "127.0.0.1:0", who, SK_PROXY_ANY);
  ck_assert_int_eq(sk_tcp_server_set_proxy_trusted(srv, "10.0.0.0/8, 2001:db8::/32"), SK_OK);
  run_start(&r, cfg, srv);
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  const char *forged = "PROXY TCP4 10.1.2.3 192.0.2.2 1000 80\r\nsteal\n";
  (void)sk_test_send_all(fd, forged, strlen(forged)); /* may fail: closed already */
  expect_closed(fd, cfg->name);
  close(fd);
  if (r.srv) {
    ck_assert(sk_test_wait_tcp_stat(r.srv, SK_STAT_PROXY_REJECTED, 1, WAIT_MS));
    uint64_t v = 99;
    ck_assert_int_eq(sk_tcp_server_stat(r.srv, SK_STAT_CONNECTIONS_ACCEPTED, &v), SK_OK);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(sk_tcp_server_stat(r.srv, SK_STAT_MESSAGES_IN, &v), SK_OK);
    ck_assert_uint_eq(v, 0);
  }
  run_stop(&r);

  srv = proxy_server(cfg, "127.0.0.1:0", who, SK_PROXY_ANY);
  ck_assert_int_eq(sk_tcp_server_set_proxy_trusted(srv, "10.0.0.0/8 127.0.0.0/8"), SK_OK);
  run_start(&r, cfg, srv);
  fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, forged, strlen(forged)), 0);
  char want[128];
  snprintf(want, sizeof want, "steal|10.1.2.3:1000|127.0.0.1:%d\n", local_port(fd));
  expect_reply(fd, want);
  close(fd);
  run_stop(&r);
}
END_TEST

/* The v2 TLVs a service may ask for, as the proxy sent them, in every
 * model; a connection whose header had none reports none. */
static const char *tlvs(const char *request, void *user) {
  (void)user;
  size_t ulen = 99, alen = 99;
  const char *uid = sk_peer_proxy_unique_id(&ulen);
  const char *auth = sk_peer_proxy_authority(&alen);
  return sk_replyf("%s|%s:%zu|%s:%zu", request, uid ? uid : "-", uid ? ulen : 0, auth ? auth : "-",
                   auth ? alen : 0);
}

START_TEST(test_tlvs_every_model) {
  const model_config *cfg = &configs[_i];
  sk_tcp_server *srv = proxy_server(cfg, "127.0.0.1:0", tlvs, SK_PROXY_V2);
  running r;
  run_start(&r, cfg, srv);
  const unsigned char t[] = {0x04, 0, 2,  'x', 'x',                     /* NOOP, skipped */
                             0x05, 0, 6,  'r', 'e', 'q', '-', '4', '2', /* UNIQUE_ID */
                             0x02, 0, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm'};
  unsigned char msg[256];
  size_t n = v2_inet(msg, false, "192.0.2.9", 9, "192.0.2.1", 443, t, sizeof t);
  memcpy(msg + n, "a\nb\n", 4);
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, msg, n + 4), 0);
  expect_reply(fd, "a|req-42:6|example.com:11\nb|req-42:6|example.com:11\n");
  close(fd);
  /* A LOCAL header with an empty UNIQUE_ID only. */
  const unsigned char empty[] = {0x05, 0, 0};
  n = v2_inet(msg, true, "192.0.2.9", 9, "192.0.2.1", 443, empty, sizeof empty);
  memcpy(msg + n, "c\n", 2);
  fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, msg, n + 2), 0);
  expect_reply(fd, "c|:0|-:0\n");
  close(fd);
  /* None at all. */
  n = v2_inet(msg, false, "192.0.2.9", 9, "192.0.2.1", 443, NULL, 0);
  memcpy(msg + n, "d\n", 2);
  fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, msg, n + 2), 0);
  expect_reply(fd, "d|-:0|-:0\n");
  close(fd);
  run_stop(&r);
}
END_TEST

/* RAW framing, where each read is a message: the header takes no byte
 * after it, so a first write of header and 3 KiB is served as reads of
 * at most SK_OPT_MAX_MESSAGE, as without a proxy, not refused as one
 * oversized message. Every model. */
START_TEST(test_raw_after_header_every_model) {
  const model_config *cfg = &configs[_i];
  sk_tcp_server *srv = proxy_server(cfg, "127.0.0.1:0", sk_test_echo, SK_PROXY_V2);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_FRAMING, SK_FRAME_RAW), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_MESSAGE, 256), SK_OK);
  running r;
  run_start(&r, cfg, srv);
  static unsigned char msg[4096];
  size_t n = v2_inet(msg, false, "192.0.2.3", 3, "192.0.2.1", 80, NULL, 0);
  enum { BODY = 3000 };
  for (size_t i = 0; i < BODY; i++)
    msg[n + i] = (unsigned char)('a' + i % 26);
  int fd = sk_test_tcp_connect(r.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, msg, n + BODY), 0);
  static char got[BODY];
  ck_assert_int_eq(sk_test_read_exact(fd, got, BODY, WAIT_MS), BODY);
  ck_assert_msg(memcmp(got, msg + n, BODY) == 0, "%s: the echo differs", cfg->name);
  close(fd);
  if (r.srv) {
    uint64_t dropped = 1;
    ck_assert_int_eq(sk_tcp_server_stat(r.srv, SK_STAT_DROPS_TRUNCATED, &dropped), SK_OK);
    ck_assert_uint_eq(dropped, 0);
  }
  run_stop(&r);
}
END_TEST

/* ---- the event loop's details ------------------------------------------- */

/* LOCAL (a proxy's health check) keeps the real addresses, and a header
 * on a reused descriptor never shows the previous connection's client. */
START_TEST(test_local_header_and_descriptor_reuse) {
  sk_tcp_server *srv = proxy_server(&configs[0], "127.0.0.1:0", who, SK_PROXY_V2);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  for (int round = 0; round < 20; round++) {
    bool local = round % 2 == 1;
    int fd = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(fd, 0);
    unsigned char msg[128];
    size_t n = v2_inet(msg, local, "198.51.100.9", 1000 + round, "198.51.100.1", 80, NULL, 0);
    msg[n++] = 'm';
    msg[n++] = '\n';
    ck_assert_int_eq(sk_test_send_all(fd, msg, n), 0);
    char want[160];
    int port = local_port(fd);
    if (local)
      snprintf(want, sizeof want, "m|127.0.0.1:%d|127.0.0.1:%d\n", port, port);
    else
      snprintf(want, sizeof want, "m|198.51.100.9:%d|127.0.0.1:%d\n", 1000 + round, port);
    expect_reply(fd, want);
    close(fd);
    /* The next connection gets the same descriptor once this one is gone. */
    ck_assert(sk_test_wait_tcp_stat_eq(t.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  }
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* Headers refused: of a version not allowed, malformed, too long, or cut
 * by the end of the stream; a connection that sends nothing and leaves (a
 * proxy's connect check) is not an error. */
START_TEST(test_bad_headers_counted) {
  sk_tcp_server *srv = proxy_server(&configs[0], "127.0.0.1:0", who, SK_PROXY_V1);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  unsigned char v2[64];
  size_t v2_len = v2_inet(v2, false, "192.0.2.1", 1, "192.0.2.2", 2, NULL, 0);
  struct {
    const void *bytes;
    size_t len;
    bool shut; /* end the stream after it */
  } cases[] = {
      {v2, v2_len, false},                                 /* v2 to a v1-only server */
      {"PROXY TCP4 01.2.3.4 192.0.2.2 1 2\r\n", 0, false}, /* leading zero */
      {"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n", 0, false},  /* no CR */
      {"PROXY TCP4 192.0.2.1 192.0.2.2 1 2", 0, true},     /* cut short */
      {"PROXY UNKNOWN "
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
       0, false}, /* no CRLF within 107 bytes */
  };
  uint64_t errors = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int fd = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(fd, 0);
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].bytes);
    ck_assert_int_eq(sk_test_send_all(fd, cases[i].bytes, len), 0);
    if (cases[i].shut)
      shutdown(fd, SHUT_WR);
    char what[32];
    snprintf(what, sizeof what, "case %zu", i);
    expect_closed(fd, what);
    close(fd);
    ck_assert_msg(sk_test_wait_tcp_stat(t.srv, SK_STAT_PROXY_ERRORS, ++errors, WAIT_MS),
                  "case %zu not counted", i);
  }
  /* Connect and leave without a byte: once the server has taken that
   * connection and closed it, nothing more is counted. */
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  close(fd);
  uint64_t accepted = sizeof cases / sizeof cases[0] + 1;
  ck_assert(sk_test_wait_tcp_stat(t.srv, SK_STAT_CONNECTIONS_ACCEPTED, accepted, WAIT_MS));
  ck_assert(sk_test_wait_tcp_stat_eq(t.srv, SK_STAT_CONNECTIONS_ACTIVE, 0, WAIT_MS));
  uint64_t now = 0;
  ck_assert_int_eq(sk_tcp_server_stat(t.srv, SK_STAT_PROXY_ERRORS, &now), SK_OK);
  ck_assert_uint_eq(now, errors);
  ck_assert_int_eq(sk_tcp_server_stat(t.srv, SK_STAT_DROPS_INCOMPLETE, &now), SK_OK);
  ck_assert_uint_eq(now, 0);
  ck_assert_int_eq(sk_tcp_server_stat(t.srv, SK_STAT_MESSAGES_IN, &now), SK_OK);
  ck_assert_uint_eq(now, 0);
  ck_assert_int_eq(sk_tcp_server_stat(t.srv, SK_STAT_CONNECTIONS_TIMED_OUT, &now), SK_OK);
  ck_assert_uint_eq(now, 0);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* The largest header allowed (4096 bytes of TLVs), then a burst of
 * pipelined requests in the same write: all answered in order. One byte
 * more announced is refused. */
START_TEST(test_largest_header_then_burst) {
  sk_tcp_server *srv = proxy_server(&configs[0], "127.0.0.1:0", who, SK_PROXY_V2);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  static unsigned char msg[8192];
  unsigned char tlv[4096 - 28 + 1]; /* one byte more for the header that is too long */
  size_t tlv_len = sizeof tlv - 1;
  memset(tlv, 0, sizeof tlv);
  tlv[0] = 0x04; /* PP2_TYPE_NOOP covering the rest */
  tlv[1] = (unsigned char)((tlv_len - 3) >> 8);
  tlv[2] = (unsigned char)(tlv_len - 3);
  size_t n = v2_inet(msg, false, "192.0.2.77", 7777, "192.0.2.1", 80, tlv, tlv_len);
  ck_assert_uint_eq(n, 4096);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  enum { BURST = 200 };
  for (int i = 0; i < BURST; i++)
    n += (size_t)snprintf((char *)msg + n, sizeof msg - n, "%d\n", i);
  ck_assert_int_eq(sk_test_send_all(fd, msg, n), 0);
  int port = local_port(fd);
  for (int i = 0; i < BURST; i++) {
    char want[128];
    snprintf(want, sizeof want, "%d|192.0.2.77:7777|127.0.0.1:%d\n", i, port);
    expect_reply(fd, want);
  }
  close(fd);

  n = v2_inet(msg, false, "192.0.2.77", 7777, "192.0.2.1", 80, tlv, tlv_len + 1);
  fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, msg, 16), 0); /* the length is enough to refuse it */
  expect_closed(fd, "4097-byte header");
  close(fd);
  ck_assert(sk_test_wait_tcp_stat(t.srv, SK_STAT_PROXY_ERRORS, 1, WAIT_MS));
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* Many clients each sending their header in pieces at once: every one is
 * told apart (no header bytes of one land in another's). */
START_TEST(test_interleaved_split_headers) {
  sk_tcp_server *srv = proxy_server(&configs[0], "127.0.0.1:0", who, SK_PROXY_ANY);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  enum { N = 32 };
  int fds[N];
  char msgs[N][128];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    fds[i] = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(fds[i], 0);
    if (i % 2) {
      lens[i] =
          v2_inet((unsigned char *)msgs[i], false, "192.0.2.5", 2000 + i, "192.0.2.1", 80, NULL, 0);
      memcpy(msgs[i] + lens[i], "r\n", 2);
      lens[i] += 2;
    } else {
      lens[i] = (size_t)snprintf(msgs[i], sizeof msgs[i],
                                 "PROXY TCP4 192.0.2.5 192.0.2.1 %d 80\r\nr\n", 2000 + i);
    }
  }
  for (size_t at = 0; at < 64; at += 5)
    for (int i = 0; i < N; i++)
      if (at < lens[i]) {
        size_t k = lens[i] - at < 5 ? lens[i] - at : 5;
        ck_assert_int_eq(sk_test_send_all(fds[i], msgs[i] + at, k), 0);
      }
  for (int i = 0; i < N; i++) {
    char want[128];
    snprintf(want, sizeof want, "r|192.0.2.5:%d|127.0.0.1:%d\n", 2000 + i, local_port(fds[i]));
    expect_reply(fds[i], want);
    close(fds[i]);
  }
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* A UNIX listener behind a local proxy: "unix" in the trusted list, and a
 * v2 header naming an IPv6 client. */
START_TEST(test_unix_listener_trusted) {
  char *dir = sk_test_tmpdir();
  char address[256];
  snprintf(address, sizeof address, "unix:%s/s", dir);
  sk_tcp_server *srv = proxy_server(&configs[0], address, who, SK_PROXY_V2);
  ck_assert_int_eq(sk_tcp_server_set_proxy_trusted(srv, "unix"), SK_OK);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  unsigned char msg[128];
  memcpy(msg, v2_signature, 12);
  msg[12] = 0x21;
  msg[13] = 0x21; /* TCP over IPv6 */
  msg[14] = 0;
  msg[15] = 36;
  ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::7", msg + 16), 1);
  ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1", msg + 32), 1);
  msg[48] = 0x1f;
  msg[49] = 0x90; /* 8080 */
  msg[50] = 0;
  msg[51] = 80;
  memcpy(msg + 52, "u\n", 2);
  ck_assert_int_eq(sk_test_send_all(fd, msg, 54), 0);
  expect_reply(fd, "u|[2001:db8::7]:8080|unix:\n");
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  sk_test_rmdir(dir);
}
END_TEST

/* Without the option nothing changes: no proxy address, the peer is the
 * connection's, and a PROXY line is just a request. */
static const char *proxy_or_none(const char *request, void *user) {
  (void)request;
  (void)user;
  return sk_peer_proxy_address() ? "proxied" : "direct";
}

START_TEST(test_off_by_default) {
  ck_assert_ptr_null(sk_peer_proxy_address());
  ck_assert_ptr_null(sk_peer_proxy_unique_id(NULL));
  ck_assert_ptr_null(sk_peer_proxy_authority(NULL));
  ck_assert_ptr_null(sk_peer_proxy_sockaddr(NULL));
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", proxy_or_none, NULL), SK_OK);
  long long v = -1;
  ck_assert_int_eq(sk_tcp_server_get(t.srv, SK_OPT_PROXY_PROTOCOL, &v), SK_OK);
  ck_assert_int_eq(v, SK_PROXY_OFF);
  ck_assert_int_eq(sk_tcp_server_get(t.srv, SK_OPT_PROXY_TIMEOUT_MS, &v), SK_OK);
  ck_assert_int_eq(v, 3000);
  int fd = sk_test_tcp_connect(t.address);
  ck_assert_int_ge(fd, 0);
  const char *line = "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n";
  ck_assert_int_eq(sk_test_send_all(fd, line, strlen(line)), 0);
  expect_reply(fd, "direct\n");
  close(fd);
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

/* The API's refusals. */
START_TEST(test_api_errors) {
  sk_tcp_server *srv = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", who, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_PROXY_PROTOCOL, 4), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_PROXY_PROTOCOL, -1), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_PROXY_TIMEOUT_MS, 0), SK_EINVAL);
  ck_assert_int_eq(sk_tcp_server_set_proxy_trusted(NULL, "::1"), SK_EINVAL);
  const char *bad[] = {"",          " , ",         "10.0.0.0/33", "::1/129",
                       "1.2.3",     "10.0.0.0/08", "10.0.0.0/",   "10.0.0.0/-1",
                       "::1 bogus", "unix:",       "[::1]",       "10.0.0.0/8/8"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(sk_tcp_server_set_proxy_trusted(srv, bad[i]) == SK_EADDR, "'%s' accepted",
                  bad[i]);
  ck_assert_int_eq(sk_tcp_server_set_proxy_trusted(srv, "127.0.0.1 ::1/128,unix\t10.0.0.0/8"),
                   SK_OK);
  ck_assert_int_eq(sk_tcp_server_set_proxy_trusted(srv, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set_proxy_trusted(srv, "127.0.0.1"), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(srv), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set_proxy_trusted(srv, "::1"), SK_ESTATE);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_PROXY_PROTOCOL, SK_PROXY_V1), SK_ESTATE);
  uint64_t v;
  ck_assert_int_eq(sk_tcp_server_stat(srv, SK_STAT_PROXY_REJECTED, &v), SK_OK);
  ck_assert_int_eq(sk_tcp_server_stat(srv, SK_STAT_PROXY_ERRORS, &v), SK_OK);
  ck_assert_int_eq(sk_tcp_server_stat(srv, SK_STAT_PROXY_ERRORS + 1, &v), SK_EINVAL);
  sk_tcp_server_destroy(srv);

  sk_udp_server *u = NULL;
  ck_assert_int_eq(sk_udp_server_create(&u, "127.0.0.1:0", who, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(u, SK_OPT_PROXY_PROTOCOL, SK_PROXY_V1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(u, SK_STAT_PROXY_REJECTED, &v), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(u, SK_STAT_PROXY_ERRORS, &v), SK_EINVAL);
  sk_udp_server_destroy(u);
}
END_TEST

/* ---- trusted networks (cidr.c) ------------------------------------------ */

static bool match(const char *list, int family, const char *addr) {
  sk_cidr *c;
  size_t n, bad_len;
  const char *bad;
  ck_assert_int_eq(sk__cidr_parse(list, &c, &n, &bad, &bad_len), SK_OK);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, addr, &a->sin_addr), 1);
    len = sizeof *a;
  } else if (family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    ck_assert_int_eq(inet_pton(AF_INET6, addr, &a->sin6_addr), 1);
    len = sizeof *a;
  } else {
    ss.ss_family = AF_UNIX;
    len = sizeof(sa_family_t);
  }
  bool m = sk__cidr_match(c, n, (struct sockaddr *)&ss, len);
  free(c);
  return m;
}

START_TEST(test_cidr_matching) {
  ck_assert(match("10.0.0.0/8", AF_INET, "10.255.1.2"));
  ck_assert(!match("10.0.0.0/8", AF_INET, "11.0.0.0"));
  ck_assert(match("10.1.2.3/8", AF_INET, "10.9.9.9")); /* host bits cleared */
  ck_assert(match("192.168.1.128/25", AF_INET, "192.168.1.200"));
  ck_assert(!match("192.168.1.128/25", AF_INET, "192.168.1.127"));
  ck_assert(match("0.0.0.0/0", AF_INET, "203.0.113.1"));
  ck_assert(!match("0.0.0.0/0", AF_INET6, "2001:db8::1"));
  ck_assert(match("192.0.2.7", AF_INET, "192.0.2.7"));
  ck_assert(!match("192.0.2.7", AF_INET, "192.0.2.6"));
  ck_assert(match("2001:db8::/32", AF_INET6, "2001:db8:ffff::1"));
  ck_assert(!match("2001:db8::/33", AF_INET6, "2001:db8:8000::1"));
  ck_assert(match("::1", AF_INET6, "::1"));
  ck_assert(!match("::1", AF_INET6, "::2"));
  /* A dual-stack listener's IPv4 client. */
  ck_assert(match("127.0.0.0/8", AF_INET6, "::ffff:127.0.0.1"));
  ck_assert(!match("10.0.0.0/8", AF_INET6, "::ffff:127.0.0.1"));
  ck_assert(match("::ffff:0:0/96", AF_INET6, "::ffff:127.0.0.1"));
  ck_assert(!match("::ffff:0:0/96", AF_INET, "127.0.0.1"));
  ck_assert(match("unix", AF_UNIX, NULL));
  ck_assert(!match("0.0.0.0/0 ::/0", AF_UNIX, NULL));
  ck_assert(!match("unix", AF_INET, "127.0.0.1"));
  ck_assert(match("10.0.0.0/8,,unix , ::/0", AF_INET6, "2001:db8::9"));
  /* Where a bad entry is reported. */
  sk_cidr *c;
  size_t n, bad_len;
  const char *bad, *list = "10.0.0.0/8 , 300.1.1.1 ::1";
  ck_assert_int_eq(sk__cidr_parse(list, &c, &n, &bad, &bad_len), SK_EADDR);
  ck_assert_ptr_eq(bad, list + 13);
  ck_assert_uint_eq(bad_len, 9);
  char longest[80];
  memset(longest, '1', sizeof longest - 1);
  longest[sizeof longest - 1] = '\0';
  ck_assert_int_eq(sk__cidr_parse(longest, &c, &n, &bad, &bad_len), SK_EADDR);
}
END_TEST

static Suite *proxy_server_suite(void) {
  Suite *s = suite_create("proxy_server");
  TCase *models = tcase_create("models");
  tcase_set_timeout(models, 60);
  tcase_add_loop_test(models, test_v2_client_and_proxy_every_model, 0, NCONFIGS);
  tcase_add_loop_test(models, test_v1_split_every_byte_every_model, 0, NCONFIGS);
  tcase_add_loop_test(models, test_missing_header_closed_every_model, 0, NCONFIGS);
  tcase_add_loop_test(models, test_header_timeout_every_model, 0, NCONFIGS);
  tcase_add_loop_test(models, test_untrusted_sender_refused_every_model, 0, NCONFIGS);
  tcase_add_loop_test(models, test_tlvs_every_model, 0, NCONFIGS);
  tcase_add_loop_test(models, test_raw_after_header_every_model, 0, NCONFIGS);
  suite_add_tcase(s, models);
  TCase *loop = tcase_create("loop");
  tcase_set_timeout(loop, 60);
  tcase_add_test(loop, test_local_header_and_descriptor_reuse);
  tcase_add_test(loop, test_bad_headers_counted);
  tcase_add_test(loop, test_largest_header_then_burst);
  tcase_add_test(loop, test_interleaved_split_headers);
  tcase_add_test(loop, test_unix_listener_trusted);
  tcase_add_test(loop, test_off_by_default);
  tcase_add_test(loop, test_api_errors);
  tcase_add_test(loop, test_cidr_matching);
  suite_add_tcase(s, loop);
  return s;
}

int main(void) {
  return sk_test_run(proxy_server_suite());
}
