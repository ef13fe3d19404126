/* udp_server.c -- UDP request/response server: one datagram is one request,
 * the reply goes back from the address the request was sent to. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "internal.h"

/* The largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP header). */
#define UDP_MAX_PAYLOAD 65507

enum udp_state { UDP_CREATED, UDP_LISTENING, UDP_RUNNING, UDP_DONE };

/* Counters are indexed by sk_stat value; index 0 is unused. */
#define UDP_STAT_COUNT (SK_STAT_DROPS_TOO_LARGE + 1)

struct sk_udp_server {
  sk_addr addr;
  sk_service service;
  void *user;

  long long max_message;
  long long reuseport;
  long long rcvbuf;
  long long sndbuf;

  int fd;
  int wakefd;
  bool pktinfo;     /* wildcard bind: ask for and reply with the destination */
  bool unlink_path; /* we created a UNIX socket file and remove it on destroy */
  enum udp_state state;
  atomic_bool stop_requested;

  struct sockaddr_storage bound;
  socklen_t bound_len;

  /* Drop logging is rate-limited so a flood of bad datagrams cannot turn
   * into a flood of log lines; the counters still see every drop. */
  time_t log_second;
  unsigned logs_this_second;

  _Atomic uint64_t stats[UDP_STAT_COUNT];
};

static void count(sk_udp_server *srv, int stat, uint64_t n) {
  atomic_fetch_add_explicit(&srv->stats[stat], n, memory_order_relaxed);
}

static void log_drop(sk_udp_server *srv, const struct sockaddr *from, socklen_t len,
                     const char *why) {
  if (!sk__log_enabled(SK_LOG_WARN))
    return;
  time_t now = time(NULL);
  if (now != srv->log_second) {
    srv->log_second = now;
    srv->logs_this_second = 0;
  }
  if (++srv->logs_this_second > 10)
    return;
  char peer[SK__ADDR_TEXT_MAX];
  if (sk__addr_format(from, len, peer, sizeof peer) != 0)
    strcpy(peer, "unknown");
  sk__log(SK_LOG_WARN, "udp: dropped datagram from %s: %s%s", peer, why,
          srv->logs_this_second == 10 ? " (further drops this second not logged)" : "");
}

int sk_udp_server_create(sk_udp_server **out, const char *address, sk_service service, void *user) {
  if (!out)
    return SK_EINVAL;
  *out = NULL;
  if (!address || !service)
    return SK_EINVAL;
  sk_addr addr;
  int rc = sk__addr_parse(&addr, address);
  if (rc != 0)
    return sk__fail(rc, 0);

  sk_udp_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return sk__fail(SK_ENOMEM, ENOMEM);
  srv->addr = addr;
  srv->service = service;
  srv->user = user;
  srv->max_message = UDP_MAX_PAYLOAD;
  srv->fd = -1;
  srv->wakefd = sk__wakefd_open();
  if (srv->wakefd < 0) {
    rc = sk__fail(SK_ESYS, errno);
    free(srv);
    return rc;
  }
  *out = srv;
  return SK_OK;
}

/* One row per option that applies to UDP: where it lives and its range. */
typedef struct udp_option {
  int option;
  size_t offset;
  long long min, max;
} udp_option;

static const udp_option udp_options[] = {
    {SK_OPT_MAX_MESSAGE, offsetof(sk_udp_server, max_message), 1, UDP_MAX_PAYLOAD},
    {SK_OPT_REUSEPORT, offsetof(sk_udp_server, reuseport), 0, 1},
    {SK_OPT_RCVBUF, offsetof(sk_udp_server, rcvbuf), 0, INT_MAX},
    {SK_OPT_SNDBUF, offsetof(sk_udp_server, sndbuf), 0, INT_MAX},
};

static const udp_option *find_option(int option) {
  for (size_t i = 0; i < sizeof udp_options / sizeof udp_options[0]; i++)
    if (udp_options[i].option == option)
      return &udp_options[i];
  return NULL;
}

int sk_udp_server_set(sk_udp_server *srv, int option, long long value) {
  if (!srv)
    return SK_EINVAL;
  const udp_option *o = find_option(option);
  if (!o || value < o->min || value > o->max)
    return sk__fail(SK_EINVAL, 0);
  if (srv->state != UDP_CREATED)
    return sk__fail(SK_ESTATE, 0);
  *(long long *)((char *)srv + o->offset) = value;
  return SK_OK;
}

int sk_udp_server_get(const sk_udp_server *srv, int option, long long *value) {
  if (!srv || !value)
    return SK_EINVAL;
  const udp_option *o = find_option(option);
  if (!o)
    return sk__fail(SK_EINVAL, 0);
  *value = *(const long long *)((const char *)srv + o->offset);
  return SK_OK;
}

