/* activate.h -- internal: the socket a server adopts instead of binding
 * one: a descriptor given by number, or one passed by systemd. */
#ifndef SK_ACTIVATE_H
#define SK_ACTIVATE_H

#include "addr.h"
#include "internal.h"

/* Find the socket `adopt` names ("fd:N", or the systemd protocol of
 * sd_listen_fds(3) for "systemd[:NAME]"), check that it suits a server of
 * `socktype` (SOCK_STREAM: a listening TCP or UNIX stream socket;
 * SOCK_DGRAM: a bound UDP or UNIX datagram socket), then make it
 * non-blocking and close-on-exec and apply the buffer sizes of `opts`.
 * *bound receives its address (getsockname). Returns the descriptor, or
 * SK_EADDR when there is no such socket or it does not suit (one warning,
 * beginning with `transport`, names the descriptor and what is wrong), or
 * SK_ESOCKET when a system call fails (OS error recorded). Whatever
 * happens, the descriptor stays open: it is the caller's to close. */
int sk__activate_take(const sk_adopt *adopt, const char *transport, int socktype,
                      const sk_bind_options *opts, sk_addr *bound);

#endif
