/* internal.h -- internal: cross-file helpers (errors, logging, per-thread
 * request state, system-call wrappers) shared by every translation unit. */
#ifndef SK_INTERNAL_H
#define SK_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sockkit.h"

/* Record the OS error behind a failure for sk_last_os_error(); returns
 * `status` so that call sites can write `return sk__fail(SK_EBIND, errno);`. */
int sk__fail(int status, int os_error);

/* Log through the process-wide handler if `level` is enabled. */
void sk__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True if messages at `level` would reach the handler (to skip formatting). */
bool sk__log_enabled(int level);

/* Lines about bad input are limited to SK_LOG_BURST a second for each kind
 * and server, so that a flood of it cannot become a flood of log lines
 * (the counters still see every event). Several threads may share one;
 * a race at the turn of a second lets a line more or less through. */
#define SK_LOG_BURST 10
typedef struct sk_log_limit {
  _Atomic long long second;
  atomic_uint count;
} sk_log_limit;
/* 0: drop this line; 1: log it; 2: log it and say the rest of this second
 * is not logged. */
int sk__log_limited(sk_log_limit *limit);

/* Who a connection's PROXY header says its client is (tcp_proxy.c), kept
 * while the connection lives, with the v2 TLVs a service may ask for. */
typedef struct sk_origin {
  socklen_t len; /* 0: the header named no client (LOCAL, UNKNOWN) */
  struct sockaddr_storage addr;
  uint16_t unique_id_len; /* PP2_TYPE_UNIQUE_ID, at tlv, then a NUL */
  uint16_t authority_len; /* PP2_TYPE_AUTHORITY after it, then a NUL; 0: none */
  bool has_unique_id, has_authority;
  char tlv[];
} sk_origin;

/* Bytes of an origin with its TLVs. */
static inline size_t sk__origin_size(const sk_origin *o) {
  return sizeof *o + o->unique_id_len + 1u + o->authority_len + 1u;
}

/* The request being served, so that sk_peer_address() and
 * sk_peer_sockaddr() can answer. Each serving thread owns one record and
 * binds it once (sk__peer_bind); setting and clearing it around service
 * calls are then plain stores, with no thread-local access per request (in
 * a shared library every thread-local access is a __tls_get_addr call,
 * which bench/profile showed per read). The datagram form copies nothing:
 * the pointer must stay valid until sk__peer_clear(). The stream form
 * records only the descriptor; getpeername() runs lazily, only if the
 * service asks, which keeps the peer address out of per-connection memory. */
typedef struct sk_peer {
  bool active;
  bool have_addr;
  bool have_text;
  /* A TCP server with the PROXY protocol: the descriptor's peer is the
   * proxy, and the client is the header's (origin), if it named one. */
  bool proxied;
  bool have_proxy;
  bool have_proxy_text;
  int fd;
  socklen_t len;
  socklen_t proxy_len;
  const struct sockaddr *addr;       /* borrowed (datagram) or &storage (stream) */
  const struct sockaddr *proxy_addr; /* borrowed (pool) or &proxy_storage */
  const sk_origin *origin;           /* NULL: no header named a client */
  struct sockaddr_storage storage;
  struct sockaddr_storage proxy_storage;
  char text[SK_ADDRSTRLEN];
  char proxy_text[SK_ADDRSTRLEN];
} sk_peer;

/* Make `peer` the calling thread's record (NULL: none); returns the one it
 * replaces, for the caller to restore when it is done. */
sk_peer *sk__peer_bind(sk_peer *peer);

static inline void sk__peer_set_addr(sk_peer *p, const struct sockaddr *sa, socklen_t len) {
  p->active = true;
  p->have_addr = true;
  p->have_text = false;
  p->proxied = false;
  p->origin = NULL;
  p->fd = -1;
  p->addr = sa;
  p->len = len;
}

/* The stream form. Whether the connection came through a proxy is set
 * beside it (sk__peer_set_origin), for servers that take PROXY headers. */
static inline void sk__peer_set_fd(sk_peer *p, int fd) {
  p->active = true;
  p->have_addr = false;
  p->have_text = false;
  p->have_proxy = false;
  p->have_proxy_text = false;
  p->fd = fd;
}

/* The connection came through a proxy, and its header said `o` (NULL:
 * nothing beyond the proxy itself). Stays set across sk__peer_set_fd. */
static inline void sk__peer_set_origin(sk_peer *p, const sk_origin *o) {
  p->proxied = true;
  p->origin = o;
}

/* After sk__peer_set_addr, for a request that came through a proxy at sa,
 * whose header said `o` (its address is not used: sa's is the client). */
static inline void sk__peer_set_proxy(sk_peer *p, const struct sockaddr *sa, socklen_t len,
                                      const sk_origin *o) {
  p->proxied = true;
  p->have_proxy = true;
  p->have_proxy_text = false;
  p->proxy_addr = sa;
  p->proxy_len = len;
  p->origin = o;
}

static inline void sk__peer_clear(sk_peer *p) {
  p->active = false;
}

/* Allocations of the serving path go through sk__malloc / sk__realloc
 * with the site they serve, so that a test can make exactly those fail
 * and check that nothing is lost or confused when memory runs out. */
enum {
  SK_ALLOC_BUFFER = 1, /* connection input and output buffers */
  SK_ALLOC_JOB = 2,    /* a request on its way to the worker pool */
  SK_ALLOC_REPLY = 3,  /* a pool thread's copy of a reply */
  SK_ALLOC_TABLE = 4,  /* per-descriptor tables */
};
typedef bool (*sk_alloc_fail_fn)(int site, size_t size);
/* NULL (the default) or a test's hook: true makes that allocation fail.
 * Process-wide; a test hook only, never set by the library. */
