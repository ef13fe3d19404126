/* test_status.c -- status names and messages agree with the header, version
 * queries, the per-thread OS error, and the log handler. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "support.h"

/* Every code of the header's enum with its pinned value and spelled name.
 * Values are ABI: this table must never change, only grow. */
static const struct {
  int code;
  int pinned;
  const char *name;
} codes[] = {
#define C(x, v)                                                                                    \
  { x, v, #x }
    C(SK_OK, 0),          C(SK_EINVAL, -1),    C(SK_ENOMEM, -2),   C(SK_EADDR, -3),
    C(SK_ESOCKET, -4),    C(SK_EBIND, -5),     C(SK_ELISTEN, -6),  C(SK_EACCEPT, -7),
    C(SK_ECONNECT, -8),   C(SK_EREAD, -9),     C(SK_EWRITE, -10),  C(SK_ESTATE, -11),
    C(SK_ETIMEDOUT, -12), C(SK_EMSGSIZE, -13), C(SK_ECLOSED, -14), C(SK_EPROTO, -15),
    C(SK_ESYS, -16),      C(SK_EAGAIN, -17),   C(SK_ENOTSUP, -18),
#undef C
};
#define NCODES (sizeof codes / sizeof codes[0])

START_TEST(test_every_code_has_name_and_message) {
  for (size_t i = 0; i < NCODES; i++) {
    ck_assert_int_eq(codes[i].code, codes[i].pinned);
    ck_assert_str_eq(sk_status_name(codes[i].code), codes[i].name);
    ck_assert_str_ne(sk_strerror(codes[i].code), "unknown status");
    ck_assert_uint_gt(strlen(sk_strerror(codes[i].code)), 3);
  }
}
END_TEST

START_TEST(test_codes_are_dense_and_messages_distinct) {
  /* The table has no gaps and no two codes share a message. */
  for (size_t i = 0; i < NCODES; i++) {
    ck_assert_int_eq(codes[i].code, -(int)i);
    for (size_t j = i + 1; j < NCODES; j++)
      ck_assert_str_ne(sk_strerror(codes[i].code), sk_strerror(codes[j].code));
  }
}
END_TEST

START_TEST(test_unknown_codes) {
  const int unknown[] = {1, -(int)NCODES, -1000, 12345, -2147483647 - 1};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    ck_assert_str_eq(sk_status_name(unknown[i]), "SK_UNKNOWN");
    ck_assert_str_eq(sk_strerror(unknown[i]), "unknown status");
  }
}
END_TEST

START_TEST(test_version) {
  ck_assert_uint_eq(sk_version(), SK_VERSION_NUMBER);
  ck_assert_str_eq(sk_version_string(), SK_VERSION_STRING);
  ck_assert_int_eq(SK_VERSION_NUMBER, 10000);
}
END_TEST

static void *fail_on_thread(void *arg) {
  (void)arg;
  sk__fail(SK_EBIND, EACCES);
  return NULL;
}

START_TEST(test_last_os_error_is_per_thread) {
  sk_udp_server *srv = NULL;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", ntohs(a.sin_port));
  ck_assert_int_eq(sk_udp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_EBIND);
  ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);

  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, fail_on_thread, NULL), 0);
  pthread_join(t, NULL);
  ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);
  sk_udp_server_destroy(srv);
  close(fd);
}
END_TEST

typedef struct captured {
  int calls;
  int level;
  char message[512];
} captured;

static void capture(int level, const char *message, void *user) {
  captured *c = user;
  c->calls++;
  c->level = level;
  snprintf(c->message, sizeof c->message, "%s", message);
}

START_TEST(test_log_handler_and_level) {
  captured c = {0};
  sk_set_log_handler(capture, &c);
  ck_assert_int_eq(sk_set_log_level(SK_LOG_WARN), SK_OK);
  sk__log(SK_LOG_INFO, "hidden %d", 1);
  ck_assert_int_eq(c.calls, 0);
  sk__log(SK_LOG_WARN, "shown %d", 2);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_int_eq(c.level, SK_LOG_WARN);
  ck_assert_str_eq(c.message, "shown 2");
  ck_assert_int_eq(sk_set_log_level(SK_LOG_DEBUG), SK_OK);
  errno = EPIPE;
  sk__log(SK_LOG_DEBUG, "debug");
  ck_assert_int_eq(errno, EPIPE); /* logging keeps errno for the caller */
  ck_assert_int_eq(c.calls, 2);
  ck_assert_int_eq(sk_set_log_level(SK_LOG_DEBUG + 1), SK_EINVAL);
  ck_assert_int_eq(sk_set_log_level(-1), SK_EINVAL);
  sk_set_log_handler(NULL, NULL);
  ck_assert_int_eq(sk_set_log_level(SK_LOG_WARN), SK_OK);
}
END_TEST

/* One refused call: exactly one warning, and it contains every piece. */
#define EXPECT_WARNING(c, call_rc, want_rc, ...)                                                   \
  do {                                                                                             \
    (c)->calls = 0;                                                                                \
    (c)->message[0] = '\0';                                                                        \
    ck_assert_int_eq((call_rc), (want_rc));                                                        \
    ck_assert_msg((c)->calls == 1, "%d log lines for a refused call", (c)->calls);                 \
    ck_assert_int_eq((c)->level, SK_LOG_WARN);                                                     \
    const char *pieces[] = {__VA_ARGS__};                                                          \
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++)                                  \
      ck_assert_msg(strstr((c)->message, pieces[k]), "'%s' not in the warning '%s'", pieces[k],    \
                    (c)->message);                                                                 \
  } while (0)

