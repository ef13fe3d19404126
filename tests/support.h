/* support.h -- helpers shared by the tests: bounded waits, descriptor
 * counts, temporary directories, servers on threads and small clients. */
#ifndef SK_TEST_SUPPORT_H
#define SK_TEST_SUPPORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <check.h>

#include "sockkit.h"

/* ---- running a suite, and explicit skips -------------------------------- */

/* The exit status of a suite none of whose tests failed but some of which
 * could not run here; ctest reports it as "Skipped" (SKIP_RETURN_CODE). */
#define SK_TEST_SKIPPED 77

/* Run the suite and return the exit status for main: EXIT_FAILURE if a test
 * failed, SK_TEST_SKIPPED if none failed and one or more skipped, else
 * EXIT_SUCCESS. */
int sk_test_run(Suite *s);

/* Say that `test` (or a part of it) cannot run on this host and why: prints
 * "SKIP: <test>: <reason>" and makes sk_test_run report the skip. The caller
 * then returns from the test. Works from the test's own process, which
 * Check forks from the runner. */
void sk_test_skip(const char *test, const char *reason);

/* Poll `cond(arg)` every few milliseconds until it is true or timeout_ms
 * pass. Returns the last value of cond. */
bool sk_test_wait(bool (*cond)(void *), void *arg, int timeout_ms);

/* Wait until a server counter reaches at least `want`. */
bool sk_test_wait_udp_stat(sk_udp_server *srv, int stat, uint64_t want, int timeout_ms);

/* Number of open descriptors of this process (entries of /proc/self/fd). */
int sk_test_fd_count(void);

/* Number of threads of this process (entries of /proc/self/task). */
int sk_test_thread_count(void);
/* The same, taken as a baseline: a thread is started and joined first, so
 * helper threads a sanitizer starts with the first thread already exist. */
int sk_test_thread_baseline(void);
/* Wait until the thread count is `want` again: a joined thread can linger
 * in /proc for a moment after pthread_join returns. */
bool sk_test_wait_threads(int want, int timeout_ms);

/* A fresh private directory under $TMPDIR or /tmp; sk_test_rmdir removes it
 * and the plain files or sockets directly inside it. */
char *sk_test_tmpdir(void);
void sk_test_rmdir(char *dir);

/* True if this host can bind a socket on ::1. */
bool sk_test_have_ipv6(void);

/* A UDP server running sk_udp_server_run on its own thread. */
typedef struct sk_test_udp {
  sk_udp_server *srv;
  pthread_t thread;
  atomic_int rc;
  atomic_bool stopping; /* set by the stop helper */
  atomic_bool done;
  char address[128];
  int port;
} sk_test_udp;

/* Create, listen on `address`, and start running on a new thread. Returns
 * the status of the first failing step (the server is destroyed then). */
int sk_test_udp_start(sk_test_udp *t, const char *address, sk_service service, void *user);
/* The same for a server created (and configured) by the caller; it is
 * destroyed on failure. */
int sk_test_udp_start_server(sk_test_udp *t, sk_udp_server *srv);
/* Stop, join (bounded) and destroy. Returns the run status, or -1000 if the
 * run thread did not end within timeout_ms (it is then left running). */
int sk_test_udp_stop(sk_test_udp *t, int timeout_ms);

/* A datagram socket connected to `address` (any library address form,
 * e.g. "127.0.0.1:4000"); for UNIX addresses the socket first binds an
 * autobound abstract address so it can be answered. -1 on failure. */
int sk_test_udp_socket(const char *address);

/* Send `len` bytes and wait up to timeout_ms for one datagram into reply
 * (NUL-terminated). Returns the reply length, -1 on error, -2 on timeout. */
ssize_t sk_test_udp_exchange(int fd, const void *msg, size_t len, char *reply, size_t size,
                             int timeout_ms);

/* Wait up to timeout_ms for one datagram. Same returns as above. */
ssize_t sk_test_udp_recv(int fd, char *reply, size_t size, int timeout_ms);

