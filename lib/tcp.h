/* tcp.h -- internal: the TCP server's shared state, split across
 * tcp_server.c (API, on the server core of server.h), tcp_io.c (an event
 * loop's state and listener), tcp_loop.c (its run and connections),
 * tcp_serve.c (the serving path of every model), tcp_blocking.c (one
 * connection served on its own thread) and the concurrency models: the
 * event loop's own (in tcp_loop.c), tcp_pool.c, tcp_thread.c and
 * tcp_process.c, which the loop reaches only through their sk_tcp_model
 * tables. */
#ifndef SK_TCP_H
#define SK_TCP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>

#include "addr.h"
#include "cidr.h"
#include "conn.h"
#include "frame.h"
#include "internal.h"
#include "loop.h"
#include "pool.h"
#include "server.h"

/* Bytes one read may bring (RAW framing: at most the largest message). */
#define SK_TCP_READ_CHUNK 65536
/* How long a closing connection may take to send its EOF after ours. */
#define SK_TCP_LINGER_MS 2000

/* Connection flags beyond those of conn.h. */
enum {
  SK_CONN_JOB_PAUSED = 1u << 6,  /* the model's in-flight limit reached (pool) */
  SK_CONN_STOPPING = 1u << 7,    /* server stopping: no more requests */
  SK_CONN_IN_OFF = 1u << 12,     /* EPOLLIN is not registered (it is at accept) */
  SK_CONN_BROKEN = 1u << 13,     /* a reply was lost: no later one may be sent */
  SK_CONN_PROXY_WAIT = 1u << 14, /* its PROXY header is not complete yet */
};

/* sk__tcp_serve_all stopped because the output reached its limit; the
 * messages after *used are left for when the output has drained. */
#define SK_TCP_SERVE_FULL 1

/* Message counts gathered in plain memory while one read is served and
 * added to the shared counters once per read: four atomic additions per
 * message are measurable when a read carries many pipelined requests. */
typedef struct sk_tally {
  uint64_t in, bytes_in, out, bytes_out;
} sk_tally;

typedef struct sk_tcp_io sk_tcp_io;

/* epoll data tags of an event loop; connections use their descriptor. */
#define SK_TCP_TAG_LISTENER (UINT64_C(1) << 40)
#define SK_TCP_TAG_STOP (UINT64_C(2) << 40)
#define SK_TCP_TAG_MODEL (UINT64_C(3) << 40) /* the model's own: a child's pidfd */
#define SK_TCP_TAG_MASK (UINT64_C(0xff) << 40)

/* A concurrency model as the event loop sees it: the loop accepts, and
 * hands each client to the model. The event loop (tcp_loop.c) and the
 * worker pool (tcp_pool.c) serve connections in the loop itself, the pool
 * through the hooks from `serve` to `closed`; the thread and process
 * models give each client a thread (tcp_thread.c) or a child
 * (tcp_process.c) of its own. Hooks run on the loop's thread unless
 * said; NULL hooks do nothing. */
