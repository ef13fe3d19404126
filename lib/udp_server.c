/* udp_server.c -- UDP request/response server: one datagram is one request,
 * the reply goes back from the address the request was sent to. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "internal.h"
#include "loop.h"
#include "pool.h"
#include "server.h"

/* Datagrams taken by one recvmmsg, and at most as many replies sent by one
 * sendmmsg: per-syscall cost dominates small datagrams. The receive slots
 * are BATCH * (max message + 1) bytes per I/O thread; the pages are only
 * committed as datagrams that large arrive. */
#define BATCH 32

/* Replies of one batch are copied here before the service runs again (it
 * may reuse its buffer). Every IP datagram fits; a longer reply, possible
 * only on UNIX sockets, is sent on its own at once. */
#define ARENA_SIZE 65536

/* Requests handed to the worker pool and not yet finished, per server; over
 * it a request is dropped (SK_STAT_DROPS_QUEUE_FULL), so a flood cannot make
 * memory grow while the workers are busy. */
#define QUEUE_MAX 1024

/* Space for either kind of packet-info control message, aligned as the
 * control-message header must be. (A struct rather than a union with a
 * struct cmsghdr member: glibc's cmsghdr ends in a flexible array, which
 * would make this a variable-sized type in the structs that embed it.) */
typedef struct pktinfo_control {
  _Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
                                    CMSG_SPACE(sizeof(struct in_pktinfo))];
} pktinfo_control;

/* One I/O thread: the socket it waits on and its buffers for one batch,
 * allocated once per run. */
typedef struct udp_io {
  struct sk_udp_server *srv;
  int fd;
  sk_loop loop; /* waits on the socket and the server's stop descriptor */
  bool loop_open;
  char *bufs;  /* BATCH receive slots of max_message + 1 bytes */
  char *arena; /* event-loop model: copies of this batch's replies */
  size_t arena_used;
  unsigned nout;
  struct mmsghdr in[BATCH];
  struct iovec in_iov[BATCH];
  struct sockaddr_storage from[BATCH];
  pktinfo_control in_control[BATCH];
  struct mmsghdr out[BATCH];
  struct iovec out_iov[BATCH];
  pktinfo_control out_control[BATCH];
  sk_peer peer; /* the request being served, for sk_peer_address() */
} udp_io;

struct sk_udp_server {
  sk_server core;                 /* first: the core frees the struct */
  bool pktinfo;                   /* wildcard bind: choose each reply's source */
  udp_io *io;                     /* core.nio, during a run */
  atomic_int queued;              /* pool tasks not yet finished */
  _Atomic uint64_t drain_dropped; /* tasks skipped after the deadline */
  /* Drop logging is rate-limited so a flood of bad datagrams cannot turn
   * into a flood of log lines; the counters still see every drop. */
  sk_log_limit drop_log;
};

/* A request handed to the worker pool, with all it needs to be answered:
 * the request text is copied because the receive slot is reused. */
typedef struct udp_task {
  sk_pool_task task; /* first: the pool hands back a pointer to it */
  sk_udp_server *srv;
  int fd; /* the socket the request came in on; the reply leaves by it */
  socklen_t from_len;
  size_t control_len;
  size_t len;
  struct sockaddr_storage from;
  pktinfo_control control; /* the reply's source, ready to send */
  char request[];
} udp_task;

static void count(sk_udp_server *srv, int stat, uint64_t n) {
  sk__server_count(&srv->core, stat, n);
}

static void log_drop(sk_udp_server *srv, const struct sockaddr *from, socklen_t len,
                     const char *why) {
  if (!sk__log_enabled(SK_LOG_WARN))
    return;
  int allowed = sk__log_limited(&srv->drop_log);
  if (!allowed)
    return;
  char peer[SK__ADDR_TEXT_MAX];
  if (sk__addr_format(from, len, peer, sizeof peer) != 0)
    strcpy(peer, "unknown");
  sk__log(SK_LOG_WARN, "udp: dropped datagram from %s: %s%s", peer, why,
          allowed == 2 ? " (further drops this second not logged)" : "");
}

static int udp_bound(sk_server *core, int fd, int index);
static void udp_listening(sk_server *core, const char *address);
static int udp_begin(sk_server *core);
static int udp_serve(sk_server *core, int index);
static void udp_settle(sk_server *core, int64_t deadline);
static void udp_end(sk_server *core);

