/* tcp_serve.c -- the TCP serving path every model shares: messages of a
 * buffer decoded, served and their replies framed, and what bad input logs. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "tcp.h"

void sk__tcp_log_conn(int level, int fd, const char *what) {
  if (!sk__log_enabled(level))
    return;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char peer[SK__ADDR_TEXT_MAX] = "unknown";
  if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
    sk__addr_format((struct sockaddr *)&ss, len, peer, sizeof peer);
  sk__log(level, "tcp: connection from %s: %s", peer, what);
}

/* Log a warning about one client's bad input, within the server's rate. */
void sk__tcp_warn_conn(sk_tcp_server *srv, int fd, const char *what) {
  if (!sk__log_enabled(SK_LOG_WARN))
    return;
  int allowed = sk__log_limited(&srv->error_log);
  if (!allowed)
    return;
  char line[160];
  snprintf(line, sizeof line, "%s%s", what,
           allowed == 2 ? " (further such lines this second not logged)" : "");
  sk__tcp_log_conn(SK_LOG_WARN, fd, line);
}

void sk__tcp_protocol_error(sk_tcp_server *srv, int fd, int rc) {
  bool oversize = rc == SK_EMSGSIZE;
  sk__tcp_count(srv, oversize ? SK_STAT_DROPS_TRUNCATED : SK_STAT_DROPS_NUL, 1);
  sk__tcp_warn_conn(srv, fd,
                    oversize ? "message larger than the maximum; closing"
                             : "NUL byte in a message; closing");
}

/* Run the service on one payload, already a C string, and queue its reply.
 * 0, or why the reply could not be queued (as sk__tcp_frame_reply). */
static inline int serve_one(sk_tcp_server *srv, int framing, bool count_first, const char *payload,
                            size_t len, sk_buf **out, sk_tally *tally) {
  tally->in++;
  tally->bytes_in += len;
  if (count_first)
    sk__tcp_flush_tally(srv, tally);
  const char *reply = srv->core.service(payload, srv->core.user);
  /* Copied into *out before any user code runs again on this thread. */
  int rc = 0;
  if (reply) {
    rc = sk__tcp_frame_reply(srv, framing, reply, strlen(reply), out, tally);
    if (srv->core.reply_free)
      srv->core.reply_free((void *)reply);
  }
  return rc;
}

/* Messages decoded ahead of serving them, at most. */
#define SERVE_BATCH 32

/* The general loop of sk__tcp_serve_all: LENGTH and RAW framing, and LINE
 * where each request is counted before its service runs (serve_lines
 * below is the event loop's LINE path).
 *
 * Requests become C strings in place, without a copy: the byte after each
 * payload is ours to overwrite (the newline, the next message's header, or
 * the spare byte after a read). Messages are decoded in batches before any
 * is served, for two reasons: a header overwritten by the NUL before it has
 * been read would be lost, and a reply that is the request itself (an echo)
 * is measured by strlen right after the NUL is stored -- a wide load that
 * overlaps a byte store still in flight stalls until the store completes
 * (bench/profile found that stall to be strlen's largest cost). The bytes
 * the NULs replaced are restored for every message not consumed.
 *
 * Serving stops after the message whose reply brings *out to `limit`
 * bytes, so one read of pipelined requests cannot queue more than one
 * reply beyond what the caller allows. */
static inline __attribute__((always_inline)) int
serve_run(sk_tcp_server *srv, int framing, bool nul_free, bool count_first, char *buf, size_t len,
          size_t limit, size_t *used, sk_buf **out, sk_tally *tally) {
  size_t max = (size_t)srv->core.max_message;
  size_t done = 0;
  int rc = 1;
  while (rc == 1 && done < len) {
    size_t at[SERVE_BATCH], length[SERVE_BATCH], next[SERVE_BATCH];
    char saved[SERVE_BATCH];
    size_t pos = done;
    int n = 0;
    while (n < SERVE_BATCH && pos < len) {
      sk_frame f;
      rc = nul_free ? sk__frame_decode_nul_free(framing, buf + pos, len - pos, max, &f)
                    : sk__frame_decode(framing, buf + pos, len - pos, max, &f);
      if (rc != 1)
        break;
      at[n] = pos + f.offset;
      length[n] = f.length;
      pos += f.consumed;
      next[n] = pos;
      n++;
    }
    if (n == 0)
      break;
    for (int i = 0; i < n; i++) {
      saved[i] = buf[at[i] + length[i]];
      buf[at[i] + length[i]] = '\0';
    }
    for (int i = 0; i < n; i++) {
      int st = serve_one(srv, framing, count_first, buf + at[i], length[i], out, tally);
      if (st != 0 || sk__buf_len(*out) >= limit) {
        for (int k = i; k < n; k++)
          buf[at[k] + length[k]] = saved[k];
        *used = next[i];
        return st != 0 ? st : SK_TCP_SERVE_FULL;
      }
    }
    buf[at[n - 1] + length[n - 1]] = saved[n - 1];
    done = pos;
  }
  *used = done;
  return rc < 0 ? rc : 0;
}