/* A TCP server running sk_tcp_server_run on its own thread. */
typedef struct sk_test_tcp {
  sk_tcp_server *srv;
  pthread_t thread;
  atomic_int rc;
  atomic_bool stopping; /* set by the stop helper */
  char address[128];
  int port;
} sk_test_tcp;

/* Listen (if not yet) and run srv on a new thread; srv is destroyed on
 * failure. */
int sk_test_tcp_start_server(sk_test_tcp *t, sk_tcp_server *srv);
/* Create with default options, then as above. */
int sk_test_tcp_start(sk_test_tcp *t, const char *address, sk_service service, void *user);
/* Stop, join (bounded) and destroy; -1000 if run did not return in time. */
int sk_test_tcp_stop(sk_test_tcp *t, int timeout_ms);
bool sk_test_wait_tcp_stat(sk_tcp_server *srv, int stat, uint64_t want, int timeout_ms);
bool sk_test_wait_tcp_stat_eq(sk_tcp_server *srv, int stat, uint64_t want, int timeout_ms);

/* A TCP server running in a forked process of its own. Needed for the
 * process-per-connection model under test: its children must not inherit
 * the test's own client sockets, or a client's close would never reach
 * them. The parent keeps only the address. */
typedef struct sk_test_proc {
  pid_t pid;
  char address[128];
} sk_test_proc;

/* Listen, fork, and run srv in the child until SIGTERM; the parent's copy
 * is destroyed. The child exits 0 if run returned SK_OK and no child
 * process of its own was left behind. */
int sk_test_proc_start(sk_test_proc *p, sk_tcp_server *srv);
/* SIGTERM, then wait (bounded). Returns the exit status, or -1. */
int sk_test_proc_stop(sk_test_proc *p, int timeout_ms);

/* ---- other programs: the examples, proxies ------------------------------ */

/* Run the program argv[0] (a path; argv NULL-terminated) in a process group
 * of its own, with stdin from /dev/null, stdout into a pipe whose reading
 * end is returned in *out (NULL: /dev/null) and stderr appended to the file
 * `log` (NULL: /dev/null). The program is killed (SIGKILL) if this process
 * dies first, so a failed test leaves nothing running. Returns the pid, or
 * -1 if fork failed; an exec that fails exits 127. */
pid_t sk_test_spawn(const char *const *argv, int *out, const char *log);
/* Read from fd until a newline or EOF, at most size-1 bytes, within
 * timeout_ms; line is NUL-terminated (empty if nothing came). */
void sk_test_read_line(int fd, char *line, size_t size, int timeout_ms);
/* Wait up to timeout_ms for the child pid to end and reap it. Returns its
 * exit status, 128 + the signal that killed it, or -1 if it was still
 * running (it and its process group are then killed with SIGKILL and
 * reaped). */
int sk_test_wait_exit(pid_t pid, int timeout_ms);
/* The processes whose parent is `pid` (from /proc/PID/stat), up to max of
 * them into out; returns how many there are. */
int sk_test_children(pid_t pid, pid_t *out, int max);
/* Socket descriptors the process pid holds (/proc/PID/fd), or -1. */
int sk_test_socket_count(pid_t pid);
/* True if the whole file `path` contains `text`. */
bool sk_test_file_contains(const char *path, const char *text);

/* A concurrency model as the model tests run it. */
typedef struct sk_test_model {
  const char *name;
  int model; /* SK_OPT_MODEL */
  int io_threads;
  int workers;
} sk_test_model;

/* A TCP server for `service` on `address` in model m; NULL (and logged)
 * if it cannot be made. */
sk_tcp_server *sk_test_model_server(const sk_test_model *m, const char *address,
                                    sk_service service);

/* A server under test: on a thread of this process, or, for the process
 * model, in a process of its own (sk_test_proc), whose children must not
 * inherit the test's client sockets. Its counters can be read only in
 * the first case: srv is NULL in the second. */
typedef struct sk_test_running {
  bool forked;
  sk_test_tcp t;
  sk_test_proc p;
  const char *address;
  sk_tcp_server *srv;
} sk_test_running;

