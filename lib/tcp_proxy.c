/* tcp_proxy.c -- the TCP server's PROXY protocol: which senders are
 * trusted, the header each connection begins with (split over any number
 * of reads, in the event loop or on a connection's own thread), and the
 * client it names. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"
#include "tcp.h"

/* ---- trusted senders --------------------------------------------------- */

int sk__tcp_proxy_trust(sk_tcp_server *srv, const char *cidrs) {
  if (!cidrs) {
    free(srv->trusted);
    srv->trusted = NULL;
    srv->ntrusted = 0;
    return SK_OK;
  }
  sk_cidr *list;
  size_t count, bad_len;
  const char *bad;
  int rc = sk__cidr_parse(cidrs, &list, &count, &bad, &bad_len);
  if (rc == SK_EADDR) {
    if (bad_len)
      sk__log(SK_LOG_WARN,
              "sk_tcp_server_set_proxy_trusted: \"%.*s\": not an IPv4 or IPv6 address with "
              "an optional /prefix (\"10.0.0.0/8\", \"::1\"), nor \"unix\"",
              (int)(bad_len > 80 ? 80 : bad_len), bad);
    else
      sk__log(SK_LOG_WARN,
              "sk_tcp_server_set_proxy_trusted: \"%.80s\": the list names no "
              "sender (pass NULL to trust every sender)",
              cidrs);
  }
  if (rc != SK_OK)
    return sk__fail(rc, rc == SK_ENOMEM ? ENOMEM : 0);
  free(srv->trusted);
  srv->trusted = list;
  srv->ntrusted = count;
  return SK_OK;
}

bool sk__tcp_proxy_admit(sk_tcp_server *srv, const struct sockaddr_storage *peer,
                         socklen_t peer_len) {
  if (sk__cidr_match(srv->trusted, srv->ntrusted, (const struct sockaddr *)peer, peer_len))
    return true;
  sk__tcp_count(srv, SK_STAT_PROXY_REJECTED, 1);
  if (sk__log_enabled(SK_LOG_WARN) && sk__log_limited(&srv->error_log)) {
    char who[SK__ADDR_TEXT_MAX] = "unknown";
    (void)sk__addr_format((const struct sockaddr *)peer, peer_len, who, sizeof who);
    sk__log(SK_LOG_WARN,
            "tcp: connection from %s: not a trusted proxy "
            "(sk_tcp_server_set_proxy_trusted); closed",
            who);
  }
  return false;
}

/* ---- the header -------------------------------------------------------- */

static int allowed_versions(const sk_tcp_server *srv) {
  return (int)srv->proxy_protocol; /* SK_PROXY_V1/V2/ANY are the bit sets */
}

void sk__tcp_proxy_error(sk_tcp_server *srv, int fd, const char *what) {
  sk__tcp_count(srv, SK_STAT_PROXY_ERRORS, 1);
  sk__tcp_warn_conn(srv, fd, what);
}

/* No memory to keep a header or what it said: the connection ends. */
static void out_of_memory(sk_tcp_server *srv, int fd) {
  sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
  sk__tcp_warn_conn(srv, fd, "out of memory for its PROXY header; closing");
}

static const char *decode_error(int rc) {
  return rc == SK_EMSGSIZE ? "its PROXY header is longer than 4096 bytes; closing"
                           : "it did not begin with a valid PROXY header of an allowed "
                             "version (SK_OPT_PROXY_PROTOCOL); closing";
}

/* What the header said beyond the proxy itself: the client it names and
 * the TLVs a service may ask for, each followed by a NUL; NULL with *ok
 * for a header that says nothing more (LOCAL or UNKNOWN, no TLVs kept). */
static sk_origin *make_origin(const sk_proxy_header *h, const char *buf, bool *ok) {
  *ok = true;
  if (h->local && !h->unique_id_at && !h->authority_at)
    return NULL;
  sk_origin head = {.unique_id_len = (uint16_t)h->unique_id_len,
                    .authority_len = (uint16_t)h->authority_len,
                    .has_unique_id = h->unique_id_at != 0,
                    .has_authority = h->authority_at != 0};
  sk_origin *o = sk__malloc(SK_ALLOC_TABLE, sk__origin_size(&head));
  if (!o) {
    *ok = false;
    return NULL;
  }
  *o = head;
  if (!h->local) {
    o->len = h->src_len;
    memcpy(&o->addr, &h->src, h->src_len);
  }
  char *tlv = o->tlv;
  memcpy(tlv, buf + h->unique_id_at, h->unique_id_len);
  tlv[h->unique_id_len] = '\0';
  tlv += h->unique_id_len + 1;
  memcpy(tlv, buf + h->authority_at, h->authority_len);
  tlv[h->authority_len] = '\0';
  return o;
}