typedef struct sk_tcp_model {
  bool keep_peer; /* accept records each client's address (pool jobs carry it) */
  /* At listen (on its caller's thread), once the loops are made: the
   * model's state for the whole server (srv->model_state). A status on
   * failure; `end` is then called. */
  int (*begin)(sk_tcp_server *srv);
  /* A client was accepted and counted in `active`: serve it, or close it,
   * uncount it and count it as rejected. NULL: the loop tracks it as a
   * connection of its own (sk__tcp_add_connection). */
  void (*accepted)(sk_tcp_io *io, int fd, const struct sockaddr_storage *peer, socklen_t peer_len);
  /* Take the whole messages at the front of buf[0, len) of connection fd
   * (the loop then has `room` > 0 bytes of output for it); results as
   * sk__tcp_serve_all's. NULL: the loop serves them itself, with
   * sk__tcp_serve_all into io->out. Called once per read, not per message. */
  int (*serve)(sk_tcp_io *io, int fd, sk_conn *c, char *buf, size_t len, size_t room, size_t *used);
  /* Requests of connection fd the model has in flight: while there are
   * any, the connection has no idle timer and does not end at its
   * client's EOF or at a stop. NULL: none. */
  uint32_t (*pending)(sk_tcp_io *io, int fd);
  /* The connection may go on (its output drained, or the model's wake
   * brought completions for it): hand it the replies the model holds, in
   * order, before the loop serves input held back. False if that closed
   * the connection. */
  bool (*resume)(sk_tcp_io *io, int fd, sk_conn *c);
  /* The loop's wake-up (sk__loop_wake, from any thread) was read: take the
   * model's completions and resume their connections (sk__tcp_resume). */
  void (*wake)(sk_tcp_io *io);
  /* Connection fd is closing: forget what the model holds for it (work
   * still running comes back later and is dropped). */
  void (*closed)(sk_tcp_io *io, int fd);
  /* After each batch of events, and for an event tagged SK_TCP_TAG_MODEL:
   * the model's housekeeping (finished threads, exited children). */
  void (*tick)(sk_tcp_io *io);
  /* Milliseconds until tick must run without an event, or -1. */
  int (*next_timeout)(sk_tcp_io *io);
  /* Clients of the loop the model still serves outside its connection
   * table (children), which the drain waits for; end_drain ends the rest
   * once it is over. */
  int (*busy)(sk_tcp_io *io);
  void (*end_drain)(sk_tcp_io *io);
  /* Every loop has ended (on the thread that ends the run): wait for the
   * model's own threads until `deadline`; any left are stragglers. */
  void (*settle)(sk_tcp_server *srv, int64_t deadline);
  /* Free the model's state in a loop: where the run's state is freed (at
   * its end, or on the thread of the last straggler), never before. */
  void (*free)(sk_tcp_io *io);
  /* After every loop is freed, the same way: free what begin made. */
  void (*end)(sk_tcp_server *srv);
} sk_tcp_model;

extern const sk_tcp_model sk__tcp_event_model;   /* tcp_loop.c */
extern const sk_tcp_model sk__tcp_pool_model;    /* tcp_pool.c */
extern const sk_tcp_model sk__tcp_thread_model;  /* tcp_thread.c */
extern const sk_tcp_model sk__tcp_process_model; /* tcp_process.c */

/* One event-loop thread: its listener, connections and working memory. */
struct sk_tcp_io {
  sk_peer peer; /* the request being served, for sk_peer_address() */
  sk_tcp_server *srv;
  int index;    /* of the loop in srv->io, and of its listener in the core */
  sk_loop loop; /* its wake-up carries the model's completions (the pool's) */
  int listen_fd;
  bool owns_listener; /* false where loops share one UNIX listener */
  int reserve_fd;     /* spare descriptor given up to shed a client at EMFILE */
  bool listen_paused;
  uint32_t listen_resume_at;
  pthread_t thread;
  bool thread_started;
  int rc;

  /* Reads land in `in`; the bytes a read leaves unserved (an incomplete
   * message, or messages held back while output drains) move to the
   * connection's own buffer, where later reads are appended. Replies of one
   * read collect in `out` and leave in one send. */
  char *in;
  size_t in_size;
  sk_buf *out;
  sk_tally tally; /* flushed to the counters after each read or completion */
  sk_conn_table conns;

  /* The model's own state in this loop (the pool's job queues, the
   * process model's children), made and freed by the model. */
  void *model_state;

  /* SK_OPT_PROXY_PROTOCOL: the client each connection's header named,
   * indexed by descriptor (NULL: none, or no header yet). */
  sk_origin **origins;
  int origins_cap;
};

struct sk_tcp_server {
  sk_server core; /* first: the core frees the struct */

  long long framing;
  long long backlog;
  long long max_connections;
  long long idle_timeout_ms;
  long long write_timeout_ms;
  long long high_water;
  long long max_buffered;
  long long max_inflight;
  long long proxy_protocol; /* sk_proxy_mode: SK_PROXY_V1/V2/ANY are bit sets */
  long long proxy_timeout_ms;
  sk_cidr *trusted; /* senders allowed to send PROXY headers; NULL: all */
  size_t ntrusted;

  atomic_bool cancel_jobs; /* drain time is over: queued jobs skip the service */
  bool nodelay;            /* TCP (not UNIX): replies must not wait for Nagle */

  const sk_tcp_model *models; /* SK_OPT_MODEL's, fixed at listen */
  sk_tcp_io *io;              /* core.nio event loops, during a run */
  void *model_state;          /* the model's, for the server (the thread model's threads) */

  sk_log_limit error_log; /* protocol errors and lost replies */
  atomic_llong active;    /* connections (or children) open now */
  atomic_llong buffered;  /* unsent reply bytes across connections */
};

