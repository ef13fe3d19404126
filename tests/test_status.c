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
    C(SK_ESYS, -16),
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
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(status_suite());
}
