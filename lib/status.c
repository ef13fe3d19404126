/* status.c -- the one table of status names and messages, version queries,
 * and the per-thread OS error behind the last failure. */
#include <errno.h>

#include "internal.h"

/* X-macro list: the enum in sockkit.h is written out by hand (it is the
 * contract); test_status checks that this table agrees with it. */
#define SK_STATUS_TABLE(X)                                                                         \
  X(SK_OK, "success")                                                                              \
  X(SK_EINVAL, "invalid argument")                                                                 \
  X(SK_ENOMEM, "out of memory")                                                                    \
  X(SK_EADDR, "malformed or unsupported address")                                                  \
  X(SK_ESOCKET, "cannot create or configure socket")                                               \
  X(SK_EBIND, "cannot bind address")                                                               \
  X(SK_ELISTEN, "cannot listen on socket")                                                         \
  X(SK_EACCEPT, "cannot accept connection")                                                        \
  X(SK_ECONNECT, "cannot connect")                                                                 \
  X(SK_EREAD, "receive failed")                                                                    \
  X(SK_EWRITE, "send failed")                                                                      \
  X(SK_ESTATE, "operation not valid in this state")                                                \
  X(SK_ETIMEDOUT, "timed out")                                                                     \
  X(SK_EMSGSIZE, "message too large")                                                              \
  X(SK_ECLOSED, "connection closed by peer")                                                       \
  X(SK_EPROTO, "protocol error")                                                                   \
  X(SK_ESYS, "system resource failure")                                                            \
  X(SK_EAGAIN, "the connection's output is over its high-water mark: try later")                   \
  X(SK_ENOTSUP, "not available in this model or build")

static _Thread_local int last_os_error;

const char *sk_strerror(int status) {
  switch (status) {
#define X(code, message)                                                                           \
  case code:                                                                                       \
    return message;
    SK_STATUS_TABLE(X)
#undef X
  }
  return "unknown status";
}

const char *sk_status_name(int status) {
  switch (status) {
#define X(code, message)                                                                           \
  case code:                                                                                       \
    return #code;
    SK_STATUS_TABLE(X)
#undef X
  }
  return "SK_UNKNOWN";
}

int sk_last_os_error(void) {
  return last_os_error;
}

int sk__fail(int status, int os_error) {
  last_os_error = os_error;
  return status;
}

unsigned sk_version(void) {
  return SK_VERSION_NUMBER;
}

const char *sk_version_string(void) {
  return SK_VERSION_STRING;
}
