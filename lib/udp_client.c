/* udp_client.c -- UDP client: one connected socket, requests sent again on
 * a timer, and stale or foreign datagrams kept out of replies. The string
 * calls and their binary twins (*_bytes) share one path. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "client.h"
#include "resolve.h"

/* How long the addresses of one lookup are used while requests succeed.
 * getaddrinfo does not say how long a record may be kept; a minute follows
 * a moved name soon enough without a lookup per request. */
#define LOOKUP_MAX_AGE_MS 60000

struct sk_udp_client {
  sk_client_base base;    /* first: sk__client_create fills it */
  sk_addr_list addrs;     /* from the last lookup that succeeded */
  size_t current;         /* the address fd is, or will be, connected to */
  long long looked_up_ms; /* when the name was last looked up */
  size_t refusals;        /* in a row since that lookup or the last reply */
  bool lookup_due;        /* a request failed, or every address refused */
  int attempts;           /* transmissions of the last request */
  char *buf;              /* the last datagram received, followed by a NUL */
  size_t buf_len;         /* its length, that NUL not counted */
};

/* Errors that say the server is not there (ICMP port or host unreachable,
 * no socket at a UNIX path, a UNIX peer gone): worth trying again later or
 * at another address, unlike the rest. */
static bool is_refusal(int err) {
  return err == ECONNREFUSED || err == ENOENT || err == EHOSTUNREACH || err == ENETUNREACH ||
         err == EHOSTDOWN || err == ECONNRESET;
}

static bool same_addr(const sk_addr *a, const sk_addr *b) {
  return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Look the name up when it never was, when the last lookup is older than
 * LOOKUP_MAX_AGE_MS, or when the server seems gone from where it was (a
 * request failed, or every address refused in turn): names move. The
 * socket is kept while its address is still among the new ones, so that
 * replies on their way are not lost. A failed lookup keeps the addresses
 * of the last one, if any: a name server that is down for a while should
 * not stop a client that knows where its server is. */
static int refresh(sk_udp_client *c) {
  long long now = sk__clock_ms();
  if (c->addrs.count > 0 && !c->lookup_due && now - c->looked_up_ms < LOOKUP_MAX_AGE_MS)
    return SK_OK;
  sk_addr_list fresh;
  int rc = sk__resolve(c->base.address, SOCK_DGRAM, &fresh);
  c->looked_up_ms = now;
  c->lookup_due = false;
  c->refusals = 0;
  if (rc != SK_OK)
    return c->addrs.count > 0 ? SK_OK : rc;
  size_t keep = fresh.count;
  for (size_t i = 0; c->base.fd >= 0 && i < fresh.count && keep == fresh.count; i++)
    if (same_addr(&fresh.items[i], &c->addrs.items[c->current]))
      keep = i;
  if (c->base.fd >= 0 && keep == fresh.count) {
    sk__close(c->base.fd);
    c->base.fd = -1;
  }
  c->addrs = fresh;
  c->current = keep < fresh.count ? keep : 0;
  return SK_OK;
}

/* Make the socket and connect it to the current address. Connecting makes
 * the kernel drop datagrams from every other sender, and report refusals. */
static int open_socket(sk_udp_client *c) {
  const sk_addr *a = &c->addrs.items[c->current];
  int fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return sk__fail(SK_ESOCKET, errno);
  int rc;
  /* A UNIX server can only answer a sender that has an address: binding
   * just the family asks Linux for an abstract one of its choosing. */
  struct sockaddr_un self = {.sun_family = AF_UNIX};
  if (a->ss.ss_family == AF_UNIX &&
      bind(fd, (const struct sockaddr *)&self, sizeof(sa_family_t)) != 0) {
    rc = sk__fail(SK_EBIND, errno);
    goto fail;
  }
  if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0) {
    rc = sk__fail(SK_ECONNECT, errno);
    goto fail;
  }
  c->base.fd = fd;
  return SK_OK;
fail:
  sk__close(fd);
  return rc;
}

/* The server refused, or is not there: drop the socket (on a UNIX path it
 * may point at a server that has since restarted) and move on to the next
 * address; once all of them have refused, look the name up again. */
static void refused(sk_udp_client *c) {
  if (sk__log_enabled(SK_LOG_INFO)) {
    int os_error = sk_last_os_error();
    sk__log(SK_LOG_INFO, "udp client: %s refused a datagram: %s", c->base.address,
            os_error ? strerror(os_error) : "cannot connect");
  }
  sk__close(c->base.fd);
  c->base.fd = -1;
  if (c->addrs.count > 0)
    c->current = (c->current + 1) % c->addrs.count;
  if (++c->refusals >= c->addrs.count)
    c->lookup_due = true;
}

