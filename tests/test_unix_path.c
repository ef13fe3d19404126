/* test_unix_path.c -- who owns a UNIX socket path: a live server keeps it,
 * a stale file is replaced, destroy removes only the file it created. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "support.h"

#define WAIT_MS 5000

/* Replies "<user>:<request>", so a test can tell which server answered. */
static const char *tagged(const char *request, void *user) {
  return sk_replyf("%s:%s", (const char *)user, request);
}

/* The user pointers of the servers (the service only reads them). */
static char tag_a[] = "A", tag_b[] = "B", tag_l[] = "L", tag_second[] = "second";

/* A fresh directory and "unix:<dir>/<name>" in it. */
static char *path_address(char *address, size_t size, const char *name) {
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  snprintf(address, size, "unix:%s/%s", dir, name);
  return dir;
}

static const char *file_of(const char *address) {
  return address + 5; /* after "unix:" */
}

/* A socket bound at the address and closed without unlinking: what a
 * server that crashed leaves behind. */
static void leave_stale_socket(const char *address, int type) {
  sk_addr a;
  ck_assert_int_eq(sk__addr_parse(&a, address), 0);
  int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a.ss, a.len), 0);
  if (type == SOCK_STREAM)
    ck_assert_int_eq(listen(fd, 1), 0);
  close(fd);
  ck_assert_int_eq(access(file_of(address), F_OK), 0);
}

/* The server at `address` answers "ping" with "<tag>:ping". */
static void expect_tcp_reply(const char *address, const char *tag) {
  int fd = sk_test_tcp_connect(address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sk_test_send_all(fd, "ping\n", 5), 0);
  char want[64], got[64];
  int len = snprintf(want, sizeof want, "%s:ping\n", tag);
  ck_assert_int_eq(sk_test_read_exact(fd, got, (size_t)len, WAIT_MS), len);
  ck_assert_msg(memcmp(got, want, (size_t)len) == 0, "got '%.*s', want '%s'", len, got, want);
  close(fd);
}

static void expect_udp_reply(const char *address, const char *tag) {
  int fd = sk_test_udp_socket(address);
  ck_assert_int_ge(fd, 0);
  char want[64], got[64];
  snprintf(want, sizeof want, "%s:ping", tag);
  ck_assert_int_eq(sk_test_udp_exchange(fd, "ping", 4, got, sizeof got, WAIT_MS),
                   (ssize_t)strlen(want));
  ck_assert_str_eq(got, want);
  close(fd);
}

/* A second server at the address fails with SK_EBIND / EADDRINUSE, and
 * destroying it leaves the file alone. */
static void expect_tcp_refused(const char *address, int os_error) {
  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, address, tagged, tag_second), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(srv), SK_EBIND);
  ck_assert_int_eq(sk_last_os_error(), os_error);
  sk_tcp_server_destroy(srv);
}

static void expect_udp_refused(const char *address, int os_error) {
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, address, tagged, tag_second), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_EBIND);
  ck_assert_int_eq(sk_last_os_error(), os_error);
  sk_udp_server_destroy(srv);
}

/* A live socket holds the path: SK_EBIND with EADDRINUSE. */
static void expect_tcp_in_use(const char *address) {
  expect_tcp_refused(address, EADDRINUSE);
}

static void expect_udp_in_use(const char *address) {
  expect_udp_refused(address, EADDRINUSE);
}

/* (a) A running server keeps its path, and so does one that only listens
 * (the probe's connection waits in its backlog and is served as an EOF). */
