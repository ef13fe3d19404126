/* loop.c -- epoll reactor, eventfd wake-up and the timerfd for deadlines. */
#include "loop.h"

#include <errno.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int sk__loop_init(sk_loop *loop) {
  loop->wakefd = loop->timerfd = -1;
  loop->armed = false;
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd < 0)
    return sk__fail(SK_ESYS, errno);
  loop->wakefd = sk__wakefd_open();
  loop->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (loop->wakefd < 0 || loop->timerfd < 0 ||
      sk__loop_add(loop, loop->wakefd, EPOLLIN, SK_LOOP_WAKE) != 0 ||
      sk__loop_add(loop, loop->timerfd, EPOLLIN, SK_LOOP_TIMER) != 0) {
    int rc = sk__fail(SK_ESYS, errno);
    sk__loop_close(loop);
    return rc;
  }
  return SK_OK;
}

void sk__loop_close(sk_loop *loop) {
  sk__close(loop->timerfd);
  sk__close(loop->wakefd);
  sk__close(loop->epfd);
  loop->timerfd = loop->wakefd = loop->epfd = -1;
}

void sk__loop_arm(sk_loop *loop, int timeout_ms) {
  if (timeout_ms < 0)
    return; /* an armed timer firing with nothing due costs one wake-up */
  /* Deadlines are compared in 64 bits and the timerfd is armed relative to
   * now, so no wrap of any clock can make it fire in the past forever. */
  int64_t at = sk__clock_ms() + timeout_ms;
  if (loop->armed && at >= loop->armed_at)
    return;
  struct itimerspec its = {
      .it_value = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000}};
  if (timeout_ms == 0)
    its.it_value.tv_nsec = 1; /* zero would disarm */
  if (timerfd_settime(loop->timerfd, 0, &its, NULL) == 0) {
    loop->armed = true;
    loop->armed_at = at;
  }
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
  for (int i = 0; i < n; i++) {
    uint64_t tag = events[i].data.u64, count;
    if (tag == SK_LOOP_WAKE || tag == SK_LOOP_TIMER) {
      int fd = tag == SK_LOOP_WAKE ? loop->wakefd : loop->timerfd;
      while (read(fd, &count, sizeof count) < 0 && errno == EINTR)
        ;
      if (tag == SK_LOOP_TIMER)
        loop->armed = false;
    }
  }
  return n;
}

void sk__loop_wake(sk_loop *loop) {
  sk__wake(loop->wakefd);
}