/* Room in the loop's table for fd's origin. */
static bool grow_origins(sk_tcp_io *io, int fd) {
  if (fd < io->origins_cap)
    return true;
  int cap = io->origins_cap ? io->origins_cap : 64;
  while (cap <= fd)
    cap *= 2;
  sk_origin **t = sk__realloc(SK_ALLOC_TABLE, io->origins, (size_t)cap * sizeof *t);
  if (!t)
    return false;
  memset(t + io->origins_cap, 0, (size_t)(cap - io->origins_cap) * sizeof *t);
  io->origins = t;
  io->origins_cap = cap;
  return true;
}

void sk__tcp_proxy_forget(sk_tcp_io *io, int fd) {
  if (fd < io->origins_cap) {
    free(io->origins[fd]);
    io->origins[fd] = NULL;
  }
}

void sk__tcp_proxy_free(sk_tcp_io *io) {
  for (int fd = 0; fd < io->origins_cap; fd++)
    free(io->origins[fd]);
  free(io->origins);
  io->origins = NULL;
  io->origins_cap = 0;
}

int sk__tcp_proxy_take(sk_tcp_io *io, int fd, sk_conn *c, size_t *nread) {
  sk_tcp_server *srv = io->srv;
  size_t n = *nread;
  if (n == 0) {
    /* A proxy's plain connect check sends nothing: not an error. */
    if (c->in)
      sk__tcp_proxy_error(srv, fd, "the stream ended inside its PROXY header; closing");
    return -1;
  }
  const char *buf = io->in;
  size_t len = n;
  if (c->in) {
    if (sk__buf_append(&c->in, io->in, n) != 0)
      goto out_of_memory;
    buf = sk__buf_bytes(c->in);
    len = c->in->len;
  }
  sk_proxy_header h;
  int rc = sk__proxy_decode(buf, len, allowed_versions(srv), &h);
  if (rc == 0) {
    /* A valid beginning: wait for the rest (the decoder refuses a v1 line
     * past 107 bytes and a v2 block past 4096, so this is bounded). */
    if (!c->in && sk__buf_append(&c->in, io->in, n) != 0)
      goto out_of_memory;
    return 0;
  }
  if (rc < 0) {
    sk__tcp_proxy_error(srv, fd, decode_error(rc));
    return -1;
  }
  bool ok;
  sk_origin *o = make_origin(&h, buf, &ok);
  if (!ok || (o && !grow_origins(io, fd))) {
    free(o);
    goto out_of_memory;
  }
  if (o)
    io->origins[fd] = o;
  c->flags &= ~(uint32_t)SK_CONN_PROXY_WAIT;
  sk__conn_set_timer(&io->conns, fd, SK_LIST_IDLE, sk__loop_now(&io->loop));
  /* The bytes after the header are the first messages. */
  if (c->in) {
    sk__buf_consume(&c->in, h.length);
    *nread = 0;
  } else {
    memmove(io->in, io->in + h.length, n - h.length);
    *nread = n - h.length;
  }
  return 1;

out_of_memory:
  out_of_memory(srv, fd);
  return -1;
}

void sk__tcp_proxy_expired(sk_tcp_server *srv, int fd) {
  char what[120];
  snprintf(what, sizeof what, "no complete PROXY header within %lld ms; closing",
           srv->proxy_timeout_ms);
  sk__tcp_proxy_error(srv, fd, what);
}

bool sk__tcp_proxy_read_blocking(sk_tcp_server *srv, int fd, int stopfd, sk_origin **origin) {
  /* Only the header's bytes are taken off the socket: what has come is
   * peeked at, and read once it is known to be the header's. What follows
   * the header then reaches the serving loop's own reads exactly as if no
   * proxy were there (RAW framing, where a read is a message, counts on
   * it). Bytes of a header not yet whole are all the header's, so they are
   * read at once, and the wait for more never spins on them. */
  char buf[SK__PROXY_V2_MAX];
  size_t have = 0;
  *origin = NULL;
  int64_t deadline = sk__clock_ms() + srv->proxy_timeout_ms;
  for (;;) {
    int r = sk__wait_fd(fd, POLLIN, stopfd, deadline);
    if (r == 0)
      sk__tcp_proxy_expired(srv, fd);
    if (r <= 0)
      return false; /* timed out (counted) or stopped */
    ssize_t n = recv(fd, buf + have, sizeof buf - have, MSG_PEEK);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (n <= 0) {
      if (n < 0)
        sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
      else if (have)
        sk__tcp_proxy_error(srv, fd, "the stream ended inside its PROXY header; closing");
      return false;
    }
    sk_proxy_header h;
    int rc = sk__proxy_decode(buf, have + (size_t)n, allowed_versions(srv), &h);
    if (rc < 0) {
      sk__tcp_proxy_error(srv, fd, decode_error(rc));
      return false;
    }
    /* The decoder never asks for more than SK__PROXY_V2_MAX bytes. */
    size_t take = rc == 1 ? h.length - have : (size_t)n;
    if (recv(fd, buf + have, take, 0) != (ssize_t)take) {
      sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
      return false;
    }
    have += take;
    if (rc == 0)
      continue;
    bool ok;
    *origin = make_origin(&h, buf, &ok);
    if (!ok) {
      out_of_memory(srv, fd);
      return false;
    }
    return true;
  }
}