/* Start srv (listening if it has not) in the way its SK_OPT_MODEL needs.
 * SK_OK, or why not (srv is then destroyed). */
int sk_test_running_start(sk_test_running *r, sk_tcp_server *srv);
/* Stop and end it within timeout_ms: 0 if it ended cleanly. */
int sk_test_running_stop(sk_test_running *r, int timeout_ms);

/* A blocking stream socket connected to `address`, with 10 s send and
 * receive timeouts so no test can hang on it. -1 on failure. */
int sk_test_tcp_connect(const char *address);
/* The same with the socket's receive buffer set to `rcvbuf` bytes before
 * it connects (the kernel doubles it), so that little of a reply waits in
 * the kernel; 0 leaves the default. */
int sk_test_tcp_connect_rcvbuf(const char *address, int rcvbuf);
/* Write all bytes (blocking). 0 or -1. */
int sk_test_send_all(int fd, const void *bytes, size_t len);
/* Read exactly len bytes within timeout_ms. Returns len, the short count
 * at EOF, -1 on error, -2 on timeout. */
ssize_t sk_test_read_exact(int fd, void *buf, size_t len, int timeout_ms);
/* Wait up to timeout_ms for the server to close fd, reading and discarding
 * what comes first. Returns 0 after an EOF, -1 after a reset (ECONNRESET or
 * EPIPE: the server closed with input unread), -2 on timeout; a close is
 * never confused with a timeout. */
int sk_test_wait_closed(int fd, int timeout_ms);
/* Connect to address, send `request` (whose reply must be larger than the
 * socket buffers), read the first `head` bytes of the reply, then
 * half-close and reset the connection while the server is still sending
 * the rest. 0, or -1 if a step failed. */
int sk_test_reset_mid_reply(const char *address, const char *request, size_t head);
/* Read until EOF within timeout_ms, at most size bytes. Returns the bytes
 * read before EOF, -1 on error (e.g. ECONNRESET), -2 on timeout. */
ssize_t sk_test_read_to_eof(int fd, char *buf, size_t size, int timeout_ms);

/* Services used by several tests. */
const char *sk_test_echo(const char *request, void *user);

/* Milliseconds on the monotonic clock, for measuring elapsed time. */
long long sk_test_now_ms(void);

/* A port on 127.0.0.1 that refuses for as long as the returned socket stays
 * open, so no other program can take it meanwhile. SOCK_STREAM: the socket
 * is bound there with SO_REUSEADDR and never listens, so connections are
 * refused, and a server of the library (which sets SO_REUSEADDR too) can
 * still bind the port when the test wants it served. SOCK_DGRAM: the socket
 * is bound there and connected to itself, so a datagram from any other
 * socket finds no receiver and is refused (ICMP port unreachable). Returns
 * the socket, the port in *port; -1 on failure. */
int sk_test_refusing_port(int type, int *port);

/* Join a thread, waiting at most timeout_ms. 0, or nonzero if it is still
 * running (it is then left alone). */
int sk_test_join(pthread_t thread, int timeout_ms);

/* ---- helpers of the reliability tests (test_overload.c) ---------------- */

/* The heavy tests' sizes, divided by the environment variable SK_TEST_SCALE
 * (default 1; the valgrind run sets 10): n / scale, but at least `min`. */
int sk_test_scaled(int n, int min);
/* True when built with AddressSanitizer or ThreadSanitizer, or running
 * under valgrind: their allocators bypass malloc's own counters and
 * inflate the resident size. */
bool sk_test_sanitized(void);
/* Raise the soft RLIMIT_NOFILE (and the hard one if it is lower and the
 * process may) to at least `want`. Returns the soft limit now in force. */
long sk_test_raise_nofile(long want);
/* Resident set size of this process in KiB (/proc/self/statm), or -1. */
long sk_test_rss_kib(void);
/* Bytes handed out by malloc and not yet freed (glibc mallinfo2, all
 * arenas), or -1 where that does not count (sanitized builds). */
long long sk_test_heap_bytes(void);

#endif