extern _Atomic(sk_alloc_fail_fn) sk__alloc_fail;
void *sk__malloc(int site, size_t size);
void *sk__realloc(int site, void *p, size_t size);

/* close() that keeps errno intact and ignores EINTR (on Linux the descriptor
 * is released even when close is interrupted). Ignores fd < 0. */
void sk__close(int fd);

/* Create an eventfd (non-blocking, close-on-exec) for waking a loop, and
 * signal it. sk__wake is async-signal-safe and keeps errno intact. */
int sk__wakefd_open(void);
void sk__wake(int fd);

/* The library's clock: CLOCK_MONOTONIC in milliseconds, plus
 * sk__clock_offset_ms. 64 bits never wrap. Every deadline of the library
 * (timers, drain, client timeouts) is on this clock. */
int64_t sk__clock_ms(void);

/* Added to every reading of sk__clock_ms(). Zero; tests move it to put the
 * clock just before a 32-bit wrap (process-wide, a test hook only). */
extern _Atomic int64_t sk__clock_offset_ms;

/* Sleep until sk__clock_ms() reaches `when`; signals do not cut it short. */
void sk__sleep_until(int64_t when);

/* Wait until fd has one of `events` (POLLIN, POLLOUT), stopfd (if >= 0)
 * is readable, or sk__clock_ms() reaches `deadline` (< 0: no deadline).
 * EINTR is retried. Returns 1 when ready (errors and hang-ups count as
 * ready: the next read or write reports them), 0 on timeout,
 * SK__WAIT_STOPPED when stopfd is readable, -1 with errno. */
#define SK__WAIT_STOPPED (-2)
int sk__wait_fd(int fd, short events, int stopfd, int64_t deadline);

/* The largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP header): the
 * most a UDP server or client takes or sends in one datagram. */
#define SK__UDP_MAX_PAYLOAD 65507

/* One integer option of an object: the long long at `offset` in it, and
 * the range it accepts. Objects keep a static table of these. */
typedef struct sk_option_def {
  int option;
  const char *name; /* "SK_OPT_...", for the log line a bad value gets */
  size_t offset;
  long long min, max;
} sk_option_def;
#define SK__OPTION(type, option, field, lo, hi)                                                    \
  { option, #option, offsetof(type, field), lo, hi }

/* Set or read an option through a table. Unknown options and values out of
 * range are SK_EINVAL; a valid set while `locked` (the rule that forbids
 * it, NULL when the option may be set) is SK_ESTATE. Each refusal logs one
 * warning naming `call` (the public function), the option, the value and
 * the rule it broke. */
int sk__option_set(void *obj, const sk_option_def *defs, size_t n, int option, long long value,
                   const char *locked, const char *call);
int sk__option_get(const void *obj, const sk_option_def *defs, size_t n, int option,
                   long long *value, const char *call);
#define SK__COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* A NULL argument of a constructor or setter: one warning naming the call
 * and the argument; returns SK_EINVAL (recorded as by sk__fail). */
int sk__null_argument(const char *call, const char *argument);

/* Socket settings applied before bind(). Zero values keep system defaults. */
typedef struct sk_bind_options {
  bool reuseport;
  int rcvbuf;
  int sndbuf;
} sk_bind_options;

struct sk_addr;

/* Create a non-blocking, close-on-exec socket of `type` for `addr`, apply
 * the options and bind it. The port-only (wildcard) form binds IPv6 any in
 * dual-stack mode and falls back to IPv4 any (rewriting *addr) on hosts
 * without IPv6. A UNIX path that is taken is probed with a connect(): a
 * stale socket file (nothing bound to it) is replaced; a live socket, or
 * any file that is not a socket, makes it fail with EADDRINUSE.
 * SO_REUSEADDR is set for SOCK_STREAM only: on UDP it would let two
 * servers share a port silently.
 * Returns the descriptor, or SK_ESOCKET / SK_EBIND (OS error recorded). */
int sk__bind_socket(struct sk_addr *addr, int type, const sk_bind_options *opts);

/* True for IPv4 or IPv6 "any" addresses. */
bool sk__addr_is_wildcard(const struct sockaddr_storage *ss);

/* True for a UNIX address naming a file (not abstract). */
bool sk__addr_is_unix_path(const struct sk_addr *addr);

/* The socket file a server created at a UNIX path: its device and inode,
 * and an O_PATH descriptor that keeps the inode from being reused. */
typedef struct sk_unix_file {
  int fd;
  dev_t dev;
  ino_t ino;
} sk_unix_file;

/* Record the socket file at a UNIX path just bound by sk__bind_socket, for
 * sk__unlink_unix_path. False (nothing recorded, nothing to release) for
 * abstract and IP addresses, or if the path no longer names a socket. */
bool sk__unix_file_record(const struct sk_addr *addr, sk_unix_file *file);

/* Remove the socket file at a UNIX path if the path still names the file
 * recorded in *file (another server may have replaced it), and release
 * *file. Call it once for each successful sk__unix_file_record. */
void sk__unlink_unix_path(const struct sk_addr *addr, sk_unix_file *file);

/* True once this process has forked a child of the process-per-connection
 * model (tcp_blocking.c); never false again. A child holds copies of every
 * descriptor the process had open when it was forked, of every server, so
 * from then on a close() of ours may not be the last reference: no FIN
 * reaches the peer and the socket stays in any epoll set it was added to.
 * Connections are then shut down (and taken out of epoll) before close. */
bool sk__forked(void);

#endif
