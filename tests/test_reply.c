/* test_reply.c -- sk_replyf (the per-thread reply buffer) and
 * sk_peer_address (the sender of the request being served). */
#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 5000

/* sk_replyf returns the whole text whatever its length: shorter than the
 * buffer, exactly the buffer's size (the buffer grew to fit the text
 * before, so the next one may need precisely one byte more), and much
 * longer; a later short text is not disturbed by what came before. */
START_TEST(test_replyf_returns_the_whole_text) {
  static const size_t lengths[] = {0, 1, 255, 256, 300, 301, 302, 4096, 4097, 65536, 1 << 20};
  for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
    size_t n = lengths[i];
    const char *s = sk_replyf("%*s", (int)n, "");
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strlen(s) == n, "sk_replyf of %zu bytes gave %zu", n, strlen(s));
    /* One more byte than the last text: the buffer is now exactly n + 1. */
    s = sk_replyf("%*s!", (int)n, "");
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strlen(s) == n + 1 && s[n] == '!', "sk_replyf of %zu bytes gave %zu", n + 1,
                  strlen(s));
  }
  ck_assert_str_eq(sk_replyf("%s-%d", "short", 7), "short-7");
  ck_assert_ptr_null(sk_replyf(NULL));
}
END_TEST

/* What the log handler saw of sk_peer_address() while the server warned
 * about a bad request, on the server's own thread between service calls. */
static atomic_int warnings, peer_seen;
static void peer_during_warning(int level, const char *message, void *user) {
  (void)level;
  (void)message;
  (void)user;
  atomic_fetch_add(&warnings, 1);
  if (sk_peer_address() != NULL || sk_peer_sockaddr(NULL) != NULL)
    atomic_fetch_add(&peer_seen, 1);
}

static atomic_int peer_in_service;
static const char *peer_echo(const char *request, void *user) {
  (void)user;
  if (sk_peer_address() != NULL)
    atomic_fetch_add(&peer_in_service, 1);
  return request;
}

static bool warned(void *arg) {
  (void)arg;
  return atomic_load(&warnings) > 0;
}

/* sk_peer_address() is NULL outside a service call: on a thread that
 * serves nothing, and on the server's own thread right after a call (here:
 * in the warning about the next, malformed request), where a stale record
 * must not show the last client, nor a freed one. */
START_TEST(test_peer_address_only_inside_a_service_call) {
  ck_assert_ptr_null(sk_peer_address());
  socklen_t len = 12345;
  ck_assert_ptr_null(sk_peer_sockaddr(&len));
  atomic_store(&warnings, 0);
  atomic_store(&peer_seen, 0);
  atomic_store(&peer_in_service, 0);
  sk_set_log_handler(peer_during_warning, NULL);

  if (_i == 0) {
    sk_test_tcp t;
    ck_assert_int_eq(sk_test_tcp_start(&t, "127.0.0.1:0", peer_echo, NULL), SK_OK);
    int fd = sk_test_tcp_connect(t.address);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(sk_test_send_all(fd, "ok\n", 3), 0);
    char got[3];
    ck_assert_int_eq(sk_test_read_exact(fd, got, 3, WAIT_MS), 3);
    ck_assert_int_eq(sk_test_send_all(fd, "b\0d\n", 4), 0);
    ck_assert(sk_test_wait(warned, NULL, WAIT_MS));
    close(fd);
    ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  } else {
    sk_test_udp t;
    ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", peer_echo, NULL), SK_OK);
    int fd = sk_test_udp_socket(t.address);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send(fd, "ok", 2, 0), 2);
    char got[8];
    ck_assert_int_eq(sk_test_udp_recv(fd, got, sizeof got, WAIT_MS), 2);
    ck_assert_int_eq(send(fd, "b\0d", 3, 0), 3);
    ck_assert(sk_test_wait(warned, NULL, WAIT_MS));
    close(fd);
    ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  }
  sk_set_log_handler(NULL, NULL);
  int in_service = atomic_load(&peer_in_service), in_warning = atomic_load(&peer_seen);
  ck_assert_msg(in_service == 1, "the service saw its peer %d times, want 1", in_service);
  ck_assert_msg(in_warning == 0, "a warning between calls saw a peer %d times", in_warning);
}
END_TEST

static Suite *reply_suite(void) {
  Suite *s = suite_create("reply");
  TCase *tc = tcase_create("reply");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_replyf_returns_the_whole_text);
  tcase_add_loop_test(tc, test_peer_address_only_inside_a_service_call, 0, 2);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(reply_suite());
}