START_TEST(test_tcp_live_path_is_kept) {
  char address[256];
  char *dir = path_address(address, sizeof address, "live.sock");
  sk_test_tcp a;
  ck_assert_int_eq(sk_test_tcp_start(&a, address, tagged, tag_a), SK_OK);
  expect_tcp_in_use(address);
  expect_udp_in_use(address); /* a datagram server may not take it either */
  expect_tcp_reply(address, "A");
  ck_assert_int_eq(sk_test_tcp_stop(&a, WAIT_MS), SK_OK);
  ck_assert_int_ne(access(file_of(address), F_OK), 0); /* A removed its own file */

  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, address, tagged, tag_l), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(srv), SK_OK);
  expect_tcp_in_use(address);
  ck_assert_int_eq(sk_test_tcp_start_server(&a, srv), SK_OK);
  expect_tcp_reply(address, "L");
  ck_assert_int_eq(sk_test_tcp_stop(&a, WAIT_MS), SK_OK);
  sk_test_rmdir(dir);
}
END_TEST

/* (a) A listener whose backlog is full refuses with EAGAIN: that is a busy
 * server, not a stale file. */
START_TEST(test_tcp_full_backlog_is_live) {
  char address[256];
  char *dir = path_address(address, sizeof address, "busy.sock");
  sk_tcp_server *srv;
  ck_assert_int_eq(sk_tcp_server_create(&srv, address, tagged, tag_a), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_BACKLOG, 1), SK_OK);
  ck_assert_int_eq(sk_tcp_server_listen(srv), SK_OK);
  sk_addr a;
  ck_assert_int_eq(sk__addr_parse(&a, address), 0);
  int fill[64];
  int nfill = 0;
  bool full = false;
  while (nfill < 64 && !full) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    if (connect(fd, (struct sockaddr *)&a.ss, a.len) == 0) {
      fill[nfill++] = fd;
      continue;
    }
    ck_assert_int_eq(errno, EAGAIN);
    close(fd);
    full = true;
  }
  ck_assert_msg(full, "the backlog never filled");
  expect_tcp_in_use(address);
  for (int i = 0; i < nfill; i++)
    close(fill[i]);
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start_server(&t, srv), SK_OK);
  expect_tcp_reply(address, "A");
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
  sk_test_rmdir(dir);
}
END_TEST

START_TEST(test_udp_live_path_is_kept) {
  char address[256];
  char *dir = path_address(address, sizeof address, "live.sock");
  sk_test_udp a;
  ck_assert_int_eq(sk_test_udp_start(&a, address, tagged, tag_a), SK_OK);
  expect_udp_in_use(address);
  expect_tcp_in_use(address); /* a stream server may not take it either */
  expect_udp_reply(address, "A");
  ck_assert_int_eq(sk_test_udp_stop(&a, WAIT_MS), SK_OK);
  ck_assert_int_ne(access(file_of(address), F_OK), 0);

  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, address, tagged, tag_l), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_OK);
  expect_udp_in_use(address);
  ck_assert_int_eq(sk_udp_server_start(srv), SK_OK);
  expect_udp_reply(address, "L");
  sk_udp_server_destroy(srv);
  sk_test_rmdir(dir);
}
END_TEST

/* (b) A file left by a server that died is replaced, whichever socket
 * type left it, and the new server serves. */
START_TEST(test_stale_file_is_replaced) {
  char address[256];
  char *dir = path_address(address, sizeof address, "stale.sock");
  for (int i = 0; i < 2; i++) {
    leave_stale_socket(address, i == 0 ? SOCK_STREAM : SOCK_DGRAM);
    sk_test_tcp t;
    ck_assert_int_eq(sk_test_tcp_start(&t, address, tagged, tag_b), SK_OK);
    expect_tcp_reply(address, "B");
    ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);
    ck_assert_int_ne(access(file_of(address), F_OK), 0);

    leave_stale_socket(address, i == 0 ? SOCK_DGRAM : SOCK_STREAM);
    sk_test_udp u;
    ck_assert_int_eq(sk_test_udp_start(&u, address, tagged, tag_b), SK_OK);
    expect_udp_reply(address, "B");
    ck_assert_int_eq(sk_test_udp_stop(&u, WAIT_MS), SK_OK);
    ck_assert_int_ne(access(file_of(address), F_OK), 0);
  }
  sk_test_rmdir(dir);
}
END_TEST