static inline void sk__tcp_count(sk_tcp_server *srv, int stat, int64_t n) {
  sk__server_count(&srv->core, stat, (uint64_t)n);
}

static inline void sk__tcp_flush_tally(sk_tcp_server *srv, sk_tally *t) {
  if (t->in)
    sk__tcp_count(srv, SK_STAT_MESSAGES_IN, (int64_t)t->in);
  if (t->bytes_in)
    sk__tcp_count(srv, SK_STAT_BYTES_IN, (int64_t)t->bytes_in);
  if (t->out)
    sk__tcp_count(srv, SK_STAT_MESSAGES_OUT, (int64_t)t->out);
  if (t->bytes_out)
    sk__tcp_count(srv, SK_STAT_BYTES_OUT, (int64_t)t->bytes_out);
  *t = (sk_tally){0};
}

/* tcp_serve.c: the serving path, shared by the loop and the blocking models. */
/* Log a warning about one client's bad input, within the server's rate. */
void sk__tcp_warn_conn(sk_tcp_server *srv, int fd, const char *what);

/* sk__tcp_frame_reply refused a LINE reply with a newline in it. */
#define SK_TCP_MULTILINE (-1001)

/* Append a reply of `len` bytes, framed, to *out and count it. 0, or why
 * it cannot be queued: SK_ENOMEM (out of memory, or past the 4 GiB a
 * buffer holds) or SK_TCP_MULTILINE (LINE framing, a "\n" inside); the
 * caller must then end the connection, since every later reply would
 * answer the wrong request. Inline, like everything run once per message
 * below: a call each cost more than the work (bench/profile counts the
 * instructions). */
static inline int sk__tcp_frame_reply(sk_tcp_server *srv, int framing, const char *reply,
                                      size_t len, sk_buf **out, sk_tally *tally) {
  size_t framed = len + sk__frame_overhead(framing);
  if (framed == 0) {
    tally->out++; /* an empty RAW reply: nothing to send */
    return 0;
  }
  if (framing == SK_FRAME_LINE && memchr(reply, '\n', len))
    return SK_TCP_MULTILINE; /* counted and logged where the connection is closed */
  char *dst = len <= UINT32_MAX ? sk__buf_room(out, framed) : NULL;
  if (dst) {
    (*out)->len += (uint32_t)sk__frame_encode(framing, dst, reply, len);
    tally->out++;
    tally->bytes_out += len;
    return 0;
  }
  sk__tcp_count(srv, SK_STAT_DROPS_TOO_LARGE, 1);
  return SK_ENOMEM; /* logged, rate-limited, where the connection is closed */
}

/* Run the service on every whole message at the front of buf[0, len) --
 * each made a C string in place, so buf[len] must be writable -- appending
 * the framed replies to *out and counting into *tally, until *out holds
 * `limit` bytes. *used receives the bytes consumed. `peer` is the calling
 * thread's bound record (sk__peer_bind), set to fd around the service
 * calls. count_first: each request is added to the counters before its
 * service runs (a forked child whose service crashes never returns to add
 * them). Returns 0 (every whole message served), SK_TCP_SERVE_FULL (the
 * output reached the limit), SK_ENOMEM (a reply could not be queued: the
 * connection must end after the replies before it) or SK_EMSGSIZE /
 * SK_EPROTO for the protocol error that stopped it (at buf + *used). */
int sk__tcp_serve_all(sk_tcp_server *srv, int fd, bool count_first, char *buf, size_t len,
                      size_t limit, size_t *used, sk_buf **out, sk_tally *tally, sk_peer *peer);
/* Tests set this to serve LINE framing with the portable scan of scan.h
 * on a processor that has AVX2, so that both are exercised. */
extern bool sk__scan_portable;
/* The client ended its stream: a message begun in *in can never complete.
 * It is counted (SK_STAT_DROPS_INCOMPLETE), logged and freed. */
void sk__tcp_end_of_stream(sk_tcp_server *srv, int fd, sk_buf **in);
/* Count and log what made sk__tcp_serve_all fail (its negative result). */
void sk__tcp_serve_failed(sk_tcp_server *srv, int fd, int rc);
void sk__tcp_log_conn(int level, int fd, const char *what);
/* Count and log a protocol error (SK_EMSGSIZE or SK_EPROTO). */
void sk__tcp_protocol_error(sk_tcp_server *srv, int fd, int rc);

