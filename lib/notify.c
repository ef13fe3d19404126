/* notify.c -- sk_notify: the service manager's readiness protocol (one
 * datagram to $NOTIFY_SOCKET, as sd_notify(3) sends it), without libsystemd. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)

/* The address NOTIFY_SOCKET names: "/path" (a socket file) or "@name" (an
 * abstract socket). systemd also knows "vsock:CID:PORT", for a manager
 * outside a virtual machine, which a UNIX datagram cannot reach. Returns
 * the address length, or 0 (logged) for a value we cannot use. */
static socklen_t notify_address(const char *value, struct sockaddr_un *sun) {
  size_t n = strlen(value);
  const char *why = NULL;
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  if (value[0] == '/') {
    if (n >= SUN_PATH_SIZE)
      why = "the path is too long for a UNIX socket";
    else
      memcpy(sun->sun_path, value, n + 1);
  } else if (value[0] == '@') {
    /* Abstract: a NUL, then the name; nothing of it is a terminator. */
    if (n == 1)
      why = "the abstract name is empty";
    else if (n > SUN_PATH_SIZE)
      why = "the abstract name is too long for a UNIX socket";
    else
      memcpy(sun->sun_path + 1, value + 1, n - 1);
  } else if (strncmp(value, "vsock:", 6) == 0) {
    why = "AF_VSOCK addresses are not supported";
  } else {
    why = "not an absolute path (\"/...\") or an abstract name (\"@...\")";
  }
  if (why) {
    sk__log(SK_LOG_WARN, "sk_notify: NOTIFY_SOCKET=\"%.200s\": %s", value, why);
    return 0;
  }
  if (value[0] == '@')
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

int sk_notify(const char *state) {
  if (!state || !*state) {
    sk__log(SK_LOG_WARN, "sk_notify: state is %s", state ? "empty" : "NULL");
    return sk__fail(SK_EINVAL, 0);
  }
  /* Not run by a service manager that listens (or run by hand): nothing
   * to tell, and nothing wrong. */
  const char *value = getenv("NOTIFY_SOCKET");
  if (!value || !*value)
    return SK_OK;
  struct sockaddr_un sun;
  socklen_t len = notify_address(value, &sun);
  if (len == 0)
    return sk__fail(SK_EADDR, 0);

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    sk__log(SK_LOG_WARN, "sk_notify: socket: %s", strerror(err));
    return sk__fail(SK_ESOCKET, err);
  }
  size_t size = strlen(state);
  ssize_t n;
  do
    n = sendto(fd, state, size, MSG_NOSIGNAL, (const struct sockaddr *)&sun, len);
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : 0;
  sk__close(fd);
  if (n < 0) {
    /* ENOENT: no socket file there; ECONNREFUSED: a socket file nothing
     * is bound to any more (or an abstract name nobody holds). */
    sk__log(SK_LOG_WARN, "sk_notify: cannot send to NOTIFY_SOCKET=\"%.200s\": %s", value,
            strerror(err));
    return sk__fail(SK_EWRITE, err);
  }
  return SK_OK;
}