/* (c) A's file was removed by hand and B took the path: destroying A
 * leaves B's file, and B serves. */
START_TEST(test_tcp_destroy_keeps_replacement) {
  char address[256];
  char *dir = path_address(address, sizeof address, "moved.sock");
  sk_test_tcp a, b;
  ck_assert_int_eq(sk_test_tcp_start(&a, address, tagged, tag_a), SK_OK);
  ck_assert_int_eq(unlink(file_of(address)), 0);
  ck_assert_int_eq(sk_test_tcp_start(&b, address, tagged, tag_b), SK_OK);
  ck_assert_int_eq(sk_test_tcp_stop(&a, WAIT_MS), SK_OK);
  ck_assert_int_eq(access(file_of(address), F_OK), 0);
  expect_tcp_reply(address, "B");
  ck_assert_int_eq(sk_test_tcp_stop(&b, WAIT_MS), SK_OK);
  ck_assert_int_ne(access(file_of(address), F_OK), 0);
  sk_test_rmdir(dir);
}
END_TEST

START_TEST(test_udp_destroy_keeps_replacement) {
  char address[256];
  char *dir = path_address(address, sizeof address, "moved.sock");
  sk_test_udp a, b;
  ck_assert_int_eq(sk_test_udp_start(&a, address, tagged, tag_a), SK_OK);
  ck_assert_int_eq(unlink(file_of(address)), 0);
  ck_assert_int_eq(sk_test_udp_start(&b, address, tagged, tag_b), SK_OK);
  ck_assert_int_eq(sk_test_udp_stop(&a, WAIT_MS), SK_OK);
  ck_assert_int_eq(access(file_of(address), F_OK), 0);
  expect_udp_reply(address, "B");
  ck_assert_int_eq(sk_test_udp_stop(&b, WAIT_MS), SK_OK);
  ck_assert_int_ne(access(file_of(address), F_OK), 0);
  sk_test_rmdir(dir);
}
END_TEST

/* (c) A stopped but not yet destroyed leaves a stale file, which B
 * replaces. The new file may well get A's old inode number (ext4 reuses a
 * freed one at once), so device and inode alone would not tell them apart:
 * destroying A must still leave B's file. */
START_TEST(test_tcp_stopped_server_keeps_off_replacement) {
  char address[256];
  char *dir = path_address(address, sizeof address, "reuse.sock");
  for (int i = 0; i < 3; i++) {
    sk_test_tcp a, b;
    ck_assert_int_eq(sk_test_tcp_start(&a, address, tagged, tag_a), SK_OK);
    expect_tcp_reply(address, "A"); /* running: the stop ends a run */
    atomic_store(&a.stopping, true);
    ck_assert_int_eq(sk_tcp_server_stop(a.srv), SK_OK);
    ck_assert_int_eq(sk_test_join(a.thread, WAIT_MS), 0);
    ck_assert_int_eq(atomic_load(&a.rc), SK_OK);
    ck_assert_int_eq(sk_test_tcp_start(&b, address, tagged, tag_b), SK_OK);
    sk_tcp_server_destroy(a.srv);
    ck_assert_int_eq(access(file_of(address), F_OK), 0);
    expect_tcp_reply(address, "B");
    ck_assert_int_eq(sk_test_tcp_stop(&b, WAIT_MS), SK_OK);
  }
  sk_test_rmdir(dir);
}
END_TEST

