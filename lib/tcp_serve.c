/* tcp_serve.c -- the TCP serving path every model shares: messages of a
 * buffer decoded, served and their replies framed, and what bad input logs. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "scan.h"
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

/* The reply's length if it lies inside the request's bytes (the request
 * itself, or a part of it that runs to its end), or a value above len.
 * Such a reply ends where the request ends (the request holds no NUL
 * before its terminator, and no newline), so it needs neither strlen nor
 * the newline check; any other reply is measured. One subtraction: a
 * reply below the request gives more than len, one above it wraps around
 * to a larger value still. */
static inline size_t length_in_request(const char *reply, const char *payload, size_t len) {
  return (size_t)((uintptr_t)payload + len - (uintptr_t)reply);
}

/* next_line did not find a whole line of at most max bytes before the
 * '\n' at p[d]: a line of max payload bytes and its "\r\n" (d is then
 * returned), or the checked decoder's verdict on the line at p -- more
 * bytes are needed (SK__LINE_MORE), or its protocol error. Out of line,
 * so that the common case stays lean. */
#define SK__LINE_MORE (-1000)
static __attribute__((noinline)) ptrdiff_t line_slow(const char *p, size_t d, size_t left,
                                                     size_t max) {
  if (p[d] == '\n' && d == max + 1 && p[d - 1] == '\r')
    return (ptrdiff_t)d;
  sk_frame f;
  int rc = sk__frame_decode(SK_FRAME_LINE, p, left, max, &f);
  assert(rc != 1); /* no NUL-free line of max bytes ends at p[d] */
  return rc ? rc : SK__LINE_MORE;
}

typedef size_t (*stop_fn)(const char *p, const char *end);
typedef void (*copy_fn)(char *dst, const char *src, size_t n);

/* Where the replies of serve_lines go: the next byte of the output
 * buffer, and how far replies may go before anything else must be looked
 * at -- the buffer's room, or the limit, whichever comes first. Addresses
 * as integers, 0 while there is no buffer. */
typedef struct reply_pen {
  uintptr_t at;
  uintptr_t fast_end;
} reply_pen;

static void pen_set(reply_pen *pen, sk_buf *ob, size_t limit) {
  uintptr_t base = (uintptr_t)(ob->data + ob->head);
  size_t room = (size_t)(ob->cap - ob->head) + 1; /* a reply needs len + 1 bytes */
  pen->at = base + ob->len;
  pen->fast_end = base + (room < limit ? room : limit);
}

/* The reply that does not fit below pen->fast_end: make room for it, or
 * count it as too large (SK_ENOMEM), and say whether the output has
 * reached the limit (SK_TCP_SERVE_FULL). Out of line: it is rare. */
static __attribute__((noinline)) int put_reply_slow(sk_tcp_server *srv, sk_buf **out, size_t limit,
                                                    reply_pen *pen, const char *reply,
                                                    size_t rlen) {
  sk_buf *ob = *out;
  if (ob)
    ob->len = (uint32_t)(pen->at - (uintptr_t)(ob->data + ob->head));
  char *dst = rlen < UINT32_MAX ? sk__buf_reserve(out, rlen + 1) : NULL;
  if (!dst) {
    sk__tcp_count(srv, SK_STAT_DROPS_TOO_LARGE, 1);
    return SK_ENOMEM;
  }
  memcpy(dst, reply, rlen);
  dst[rlen] = '\n';
  ob = *out;
  ob->len += (uint32_t)rlen + 1;
  pen_set(pen, ob, limit);
  return ob->len >= limit ? SK_TCP_SERVE_FULL : 0;
}

/* sk__tcp_serve_all for LINE framing in the event loop, the common case,
 * kept lean: as little as can be stays live across a service call (the
 * counts are derived at the end from the bytes consumed and the rare
 * requests without a reply; the output is a pen with one bound, and
 * anything beyond it goes out of line). `stop` (scan.h) finds where a
 * line ends and checks it for NUL in the same scan: it stops at '\n' or
 * at a NUL, the terminator buf[len] or one inside the data. A line of
 * d <= max bytes before its '\n' holds at most max payload bytes, with or
 * without '\r'; anything else asks line_slow. Each request is made a C
 * string where its line ends. `frees`, `stop` and `copy` are constant in
 * each copy of this function. */