/* Send the message once, opening the socket if needed. A datagram the
 * kernel has no room for counts as sent and lost, as the network may lose
 * one. */
static int transmit(sk_udp_client *c, const char *m, size_t len) {
  int rc;
  if ((rc = refresh(c)) != SK_OK || (c->base.fd < 0 && (rc = open_socket(c)) != SK_OK))
    return rc;
  for (;;) {
    if (send(c->base.fd, m, len, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
      return SK_OK;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
      return SK_OK;
    if (errno == EMSGSIZE)
      return sk__fail(SK_EMSGSIZE, errno);
    if (is_refusal(errno))
      return sk__fail(SK_ECONNECT, errno);
    if (errno != EINTR)
      return sk__fail(SK_EWRITE, errno);
  }
}

/* Throw away the datagrams already queued, such as a reply that came after
 * its request gave up, so that none is taken for the reply to the next one.
 * Refusals of earlier datagrams are old news and go too. */
static int drain(sk_udp_client *c) {
  char sink[64]; /* without MSG_TRUNC the rest of a longer datagram is dropped */
  for (;;) {
    if (recv(c->base.fd, sink, sizeof sink, MSG_DONTWAIT) >= 0)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return SK_OK;
    if (errno != EINTR && !is_refusal(errno))
      return sk__fail(SK_EREAD, errno);
  }
}

/* Wait until `deadline` for one datagram and leave it in buf. A `text`
 * datagram, one for the string calls, must not contain a NUL (SK_EPROTO). */
static int receive(sk_udp_client *c, long long deadline, bool text) {
  /* The largest datagram a client accepts (SK_OPT_MAX_MESSAGE's maximum):
   * the buffer has this size once and for all, so it never moves while a
   * request pointing into it (a previous reply) is being sent. */
  if (!c->buf && !(c->buf = malloc(SK__UDP_MAX_PAYLOAD + 1)))
    return sk__fail(SK_ENOMEM, ENOMEM);
  size_t max = (size_t)c->base.opts.max_message;
  for (;;) {
    int ready = sk__wait_fd(c->base.fd, POLLIN, -1, deadline);
    if (ready <= 0)
      return ready == 0 ? sk__fail(SK_ETIMEDOUT, 0) : sk__fail(SK_EREAD, errno);
    /* With MSG_TRUNC recv returns the datagram's whole length, so a reply
     * that did not fit is reported instead of passed on cut short. */
    ssize_t n = recv(c->base.fd, c->buf, max, MSG_TRUNC | MSG_DONTWAIT);
    if (n >= 0) {
      if ((size_t)n > max)
        return sk__fail(SK_EMSGSIZE, 0);
      if (text && memchr(c->buf, '\0', (size_t)n) != NULL)
        return sk__fail(SK_EPROTO, 0);
      c->buf[n] = '\0';
      c->buf_len = (size_t)n;
      c->refusals = 0;
      return SK_OK;
    }
    if (is_refusal(errno))
      return sk__fail(SK_ECONNECT, errno);
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return sk__fail(SK_EREAD, errno);
  }
}

/* Send, and send again each time a pause passes without a reply, until the
 * attempts or the time run out. After a refusal the next address is tried
 * at once; once every address has refused in turn, the next transmission
 * waits for its time. */
static int exchange(sk_udp_client *c, const char *m, size_t len, bool text) {
  int rc;
  if (c->base.fd >= 0 && (rc = drain(c)) != SK_OK)
    return rc;
  long long now = sk__clock_ms();
  long long deadline = now + c->base.opts.request_timeout_ms, next = now;
  size_t refusals = 0;
  rc = SK_ETIMEDOUT; /* what to report if the time runs out */
  c->attempts = 0;
  while (now < deadline) {
    int r = SK_ETIMEDOUT;
    if (now >= next && c->attempts < c->base.opts.attempts) {
      c->attempts++;
      next = now + sk__retry_pause(&c->base.opts, c->attempts, &c->base.rng);
      if ((r = transmit(c, m, len)) != SK_OK && r != SK_ECONNECT)
        return r;
      rc = r == SK_OK ? SK_ETIMEDOUT : r;
    }
    if (r != SK_ECONNECT && c->base.fd >= 0) {
      long long until = c->attempts < c->base.opts.attempts && next < deadline ? next : deadline;
      if ((r = receive(c, until, text)) == SK_OK)
        return SK_OK;
      if (r != SK_ETIMEDOUT && r != SK_ECONNECT)
        return r;
      if (r == SK_ECONNECT)
        rc = r;
    }
    if (r == SK_ECONNECT) {
      refused(c);
      if (c->attempts >= c->base.opts.attempts)
        break; /* refused for the last time: no reply can come */
      size_t naddrs = c->addrs.count ? c->addrs.count : 1;
      if (++refusals % naddrs != 0)
        next = sk__clock_ms();
      else
        sk__sleep_until(next < deadline ? next : deadline);
    }
    now = sk__clock_ms();
  }
  return rc == SK_ETIMEDOUT ? sk__fail(SK_ETIMEDOUT, 0) : rc;
}

int sk_udp_client_create(sk_udp_client **out, const char *address) {
  return sk__client_create((void **)out, sizeof **out, address, SK_CLIENT_UDP);
}

int sk_udp_client_set(sk_udp_client *c, int option, long long value) {
  if (!c)
    return sk__null_argument("sk_udp_client_set", "c");
  return sk__client_opt_set(&c->base.opts, SK_CLIENT_UDP, option, value, NULL);
}

int sk_udp_client_get(const sk_udp_client *c, int option, long long *value) {
  if (!c || !value)
    return sk__fail(SK_EINVAL, 0);
  return sk__client_opt_get(&c->base.opts, SK_CLIENT_UDP, option, value);
}

/* The worker of both request calls: arguments checked, `len` bytes at m. */
static int ask(sk_udp_client *c, const char *m, size_t len, bool text) {
  if (len > (size_t)c->base.opts.max_message)
    return sk__fail(SK_EMSGSIZE, 0);
  int rc = exchange(c, m, len, text);
  if (rc == SK_ETIMEDOUT || rc == SK_ECONNECT)
    c->lookup_due = true; /* the server may have moved: look again next time */
  return rc;
}

/* The worker of both send calls. */
static int send_one_way(sk_udp_client *c, const char *m, size_t len) {
  if (len > (size_t)c->base.opts.max_message)
    return sk__fail(SK_EMSGSIZE, 0);
  int rc = transmit(c, m, len);
  if (rc == SK_ECONNECT)
    refused(c);
  return rc;
}

/* The worker of both recv calls. */
static int recv_one_way(sk_udp_client *c, int timeout_ms, bool text) {
  if (c->base.fd < 0)
    return sk__fail(SK_ESTATE, 0);
  return receive(c, timeout_ms < 0 ? -1 : sk__clock_ms() + timeout_ms, text);
}

int sk_udp_client_request(sk_udp_client *c, const char *request, const char **reply) {
  if (reply)
    *reply = NULL;
  if (!c || !request || !reply)
    return sk__fail(SK_EINVAL, 0);
  int rc = ask(c, request, strlen(request), true);
  if (rc == SK_OK)
    *reply = c->buf;
  return rc;
}

int sk_udp_client_request_bytes(sk_udp_client *c, const void *req, size_t len, const void **reply,
                                size_t *reply_len) {
  if (reply)
    *reply = NULL;
  if (reply_len)
    *reply_len = 0;
  if (!c || (!req && len > 0) || !reply || !reply_len)
    return sk__fail(SK_EINVAL, 0);
  int rc = ask(c, req, len, false);
  if (rc == SK_OK) {
    *reply = c->buf;
    *reply_len = c->buf_len;
  }
  return rc;
}

int sk_udp_client_send(sk_udp_client *c, const char *message) {
  if (!c || !message)
    return sk__fail(SK_EINVAL, 0);
  return send_one_way(c, message, strlen(message));
}

int sk_udp_client_send_bytes(sk_udp_client *c, const void *msg, size_t len) {
  if (!c || (!msg && len > 0))
    return sk__fail(SK_EINVAL, 0);
  return send_one_way(c, msg, len);
}

int sk_udp_client_recv(sk_udp_client *c, const char **message, int timeout_ms) {
  if (message)
    *message = NULL;
  if (!c || !message)
    return sk__fail(SK_EINVAL, 0);
  int rc = recv_one_way(c, timeout_ms, true);
  if (rc == SK_OK)
    *message = c->buf;
  return rc;
}

int sk_udp_client_recv_bytes(sk_udp_client *c, const void **msg, size_t *len, int timeout_ms) {
  if (msg)
    *msg = NULL;
  if (len)
    *len = 0;
  if (!c || !msg || !len)
    return sk__fail(SK_EINVAL, 0);
  int rc = recv_one_way(c, timeout_ms, false);
  if (rc == SK_OK) {
    *msg = c->buf;
    *len = c->buf_len;
  }
  return rc;
}

int sk_udp_client_attempts(const sk_udp_client *c, int *attempts) {
  if (!c || !attempts)
    return sk__fail(SK_EINVAL, 0);
  *attempts = c->attempts;
  return SK_OK;
}

void sk_udp_client_destroy(sk_udp_client *c) {
  if (!c)
    return;
  sk__close(c->base.fd);
  free(c->base.address);
  free(c->buf);
  free(c);
}