static int open_socket(sk_udp_server *srv) {
  sk_bind_options opts = {
      .reuseport = srv->reuseport != 0, .rcvbuf = (int)srv->rcvbuf, .sndbuf = (int)srv->sndbuf};
  int fd = sk__bind_socket(&srv->addr, SOCK_DGRAM, &opts);
  if (fd < 0)
    return fd;
  srv->pktinfo = sk__addr_is_wildcard(&srv->addr.ss);
  if (srv->pktinfo) {
    /* A dual-stack socket receives IPv4 datagrams with IP_PKTINFO and
     * IPv6 ones with IPV6_PKTINFO, so ask for both. */
    int on = 1;
    if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) != 0 ||
        (srv->addr.ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) != 0)) {
      int rc = sk__fail(SK_ESOCKET, errno);
      sk__close(fd);
      return rc;
    }
  }
  srv->unlink_path = sk__addr_is_unix_path(&srv->addr);
  srv->bound_len = sizeof srv->bound;
  if (getsockname(fd, (struct sockaddr *)&srv->bound, &srv->bound_len) != 0) {
    int rc = sk__fail(SK_ESOCKET, errno);
    sk__close(fd);
    return rc;
  }
  srv->fd = fd;
  return SK_OK;
}

int sk_udp_server_listen(sk_udp_server *srv) {
  if (!srv)
    return SK_EINVAL;
  if (srv->state != UDP_CREATED || atomic_load(&srv->stop_requested))
    return sk__fail(SK_ESTATE, 0);
  int rc = open_socket(srv);
  if (rc != SK_OK)
    return rc;
  srv->state = UDP_LISTENING;
  if (sk__log_enabled(SK_LOG_INFO)) {
    char text[SK__ADDR_TEXT_MAX];
    if (sk__addr_format((struct sockaddr *)&srv->bound, srv->bound_len, text, sizeof text) == 0)
      sk__log(SK_LOG_INFO, "udp: listening on %s", text);
  }
  return SK_OK;
}

int sk_udp_server_port(const sk_udp_server *srv, int *port) {
  if (!srv || !port)
    return SK_EINVAL;
  if (srv->state == UDP_CREATED)
    return sk__fail(SK_ESTATE, 0);
  *port = sk__addr_port((const struct sockaddr *)&srv->bound);
  return SK_OK;
}

int sk_udp_server_address(const sk_udp_server *srv, char *buf, size_t size) {
  if (!srv || !buf)
    return SK_EINVAL;
  if (srv->state == UDP_CREATED)
    return sk__fail(SK_ESTATE, 0);
  return sk__addr_format((const struct sockaddr *)&srv->bound, srv->bound_len, buf, size);
}

/* Space for either kind of packet-info control message. */
typedef union pktinfo_control {
  char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
  struct cmsghdr align;
} pktinfo_control;

/* Turn the destination recorded on receipt into the source of the reply:
 * the same address, so that a client that connected its socket accepts the
 * reply. Returns the control length to send with. */
static size_t reply_control(struct msghdr *in, pktinfo_control *out) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(in); c; c = CMSG_NXTHDR(in, c)) {
    struct cmsghdr *o = (struct cmsghdr *)out->buf;
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      pi.ipi_spec_dst = pi.ipi_addr;
      pi.ipi_ifindex = 0; /* let routing choose the interface */
      o->cmsg_level = IPPROTO_IP;
      o->cmsg_type = IP_PKTINFO;
      o->cmsg_len = CMSG_LEN(sizeof pi);
      memcpy(CMSG_DATA(o), &pi, sizeof pi);
      return CMSG_SPACE(sizeof pi);
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      /* Keep the interface index: link-local sources need it. */
      o->cmsg_level = IPPROTO_IPV6;
      o->cmsg_type = IPV6_PKTINFO;
      o->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
      memcpy(CMSG_DATA(o), CMSG_DATA(c), sizeof(struct in6_pktinfo));
      return CMSG_SPACE(sizeof(struct in6_pktinfo));
    }
  }
  return 0;
}

static void send_reply(sk_udp_server *srv, struct msghdr *in, const char *reply) {
  size_t len = strlen(reply);
  if (in->msg_namelen <= sizeof(sa_family_t)) {
    /* An unbound UNIX datagram sender has no address to answer. */
    count(srv, SK_STAT_DROPS_NO_ADDRESS, 1);
    log_drop(srv, in->msg_name, in->msg_namelen, "reply dropped: sender has no address");
    return;
  }
  struct iovec iov = {.iov_base = (void *)reply, .iov_len = len};
  pktinfo_control control;
  struct msghdr out = {
      .msg_name = in->msg_name, .msg_namelen = in->msg_namelen, .msg_iov = &iov, .msg_iovlen = 1};
  if (srv->pktinfo) {
    size_t clen = reply_control(in, &control);
    if (clen) {
      out.msg_control = control.buf;
      out.msg_controllen = clen;
    }
  }
  ssize_t n;
  do
    n = sendmsg(srv->fd, &out, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n >= 0) {
    count(srv, SK_STAT_MESSAGES_OUT, 1);
    count(srv, SK_STAT_BYTES_OUT, (uint64_t)n);
  } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
    count(srv, SK_STAT_DROPS_WOULD_BLOCK, 1);
    log_drop(srv, in->msg_name, in->msg_namelen, "reply dropped: send buffer full");
  } else if (errno == EMSGSIZE) {
    count(srv, SK_STAT_DROPS_TOO_LARGE, 1);
    log_drop(srv, in->msg_name, in->msg_namelen, "reply dropped: too large for a datagram");
  } else {
    count(srv, SK_STAT_DROPS_SEND_ERROR, 1);
    log_drop(srv, in->msg_name, in->msg_namelen, "reply dropped: send failed");
  }
}

