/* client.h -- internal: what the TCP and UDP clients share: options and
 * retry pauses with back-off (their clock and waits are in internal.h). */
#ifndef SK_CLIENT_H
#define SK_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Which client an option is set on: the options that apply differ. */
enum { SK_CLIENT_TCP, SK_CLIENT_UDP };

/* Options, set through the table in client.c. */
typedef struct sk_client_opts {
  long long max_message, framing, attempts, retry_delay_ms, backoff, retry_max_ms,
      connect_timeout_ms, request_timeout_ms;
} sk_client_opts;

/* Fill in the documented defaults for a client of `kind`. */
void sk__client_opts_init(sk_client_opts *o, int kind);

/* Set or read an option through the table of `kind`, as sk__option_set and
 * sk__option_get do: SK_EINVAL for an option that does not apply or a value
 * out of range, SK_ESTATE for a valid set while `locked` (the rule, logged). */
int sk__client_opt_set(sk_client_opts *o, int kind, int option, long long value,
                       const char *locked);
int sk__client_opt_get(const sk_client_opts *o, int kind, int option, long long *value);

/* A seed for sk__retry_pause's generator, different per client and per
 * process, so that clients started together do not retry in step. */
uint64_t sk__client_seed(const void *client);

/* The pause before retry number `retry` (1 for the first): the retry delay,
 * or with exponential back-off a random time in [0, min(max, delay * 2^(retry-1))]
 * ("full jitter"). */
long long sk__retry_pause(const sk_client_opts *o, int retry, uint64_t *rng);

/* What both clients begin with. */
typedef struct sk_client_base {
  char *address; /* as given: looked up again when the server may have moved */
  sk_client_opts opts;
  int fd;       /* -1 while there is no socket */
  uint64_t rng; /* back-off jitter */
} sk_client_base;

/* The checks and allocation of both constructors: *out receives a zeroed
 * client of `size` bytes that begins with an sk_client_base for `address`
 * (checked, not looked up) with the defaults of `kind`. */
int sk__client_create(void **out, size_t size, const char *address, int kind);

#endif