START_TEST(test_udp_stopped_server_keeps_off_replacement) {
  char address[256];
  char *dir = path_address(address, sizeof address, "reuse.sock");
  for (int i = 0; i < 3; i++) {
    sk_test_udp a, b;
    ck_assert_int_eq(sk_test_udp_start(&a, address, tagged, tag_a), SK_OK);
    expect_udp_reply(address, "A"); /* running: the stop ends a run */
    atomic_store(&a.stopping, true);
    ck_assert_int_eq(sk_udp_server_stop(a.srv), SK_OK);
    ck_assert_int_eq(sk_test_join(a.thread, WAIT_MS), 0);
    ck_assert_int_eq(atomic_load(&a.rc), SK_OK);
    ck_assert_int_eq(sk_test_udp_start(&b, address, tagged, tag_b), SK_OK);
    sk_udp_server_destroy(a.srv);
    ck_assert_int_eq(access(file_of(address), F_OK), 0);
    expect_udp_reply(address, "B");
    ck_assert_int_eq(sk_test_udp_stop(&b, WAIT_MS), SK_OK);
  }
  sk_test_rmdir(dir);
}
END_TEST

/* (d) A file that is not a socket is never removed: a regular file, and a
 * symbolic link even when it points to a stale socket. Listening fails
 * with SK_EBIND and ENOTSOCK, which tells it from a path in use. */
START_TEST(test_other_files_are_kept) {
  char address[256];
  char *dir = path_address(address, sizeof address, "plain");
  FILE *f = fopen(file_of(address), "w");
  ck_assert_ptr_nonnull(f);
  fputs("keep me", f);
  fclose(f);
  expect_tcp_refused(address, ENOTSOCK);
  expect_udp_refused(address, ENOTSOCK);
  struct stat st;
  ck_assert_int_eq(lstat(file_of(address), &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  ck_assert_int_eq(st.st_size, 7);

  char target[256], link_address[256];
  snprintf(target, sizeof target, "unix:%s/target.sock", dir);
  snprintf(link_address, sizeof link_address, "unix:%s/link.sock", dir);
  leave_stale_socket(target, SOCK_STREAM);
  ck_assert_int_eq(symlink(file_of(target), file_of(link_address)), 0);
  expect_tcp_refused(link_address, ENOTSOCK);
  expect_udp_refused(link_address, ENOTSOCK);
  ck_assert_int_eq(lstat(file_of(link_address), &st), 0);
  ck_assert(S_ISLNK(st.st_mode));
  ck_assert_int_eq(lstat(file_of(target), &st), 0);
  ck_assert(S_ISSOCK(st.st_mode));
  sk_test_rmdir(dir);
}
END_TEST

/* (e) Abstract names have no file: the kernel refuses a second bind. */
START_TEST(test_abstract_name_in_use) {
  char address[64];
  snprintf(address, sizeof address, "unix:@sktest-unix-path-%d", (int)getpid());
  sk_test_tcp t;
  ck_assert_int_eq(sk_test_tcp_start(&t, address, tagged, tag_a), SK_OK);
  expect_tcp_in_use(address);
  expect_tcp_reply(address, "A");
  ck_assert_int_eq(sk_test_tcp_stop(&t, WAIT_MS), SK_OK);

  sk_test_udp u;
  ck_assert_int_eq(sk_test_udp_start(&u, address, tagged, tag_a), SK_OK);
  expect_udp_in_use(address);
  expect_udp_reply(address, "A");
  ck_assert_int_eq(sk_test_udp_stop(&u, WAIT_MS), SK_OK);
}
END_TEST

static Suite *unix_path_suite(void) {
  Suite *s = suite_create("unix_path");
  TCase *tc = tcase_create("unix_path");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_tcp_live_path_is_kept);
  tcase_add_test(tc, test_tcp_full_backlog_is_live);
  tcase_add_test(tc, test_udp_live_path_is_kept);
  tcase_add_test(tc, test_stale_file_is_replaced);
  tcase_add_test(tc, test_tcp_destroy_keeps_replacement);
  tcase_add_test(tc, test_udp_destroy_keeps_replacement);
  tcase_add_test(tc, test_tcp_stopped_server_keeps_off_replacement);
  tcase_add_test(tc, test_udp_stopped_server_keeps_off_replacement);
  tcase_add_test(tc, test_other_files_are_kept);
  tcase_add_test(tc, test_abstract_name_in_use);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(unix_path_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
