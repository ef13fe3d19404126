/* notify.c -- sk_notify: the service manager's readiness protocol (one
 * datagram to $NOTIFY_SOCKET, as sd_notify(3) sends it), without libsystemd. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "internal.h"

/* The address NOTIFY_SOCKET names: "/path" (a socket file) or "@name" (an
 * abstract socket), parsed as the "unix:" addresses of servers are.
 * systemd also knows "vsock:CID:PORT", for a manager outside a virtual
 * machine, which a UNIX datagram cannot reach. False (logged) for a value
 * we cannot use. */
static bool notify_address(const char *value, sk_addr *a) {
  const char *why = NULL;
  memset(a, 0, sizeof *a);
  if (value[0] == '/' || value[0] == '@') {
    if (sk__addr_parse_unix(a, value) != 0)
      why = value[0] == '@' && !value[1] ? "the abstract name is empty"
                                         : "too long for a UNIX socket address";
  } else if (strncmp(value, "vsock:", 6) == 0) {
    why = "AF_VSOCK addresses are not supported";
  } else {
    why = "not an absolute path (\"/...\") or an abstract name (\"@...\")";
  }
  if (why)
    sk__log(SK_LOG_WARN, "sk_notify: NOTIFY_SOCKET=\"%.200s\": %s", value, why);
  return why == NULL;
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
  sk_addr to;
  if (!notify_address(value, &to))
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
    n = sendto(fd, state, size, MSG_NOSIGNAL, (const struct sockaddr *)&to.ss, to.len);
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