static const sk_server_ops udp_ops = {
    .name = "udp",
    .socktype = SOCK_DGRAM,
    .bound = udp_bound,
    .listening = udp_listening,
    .begin = udp_begin,
    .serve = udp_serve,
    .settle = udp_settle,
    .end = udp_end,
};

int sk_udp_server_create(sk_udp_server **out, const char *address, sk_service service, void *user) {
  int rc = sk__server_create((void **)out, sizeof **out, &udp_ops, address, service, user);
  if (rc != SK_OK)
    return rc;
  sk_udp_server *srv = *out;
  srv->core.max_message = SK__UDP_MAX_PAYLOAD;
  srv->core.model = SK_MODEL_EVENT_LOOP;
  srv->core.io_threads = 1;
  srv->core.life.drain_timeout_ms = 5000;
  return SK_OK;
}

/* The options that apply to UDP. */
#define OPT(name, field, lo, hi) SK__OPTION(sk_udp_server, name, core.field, lo, hi)
static const sk_option_def udp_options[] = {
    OPT(SK_OPT_MAX_MESSAGE, max_message, 1, SK__UDP_MAX_PAYLOAD),
    OPT(SK_OPT_REUSEPORT, reuseport, 0, 1),
    OPT(SK_OPT_RCVBUF, rcvbuf, 0, INT_MAX),
    OPT(SK_OPT_SNDBUF, sndbuf, 0, INT_MAX),
    /* The per-connection models make no sense without connections. */
    OPT(SK_OPT_MODEL, model, SK_MODEL_EVENT_LOOP, SK_MODEL_WORKER_POOL),
    OPT(SK_OPT_WORKERS, workers, 0, 1024),
    OPT(SK_OPT_IO_THREADS, io_threads, 0, 256),
    OPT(SK_OPT_DRAIN_TIMEOUT_MS, life.drain_timeout_ms, 0, INT_MAX),
};
#undef OPT

int sk_udp_server_set(sk_udp_server *srv, int option, long long value) {
  if (!srv)
    return sk__null_argument("sk_udp_server_set", "srv");
  return sk__option_set(srv, udp_options, SK__COUNT(udp_options), option, value,
                        srv->core.state == SK_SERVER_CREATED ? NULL : SK__SERVER_LOCKED,
                        "sk_udp_server_set");
}

int sk_udp_server_get(const sk_udp_server *srv, int option, long long *value) {
  if (!srv || !value)
    return sk__fail(SK_EINVAL, 0);
  return sk__option_get(srv, udp_options, SK__COUNT(udp_options), option, value,
                        "sk_udp_server_get");
}

int sk_udp_server_set_reply_free(sk_udp_server *srv, sk_reply_free fn) {
  if (!srv)
    return sk__null_argument("sk_udp_server_set_reply_free", "srv");
  return sk__server_set_reply_free(&srv->core, fn);
}

/* Each socket of the set: with a wildcard address, ask for the packet
 * info that tells each reply its source. */
static int udp_bound(sk_server *core, int fd, int index) {
  sk_udp_server *srv = (sk_udp_server *)core;
  if (index == 0)
    srv->pktinfo = sk__addr_is_wildcard(&core->addr.ss);
  if (!srv->pktinfo)
    return SK_OK;
  /* A dual-stack socket receives IPv4 datagrams with IP_PKTINFO and IPv6
   * ones with IPV6_PKTINFO, so ask for both. */
  int on = 1;
  if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) != 0 ||
      (core->addr.ss.ss_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) != 0))
    return sk__fail(SK_ESOCKET, errno);
  return SK_OK;
}

static void udp_listening(sk_server *core, const char *address) {
  sk__log(SK_LOG_INFO, "udp: listening on %s (%d socket%s)", address, core->nfds,
          core->nfds == 1 ? "" : "s");
}

/* A UNIX path cannot be bound twice: there one socket is shared by every
 * I/O thread, and datagrams of one sender may be served out of order.
 * Elsewhere SO_REUSEPORT keeps one sender on one socket, in order. */
int sk_udp_server_listen(sk_udp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_listen(&srv->core);
}

int sk_udp_server_port(const sk_udp_server *srv, int *port) {
  if (!srv || !port)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_port(&srv->core, port);
}

int sk_udp_server_address(const sk_udp_server *srv, char *buf, size_t size) {
  if (!srv || !buf)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_address(&srv->core, buf, size);
}

