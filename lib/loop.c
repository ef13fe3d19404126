/* loop.c -- epoll reactor, eventfd wake-up and the timer clock. */
#include "loop.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sk__loop_init(sk_loop *loop) {
  loop->wakefd = -1;
  loop->epoch_ms = monotonic_ms();
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd < 0)
    return sk__fail(SK_ESYS, errno);
  loop->wakefd = sk__wakefd_open();
  if (loop->wakefd < 0 || sk__loop_add(loop, loop->wakefd, EPOLLIN, SK_LOOP_WAKE) != 0) {
    int rc = sk__fail(SK_ESYS, errno);
    sk__loop_close(loop);
    return rc;
  }
  return SK_OK;
}

void sk__loop_close(sk_loop *loop) {
  sk__close(loop->wakefd);
  sk__close(loop->epfd);
  loop->wakefd = loop->epfd = -1;
}

int sk__loop_add(sk_loop *loop, int fd, uint32_t events, uint64_t data) {
  struct epoll_event ev = {.events = events, .data.u64 = data};
  return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int sk__loop_mod(sk_loop *loop, int fd, uint32_t events, uint64_t data) {
  struct epoll_event ev = {.events = events, .data.u64 = data};
  return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
}

int sk__loop_del(sk_loop *loop, int fd) {
  return epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int sk__loop_wait(sk_loop *loop, struct epoll_event *events, int max, int timeout_ms) {
  int n = epoll_wait(loop->epfd, events, max, timeout_ms);
  if (n < 0)
    return errno == EINTR ? 0 : -1;
  for (int i = 0; i < n; i++)
    if (events[i].data.u64 == SK_LOOP_WAKE) {
      uint64_t count;
      while (read(loop->wakefd, &count, sizeof count) < 0 && errno == EINTR)
        ;
    }
  return n;
}

void sk__loop_wake(sk_loop *loop) {
  sk__wake(loop->wakefd);
}

uint32_t sk__loop_now(const sk_loop *loop) {
  return (uint32_t)(monotonic_ms() - loop->epoch_ms);
}