/* tcp_io.c: a loop's state and its listener. */
int sk__tcp_io_init(sk_tcp_io *io, sk_tcp_server *srv, int index);
void sk__tcp_io_free(sk_tcp_io *io);
/* Accept a batch of clients and hand each to the model. */
void sk__tcp_accept(sk_tcp_io *io);
/* Back into the epoll set once a rest the listener took at EMFILE is over. */
void sk__tcp_resume_listener(sk_tcp_io *io);
/* The drain takes no more clients: the loop's listener leaves it. */
void sk__tcp_close_listener(sk_tcp_io *io);
/* Track an accepted client as a connection of the loop; `ready` false:
 * the model has no room for it (out of memory), and it is rejected.
 * False if it was rejected. */
bool sk__tcp_add_connection(sk_tcp_io *io, int fd, bool ready);

/* tcp_loop.c: the loop's run and its connections. */
int sk__tcp_io_run(sk_tcp_io *io);
/* For the models that serve in the loop (the pool); each bool result says
 * whether the connection is still open. */
/* Bytes of replies the connection may queue now (0: none). */
size_t sk__tcp_output_room(sk_tcp_io *io, const sk_conn *c);
/* Send the replies collected in io->out, or queue them behind its output. */
bool sk__tcp_deliver(sk_tcp_io *io, int fd, sk_conn *c);
/* Nothing to send and nothing pending: linger or close if it is ending. */
bool sk__tcp_settle(sk_tcp_io *io, int fd, sk_conn *c);
/* The connection may go on: the model's resume hook, then its input. */
void sk__tcp_resume(sk_tcp_io *io, int fd, sk_conn *c);
/* A reply is lost: the ones before it go out, then the connection ends. */
void sk__tcp_lose_reply(sk_tcp_io *io, int fd, sk_conn *c);

/* tcp_proxy.c: the PROXY protocol. */
/* Replace the trusted senders with the list in `cidrs` (NULL: trust all). */
int sk__tcp_proxy_trust(sk_tcp_server *srv, const char *cidrs);
/* A client just accepted may speak to a PROXY server: true, or false when
 * its sender is not trusted (counted and logged; the caller closes it). */
bool sk__tcp_proxy_admit(sk_tcp_server *srv, const struct sockaddr_storage *peer,
                         socklen_t peer_len);
static inline bool sk__tcp_proxy_checks_senders(const sk_tcp_server *srv) {
  return srv->proxy_protocol != SK_PROXY_OFF && srv->trusted;
}
/* The event loop read *nread bytes (0: the client's EOF) into io->in for
 * connection fd, which waits for its header (SK_CONN_PROXY_WAIT); bytes
 * of it that came before are in c->in. Returns 0 (more are needed: kept
 * in c->in), -1 (close the connection: counted and logged), or 1 (the
 * header is taken and the connection waits for requests): the bytes
 * after it are then in c->in, or, if *nread > 0, in io->in[0, *nread). */
int sk__tcp_proxy_take(sk_tcp_io *io, int fd, sk_conn *c, size_t *nread);
/* Connection fd waited for its header longer than SK_OPT_PROXY_TIMEOUT_MS:
 * count and log it (the caller closes it). */
void sk__tcp_proxy_expired(sk_tcp_server *srv, int fd);
/* Count and log a header that failed. */
void sk__tcp_proxy_error(sk_tcp_server *srv, int fd, const char *what);
/* The client named by connection fd's header, or NULL. */
static inline const sk_origin *sk__tcp_origin(const sk_tcp_io *io, int fd) {
  return fd < io->origins_cap ? io->origins[fd] : NULL;
}
/* Connection fd is closing: free its origin. */
void sk__tcp_proxy_forget(sk_tcp_io *io, int fd);
void sk__tcp_proxy_free(sk_tcp_io *io);
/* Read connection fd's header on its own thread, within the timeout, and
 * no byte after it; *origin receives the client it names (malloc'd) or
 * NULL. False if the connection must end (counted and logged, or
 * stopped). */
bool sk__tcp_proxy_read_blocking(sk_tcp_server *srv, int fd, int stopfd, sk_origin **origin);

/* tcp_blocking.c */
/* Serve one connection to the end on the calling thread (thread and
 * process models); the caller closes fd. stopfd < 0: no stop to watch.
 * count_first as for sk__tcp_serve_all. */
void sk__tcp_serve_blocking(sk_tcp_server *srv, int fd, int stopfd, bool count_first);

#endif