/* Turn the packet info recorded on receipt into the source of the reply,
 * so that a client that connected its socket to the address it sent to
 * accepts the reply. IPv4: ipi_spec_dst, the local address the kernel
 * chose for the request, which is its destination when that was unicast
 * and the receiving interface's address when it was a broadcast or a
 * multicast group (a reply cannot come from those). IPv6 has no such
 * field: a multicast destination is left out for the kernel to choose a
 * source, and the interface index is kept so that the reply leaves by the
 * interface the request came in on (link-local senders need it). A
 * dual-stack socket gets both messages for an IPv4 datagram; the IPv4 one
 * wins, for its ipi_spec_dst. Returns the control length to send with. */
static size_t reply_control(const struct msghdr *in, pktinfo_control *out) {
  /* The control message goes out at its padded size: no byte of it may be
   * left unwritten. */
  memset(out, 0, sizeof *out);
  const struct cmsghdr *v4 = NULL, *v6 = NULL;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(in); c; c = CMSG_NXTHDR((struct msghdr *)in, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO)
      v4 = c;
    else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO)
      v6 = c;
  }
  struct cmsghdr *o = (struct cmsghdr *)(void *)out->buf; /* aligned: see pktinfo_control */
  if (v4) {
    struct in_pktinfo pi;
    memcpy(&pi, CMSG_DATA(v4), sizeof pi);
    pi.ipi_addr.s_addr = 0; /* not used for sending */
    pi.ipi_ifindex = 0;     /* let routing choose the interface */
    o->cmsg_level = IPPROTO_IP;
    o->cmsg_type = IP_PKTINFO;
    o->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(o), &pi, sizeof pi);
    return CMSG_SPACE(sizeof pi);
  }
  if (v6) {
    struct in6_pktinfo pi;
    memcpy(&pi, CMSG_DATA(v6), sizeof pi);
    if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr))
      pi.ipi6_addr = in6addr_any;
    o->cmsg_level = IPPROTO_IPV6;
    o->cmsg_type = IPV6_PKTINFO;
    o->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(o), &pi, sizeof pi);
    return CMSG_SPACE(sizeof pi);
  }
  return 0;
}

/* The reply header for a request: back to its sender, from the address the
 * request was sent to (see reply_control). */
static struct msghdr reply_header(const struct msghdr *in, struct iovec *iov,
                                  pktinfo_control *control, bool pktinfo) {
  struct msghdr out = {
      .msg_name = in->msg_name, .msg_namelen = in->msg_namelen, .msg_iov = iov, .msg_iovlen = 1};
  out.msg_controllen = pktinfo ? reply_control(in, control) : 0;
  out.msg_control = out.msg_controllen ? control->buf : NULL;
  return out;
}

/* An unbound UNIX datagram sender has no address to answer. */
static bool can_answer(sk_udp_server *srv, const struct sockaddr *to, socklen_t len) {
  if (len > sizeof(sa_family_t))
    return true;
  count(srv, SK_STAT_DROPS_NO_ADDRESS, 1);
  log_drop(srv, to, len, "reply dropped: sender has no address");
  return false;
}

static void send_failed(sk_udp_server *srv, int err, const struct msghdr *m) {
  if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
    count(srv, SK_STAT_DROPS_WOULD_BLOCK, 1);
    log_drop(srv, m->msg_name, m->msg_namelen, "reply dropped: send buffer full");
  } else if (err == EMSGSIZE) {
    count(srv, SK_STAT_DROPS_TOO_LARGE, 1);
    log_drop(srv, m->msg_name, m->msg_namelen, "reply dropped: too large for a datagram");
  } else {
    count(srv, SK_STAT_DROPS_SEND_ERROR, 1);
    log_drop(srv, m->msg_name, m->msg_namelen, "reply dropped: send failed");
  }
}

/* Send one reply now. sendmsg on a datagram socket is atomic per message,
 * so workers and I/O threads can send on the same socket at once. */
static void send_one(sk_udp_server *srv, int fd, const struct msghdr *m) {
  ssize_t n;
  do
    n = sendmsg(fd, m, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    send_failed(srv, errno, m);
    return;
  }
  count(srv, SK_STAT_MESSAGES_OUT, 1);
  count(srv, SK_STAT_BYTES_OUT, (uint64_t)n);
}

/* Send the replies collected from this batch, in order, with as few
 * sendmmsg calls as they allow. */
