/* sys.c -- small system-call helpers shared by the servers and clients. */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

void sk__close(int fd) {
  if (fd < 0)
    return;
  int saved_errno = errno;
  /* Never retry close on EINTR: Linux has already released the descriptor
   * and a retry could close one that another thread just opened. */
  (void)close(fd);
  errno = saved_errno;
}

int sk__wakefd_open(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

void sk__wake(int fd) {
  int saved_errno = errno;
  uint64_t one = 1;
  /* EAGAIN means the counter is already huge: the loop is woken anyway. */
  ssize_t n;
  do
    n = write(fd, &one, sizeof one);
  while (n < 0 && errno == EINTR);
  errno = saved_errno;
}