/* True if the reply lies inside the request's bytes: the request itself,
 * or a part of it that runs to its end. Such a reply ends where the
 * request ends (the request holds no NUL before its terminator, and no
 * newline), so it needs neither strlen nor the newline check; any other
 * reply is measured. */
static inline bool in_request(const char *reply, const char *payload, size_t len) {
  uintptr_t r = (uintptr_t)reply, p = (uintptr_t)payload;
  return r >= p && r <= p + len;
}

static inline size_t reply_length(const char *reply, const char *payload, size_t len) {
  return in_request(reply, payload, len) ? (size_t)((uintptr_t)payload + len - (uintptr_t)reply)
                                         : strlen(reply);
}

/* What next_line found when it is not a whole line: the checked
 * decoder's verdict on the line at p -- more bytes are needed (0), or its
 * protocol error. Out of line, so that the common case stays lean. */
static __attribute__((noinline)) int line_trouble(const char *p, size_t left, size_t max) {
  sk_frame f;
  int rc = sk__frame_decode(SK_FRAME_LINE, p, left, max, &f);
  assert(rc != 1); /* no NUL-free line ends within max + 2 bytes */
  return rc;
}

/* The offset from pos of the '\n' that ends the first line of buf[pos,
 * len) -- buf[len] is '\0' -- or, negative, what line_trouble says (0
 * becomes SK__LINE_MORE). The NUL check is the same scan: strchrnul stops
 * at '\n' or at a NUL, the terminator or one inside the data. */
#define SK__LINE_MORE (-1000)
static inline ptrdiff_t next_line(const char *buf, size_t pos, size_t len, size_t max,
                                  size_t window) {
  const char *p = buf + pos;
  size_t d = (size_t)(strchrnul(p, '\n') - p);
  if (p[d] == '\n' && d < window)
    return (ptrdiff_t)d;
  int rc = line_trouble(p, len - pos, max);
  return rc ? rc : SK__LINE_MORE;
}

/* sk__tcp_serve_all for LINE framing in the event loop, the common case,
 * kept lean: what stays in memory across a service call (the output
 * buffer's fill, the counts) is kept in locals and written back at the
 * end. Each request is made a C string where its line ends, and the next
 * line is found before the service runs: the scan gives the NUL store
 * time to complete before anything (strlen of an echoed reply) loads the
 * bytes again, which would stall otherwise. */