static void flush_replies(udp_io *io) {
  sk_udp_server *srv = io->srv;
  uint64_t messages = 0, bytes = 0;
  unsigned i = 0;
  while (i < io->nout) {
    int n = sendmmsg(io->fd, io->out + i, io->nout - i, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      /* sendmmsg fails with the error of the first message it could not
       * send: that reply is the drop; go on with the next. */
      send_failed(srv, n < 0 ? errno : EIO, &io->out[i].msg_hdr);
      i++;
      continue;
    }
    for (int k = 0; k < n; k++)
      bytes += io->out[i + (unsigned)k].msg_len;
    messages += (uint64_t)n;
    i += (unsigned)n;
  }
  if (messages) {
    count(srv, SK_STAT_MESSAGES_OUT, messages);
    count(srv, SK_STAT_BYTES_OUT, bytes);
  }
  io->nout = 0;
  io->arena_used = 0;
}

/* Copy a reply into this batch's arena and queue it for flush_replies. */
static void queue_reply(udp_io *io, const struct msghdr *in, const char *reply) {
  sk_udp_server *srv = io->srv;
  if (!can_answer(srv, in->msg_name, in->msg_namelen))
    return;
  size_t len = strlen(reply);
  if (len > ARENA_SIZE - io->arena_used || io->nout == BATCH)
    flush_replies(io); /* keeps replies in request order */
  if (len > ARENA_SIZE) {
    struct iovec iov = {.iov_base = (void *)reply, .iov_len = len};
    pktinfo_control control;
    struct msghdr out = reply_header(in, &iov, &control, srv->pktinfo);
    send_one(srv, io->fd, &out);
    return;
  }
  unsigned k = io->nout++;
  memcpy(io->arena + io->arena_used, reply, len);
  io->out_iov[k] = (struct iovec){.iov_base = io->arena + io->arena_used, .iov_len = len};
  io->arena_used += len;
  io->out[k].msg_hdr = reply_header(in, &io->out_iov[k], &io->out_control[k], srv->pktinfo);
}

static void release_reply(sk_udp_server *srv, const char *reply) {
  if (reply && srv->core.reply_free)
    srv->core.reply_free((void *)reply);
}

/* Worker pool: run the service and answer, unless stop's drain timeout
 * has passed, in which case the request is dropped unserved. */
static void run_task(sk_pool_task *task) {
  udp_task *t = (udp_task *)task;
  sk_udp_server *srv = t->srv;
  int64_t deadline = atomic_load(&srv->core.life.drain_deadline);
  if (deadline != 0 && sk__clock_ms() >= deadline) {
    atomic_fetch_add(&srv->drain_dropped, 1);
  } else {
    count(srv, SK_STAT_MESSAGES_IN, 1);
    count(srv, SK_STAT_BYTES_IN, t->len);
    const struct sockaddr *from = (const struct sockaddr *)&t->from;
    /* Pool threads are shared by every server: bind per task. */
    sk_peer peer;
    sk_peer *was = sk__peer_bind(&peer);
    sk__peer_set_addr(&peer, from, t->from_len);
    const char *reply = srv->core.service(t->request, srv->core.user);
    sk__peer_bind(was);
    /* A service that outlasted the drain time: its reply is discarded. */
    deadline = atomic_load(&srv->core.life.drain_deadline);
    bool late = deadline != 0 && sk__clock_ms() >= deadline;
    if (late)
      atomic_fetch_add(&srv->drain_dropped, 1);
    if (reply && !late && can_answer(srv, from, t->from_len)) {
      struct iovec iov = {.iov_base = (void *)reply, .iov_len = strlen(reply)};
      struct msghdr out = {.msg_name = &t->from,
                           .msg_namelen = t->from_len,
                           .msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = t->control_len ? t->control.buf : NULL,
                           .msg_controllen = t->control_len};
      send_one(srv, t->fd, &out);
    }
    release_reply(srv, reply);
  }
  atomic_fetch_sub(&srv->queued, 1);
  free(t);
}

/* Hand a request to the worker pool, or drop it if the queue is full. A
 * task that cannot be allocated is counted the same way: in both cases the
 * server had no room for the request. */
static void dispatch(udp_io *io, const struct msghdr *in, size_t len) {
  sk_udp_server *srv = io->srv;
  bool full = atomic_fetch_add(&srv->queued, 1) >= QUEUE_MAX;
  udp_task *t = full ? NULL : malloc(sizeof *t + len + 1);
  if (!t) {
    atomic_fetch_sub(&srv->queued, 1);
    count(srv, SK_STAT_DROPS_QUEUE_FULL, 1);
    log_drop(srv, in->msg_name, in->msg_namelen, full ? "worker pool queue full" : "out of memory");
    return;
  }
  t->task.run = run_task;
  t->srv = srv;
  t->fd = io->fd;
  t->len = len;
  memcpy(&t->from, in->msg_name, in->msg_namelen);
  t->from_len = in->msg_namelen;
  t->control_len = srv->pktinfo ? reply_control(in, &t->control) : 0;
  memcpy(t->request, in->msg_iov->iov_base, len + 1);
  sk__pool_submit(srv->core.pool, &t->task);
}

