/* fuzz_tcp_server.c -- libFuzzer target: arbitrary byte streams through a
 * real server connection, written in pieces, and every reply checked. */
#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"
#include "sockkit.h"

/* Input: byte 0 picks the framing and the concurrency model (and, from
 * 240 up, for LINE and LENGTH, a server behind a proxy: the stream must
 * then begin with a PROXY header, and is answered only after a valid
 * one), byte 1 seeds the split points; the rest is what the client sends. The server runs in
 * this process for the whole fuzzing session (one per framing and model),
 * on a UNIX stream socket, with a small maximum message size so that the
 * oversize paths are reached. Each input is one connection: the harness
 * writes the stream in pieces, then half-closes and reads to EOF. The
 * replies must be exactly what the framing rules give for this stream, and
 * the connection must end within 5 s.
 * Where the pieces fall: RAW takes one read (of at most MAX_MESSAGE bytes)
 * as one message, so there each piece goes only once the server has
 * counted the one before as its messages or a protocol error. LINE and LENGTH answer the same
 * however the stream is split; there the harness waits until the server has taken the piece off the
 * socket (SIOCOUTQ), which splits the server's reads there most of the time (a read in progress may
 * still take in the next piece). */

#define MAX_MESSAGE 64
#define BIG_LEN 3000
#define MAX_INPUT 16384
#define TIME_LIMIT_MS 5000

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz_tcp_server: check failed: %s (line %d)\n", #cond, __LINE__);           \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static char big[BIG_LEN + 1];

/* '#...': no reply; '=...': an empty reply; '!...': a reply of 3000
 * bytes; anything else: an echo. */
static const char *service_reply(const char *request) {
  switch (request[0]) {
  case '#':
    return NULL;
  case '=':
    return "";
  case '!':
    return big;
  default:
    return request;
  }
}

static const char *service(const char *request, void *user) {
  (void)user;
  return service_reply(request);
}

static const int models[] = {SK_MODEL_EVENT_LOOP, SK_MODEL_WORKER_POOL,
                             SK_MODEL_THREAD_PER_CONNECTION};
#define NMODELS 3

static char dir[64];
static sk_tcp_server *servers[3][NMODELS][2];
static char addresses[3][NMODELS][2][128];

static void quiet(int level, const char *message, void *user) {
  (void)user;
  if (level <= SK_LOG_ERROR)
    fprintf(stderr, "sockkit: %s\n", message);
}

static void stop_servers(void) {
  for (int f = 0; f < 3; f++)
    for (int m = 0; m < NMODELS; m++)
      for (int p = 0; p < 2; p++)
        sk_tcp_server_destroy(servers[f][m][p]);
  rmdir(dir);
}