static int serve_lines(sk_tcp_server *srv, char *buf, size_t len, size_t limit, size_t *used,
                       sk_buf **out, sk_tally *tally) {
  const sk_service service = srv->core.service;
  void *const user = srv->core.user;
  const sk_reply_free reply_free = srv->core.reply_free;
  const size_t max = (size_t)srv->core.max_message;
  const size_t window = max + 2; /* max is at most 64 MiB */
  uint64_t served = 0, bytes_in = 0, replies = 0;
  /* The output buffer as locals: where its free space starts and ends. */
  sk_buf *ob = *out;
  size_t start = ob ? ob->len : 0, filled = start;
  size_t space = ob ? ob->cap - ob->head : 0; /* filled never passes it */
  char *base = ob ? ob->data + ob->head : NULL;
  size_t done = 0;
  int rc = 0;
  buf[len] = '\0';
  ptrdiff_t next = next_line(buf, 0, len, max, window);
  while (next >= 0) {
    size_t at = done, end = at + (size_t)next;
    size_t n = end > at && buf[end - 1] == '\r' ? end - at - 1 : end - at;
    if (n > max) {
      rc = SK_EMSGSIZE;
      break;
    }
    done = end + 1;
    buf[at + n] = '\0';
    next = done < len ? next_line(buf, done, len, max, window) : SK__LINE_MORE;
    served++;
    bytes_in += n;
    const char *reply = service(buf + at, user);
    if (reply) {
      /* Copied into *out before any user code runs again on this thread. */
      size_t rlen = reply_length(reply, buf + at, n);
      if (!in_request(reply, buf + at, n) && memchr(reply, '\n', rlen)) {
        if (reply_free)
          reply_free((void *)reply);
        rc = SK_TCP_MULTILINE; /* it would be read as several replies */
        break;
      }
      char *dst;
      if (rlen < space - filled) { /* room for the reply and its '\n' */
        dst = base + filled;
      } else {
        if (ob)
          ob->len = (uint32_t)filled;
        dst = rlen < UINT32_MAX ? sk__buf_reserve(out, rlen + 1) : NULL;
        if (!dst) {
          sk__tcp_count(srv, SK_STAT_DROPS_TOO_LARGE, 1);
          if (reply_free)
            reply_free((void *)reply);
          rc = SK_ENOMEM;
          break;
        }
        ob = *out;
        space = ob->cap - ob->head;
        base = ob->data + ob->head;
      }
      memcpy(dst, reply, rlen);
      dst[rlen] = '\n';
      filled += rlen + 1;
      replies++;
      if (reply_free)
        reply_free((void *)reply);
    }
    if (filled >= limit) {
      rc = SK_TCP_SERVE_FULL;
      break;
    }
  }
  if (next < 0 && next != SK__LINE_MORE && rc == 0)
    rc = (int)next; /* the protocol error of the line at `done` */
  if (ob)
    ob->len = (uint32_t)filled;
  tally->in += served;
  tally->bytes_in += bytes_in;
  tally->out += replies;
  tally->bytes_out += filled - start - replies; /* each reply added its '\n' */
  *used = done;
  return rc; /* 0, SK_TCP_SERVE_FULL or an error */
}

int sk__tcp_serve_all(sk_tcp_server *srv, int fd, bool count_first, char *buf, size_t len,
                      size_t limit, size_t *used, sk_buf **out, sk_tally *tally, sk_peer *peer) {
  int framing = (int)srv->framing;
  int rc;
  sk__peer_set_fd(peer, fd); /* for every message of this read */
  if (framing == SK_FRAME_LINE && !count_first) {
    rc = serve_lines(srv, buf, len, limit, used, out, tally);
  } else {
    /* One search for NUL over everything this read brought, instead of
     * one per message; only a buffer that holds one pays for the checked
     * decoder. */
    bool nul_free = memchr(buf, '\0', len) == NULL;
    rc = serve_run(srv, framing, nul_free, count_first, buf, len, limit, used, out, tally);
  }
  sk__peer_clear(peer);
  return rc;
}

void sk__tcp_end_of_stream(sk_tcp_server *srv, int fd, sk_buf **in) {
  if (sk__buf_len(*in) == 0)
    return;
  sk__tcp_count(srv, SK_STAT_DROPS_INCOMPLETE, 1);
  sk__tcp_warn_conn(srv, fd,
                    srv->framing == SK_FRAME_LINE
                        ? "the stream ended inside a line (no newline after it); dropped"
                        : "the stream ended inside a message; dropped");
  free(*in);
  *in = NULL;
}

void sk__tcp_serve_failed(sk_tcp_server *srv, int fd, int rc) {
  if (rc == SK_TCP_MULTILINE) {
    sk__tcp_count(srv, SK_STAT_DROPS_MULTILINE, 1);
    sk__tcp_warn_conn(srv, fd,
                      "a reply contains a newline, which LINE framing would split into several "
                      "replies; it is refused and the connection closed (use LENGTH framing)");
    return;
  }
  if (rc == SK_ENOMEM) {
    /* frame_reply counted the reply. */
    sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
    sk__tcp_warn_conn(srv, fd, "a reply could not be queued (out of memory); closing");
    return;
  }
  sk__tcp_protocol_error(srv, fd, rc);
}
