/* tcp_serve.c -- the TCP serving path every model shares: messages of a
 * buffer decoded, served and their replies framed, and what bad input logs. */
#include <stdio.h>
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
 * False if the reply could not be queued. */
static inline bool serve_one(sk_tcp_server *srv, int framing, bool count_first, const char *payload,
                             size_t len, sk_buf **out, sk_tally *tally) {
  tally->in++;
  tally->bytes_in += len;
  if (count_first)
    sk__tcp_flush_tally(srv, tally);
  const char *reply = srv->core.service(payload, srv->core.user);
  /* Copied into *out before any user code runs again on this thread. */
  bool ok = true;
  if (reply) {
    ok = sk__tcp_frame_reply(srv, framing, reply, strlen(reply), out, tally);
    if (srv->core.reply_free)
      srv->core.reply_free((void *)reply);
  }
  return ok;
}

/* Messages decoded ahead of serving them, at most. */
#define SERVE_BATCH 32

/* The loop of sk__tcp_serve_all, inlined twice below: once for a constant
 * LINE framing with a NUL-free buffer (the common case, where the decoder's
 * switch and the encoder's branches fold away) and once for the rest.
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
      bool ok = serve_one(srv, framing, count_first, buf + at[i], length[i], out, tally);
      if (!ok || sk__buf_len(*out) >= limit) {
        for (int k = i; k < n; k++)
          buf[at[k] + length[k]] = saved[k];
        *used = next[i];
        return ok ? SK_TCP_SERVE_FULL : SK_ENOMEM;
      }
    }
    buf[at[n - 1] + length[n - 1]] = saved[n - 1];
    done = pos;
  }
  *used = done;
  return rc < 0 ? rc : 0;
}

int sk__tcp_serve_all(sk_tcp_server *srv, int fd, bool count_first, char *buf, size_t len,
                      size_t limit, size_t *used, sk_buf **out, sk_tally *tally, sk_peer *peer) {
  int framing = (int)srv->framing;
  /* One search for NUL over everything this read brought, instead of one
   * per message; only a buffer that holds one pays for the checked decoder. */
  bool nul_free = memchr(buf, '\0', len) == NULL;
  int rc;
  sk__peer_set_fd(peer, fd); /* for every message of this read */
  if (framing == SK_FRAME_LINE && nul_free && !count_first)
    rc = serve_run(srv, SK_FRAME_LINE, true, false, buf, len, limit, used, out, tally);
  else
    rc = serve_run(srv, framing, nul_free, count_first, buf, len, limit, used, out, tally);
  sk__peer_clear(peer);
  return rc;
}

void sk__tcp_serve_failed(sk_tcp_server *srv, int fd, int rc) {
  if (rc == SK_ENOMEM) {
    /* frame_reply counted the reply. */
    sk__tcp_count(srv, SK_STAT_CONNECTIONS_RESET, 1);
    sk__tcp_warn_conn(srv, fd, "a reply could not be queued (out of memory); closing");
    return;
  }
  sk__tcp_protocol_error(srv, fd, rc);
}
