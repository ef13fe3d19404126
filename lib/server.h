/* server.h -- internal: the server core the TCP and UDP servers share:
 * lifecycle, common options, counters, the listener set, I/O threads,
 * stop and drain, and a lifetime that outlasts stragglers. */
#ifndef SK_SERVER_H
#define SK_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addr.h"
#include "internal.h"
#include "life.h"
#include "pool.h"

enum sk_server_state { SK_SERVER_CREATED, SK_SERVER_LISTENING, SK_SERVER_RUNNING, SK_SERVER_DONE };

/* Counters are indexed by sk_stat value; index 0 is unused, and each
 * transport answers only for its own (see sk_tcp_server_stat and
 * sk_udp_server_stat). */
#define SK_SERVER_STAT_COUNT (SK_STAT_PROXY_ERRORS + 1)

typedef struct sk_server sk_server;

/* What a transport plugs into the core. Hooks run on the thread that
 * calls the public function (listen, run, start, destroy) unless said. */
typedef struct sk_server_ops {
  const char *name; /* "tcp" or "udp": log lines begin with it */
  int socktype;     /* SOCK_STREAM or SOCK_DGRAM */
  /* Socket `index` of the set has just been bound: make it ready
   * (listen() for TCP, packet info for UDP). A status on failure. */
  int (*bound)(sk_server *s, int fd, int index);
  /* The set is bound: log it (the transport knows what to say). */
  void (*listening)(sk_server *s, const char *address);
  /* The set is bound and ready: allocate what a run needs (event loops,
   * buffers), so that once listen succeeds a run needs nothing but its
   * threads and the pool. A status on failure; `end` is then called. */
  int (*begin)(sk_server *s);
  /* I/O thread `index` (0..nio-1), on a thread of its own or the caller
   * of run: serve until stop. Returns how it ended; an error stops the
   * whole server. */
  int (*serve)(sk_server *s, int index);
  /* Every I/O thread has ended: let work still in flight finish by
   * `deadline` and close the pool (sk__server_close_pool). */
  void (*settle)(sk_server *s, int64_t deadline);
  /* Free what begin allocated; not called while stragglers run. */
  void (*end)(sk_server *s);
  /* Free what create set up beyond the core, just before the struct is
   * freed (NULL: nothing). */
  void (*destroy)(sk_server *s);
} sk_server_ops;

typedef struct sk_server_thread {
  sk_server *server;
  int index;
  bool joinable;
  pthread_t id;
  int rc, os_error; /* how its I/O thread ended; read after the join */
} sk_server_thread;

struct sk_server {
  const sk_server_ops *ops;
  sk_addr addr; /* as parsed; the wildcard form may fall back to IPv4 at listen */
  /* "fd:N" or "systemd[:NAME]": the socket is adopted at listen, not
   * bound (activate.c), and addr becomes its address. */
  sk_adopt adopt;
  sk_service service;
  void *user;
  sk_reply_free reply_free;

  /* Options both transports have; set through each one's option table. */
  long long max_message, reuseport, rcvbuf, sndbuf;
  long long model, workers, io_threads;

  _Atomic int state; /* sk_server_state; read by the thread-safe queries */
  atomic_bool stop_requested;
  /* Never drained: once written, every I/O thread and connection thread
   * sees it readable, which is what makes stop sticky and reach them all. */
  int stopfd;
  bool started; /* start ran and finish has not */

  /* The listener set: one socket per I/O thread on one port (SO_REUSEPORT
   * spreads clients over them), or one shared by all on a UNIX path,
   * which cannot be bound twice. -1 once closed. */
  int *fds;
  int nfds;
  int nio; /* I/O threads; fixed at listen */
  struct sockaddr_storage bound;
  socklen_t bound_len;
  /* fds[0] is an adopted socket: the whole set, shared by every I/O
   * thread; never unlinked, and closed only when the server is freed. */
  bool adopted;
  bool unlink_path;       /* we created a UNIX socket file: removed at destroy */
  sk_unix_file unix_file; /* the file unlink_path removes */

  sk_server_thread *threads; /* nio, during a run */
  sk_pool *pool;             /* SK_MODEL_WORKER_POOL, during a run */

  /* The drain time (an option both transports have), its deadline, and
   * the holds of service calls left running past it: the last one to end
   * frees the server if destroy came first. */
  sk_life life;

  /* In a MAP_SHARED mapping, so that children of the process model count
   * into the parent's counters. */
  _Atomic uint64_t *stats;
};

/* The checks and allocation of both constructors: *out receives a zeroed
 * server of `size` bytes that begins with its core, for `address` (parsed),
 * with the stop descriptor and the counters made. Options keep the zeroes
 * the caller then replaces with its defaults. */
int sk__server_create(void **out, size_t size, const sk_server_ops *ops, const char *address,
                      sk_service service, void *user);

static inline void sk__server_count(sk_server *s, int stat, uint64_t n) {
  atomic_fetch_add_explicit(&s->stats[stat], n, memory_order_relaxed);
}

/* Why a server's options and reply-free function are refused after
 * listen, for its log line. */
#define SK__SERVER_LOCKED "options are set before listen, and this server has listened already"

/* The public functions of both transports, after their argument checks. */
int sk__server_listen(sk_server *s);
int sk__server_run(sk_server *s);
int sk__server_start(sk_server *s);
int sk__server_stop(sk_server *s); /* async-signal-safe */
int sk__server_port(const sk_server *s, int *port);
int sk__server_address(const sk_server *s, char *buf, size_t size);
int sk__server_set_reply_free(sk_server *s, sk_reply_free fn);
void sk__server_destroy(sk_server *s);

/* Close the pool by `deadline`; service calls still running then are
 * left to end on their own, and hold the server until they have. */
void sk__server_close_pool(sk_server *s, int64_t deadline);

#endif
