/* life.h -- internal: a server's lifetime rules, below both the server core
 * and the concurrency models that follow them: when the drain after a stop
 * ends, and the holds that keep a server alive for service calls still
 * running after it ("stragglers"). */
#ifndef SK_LIFE_H
#define SK_LIFE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* The owner of the server holds one reference from sk__life_init until it
 * destroys the server, and each straggler one more until it has ended; the
 * last to let go runs `last` (the core's: free the server), on its own
 * thread. A hold is taken only while the owner's still is. */
typedef struct sk_life {
  long long drain_timeout_ms;     /* SK_OPT_DRAIN_TIMEOUT_MS */
  _Atomic int64_t drain_deadline; /* sk__clock_ms() when a stop's drain ends; 0 before */
  atomic_int refs;
  void (*last)(void *arg);
  void *arg;
} sk_life;

static inline void sk__life_init(sk_life *l, void (*last)(void *arg), void *arg) {
  atomic_init(&l->refs, 1);
  l->last = last;
  l->arg = arg;
}

/* When the drain after a stop ends: fixed by the first to ask after the
 * stop, so every thread keeps the same time. */
static inline int64_t sk__life_drain_deadline(sk_life *l) {
  int64_t deadline = atomic_load(&l->drain_deadline);
  if (deadline == 0) {
    int64_t want = sk__clock_ms() + l->drain_timeout_ms;
    if (atomic_compare_exchange_strong(&l->drain_deadline, &deadline, want))
      deadline = want;
  }
  return deadline;
}

static inline void sk__life_hold(sk_life *l) {
  atomic_fetch_add(&l->refs, 1);
}

/* May run `last`: the caller touches nothing of the server after it. */
static inline void sk__life_release(sk_life *l) {
  if (atomic_fetch_sub(&l->refs, 1) == 1)
    l->last(l->arg);
}

/* True while stragglers hold the server besides its owner. */
static inline bool sk__life_held(sk_life *l) {
  return atomic_load(&l->refs) > 1;
}

#endif
