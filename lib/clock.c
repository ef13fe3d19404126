/* clock.c -- the library's one clock, and the sleeps and bounded waits on it. */
#include <errno.h>
#include <poll.h>
#include <time.h>

#include "internal.h"

_Atomic int64_t sk__clock_offset_ms;

static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sk__clock_ms(void) {
  return monotonic_ms() + atomic_load_explicit(&sk__clock_offset_ms, memory_order_relaxed);
}

void sk__sleep_until(int64_t when) {
  /* On the monotonic clock itself, without the test offset, so that the
   * sleep can be absolute: resuming after a signal is then exact. */
  int64_t at = when - atomic_load_explicit(&sk__clock_offset_ms, memory_order_relaxed);
  if (at < 0)
    return;
  struct timespec ts = {.tv_sec = (time_t)(at / 1000), .tv_nsec = (long)(at % 1000) * 1000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    ;
}

int sk__wait_fd(int fd, short events, int stopfd, int64_t deadline) {
  struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = stopfd, .events = POLLIN}};
  for (;;) {
    int timeout = -1;
    if (deadline >= 0) {
      int64_t left = deadline - sk__clock_ms();
      /* At most a minute per poll: the clock is read again after it, so
       * a deadline computed on a moved clock (tests) is still honoured. */
      timeout = left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
    }
    int n = poll(p, stopfd >= 0 ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR)
      return -1;
    if (n > 0 && stopfd >= 0 && (p[1].revents & POLLIN))
      return SK__WAIT_STOPPED;
    if (n > 0)
      return 1;
    if (n == 0 && timeout == 0)
      return 0;
    /* Interrupted, or woke a little early: wait out the rest. */
  }
}