/* Receive and serve datagrams until the socket is empty or a stop is asked
 * for. Returns SK_OK, or SK_EREAD on a receive error that is not transient. */
static int serve_ready(sk_udp_server *srv, char *buf) {
  while (!atomic_load_explicit(&srv->stop_requested, memory_order_relaxed)) {
    struct sockaddr_storage from;
    pktinfo_control control;
    struct iovec iov = {.iov_base = buf, .iov_len = (size_t)srv->max_message};
    struct msghdr msg = {.msg_name = &from,
                         .msg_namelen = sizeof from,
                         .msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = srv->pktinfo ? control.buf : NULL,
                         .msg_controllen = srv->pktinfo ? sizeof control.buf : 0};
    ssize_t n = recvmsg(srv->fd, &msg, MSG_DONTWAIT);
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
    if (msg.msg_namelen < sizeof(sa_family_t)) {
      /* An unbound UNIX sender may come with no address at all: record it
       * as the unnamed UNIX address so that it can be shown as "unix:". */
      from.ss_family = AF_UNIX;
      msg.msg_namelen = sizeof(sa_family_t);
    }
    if (msg.msg_flags & MSG_TRUNC) {
      count(srv, SK_STAT_DROPS_TRUNCATED, 1);
      log_drop(srv, msg.msg_name, msg.msg_namelen, "larger than the maximum message size");
      continue;
    }
    if (memchr(buf, '\0', (size_t)n)) {
      count(srv, SK_STAT_DROPS_NUL, 1);
      log_drop(srv, msg.msg_name, msg.msg_namelen, "contains a NUL byte");
      continue;
    }
    buf[n] = '\0';
    count(srv, SK_STAT_MESSAGES_IN, 1);
    count(srv, SK_STAT_BYTES_IN, (uint64_t)n);

    sk__peer_set_addr(msg.msg_name, msg.msg_namelen);
    const char *reply = srv->service(buf, srv->user);
    if (reply)
      send_reply(srv, &msg, reply);
    sk__peer_clear();
  }
  return SK_OK;
}

int sk_udp_server_run(sk_udp_server *srv) {
  if (!srv)
    return SK_EINVAL;
  if (srv->state == UDP_RUNNING || srv->state == UDP_DONE || atomic_load(&srv->stop_requested))
    return sk__fail(SK_ESTATE, 0);
  if (srv->state == UDP_CREATED) {
    int rc = sk_udp_server_listen(srv);
    if (rc != SK_OK)
      return rc;
  }
  srv->state = UDP_RUNNING;

  /* One extra byte for the NUL that ends the request string. */
  char *buf = malloc((size_t)srv->max_message + 1);
  if (!buf) {
    srv->state = UDP_DONE;
    return sk__fail(SK_ENOMEM, ENOMEM);
  }
  int rc = SK_OK;
  struct pollfd fds[2] = {{.fd = srv->fd, .events = POLLIN}, {.fd = srv->wakefd, .events = POLLIN}};
  while (rc == SK_OK && !atomic_load(&srv->stop_requested)) {
    int n = poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      rc = sk__fail(SK_ESYS, errno);
      break;
    }
    if (fds[0].revents & (POLLIN | POLLERR))
      rc = serve_ready(srv, buf);
  }
  free(buf);
  /* Close now so that datagrams stop queueing for a server that is done;
   * the bound address stays readable. */
  sk__close(srv->fd);
  srv->fd = -1;
  srv->state = UDP_DONE;
  sk__log(SK_LOG_INFO, "udp: stopped");
  return rc;
}

int sk_udp_server_stop(sk_udp_server *srv) {
  if (!srv)
    return SK_EINVAL;
  /* Only a lock-free atomic store and write(2): both async-signal-safe. */
  atomic_store(&srv->stop_requested, true);
  sk__wake(srv->wakefd);
  return SK_OK;
}

int sk_udp_server_stat(const sk_udp_server *srv, int stat, uint64_t *out) {
  if (!srv || !out || stat <= 0 || stat >= UDP_STAT_COUNT)
    return SK_EINVAL;
  *out = atomic_load_explicit(&((sk_udp_server *)srv)->stats[stat], memory_order_relaxed);
  return SK_OK;
}

void sk_udp_server_destroy(sk_udp_server *srv) {
  if (!srv)
    return;
  sk__close(srv->fd);
  sk__close(srv->wakefd);
  if (srv->unlink_path)
    sk__unlink_unix_path(&srv->addr);
  free(srv);
}