static inline __attribute__((always_inline)) int
serve_lines_with(sk_tcp_server *srv, char *buf, size_t len, size_t limit, size_t *used,
                 sk_buf **out, sk_tally *tally, bool frees, stop_fn stop, copy_fn copy) {
  const sk_service service = srv->core.service;
  void *const user = srv->core.user;
  const size_t max = (size_t)srv->core.max_message;
  char *const end = buf + len + 1; /* past the terminator */
  /* served: requests; silent: of those, without a reply; cr: lines that
   * ended in "\r\n". */
  uint64_t served = 0, silent = 0, cr = 0;
  size_t start = sk__buf_len(*out);
  reply_pen pen = {0, 0};
  if (*out)
    pen_set(&pen, *out, limit);
  char *p = buf;
  int rc = 0;
  buf[len] = '\0';
  for (;;) {
    size_t d = stop(p, end);
    if (p[d] != '\n' || d > max) {
      if (p + d + 1 == end && d <= max + 1)
        break; /* the terminator: the rest is the start of a line */
      ptrdiff_t r = line_slow(p, d, (size_t)(end - 1 - p), max);
      if (r < 0) {
        if (r != SK__LINE_MORE)
          rc = (int)r; /* the protocol error of the line at p */
        break;
      }
    }
    size_t n = d;
    if (n > 0 && p[n - 1] == '\r') {
      n--;
      cr++;
    }
    char *payload = p;
    p += d + 1;
    payload[n] = '\0';
    served++;
    const char *reply = service(payload, user);
    if (!reply) {
      silent++;
      if (*out && pen.at - (uintptr_t)sk__buf_bytes(*out) >= limit) {
        rc = SK_TCP_SERVE_FULL; /* the output was at its limit already */
        break;
      }
      continue;
    }
    /* Copied into *out before any user code runs again on this thread. */
    size_t rlen = length_in_request(reply, payload, n);
    bool inside = rlen <= n;
    if (!inside)
      rlen = strlen(reply);
    int st = 0;
    if (!inside && memchr(reply, '\n', rlen)) {
      st = SK_TCP_MULTILINE; /* it would be read as several replies */
    } else if (pen.at + rlen + 1 < pen.fast_end) {
      char *dst = (char *)pen.at;
      copy(dst, reply, rlen);
      dst[rlen] = '\n';
      pen.at += rlen + 1;
    } else {
      reply_pen moved = pen; /* the pen itself stays in registers */
      st = put_reply_slow(srv, out, limit, &moved, reply, rlen);
      pen = moved;
    }
    if (frees)
      srv->core.reply_free((void *)reply);
    if (st) {
      if (st != SK_TCP_SERVE_FULL)
        silent++;
      rc = st;
      break;
    }
  }
  size_t done = (size_t)(p - buf);
  sk_buf *ob = *out;
  size_t filled = start;
  if (ob) {
    filled = (size_t)(pen.at - (uintptr_t)(ob->data + ob->head));
    ob->len = (uint32_t)filled;
  }
  uint64_t replies = served - silent;
  tally->in += served;
  tally->bytes_in += done - served - cr; /* each line also had its '\n' */
  tally->out += replies;
  tally->bytes_out += filled - start - replies; /* each reply added its '\n' */
  *used = done;
  return rc; /* 0, SK_TCP_SERVE_FULL or an error */
}

bool sk__scan_portable;

#ifdef SK__SCAN_AVX2
static __attribute__((noinline, target("avx2"))) int serve_lines_avx2(sk_tcp_server *srv, char *buf,
                                                                      size_t len, size_t limit,
                                                                      size_t *used, sk_buf **out,
                                                                      sk_tally *tally) {
  if (srv->core.reply_free)
    return serve_lines_with(srv, buf, len, limit, used, out, tally, true, sk__scan_stop_avx2,
                            sk__scan_copy_avx2);
  return serve_lines_with(srv, buf, len, limit, used, out, tally, false, sk__scan_stop_avx2,
                          sk__scan_copy_avx2);
}
#endif

/* One copy for each way to scan (scan.h), and for services that free
 * their replies or not, so that the common one tests nothing per message. */
static int serve_lines(sk_tcp_server *srv, char *buf, size_t len, size_t limit, size_t *used,
                       sk_buf **out, sk_tally *tally) {
#ifdef SK__SCAN_AVX2
  if (!sk__scan_portable && sk__scan_avx2())
    return serve_lines_avx2(srv, buf, len, limit, used, out, tally);
#endif
  if (srv->core.reply_free)
    return serve_lines_with(srv, buf, len, limit, used, out, tally, true, sk__scan_stop,
                            sk__scan_copy);
  return serve_lines_with(srv, buf, len, limit, used, out, tally, false, sk__scan_stop,
                          sk__scan_copy);
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