/* Every SK_EINVAL, SK_ESTATE and SK_EADDR of a constructor or setter says
 * in one warning which call, which argument or option, which value and
 * which rule. */
START_TEST(test_bad_arguments_log_one_warning) {
  captured c = {0};
  sk_set_log_handler(capture, &c);
  sk_tcp_server *tcp;
  sk_udp_server *udp;
  sk_tcp_client *client;

  EXPECT_WARNING(&c, sk_tcp_server_create(&tcp, "127.0.0.1:0", NULL, NULL), SK_EINVAL,
                 "sk_tcp_server_create", "service is NULL");
  EXPECT_WARNING(&c, sk_udp_server_create(NULL, "127.0.0.1:0", sk_test_echo, NULL), SK_EINVAL,
                 "sk_udp_server_create", "out is NULL");
  EXPECT_WARNING(&c, sk_tcp_server_create(&tcp, "127.0.0.1:99999", sk_test_echo, NULL), SK_EADDR,
                 "sk_tcp_server_create", "\"127.0.0.1:99999\"", "not an address", "unix:/path");
  EXPECT_WARNING(&c, sk_udp_server_create(&udp, "localhost:8848", sk_test_echo, NULL), SK_EADDR,
                 "sk_udp_server_create", "\"localhost:8848\"", "a host name", "127.0.0.1:8848");
  EXPECT_WARNING(&c, sk_tcp_client_create(&client, "127.0.0.1:0"), SK_EADDR, "sk_tcp_client_create",
                 "\"127.0.0.1:0\"", "1 to 65535");
  EXPECT_WARNING(&c, sk_set_log_level(7), SK_EINVAL, "sk_set_log_level", "level 7");
  EXPECT_WARNING(&c, sk_tcp_server_set(NULL, SK_OPT_BACKLOG, 5), SK_EINVAL, "sk_tcp_server_set",
                 "srv is NULL");
  EXPECT_WARNING(&c, sk_udp_client_set(NULL, SK_OPT_ATTEMPTS, 2), SK_EINVAL, "sk_udp_client_set",
                 "c is NULL");

  ck_assert_int_eq(sk_tcp_server_create(&tcp, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_create(&udp, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  EXPECT_WARNING(&c, sk_tcp_server_set(tcp, SK_OPT_OUTPUT_HIGH_WATER, 100), SK_EINVAL,
                 "sk_tcp_server_set", "SK_OPT_OUTPUT_HIGH_WATER=100", "below the minimum 1024");
  EXPECT_WARNING(&c, sk_udp_server_set(udp, SK_OPT_MAX_MESSAGE, 70000), SK_EINVAL,
                 "sk_udp_server_set", "SK_OPT_MAX_MESSAGE=70000", "above the maximum 65507");
  EXPECT_WARNING(&c, sk_udp_server_set(udp, SK_OPT_FRAMING, SK_FRAME_LINE), SK_EINVAL,
                 "sk_udp_server_set", "option 5", "not an option");
  long long v;
  EXPECT_WARNING(&c, sk_udp_server_get(udp, SK_OPT_BACKLOG, &v), SK_EINVAL, "sk_udp_server_get",
                 "option 6");
  ck_assert_int_eq(sk_tcp_server_set(tcp, SK_OPT_IO_THREADS, 2), SK_OK);
  EXPECT_WARNING(&c, sk_tcp_server_set(tcp, SK_OPT_MODEL, SK_MODEL_PROCESS_PER_CONNECTION),
                 SK_EINVAL, "sk_tcp_server_set", "SK_OPT_MODEL=3", "SK_OPT_IO_THREADS=1", "is 2");
  ck_assert_int_eq(sk_tcp_server_set(tcp, SK_OPT_IO_THREADS, 1), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(tcp, SK_OPT_MODEL, SK_MODEL_PROCESS_PER_CONNECTION), SK_OK);
  EXPECT_WARNING(&c, sk_tcp_server_set(tcp, SK_OPT_IO_THREADS, 4), SK_EINVAL, "sk_tcp_server_set",
                 "SK_OPT_IO_THREADS=4", "only 1");

  /* Accepted calls say nothing. */
  c.calls = 0;
  ck_assert_int_eq(sk_tcp_server_set(tcp, SK_OPT_BACKLOG, 5), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(tcp), SK_OK);
  ck_assert_int_eq(c.calls, 0);
  EXPECT_WARNING(&c, sk_tcp_server_set(tcp, SK_OPT_BACKLOG, 6), SK_ESTATE, "sk_tcp_server_set",
                 "SK_OPT_BACKLOG=6", "before listen");
  EXPECT_WARNING(&c, sk_tcp_server_set_reply_free(tcp, free), SK_ESTATE,
                 "sk_tcp_server_set_reply_free", "before listen");
  sk_tcp_server_destroy(tcp);
  sk_udp_server_destroy(udp);
  sk_set_log_handler(NULL, NULL);
}
END_TEST

static Suite *status_suite(void) {
  Suite *s = suite_create("status");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_every_code_has_name_and_message);
  tcase_add_test(tc, test_codes_are_dense_and_messages_distinct);
  tcase_add_test(tc, test_unknown_codes);
  tcase_add_test(tc, test_version);
  tcase_add_test(tc, test_last_os_error_is_per_thread);
  tcase_add_test(tc, test_log_handler_and_level);
  tcase_add_test(tc, test_bad_arguments_log_one_warning);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(status_suite());
}