static const char *server_for(int framing, int model, int proxy) {
  if (!servers[framing][model][proxy]) {
    sk_tcp_server *srv;
    char *address = addresses[framing][model][proxy];
    snprintf(address, sizeof addresses[0][0][0], "unix:%s/s%d%d%d.sock", dir, framing, model,
             proxy);
    CHECK(sk_tcp_server_create(&srv, address, service, NULL) == SK_OK);
    CHECK(sk_tcp_server_set(srv, SK_OPT_PROXY_PROTOCOL, proxy ? SK_PROXY_ANY : SK_PROXY_OFF) ==
          SK_OK);
    CHECK(sk_tcp_server_set(srv, SK_OPT_FRAMING, framing) == SK_OK);
    CHECK(sk_tcp_server_set(srv, SK_OPT_MODEL, models[model]) == SK_OK);
    CHECK(sk_tcp_server_set(srv, SK_OPT_WORKERS, 2) == SK_OK);
    CHECK(sk_tcp_server_set(srv, SK_OPT_MAX_MESSAGE, MAX_MESSAGE) == SK_OK);
    CHECK(sk_tcp_server_set(srv, SK_OPT_MAX_INFLIGHT, 2) == SK_OK);
    CHECK(sk_tcp_server_start(srv) == SK_OK);
    servers[framing][model][proxy] = srv;
  }
  return addresses[framing][model][proxy] + 5;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  memset(big, 'B', BIG_LEN);
  sk_set_log_handler(quiet, NULL);
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/skfuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  CHECK(mkdtemp(dir) != NULL);
  atexit(stop_servers);
  return 0;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- what the server must answer -------------------------------------- */

typedef struct bytes {
  char *data;
  size_t len, cap;
} bytes;

static void put(bytes *b, const void *p, size_t n) {
  if (n == 0)
    return;
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2;
    b->data = realloc(b->data, b->cap);
    CHECK(b->data);
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

/* Oversize or holding a NUL: the server answers it by closing. */
static bool protocol_error(const uint8_t *payload, size_t len) {
  return len > MAX_MESSAGE || memchr(payload, 0, len) != NULL;
}

/* Append the framed reply to one request; false at a protocol error. */
static bool answer(int framing, const uint8_t *payload, size_t len, bytes *out) {
  if (protocol_error(payload, len))
    return false;
  char request[MAX_MESSAGE + 1];
  memcpy(request, payload, len);
  request[len] = '\0';
  const char *reply = service_reply(request);
  if (!reply)
    return true;
  size_t n = strlen(reply);
  if (framing == SK_FRAME_LENGTH) {
    uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    put(out, h, 4);
  }
  put(out, reply, n);
  if (framing == SK_FRAME_LINE)
    put(out, "\n", 1);
  return true;
}

/* RAW: a read takes at most MAX_MESSAGE bytes, so a piece is that many
 * messages; how many the server counts for it (up to the first refused). */
static size_t raw_messages(const uint8_t *piece, size_t len) {
  size_t count = 0;
  for (size_t at = 0; at < len; at += MAX_MESSAGE) {
    count++;
    size_t n = len - at < MAX_MESSAGE ? len - at : MAX_MESSAGE;
    if (protocol_error(piece + at, n))
      break;
  }
  return count;
}

/* The replies to a whole stream: LINE and LENGTH do not depend on how it
 * was split; RAW takes each piece as messages of at most MAX_MESSAGE. */
static void expected(int framing, const uint8_t *s, size_t n, const size_t *ends, size_t npieces,
                     bytes *out) {
  if (framing == SK_FRAME_RAW) {
    size_t from = 0;
    for (size_t i = 0; i < npieces; from = ends[i++])
      for (size_t at = from; at < ends[i]; at += MAX_MESSAGE) {
        size_t len = ends[i] - at < MAX_MESSAGE ? ends[i] - at : MAX_MESSAGE;
        if (!answer(framing, s + at, len, out))
          return;
      }
    return;
  }
  size_t pos = 0;
  while (pos < n) {
    if (framing == SK_FRAME_LINE) {
      const uint8_t *nl = memchr(s + pos, '\n', n - pos);
      if (!nl)
        return; /* an incomplete tail is never answered */
      size_t end = (size_t)(nl - s), len = end - pos;
      if (len > 0 && s[end - 1] == '\r')
        len--;
      if (!answer(framing, s + pos, len, out))
        return;
      pos = end + 1;
    } else {
      if (n - pos < 4)
        return;
      size_t len =
          (size_t)s[pos] << 24 | (size_t)s[pos + 1] << 16 | (size_t)s[pos + 2] << 8 | s[pos + 3];
      if (len > MAX_MESSAGE)
        return;
      if (n - pos - 4 < len)
        return;
      if (!answer(framing, s + pos + 4, len, out))
        return;
      pos += 4 + len;
    }
  }
}

/* ---- the client ------------------------------------------------------- */

/* Messages the server has taken so far, served or refused. */
static uint64_t messages_seen(sk_tcp_server *srv) {
  uint64_t total = 0;
  static const int stats[] = {SK_STAT_MESSAGES_IN, SK_STAT_DROPS_NUL, SK_STAT_DROPS_TRUNCATED};
  for (int i = 0; i < 3; i++) {
    uint64_t v = 0;
    CHECK(sk_tcp_server_stat(srv, stats[i], &v) == SK_OK);
    total += v;
  }
  return total;
}

/* Read what is there without blocking; false at EOF or error. */
static bool drain_replies(int fd, bytes *got) {
  for (;;) {
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      put(got, buf, (size_t)n);
      continue;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 || size > MAX_INPUT)
    return 0;
  int framing = data[0] % 3, model = data[0] / 3 % NMODELS;
  int proxy = data[0] >= 240 && framing != SK_FRAME_RAW;
  uint32_t seed = data[1] * 2654435761u + 1;
  const uint8_t *s = data + 2;
  size_t n = size - 2;
  size_t ends[MAX_INPUT], npieces = 0;
  for (size_t pos = 0; pos < n;) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    size_t piece = seed % 4 == 0 ? 1 + seed % 256 : 1 + seed % 5;
    pos += piece < n - pos ? piece : n - pos;
    ends[npieces++] = pos;
  }

  struct sockaddr_un to = {.sun_family = AF_UNIX};
  snprintf(to.sun_path, sizeof to.sun_path, "%s", server_for(framing, model, proxy));
  sk_tcp_server *srv = servers[framing][model][proxy];
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  CHECK(fd >= 0);
  CHECK(connect(fd, (struct sockaddr *)&to, sizeof to) == 0);

  bytes got = {0};
  long long deadline = now_ms() + TIME_LIMIT_MS;
  bool open = true;
  size_t sent = 0;
  for (size_t i = 0; i < npieces && open; i++) {
    uint64_t seen = messages_seen(srv);
    size_t from = i ? ends[i - 1] : 0;
    uint64_t want_seen = seen + raw_messages(s + from, ends[i] - from);
    /* Write the piece (the socket may be full while replies wait). */
    while (sent < ends[i] && open) {
      ssize_t w = send(fd, s + sent, ends[i] - sent, MSG_NOSIGNAL);
      if (w > 0)
        sent += (size_t)w;
      else if (w < 0 && errno != EAGAIN && errno != EINTR)
        open = false; /* the server closed after a protocol error */
      open = open && drain_replies(fd, &got);
      CHECK(now_ms() < deadline);
      if (w < 0 && errno == EAGAIN)
        poll(&(struct pollfd){.fd = fd, .events = POLLIN | POLLOUT}, 1, 10);
    }
    /* Wait until the server has read it, so its next read starts here. */
    for (;;) {
      int queued = 0;
      CHECK(ioctl(fd, SIOCOUTQ, &queued) == 0);
      if (!open || (framing == SK_FRAME_RAW ? messages_seen(srv) >= want_seen : queued == 0))
        break;
      open = drain_replies(fd, &got);
      CHECK(now_ms() < deadline);
      poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 1);
    }
    /* After a protocol error the server reads only to discard. */
    if (framing == SK_FRAME_RAW && memchr(s + from, 0, ends[i] - from))
      break;
  }
  shutdown(fd, SHUT_WR);
  while (drain_replies(fd, &got)) {
    CHECK(now_ms() < deadline); /* the server must end the connection */
    poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 50);
  }
  close(fd);

  bytes want = {0};
  if (!proxy) {
    expected(framing, s, n, ends, npieces, &want);
  } else {
    /* Behind a proxy: nothing is answered without a whole valid header,
     * then the rest is a stream as any other (LINE and LENGTH do not
     * depend on the split, so `ends` is not needed). */
    sk_proxy_header h;
    if (sk__proxy_decode((const char *)s, n, SK__PROXY_V1 | SK__PROXY_V2, &h) == 1)
      expected(framing, s + h.length, n - h.length, NULL, 0, &want);
  }
  if (got.len != want.len || (want.len && memcmp(got.data, want.data, want.len) != 0)) {
    fprintf(stderr,
            "fuzz_tcp_server: framing %d model %d proxy %d: got %zu reply bytes, want %zu\n",
            framing, model, proxy, got.len, want.len);
    abort();
  }
  free(got.data);
  free(want.data);
  return 0;
}
