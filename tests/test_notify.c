/* test_notify.c -- sk_notify against the test's own NOTIFY_SOCKET: the
 * exact bytes arrive, for a path and an abstract name; what is refused. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 5000

/* A UNIX datagram socket bound at `name`: a path, or "@name" (abstract). */
static int bind_notify(const char *name) {
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  socklen_t len;
  if (name[0] == '@') {
    memcpy(un.sun_path + 1, name + 1, strlen(name) - 1);
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
  } else {
    snprintf(un.sun_path, sizeof un.sun_path, "%s", name);
    len = (socklen_t)sizeof un;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, len), 0);
  return fd;
}

/* One datagram within WAIT_MS: its length, or -1. */
static ssize_t receive(int fd, char *buf, size_t size) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, WAIT_MS) != 1)
    return -1;
  return recv(fd, buf, size, MSG_DONTWAIT);
}

static void expect_delivered(int fd, const char *state) {
  int before = sk_test_fd_count();
  ck_assert_int_eq(sk_notify(state), SK_OK);
  ck_assert_int_eq(sk_test_fd_count(), before); /* its socket is closed */
  char got[512];
  ssize_t n = receive(fd, got, sizeof got);
  ck_assert_int_eq(n, (ssize_t)strlen(state));
  ck_assert(memcmp(got, state, (size_t)n) == 0);
}

START_TEST(path_socket) {
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char path[256];
  snprintf(path, sizeof path, "%s/notify", dir);
  int fd = bind_notify(path);
  setenv("NOTIFY_SOCKET", path, 1);
  expect_delivered(fd, "READY=1");
  expect_delivered(fd, "READY=1\nSTATUS=serving on 127.0.0.1:8848\n");
  expect_delivered(fd, "STOPPING=1");
  unsetenv("NOTIFY_SOCKET");
  close(fd);
  sk_test_rmdir(dir);
}
END_TEST

START_TEST(abstract_socket) {
  char name[64];
  snprintf(name, sizeof name, "@sk-test-notify-%d", (int)getpid());
  int fd = bind_notify(name);
  setenv("NOTIFY_SOCKET", name, 1);
  expect_delivered(fd, "READY=1\nSTATUS=abstract");
  unsetenv("NOTIFY_SOCKET");
  close(fd);
}
END_TEST

START_TEST(nobody_to_tell) {
  unsetenv("NOTIFY_SOCKET");
  ck_assert_int_eq(sk_notify("READY=1"), SK_OK);
  setenv("NOTIFY_SOCKET", "", 1);
  ck_assert_int_eq(sk_notify("READY=1"), SK_OK);
  unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(bad_state) {
  setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
  ck_assert_int_eq(sk_notify(NULL), SK_EINVAL);
  ck_assert_int_eq(sk_notify(""), SK_EINVAL);
  unsetenv("NOTIFY_SOCKET");
  ck_assert_int_eq(sk_notify(NULL), SK_EINVAL);
}
END_TEST

START_TEST(unusable_address) {
  char longest[200];
  memset(longest, 'x', sizeof longest - 1);
  longest[0] = '/';
  longest[sizeof longest - 1] = '\0';
  char abstract[200];
  memcpy(abstract, longest, sizeof abstract);
  abstract[0] = '@';
  const char *bad[] = {"notify.sock", "./notify", "vsock:2:9999", "@", longest, abstract};
  sk_set_log_level(SK_LOG_ERROR); /* the refusals are expected */
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    setenv("NOTIFY_SOCKET", bad[i], 1);
    ck_assert_msg(sk_notify("READY=1") == SK_EADDR, "NOTIFY_SOCKET=%s", bad[i]);
  }
  sk_set_log_level(SK_LOG_WARN);
  unsetenv("NOTIFY_SOCKET");
}
END_TEST

/* Nothing listening is SK_EWRITE: ENOENT without a socket file,
 * ECONNREFUSED for one nothing is bound to, or an abstract name nobody
 * holds. No descriptor is left behind. */
START_TEST(nobody_listening) {
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char path[256], name[64];
  snprintf(path, sizeof path, "%s/missing", dir);
  snprintf(name, sizeof name, "@sk-test-notify-none-%d", (int)getpid());
  sk_set_log_level(SK_LOG_ERROR);
  int before = sk_test_fd_count();
  setenv("NOTIFY_SOCKET", path, 1);
  ck_assert_int_eq(sk_notify("READY=1"), SK_EWRITE);
  ck_assert_int_eq(sk_last_os_error(), ENOENT);
  close(bind_notify(path)); /* a stale socket file */
  ck_assert_int_eq(sk_notify("READY=1"), SK_EWRITE);
  ck_assert_int_eq(sk_last_os_error(), ECONNREFUSED);
  setenv("NOTIFY_SOCKET", name, 1);
  ck_assert_int_eq(sk_notify("READY=1"), SK_EWRITE);
  ck_assert_int_eq(sk_last_os_error(), ECONNREFUSED);
  ck_assert_int_eq(sk_test_fd_count(), before);
  sk_set_log_level(SK_LOG_WARN);
  unsetenv("NOTIFY_SOCKET");
  sk_test_rmdir(dir);
}
END_TEST

/* Several threads notify at once: every datagram arrives whole. */
#define THREADS 4
#define EACH 20
static atomic_int thread_failures;

static void *notify_many(void *arg) {
  (void)arg;
  for (int i = 0; i < EACH; i++)
    if (sk_notify("STATUS=from a thread") != SK_OK)
      atomic_fetch_add(&thread_failures, 1);
  return NULL;
}

START_TEST(threads) {
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char path[256];
  snprintf(path, sizeof path, "%s/notify", dir);
  int fd = bind_notify(path);
  setenv("NOTIFY_SOCKET", path, 1);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, notify_many, NULL), 0);
  for (int i = 0; i < THREADS * EACH; i++) {
    char got[64];
    ssize_t n = receive(fd, got, sizeof got);
    ck_assert_int_eq(n, (ssize_t)strlen("STATUS=from a thread"));
    ck_assert(memcmp(got, "STATUS=from a thread", (size_t)n) == 0);
  }
  for (int i = 0; i < THREADS; i++)
    ck_assert_int_eq(sk_test_join(t[i], WAIT_MS), 0);
  ck_assert_int_eq(atomic_load(&thread_failures), 0);
  unsetenv("NOTIFY_SOCKET");
  close(fd);
  sk_test_rmdir(dir);
}
END_TEST

static Suite *notify_suite(void) {
  Suite *s = suite_create("notify");
  TCase *tc = tcase_create("notify");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, path_socket);
  tcase_add_test(tc, abstract_socket);
  tcase_add_test(tc, nobody_to_tell);
  tcase_add_test(tc, bad_state);
  tcase_add_test(tc, unusable_address);
  tcase_add_test(tc, nobody_listening);
  tcase_add_test(tc, threads);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(notify_suite());
}
