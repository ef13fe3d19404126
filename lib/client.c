/* client.c -- what the TCP and UDP clients share: the option tables and
 * back-off with jitter. */
#include "client.h"
#include "resolve.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One table per client: the options each takes, and their ranges. */
#define OPT(name, field, lo, hi) SK__OPTION(sk_client_opts, name, field, lo, hi)
static const sk_option_def tcp_client_options[] = {
    OPT(SK_OPT_MAX_MESSAGE, max_message, 1, 64LL << 20),
    OPT(SK_OPT_FRAMING, framing, SK_FRAME_LINE, SK_FRAME_RAW),
    OPT(SK_OPT_ATTEMPTS, attempts, 1, 1000),
    OPT(SK_OPT_RETRY_DELAY_MS, retry_delay_ms, 0, INT_MAX),
    OPT(SK_OPT_BACKOFF, backoff, SK_BACKOFF_FIXED, SK_BACKOFF_EXPONENTIAL),
    OPT(SK_OPT_RETRY_MAX_MS, retry_max_ms, 0, INT_MAX),
    OPT(SK_OPT_CONNECT_TIMEOUT_MS, connect_timeout_ms, 1, INT_MAX),
    OPT(SK_OPT_REQUEST_TIMEOUT_MS, request_timeout_ms, 1, INT_MAX),
};
static const sk_option_def udp_client_options[] = {
    OPT(SK_OPT_MAX_MESSAGE, max_message, 1, SK__UDP_MAX_PAYLOAD),
    OPT(SK_OPT_ATTEMPTS, attempts, 1, 1000),
    OPT(SK_OPT_RETRY_DELAY_MS, retry_delay_ms, 0, INT_MAX),
    OPT(SK_OPT_BACKOFF, backoff, SK_BACKOFF_FIXED, SK_BACKOFF_EXPONENTIAL),
    OPT(SK_OPT_RETRY_MAX_MS, retry_max_ms, 0, INT_MAX),
    OPT(SK_OPT_REQUEST_TIMEOUT_MS, request_timeout_ms, 1, INT_MAX),
};
#undef OPT

void sk__client_opts_init(sk_client_opts *o, int kind) {
  o->max_message = kind == SK_CLIENT_UDP ? SK__UDP_MAX_PAYLOAD : 65536;
  o->framing = SK_FRAME_LINE;
  /* The tutorial's reconnect loop: five attempts, one second apart. */
  o->attempts = 5;
  o->retry_delay_ms = 1000;
  o->backoff = SK_BACKOFF_FIXED;
  o->retry_max_ms = 30000;
  o->connect_timeout_ms = 5000;
  o->request_timeout_ms = 5000;
}

int sk__client_opt_set(sk_client_opts *o, int kind, int option, long long value,
                       const char *locked) {
  if (kind == SK_CLIENT_UDP)
    return sk__option_set(o, udp_client_options, SK__COUNT(udp_client_options), option, value,
                          locked, "sk_udp_client_set");
  return sk__option_set(o, tcp_client_options, SK__COUNT(tcp_client_options), option, value, locked,
                        "sk_tcp_client_set");
}

int sk__client_opt_get(const sk_client_opts *o, int kind, int option, long long *value) {
  if (kind == SK_CLIENT_UDP)
    return sk__option_get(o, udp_client_options, SK__COUNT(udp_client_options), option, value,
                          "sk_udp_client_get");
  return sk__option_get(o, tcp_client_options, SK__COUNT(tcp_client_options), option, value,
                        "sk_tcp_client_get");
}

/* splitmix64: tiny, and good enough to spread retries; nothing here needs
 * unpredictability. */
static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t sk__client_seed(const void *client) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ (uintptr_t)client ^
         (uint64_t)getpid() << 40;
}

long long sk__retry_pause(const sk_client_opts *o, int retry, uint64_t *rng) {
  if (o->backoff == SK_BACKOFF_FIXED)
    return o->retry_delay_ms;
  /* Full jitter spreads the retries of many clients that failed together
   * over the whole window instead of sending them back in one burst. The
   * delay is at most INT_MAX, so doubling until past the cap cannot
   * overflow. */
  long long ceiling = o->retry_delay_ms;
  for (int i = 1; i < retry && ceiling < o->retry_max_ms; i++)
    ceiling *= 2;
  if (ceiling > o->retry_max_ms)
    ceiling = o->retry_max_ms;
  return (long long)(next_random(rng) % ((uint64_t)ceiling + 1));
}

int sk__client_create(void **out, size_t size, const char *address, int kind) {
  const char *call = kind == SK_CLIENT_UDP ? "sk_udp_client_create" : "sk_tcp_client_create";
  if (!out || !address) {
    sk__log(SK_LOG_WARN, "%s: %s is NULL", call, !out ? "out" : "address");
    if (out)
      *out = NULL;
    return sk__fail(SK_EINVAL, 0);
  }
  *out = NULL;
  if (sk__resolve_check(address) != 0) {
    sk__log(SK_LOG_WARN,
            "%s: address \"%.200s\": not an address; the forms are \"HOST:PORT\" (a name or "
            "a number), \"[IPv6]:PORT\", \"unix:/path\" and \"unix:@name\", with a port of "
            "1 to 65535",
            call, address);
    return sk__fail(SK_EADDR, 0);
  }
  sk_client_base *c = calloc(1, size);
  if (!c || !(c->address = strdup(address))) {
    free(c);
    return sk__fail(SK_ENOMEM, ENOMEM);
  }
  sk__client_opts_init(&c->opts, kind);
  c->fd = -1;
  c->rng = sk__client_seed(c);
  *out = c;
  return SK_OK;
}