/* Check a received datagram and make it a NUL-terminated request; false if
 * it is dropped (counted and logged). */
static bool accept_request(sk_udp_server *srv, struct msghdr *m, size_t len) {
  if (m->msg_namelen < sizeof(sa_family_t)) {
    /* An unbound UNIX sender may come with no address at all: record it
     * as the unnamed UNIX address so that it can be shown as "unix:". */
    ((struct sockaddr_storage *)m->msg_name)->ss_family = AF_UNIX;
    m->msg_namelen = sizeof(sa_family_t);
  }
  if (m->msg_flags & MSG_TRUNC) {
    count(srv, SK_STAT_DROPS_TRUNCATED, 1);
    log_drop(srv, m->msg_name, m->msg_namelen, "larger than the maximum message size");
    return false;
  }
  char *buf = m->msg_iov->iov_base;
  if (memchr(buf, '\0', len)) {
    count(srv, SK_STAT_DROPS_NUL, 1);
    log_drop(srv, m->msg_name, m->msg_namelen, "contains a NUL byte");
    return false;
  }
  buf[len] = '\0';
  return true;
}

/* Receive and serve batches of datagrams until the socket is empty or a
 * stop is asked for. Returns SK_OK, or SK_EREAD on a receive error that is
 * not transient. */
static int serve_ready(udp_io *io) {
  sk_udp_server *srv = io->srv;
  while (!atomic_load(&srv->core.stop_requested)) {
    for (int i = 0; i < BATCH; i++) {
      io->in[i].msg_hdr.msg_namelen = sizeof io->from[i];
      io->in[i].msg_hdr.msg_controllen = srv->pktinfo ? sizeof io->in_control[i].buf : 0;
      io->in[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(io->fd, io->in, BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return SK_OK;
      /* Interrupted calls, queued ICMP errors and momentary memory shortage
       * concern one datagram at most, never the server. */
      if (errno == EINTR || errno == ECONNREFUSED || errno == ENOMEM || errno == ENOBUFS ||
          errno == EHOSTUNREACH || errno == ENETUNREACH)
        continue;
      return sk__fail(SK_EREAD, errno);
    }
    /* A stop between two requests leaves the rest of the batch unserved,
     * as datagrams still queued in the socket are. */
    for (int i = 0; i < n && !atomic_load(&srv->core.stop_requested); i++) {
      struct msghdr *m = &io->in[i].msg_hdr;
      size_t len = io->in[i].msg_len;
      if (!accept_request(srv, m, len))
        continue;
      if (srv->core.pool) {
        dispatch(io, m, len);
        continue;
      }
      count(srv, SK_STAT_MESSAGES_IN, 1);
      count(srv, SK_STAT_BYTES_IN, len);
      sk__peer_set_addr(&io->peer, m->msg_name, m->msg_namelen);
      const char *reply = srv->core.service(m->msg_iov->iov_base, srv->core.user);
      sk__peer_clear(&io->peer);
      if (reply)
        queue_reply(io, m, reply);
      release_reply(srv, reply);
    }
    flush_replies(io);
    if (n < BATCH)
      return SK_OK; /* most likely empty: let the loop say when there is more */
  }
  return SK_OK;
}

#define SOCKET_TAG 1
#define STOP_TAG 2

/* One I/O thread: serve its socket until stop. The stop descriptor is
 * never read: stop is sticky, so once it was signalled every thread sees
 * it readable and leaves. */
static int udp_serve(sk_server *core, int index) {
  sk_udp_server *srv = (sk_udp_server *)core;
  udp_io *io = &srv->io[index];
  struct epoll_event events[4];
  int rc = SK_OK;
  sk_peer *was = sk__peer_bind(&io->peer);
  while (rc == SK_OK && !atomic_load(&core->stop_requested)) {
    int n = sk__loop_wait(&io->loop, events, 4, -1);
    if (n < 0) {
      rc = sk__fail(SK_ESYS, errno);
      break;
    }
    for (int i = 0; i < n && rc == SK_OK; i++)
      if (events[i].data.u64 == SOCKET_TAG)
        rc = serve_ready(io);
  }
  sk__peer_bind(was);
  return rc;
}

/* Per-thread batch buffers, allocated up front so that serving never
 * allocates (but for pool tasks). */
static int udp_begin(sk_server *core) {
  sk_udp_server *srv = (sk_udp_server *)core;
  size_t slot = (size_t)core->max_message + 1; /* + the NUL that ends the request */
  srv->io = calloc((size_t)core->nio, sizeof *srv->io);
  if (!srv->io)
    return sk__fail(SK_ENOMEM, ENOMEM);
  for (int i = 0; i < core->nio; i++) {
    udp_io *io = &srv->io[i];
    io->srv = srv;
    io->fd = core->fds[i % core->nfds];
    int rc = sk__loop_init(&io->loop);
    if (rc != SK_OK)
      return rc;
    io->loop_open = true;
    /* A socket shared by several threads (UNIX) wakes one of them per
     * datagram, not all. */
    uint32_t shared = core->nfds < core->nio ? EPOLLEXCLUSIVE : 0;
    if (sk__loop_add(&io->loop, io->fd, EPOLLIN | shared, SOCKET_TAG) != 0 ||
        sk__loop_add(&io->loop, core->stopfd, EPOLLIN, STOP_TAG) != 0)
      return sk__fail(SK_ESYS, errno);
    io->bufs = malloc(BATCH * slot);
    if (!io->bufs)
      return sk__fail(SK_ENOMEM, ENOMEM);
    if (core->model == SK_MODEL_EVENT_LOOP && !(io->arena = malloc(ARENA_SIZE)))
      return sk__fail(SK_ENOMEM, ENOMEM);
    for (int k = 0; k < BATCH; k++) {
      io->in_iov[k] = (struct iovec){.iov_base = io->bufs + k * slot, .iov_len = slot - 1};
      io->in[k].msg_hdr =
          (struct msghdr){.msg_name = &io->from[k],
                          .msg_iov = &io->in_iov[k],
                          .msg_iovlen = 1,
                          .msg_control = srv->pktinfo ? io->in_control[k].buf : NULL};
    }
  }
  return SK_OK;
}

static void udp_end(sk_server *core) {
  sk_udp_server *srv = (sk_udp_server *)core;
  for (int i = 0; srv->io && i < core->nio; i++) {
    if (srv->io[i].loop_open)
      sk__loop_close(&srv->io[i].loop);
    free(srv->io[i].bufs);
    free(srv->io[i].arena);
  }
  free(srv->io);
  srv->io = NULL;
}

/* The I/O threads have ended: the pool finishes its queue within the drain
 * time. Requests still queued when it passes are dropped without running
 * the service; a service call already running is left to end on its own
 * (it holds the server, and the sockets, until it has). */
static void udp_settle(sk_server *core, int64_t deadline) {
  sk_udp_server *srv = (sk_udp_server *)core;
  udp_end(core); /* tasks of the pool hold copies of their requests */
  if (!core->pool)
    return;
  sk__log(SK_LOG_INFO, "udp: draining %d queued requests for up to %lld ms",
          atomic_load(&srv->queued), core->life.drain_timeout_ms);
  sk__server_close_pool(core, deadline);
  uint64_t dropped = atomic_load(&srv->drain_dropped);
  if (dropped)
    sk__log(SK_LOG_WARN, "udp: %llu queued requests dropped: the drain timeout passed",
            (unsigned long long)dropped);
}

int sk_udp_server_run(sk_udp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_run(&srv->core);
}

int sk_udp_server_start(sk_udp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_start(&srv->core);
}

int sk_udp_server_stop(sk_udp_server *srv) {
  if (!srv)
    return sk__fail(SK_EINVAL, 0);
  return sk__server_stop(&srv->core);
}

/* The TCP connection counters are SK_EINVAL here rather than a constant 0,
 * so that a caller learns the counter does not apply to UDP. */
static bool udp_stat(int stat) {
  return (stat >= SK_STAT_MESSAGES_IN && stat <= SK_STAT_DROPS_TOO_LARGE) ||
         stat == SK_STAT_DROPS_QUEUE_FULL;
}

int sk_udp_server_stat(const sk_udp_server *srv, int stat, uint64_t *out) {
  if (!srv || !out || !udp_stat(stat))
    return sk__fail(SK_EINVAL, 0);
  *out = atomic_load_explicit(&srv->core.stats[stat], memory_order_relaxed);
  return SK_OK;
}

void sk_udp_server_destroy(sk_udp_server *srv) {
  if (srv)
    sk__server_destroy(&srv->core);
}
