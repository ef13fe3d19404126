/* loop.h -- internal: a small epoll reactor with an eventfd wake-up and a
 * timerfd for deadlines (on sk__clock_ms, internal.h). */
#ifndef SK_LOOP_H
#define SK_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "internal.h"

/* The reactor is level-triggered. A connection is read once per wake-up,
 * so no busy client can starve the others, and nothing has to read until
 * EAGAIN just to re-arm the descriptor (the extra system call per event that
 * edge-triggering needs). Interest in EPOLLOUT is switched on only while a
 * connection has unsent output, which is rare, so level-triggering never
 * reports a writable socket that nobody waits for. */
typedef struct sk_loop {
  int epfd;
  int wakefd;
  /* Timers wake the loop through a timerfd rather than an epoll_wait
   * timeout: a timeout arms a kernel timer on every wait, which costs a
   * microsecond or more per request (far more in a virtual machine), while
   * the timerfd is re-armed only when the earliest deadline moves earlier
   * or has fired: rarely, since deadlines mostly move later. */
  int timerfd;
  bool armed;
  int64_t armed_at; /* sk__clock_ms() at which the timerfd fires */
} sk_loop;

/* epoll data values that mark the wake-up and timer descriptors. */
#define SK_LOOP_WAKE UINT64_MAX
#define SK_LOOP_TIMER (UINT64_MAX - 1)

int sk__loop_init(sk_loop *loop);
void sk__loop_close(sk_loop *loop);

/* Register, change or remove a descriptor; `data` comes back with its
 * events. Return 0 or -1 with errno. */
int sk__loop_add(sk_loop *loop, int fd, uint32_t events, uint64_t data);
int sk__loop_mod(sk_loop *loop, int fd, uint32_t events, uint64_t data);
int sk__loop_del(sk_loop *loop, int fd);

/* Make sure the loop wakes within timeout_ms (< 0: no deadline). Costs a
 * system call only when the deadline is earlier than the one armed. */
void sk__loop_arm(sk_loop *loop, int timeout_ms);

/* Wait for events (timeout_ms < 0: forever); EINTR returns 0 events.
 * Returns the count or -1 with errno. A wake-up or a timer expiry is
 * drained here and reported with data SK_LOOP_WAKE or SK_LOOP_TIMER. */
int sk__loop_wait(sk_loop *loop, struct epoll_event *events, int max, int timeout_ms);

/* Wake the loop from any thread or a signal handler. */
void sk__loop_wake(sk_loop *loop);

/* The clock in 32 bits, for deadlines kept in small structures (a
 * connection's timer). It wraps every 49.7 days: compare such deadlines
 * only with sk__time_before, and keep them less than 2^31 ms ahead. */
static inline uint32_t sk__loop_now(const sk_loop *loop) {
  (void)loop;
  return (uint32_t)sk__clock_ms();
}

static inline int sk__time_before(uint32_t a, uint32_t b) {
  return (int32_t)(a - b) < 0;
}

#endif
