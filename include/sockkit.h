/* sockkit.h -- the public interface of libsockkit: UDP and TCP request/response
 * services behind one callback. This header is the manual and the contract. */
/**
 * @file sockkit.h
 * @brief The whole public interface of libsockkit.
 *
 * Include it as `#include <sockkit.h>` and link with `-lsockkit`
 * (`pkg-config --cflags --libs sockkit`).
 */
#ifndef SOCKKIT_H
#define SOCKKIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @cond INTERNAL */
#if defined(SK_BUILDING_LIBRARY)
#define SK_API __attribute__((visibility("default")))
#else
#define SK_API
#endif
/** @endcond */

/**
 * @defgroup version Version
 * Compile-time and run-time version of the library.
 * @{
 */

/** Major version: changes only with an incompatible ABI (never, we hope). */
#define SK_VERSION_MAJOR 1
/** Minor version: grows with compatible additions. */
#define SK_VERSION_MINOR 0
/** Patch version: fixes only. */
#define SK_VERSION_PATCH 0
/** The version as one comparable number: major * 10000 + minor * 100 + patch. */
#define SK_VERSION_NUMBER (SK_VERSION_MAJOR * 10000 + SK_VERSION_MINOR * 100 + SK_VERSION_PATCH)
/** The version as text, "MAJOR.MINOR.PATCH". */
#define SK_VERSION_STRING "1.0.0"

/**
 * The version of the library the program runs with (not the header it was
 * compiled against), as ::SK_VERSION_NUMBER computes it.
 *
 * @return the run-time version number, e.g. 10000 for 1.0.0.
 * @note Thread-safe and async-signal-safe.
 */
SK_API unsigned sk_version(void);

/**
 * The version of the library the program runs with, as text.
 *
 * @return a static string such as "1.0.0"; never NULL.
 * @note Thread-safe and async-signal-safe.
 */
SK_API const char *sk_version_string(void);

/** @} */

/**
 * @defgroup status Status codes
 * Every fallible function returns `int`: ::SK_OK (0) or one of these negative
 * values. The values are part of the ABI and never change; new codes are only
 * ever added at the end.
 * @{
 */

/** Status codes returned by libsockkit functions. */
typedef enum sk_status {
  SK_OK = 0,          /**< Success. */
  SK_EINVAL = -1,     /**< Invalid argument, unknown option or value out of range. */
  SK_ENOMEM = -2,     /**< Out of memory. */
  SK_EADDR = -3,      /**< Malformed or unsupported address string. */
  SK_ESOCKET = -4,    /**< Creating or configuring a socket failed. */
  SK_EBIND = -5,      /**< Binding the address failed (in use, permission...). */
  SK_ELISTEN = -6,    /**< listen() failed. */
  SK_EACCEPT = -7,    /**< Accepting a connection failed (reserved: the servers handle
                           accept failures themselves, and no function returns it). */
  SK_ECONNECT = -8,   /**< Connecting failed (refused, unreachable...). */
  SK_EREAD = -9,      /**< Receiving data failed. */
  SK_EWRITE = -10,    /**< Sending data failed. */
  SK_ESTATE = -11,    /**< Call not valid in the object's current state. */
  SK_ETIMEDOUT = -12, /**< The operation timed out. */
  SK_EMSGSIZE = -13,  /**< A message is larger than the configured maximum. */
  SK_ECLOSED = -14,   /**< The peer closed the connection. */
  SK_EPROTO = -15,    /**< Protocol error: malformed frame or NUL byte in a message. */
  SK_ESYS = -16,      /**< Another system resource failed (epoll, eventfd, thread). */
  SK_EAGAIN = -17,    /**< The connection's output is over its high-water mark
                           (::SK_OPT_OUTPUT_HIGH_WATER): try later. @since 1.1 */
  SK_ENOTSUP = -18    /**< Not available in this model or build. @since 1.1 */
} sk_status;

/**
 * A human-readable message for a status code.
 *
 * @param status a value returned by a libsockkit function.
 * @return a static string; "unknown status" for values that are not codes.
 *         Never NULL.
 * @note Thread-safe and async-signal-safe.
 */
SK_API const char *sk_strerror(int status);

/**
 * The symbolic name of a status code, such as "SK_EBIND".
 *
 * @param status a value returned by a libsockkit function.
 * @return a static string; "SK_UNKNOWN" for values that are not codes.
 * @note Thread-safe and async-signal-safe.
 */
SK_API const char *sk_status_name(int status);

/**
 * The operating-system error (an `errno` value) behind the last failure
 * reported to this thread, so that ::SK_EBIND can be told apart as
 * `EADDRINUSE` or `EACCES`.
 *
 * Set whenever a libsockkit function called on this thread fails because of a
 * system call; 0 when the last failure had no OS cause (e.g. ::SK_EADDR).
 * Successful calls leave it unchanged.
 *
 * @return an `errno` value, or 0.
 * @note Thread-safe (the value is per thread).
 * @note Async-signal-safe.
 */
SK_API int sk_last_os_error(void);

/** @} */

/**
 * @defgroup logging Logging
 * One process-wide log handler receives the library's diagnostics: dropped
 * messages, closed connections, failed system calls. The library never writes
 * to stdout. By default, messages at ::SK_LOG_WARN and more severe go to
 * stderr as one line each, prefixed "sockkit: ".
 *
 * A constructor or setter that returns ::SK_EINVAL, ::SK_ESTATE or
 * ::SK_EADDR also logs one ::SK_LOG_WARN line that names the function, the
 * argument or option, the value and the rule it broke, e.g.
 * "sk_tcp_server_set: SK_OPT_OUTPUT_HIGH_WATER=100: below the minimum 1024
 * (range 1024..1073741824)".
 * @{
 */

/** Severity of a log message; lower is more severe. */
typedef enum sk_log_level {
  SK_LOG_ERROR = 0, /**< A failure that stops a server or loses data. */
  SK_LOG_WARN = 1,  /**< A dropped message or connection, bad input. */
  SK_LOG_INFO = 2,  /**< Lifecycle events: listening, stopping. */
  SK_LOG_DEBUG = 3  /**< Per-connection detail. */
} sk_log_level;

/**
 * A log handler.
 *
 * @param level   one of ::sk_log_level.
 * @param message one line of text without a trailing newline, valid during
 *                the call only.
 * @param user    the pointer given to sk_set_log_handler().
 * @note It is called from whichever thread the event happened on, possibly
 *       from several threads at once; it must be thread-safe and must not
 *       call back into the server that logged.
 */
typedef void (*sk_log_fn)(int level, const char *message, void *user);

/**
 * Install the process-wide log handler.
 *
 * @param fn   the handler, or NULL to restore the default (stderr).
 * @param user passed to each call of @p fn.
 * @note Process-wide setting. Thread-safe: a call already in progress may
 *       still reach the previous handler.
 * @note Not async-signal-safe.
 */
SK_API void sk_set_log_handler(sk_log_fn fn, void *user);

/**
 * Set the most verbose level that is passed to the handler.
 *
 * @param level one of ::sk_log_level; default ::SK_LOG_WARN.
 * @return ::SK_OK, or ::SK_EINVAL for a level outside ::sk_log_level.
 * @note Process-wide setting. Thread-safe.
 * @note Not async-signal-safe.
 */
SK_API int sk_set_log_level(int level);

/** @} */

/**
 * @defgroup service The service callback
 * What a user writes: one function from request to reply.
 * @{
 */

/** A buffer of this many bytes always holds an address string of the
 *  library ("[v6]:port", "unix:/path"...) with its terminating NUL. */
#define SK_ADDRSTRLEN 128

/**
 * A service: turns one request into one reply.
 *
 * @param request one whole message as a NUL-terminated string, framing
 *                removed (no trailing newline in line mode). Valid during the
 *                call only.
 * @param user    the pointer given when the server was created.
 * @return the reply, or NULL for no reply. The library copies the reply
 *         before it calls any user code again on this thread, so a string
 *         literal, a per-thread buffer or sk_replyf() is correct. A shared
 *         static buffer is not, when services run on several threads.
 */
typedef const char *(*sk_service)(const char *request, void *user);

/**
 * Format a reply into a buffer owned by the calling thread.
 *
 * Convenient inside a service: `return sk_replyf("%d items", n);`. The buffer
 * grows as needed and is reused by the next call on the same thread, which
 * is safe because the library copies a reply before it calls user code again.
 * It is freed when the thread exits.
 *
 * @param fmt a printf format.
 * @param ... its arguments.
 * @return the formatted text, or NULL (meaning "no reply") if @p fmt is NULL,
 *         formatting fails, or memory runs out.
 * @note Thread-safe (the buffer is per thread). Not async-signal-safe.
 */
SK_API const char *sk_replyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * The address of the client whose request the calling thread is serving.
 *
 * Forms: "127.0.0.1:40000", "[::1]:40000", "unix:/path" for a bound UNIX
 * socket, "unix:@name" for an abstract one, "unix:" for an unnamed one.
 * IPv4 clients of a dual-stack server are shown as IPv4.
 *
 * @return the text, valid until the service returns; NULL when called
 *         outside a service.
 * @note Thread-safe (per-thread state). Only meaningful inside a service.
 * @note Not async-signal-safe.
 */
SK_API const char *sk_peer_address(void);

/**
 * The raw socket address of the client whose request the calling thread is
 * serving.
 *
 * @param len if not NULL, receives the length of the address.
 * @return the address, valid until the service returns; NULL when called
 *         outside a service.
 * @note Thread-safe (per-thread state). Only meaningful inside a service.
 * @note Not async-signal-safe.
 */
SK_API const struct sockaddr *sk_peer_sockaddr(socklen_t *len);

/**
 * The address of the proxy that relayed the request the calling thread is
 * serving, on a TCP server that takes PROXY protocol headers
 * (::SK_OPT_PROXY_PROTOCOL): the connection's own peer, while
 * sk_peer_address() reports the client the header named. Forms as for
 * sk_peer_address(). After a header that names no client (v2 LOCAL, v1
 * UNKNOWN: a proxy's health check) both report the proxy.
 *
 * @return the text, valid until the service returns; NULL when called
 *         outside a service or on a server without the PROXY protocol.
 * @note Thread-safe (per-thread state). Only meaningful inside a service.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API const char *sk_peer_proxy_address(void);

/**
 * The raw socket address of the proxy that relayed the request being
 * served; see sk_peer_proxy_address().
 *
 * @param len if not NULL, receives the length of the address.
 * @return the address, valid until the service returns; NULL when called
 *         outside a service or on a server without the PROXY protocol.
 * @note Thread-safe (per-thread state). Only meaningful inside a service.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API const struct sockaddr *sk_peer_proxy_sockaddr(socklen_t *len);

/**
 * The PP2_TYPE_UNIQUE_ID value of the PROXY protocol v2 header of the
 * connection whose request the calling thread is serving: an opaque
 * identifier of at most 128 bytes the proxy gave the connection (HAProxy's
 * `unique-id-format` with `proxy-v2-options unique-id`), for correlating
 * logs.
 *
 * @param len if not NULL, receives the length of the value, which may be 0.
 * @return the bytes, followed by a NUL that is not counted (the value may
 *         hold NUL bytes itself), valid until the service returns; NULL
 *         when the header had no such TLV, outside a service, or on a
 *         server without the PROXY protocol.
 * @note Thread-safe (per-thread state). Only meaningful inside a service.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API const void *sk_peer_proxy_unique_id(size_t *len);

/**
 * The PP2_TYPE_AUTHORITY value of the PROXY protocol v2 header of the
 * connection whose request the calling thread is serving: the host name
 * the client asked the proxy for (TLS SNI, as HAProxy sends it).
 *
 * @param len if not NULL, receives the length of the value.
 * @return the text, NUL-terminated (the proxy's bytes, unchecked: a NUL
 *         inside makes it shorter than @p len says), valid until the
 *         service returns; NULL when the header had no such TLV, outside
 *         a service, or on a server without the PROXY protocol.
 * @note Thread-safe (per-thread state). Only meaningful inside a service.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API const char *sk_peer_proxy_authority(size_t *len);

/** @} */

/**
 * @defgroup options Options and counters
 * Integer settings shared by the servers, read and written with
 * sk_udp_server_set() / sk_udp_server_get() (and the TCP equivalents), and
 * the counters read with sk_udp_server_stat(). Values are part of the ABI.
 * @{
 */

/** Integer options. Each states its default and range. */
typedef enum sk_option {
  /** Largest request accepted, in bytes. UDP: default and maximum 65507
   *  (the largest UDPv4 payload); range 1..65507; a larger datagram is
   *  dropped and counted (::SK_STAT_DROPS_TRUNCATED). TCP: default 65536;
   *  range 1..67108864 (64 MiB); a larger message is a protocol error that
   *  closes its connection gracefully (counted as
   *  ::SK_STAT_DROPS_TRUNCATED). */
  SK_OPT_MAX_MESSAGE = 1,
  /** 1 sets SO_REUSEPORT so several processes can share the port; default 0
   *  (off); range 0..1. */
  SK_OPT_REUSEPORT = 2,
  /** SO_RCVBUF in bytes; 0 (default) keeps the system default; range
   *  0..INT_MAX. */
  SK_OPT_RCVBUF = 3,
  /** SO_SNDBUF in bytes; 0 (default) keeps the system default; range
   *  0..INT_MAX. */
  SK_OPT_SNDBUF = 4,
  /** TCP only: how messages are delimited, one of ::sk_framing; default
   *  ::SK_FRAME_LINE. */
  SK_OPT_FRAMING = 5,
  /** TCP only: the listen() backlog; default SOMAXCONN (4096 on current
   *  Linux, capped by net.core.somaxconn); range 1..65535. */
  SK_OPT_BACKLOG = 6,
  /** Who runs the service, one of ::sk_model; default
   *  ::SK_MODEL_EVENT_LOOP. UDP accepts ::SK_MODEL_EVENT_LOOP and
   *  ::SK_MODEL_WORKER_POOL. */
  SK_OPT_MODEL = 7,
  /** Worker threads of ::SK_MODEL_WORKER_POOL; default 0, meaning the
   *  number of online CPUs; range 0..1024. */
  SK_OPT_WORKERS = 8,
  /** Event-loop threads, each with its own SO_REUSEPORT socket on the same
   *  port; default 1; 0 means the number of online CPUs; range 0..256.
   *  ::SK_MODEL_PROCESS_PER_CONNECTION requires 1: setting another value
   *  with that model, or that model with another value, is ::SK_EINVAL.
   *  A UNIX path cannot be bound twice, so there the threads share one
   *  socket (UDP: datagrams of one sender may then be served out of
   *  order). */
  SK_OPT_IO_THREADS = 9,
  /** TCP only: most connections open at once; one more is accepted and
   *  closed at once (::SK_STAT_CONNECTIONS_REJECTED); default 0, meaning
   *  no limit but the descriptor limit; range 0..INT_MAX. */
  SK_OPT_MAX_CONNECTIONS = 10,
  /** TCP only: a connection with no complete request and nothing to send
   *  for this long is closed (::SK_STAT_CONNECTIONS_TIMED_OUT); default
   *  60000; 0 disables; range 0..INT_MAX. */
  SK_OPT_IDLE_TIMEOUT_MS = 11,
  /** TCP only: a connection whose client takes none of its pending replies
   *  for this long is closed (::SK_STAT_CONNECTIONS_TIMED_OUT); default
   *  30000; 0 disables; range 0..INT_MAX. */
  SK_OPT_WRITE_TIMEOUT_MS = 12,
  /** TCP only: unsent reply bytes at which a connection stops being served
   *  and read until they drain below half. Serving stops between two
   *  messages, so at most one reply goes over the mark (worker pool: up to
   *  ::SK_OPT_MAX_INFLIGHT finished replies wait beside it); requests the
   *  client sent meanwhile wait in its input. Default 1048576 (1 MiB);
   *  range 1024..1073741824. */
  SK_OPT_OUTPUT_HIGH_WATER = 13,
  /** TCP only: cap on unsent reply bytes across all connections: at it, a
   *  connection with output of its own still pending is neither served nor
   *  read, so each connection goes at most one reply over it. Default
   *  268435456 (256 MiB); 0 disables; range 0..2^40. */
  SK_OPT_MAX_BUFFERED = 14,
  /** How long stop waits for running services and owed replies before it
   *  closes everything and run returns. A service call still running then
   *  is left to finish on its own thread and its reply is discarded; the
   *  server's memory is freed when it returns, so what the service uses
   *  must outlive it. Default 5000; range 0..INT_MAX. */
  SK_OPT_DRAIN_TIMEOUT_MS = 15,
  /** TCP with ::SK_MODEL_WORKER_POOL: requests of one connection handed to
   *  the pool and not yet answered; at the limit the connection is not
   *  read until replies come back; default 16; range 1..65536. */
  SK_OPT_MAX_INFLIGHT = 16,
  /** Clients: how many times to try. TCP client: connection attempts, each
   *  trying every address the name has in turn. UDP client: transmissions
   *  of one request, the first included. Default 5; range 1..1000. */
  SK_OPT_ATTEMPTS = 17,
  /** Clients: milliseconds between attempts, and the base of exponential
   *  back-off. TCP client: the pause after a failed connection attempt. UDP
   *  client: how long a transmission waits for its reply before the request
   *  is sent again. Default 1000; range 0..INT_MAX. */
  SK_OPT_RETRY_DELAY_MS = 18,
  /** Clients: how the pauses between attempts grow, one of ::sk_backoff;
   *  default ::SK_BACKOFF_FIXED. */
  SK_OPT_BACKOFF = 19,
  /** Clients: the longest pause of ::SK_BACKOFF_EXPONENTIAL, in
   *  milliseconds; default 30000; range 0..INT_MAX. */
  SK_OPT_RETRY_MAX_MS = 20,
  /** TCP client: how long one connection attempt may take for each address,
   *  in milliseconds; default 5000; range 1..INT_MAX. */
  SK_OPT_CONNECT_TIMEOUT_MS = 21,
  /** Clients: how long a request may take, in milliseconds, from the start
   *  of sending it to the end of its reply (connecting is not included). TCP
   *  client: also bounds sk_tcp_client_send(). UDP client: counted from the
   *  first transmission, so it bounds the retransmissions too. Default 5000;
   *  range 1..INT_MAX. */
  SK_OPT_REQUEST_TIMEOUT_MS = 22,
  /** TCP servers: every connection begins with a PROXY protocol header
   *  (HAProxy's proxy-protocol.txt), sent by a proxy in front of the
   *  server: one of ::sk_proxy_mode; default ::SK_PROXY_OFF. When on, a
   *  connection whose first bytes are not a valid header of an allowed
   *  version is closed (::SK_STAT_PROXY_ERRORS): the library never guesses
   *  whether a header is there. sk_peer_address() then reports the client
   *  the header names, and sk_peer_proxy_address() the proxy. Only
   *  senders in sk_tcp_server_set_proxy_trusted()'s list may send one.
   *  @since 1.1 */
  SK_OPT_PROXY_PROTOCOL = 23,
  /** TCP servers with ::SK_OPT_PROXY_PROTOCOL: how long a connection may
   *  take to send its whole header, in milliseconds, however many reads it
   *  comes in; a connection that takes longer is closed
   *  (::SK_STAT_PROXY_ERRORS). Default 3000; range 1..INT_MAX. @since 1.1 */
  SK_OPT_PROXY_TIMEOUT_MS = 24
} sk_option;

/** Which PROXY protocol headers a TCP server takes, the values of
 *  ::SK_OPT_PROXY_PROTOCOL. Values are part of the ABI. @since 1.1 */
typedef enum sk_proxy_mode {
  SK_PROXY_OFF = 0, /**< No header: the connection's peer is the client. The default. */
  SK_PROXY_V1 = 1,  /**< The text header, "PROXY TCP4 ...\r\n" (HAProxy send-proxy, nginx). */
  SK_PROXY_V2 = 2,  /**< The binary header (HAProxy send-proxy-v2). */
  SK_PROXY_ANY = 3  /**< Either version, told apart by its first bytes. */
} sk_proxy_mode;

/** Counters, readable from any thread while the server runs. */
typedef enum sk_stat {
  /** Requests passed to the service. */
  SK_STAT_MESSAGES_IN = 1,
  /** Replies sent. UDP: datagrams the kernel took. TCP: replies queued on
   *  their connection in request order, counted before the kernel takes
   *  them (one lost when its connection closes first stays counted). */
  SK_STAT_MESSAGES_OUT = 2,
  /** Payload bytes of requests passed to the service. */
  SK_STAT_BYTES_IN = 3,
  /** Payload bytes of replies sent. */
  SK_STAT_BYTES_OUT = 4,
  /** Requests dropped for exceeding ::SK_OPT_MAX_MESSAGE. */
  SK_STAT_DROPS_TRUNCATED = 5,
  /** Requests dropped for containing a NUL byte. */
  SK_STAT_DROPS_NUL = 6,
  /** Replies dropped: the sender has no address (unbound UNIX socket). */
  SK_STAT_DROPS_NO_ADDRESS = 7,
  /** Replies dropped: the socket buffer was full. */
  SK_STAT_DROPS_WOULD_BLOCK = 8,
  /** Replies dropped: sending failed for another reason. */
  SK_STAT_DROPS_SEND_ERROR = 9,
  /** Replies dropped: longer than a datagram can carry (UDP), or impossible
   *  to queue (TCP: out of memory or over 4 GiB; later replies would answer
   *  the wrong requests, so the connection is closed after the replies
   *  before it, counted in ::SK_STAT_CONNECTIONS_RESET). */
  SK_STAT_DROPS_TOO_LARGE = 10,
  /** TCP: connections accepted. */
  SK_STAT_CONNECTIONS_ACCEPTED = 11,
  /** TCP: connections open now (a gauge). */
  SK_STAT_CONNECTIONS_ACTIVE = 12,
  /** TCP: connections closed because of an error (reset by the client, failed send, a
   *  reply that could not be queued). */
  SK_STAT_CONNECTIONS_RESET = 13,
  /** TCP: connections closed at once: over ::SK_OPT_MAX_CONNECTIONS or out of descriptors. */
  SK_STAT_CONNECTIONS_REJECTED = 14,
  /** TCP: connections closed by the idle or write timeout. */
  SK_STAT_CONNECTIONS_TIMED_OUT = 15,
  /** TCP: unsent reply bytes held now (a gauge). */
  SK_STAT_BYTES_BUFFERED = 16,
  /** UDP worker pool: requests dropped because the pool's queue was full. */
  SK_STAT_DROPS_QUEUE_FULL = 17,
  /** TCP: messages cut short by the end of the stream: the client shut
   *  down its side with part of a message sent (a last line without its
   *  "\n", a LENGTH header or payload not complete). Each is logged,
   *  rate-limited; the replies owed before it are still sent. */
  SK_STAT_DROPS_INCOMPLETE = 18,
  /** TCP, ::SK_FRAME_LINE: replies refused because they contain "\n" (a
   *  client would read them as several replies, and every later reply as
   *  the answer to the wrong request). The connection is closed after the
   *  replies before it, as for ::SK_STAT_DROPS_TOO_LARGE, and it is
   *  logged. Use ::SK_FRAME_LENGTH for replies of several lines. */
  SK_STAT_DROPS_MULTILINE = 19,
  /** TCP, ::SK_OPT_PROXY_PROTOCOL: connections closed at accept, before
   *  anything was read, because their sender is not in the list of
   *  sk_tcp_server_set_proxy_trusted(). @since 1.1 */
  SK_STAT_PROXY_REJECTED = 20,
  /** TCP, ::SK_OPT_PROXY_PROTOCOL: connections closed because their
   *  PROXY header was malformed, of a version not allowed, longer than
   *  the protocol allows, cut short by the end of the stream, or not
   *  complete within ::SK_OPT_PROXY_TIMEOUT_MS. Each is logged,
   *  rate-limited. A connection closed before sending any byte (a
   *  proxy's plain connect check) is not counted. @since 1.1 */
  SK_STAT_PROXY_ERRORS = 21
} sk_stat;

/** @} */

/**
 * @defgroup models Concurrency models
 * Who runs the service, chosen with the ::SK_OPT_MODEL option. Whatever the
 * model, the replies of one TCP connection leave in request order. UDP has
 * no connection: with the pool, replies to one sender may be reordered.
 *
 * Reply buffers: a string literal or a pointer into the request is always
 * safe; sk_replyf() and other per-thread buffers are safe in every model
 * (the library copies the reply before that thread runs user code again);
 * a shared static buffer is safe only with ::SK_MODEL_EVENT_LOOP and one
 * I/O thread, or ::SK_MODEL_PROCESS_PER_CONNECTION; heap replies are safe
 * everywhere once a free function is set with sk_tcp_server_set_reply_free().
 * @{
 */

/** Concurrency models. Values are part of the ABI. */
typedef enum sk_model {
  /** The service runs on the event-loop thread(s): fastest, for services
   *  that never block. The default. */
  SK_MODEL_EVENT_LOOP = 0,
  /** The service runs on a bounded pool of ::SK_OPT_WORKERS threads;
   *  replies return to the connection's event loop and leave in order. For
   *  services that block (disk, commands, other servers). */
  SK_MODEL_WORKER_POOL = 1,
  /** TCP only: one thread per client, as in the classic tutorial. The thread
   *  waits on its socket and on stop, so timeouts and stop still work. */
  SK_MODEL_THREAD_PER_CONNECTION = 2,
  /** TCP only: a forked child process per client, for crash isolation. A
   *  crashing service kills only its child. Requires one I/O thread. The
   *  child runs only the service; it must not call into the server. */
  SK_MODEL_PROCESS_PER_CONNECTION = 3
} sk_model;

/**
 * A function that frees a reply returned by a service, for services that
 * return heap memory; see sk_tcp_server_set_reply_free().
 *
 * @param reply the non-NULL pointer the service returned.
 */
typedef void (*sk_reply_free)(void *reply);

/** @} */

/**
 * @defgroup framing Framing
 * How TCP messages are delimited on the wire (UDP: one datagram is one
 * message). Chosen with the ::SK_OPT_FRAMING option.
 * @{
 */

/** Framing of TCP messages. Values are part of the ABI. */
typedef enum sk_framing {
  /** Messages end in "\n" (a "\r" before it is dropped); replies are sent
   *  verbatim with "\n" appended, and a reply that contains "\n" is
   *  refused (::SK_STAT_DROPS_MULTILINE). The default; works with nc and
   *  telnet. */
  SK_FRAME_LINE = 0,
  /** A 4-byte big-endian (network order) length, then that many bytes. */
  SK_FRAME_LENGTH = 1,
  /** Whatever one read returns is one message (a read takes at most
   *  ::SK_OPT_MAX_MESSAGE bytes, so a longer write arrives as several
   *  messages); replies are sent verbatim. */
  SK_FRAME_RAW = 2
} sk_framing;

/** @} */

/**
 * @defgroup udp UDP server
 * One datagram is one request; a non-NULL reply goes back to the sender, from
 * the address the request was sent to (for a broadcast or multicast
 * request, from an address of the interface it came in on). Works over
 * IPv4, IPv6 and UNIX datagram sockets.
 *
 * Lifecycle: sk_udp_server_create() -> options -> sk_udp_server_listen()
 * (optional) -> sk_udp_server_run() -> sk_udp_server_stop() ->
 * sk_udp_server_destroy(). A server runs once.
 * @{
 */

/** An opaque UDP server. */
typedef struct sk_udp_server sk_udp_server;

/**
 * Create a UDP server. Nothing is bound yet.
 *
 * Instead of binding a socket, a server can adopt one already open, at
 * listen: "fd:N" takes descriptor N (decimal digits, 0 to `INT_MAX`), for
 * example one inherited from a parent; "systemd" takes the first socket
 * systemd passed by socket activation, and "systemd:NAME" the one whose
 * name (`FileDescriptorName=` of the socket unit) is NAME (1 to 255
 * printable characters, no ':'). The systemd forms read the environment
 * as sd_listen_fds(3) does, without libsystemd and without unsetting it,
 * so that several servers of one process can each take one: `LISTEN_PID`
 * must be this process, `LISTEN_PIDFDID` (where set, and where the kernel
 * gives pidfds an inode number) its pidfd, `LISTEN_FDS` counts the
 * descriptors from 3 on, and `LISTEN_FDNAMES`, where set, names each one
 * (without it every descriptor is named "unknown"). The socket must be a
 * bound UDP or UNIX datagram socket (for a TCP server: a listening TCP or
 * UNIX stream socket); anything else fails listen with ::SK_EADDR and a
 * warning that names the descriptor and what is wrong. The adopted socket
 * is made non-blocking and close-on-exec, ::SK_OPT_RCVBUF and
 * ::SK_OPT_SNDBUF apply to it, ::SK_OPT_REUSEPORT does not, and it is
 * shared by every I/O thread. The port and address queries report its
 * address (getsockname). Once listen has succeeded it is the server's:
 * it stays open after a stop and after run returns, and only
 * sk_udp_server_destroy() closes it; a UNIX socket file of it is never
 * removed. If listen fails, the descriptor stays open, still the caller's.
 *
 * @param out     receives the server; set to NULL on failure.
 * @param address where to listen: "127.0.0.1:8848", "[::1]:8848", ":8848" or
 *                "8848" (all interfaces, dual-stack where available),
 *                "unix:/path/to.sock" or "unix:@abstract". Port 0 picks a
 *                free port (see sk_udp_server_port()). Or a socket to
 *                adopt at listen: "fd:N", "systemd" or "systemd:NAME"
 *                (above).
 * @param service called once per datagram; must not be NULL.
 * @param user    passed to every call of @p service.
 * @return ::SK_OK; ::SK_EINVAL if @p out, @p address or @p service is NULL;
 *         ::SK_EADDR for a malformed address (only the syntax is checked
 *         here: whether descriptor N is there, and what it is, is for
 *         listen); ::SK_ENOMEM; ::SK_ESYS if the wake-up descriptor cannot
 *         be created.
 * @note Thread-safe (touches no shared state).
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_server_create(sk_udp_server **out, const char *address, sk_service service,
                                void *user);

/**
 * Set an integer option. Only before the server listens.
 *
 * @param srv    the server.
 * @param option one of ::sk_option that applies to UDP.
 * @param value  the new value; see the option for its range.
 * @return ::SK_OK; ::SK_EINVAL for a NULL server, an option that does not
 *         apply to UDP or a value out of range; ::SK_ESTATE once listening.
 * @note Not thread-safe: configure from one thread before listening.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_server_set(sk_udp_server *srv, int option, long long value);

/**
 * Read an integer option.
 *
 * @param srv    the server.
 * @param option one of ::sk_option that applies to UDP.
 * @param value  receives the value.
 * @return ::SK_OK; ::SK_EINVAL for a NULL argument or an option that does not
 *         apply to UDP.
 * @note Thread-safe once the server is running (options no longer change).
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_server_get(const sk_udp_server *srv, int option, long long *value);

/**
 * Create and bind the socket with the options set so far. Afterwards the
 * bound address can be read. Calling it is optional: sk_udp_server_run()
 * listens first if needed.
 *
 * For a UNIX path, an existing file at the path is replaced only if it is a
 * stale socket: one that refuses a connection because no socket is bound
 * to it any more (its server exited without removing it). A live socket
 * there (another server), or a file that is not a socket, is left alone and
 * listening fails with ::SK_EBIND: `EADDRINUSE` for the socket, `ENOTSOCK`
 * for any other file (a symbolic link too). The file this server
 * created is removed by sk_udp_server_destroy(), unless by then the path
 * names another file (it was removed, or replaced by another server). An
 * abstract address ("unix:@name") already in use fails the same way.
 *
 * For "fd:N" and "systemd[:NAME]" nothing is bound: the socket is adopted
 * and checked as sk_udp_server_create() describes.
 *
 * @param srv the server.
 * @return ::SK_OK; ::SK_EINVAL for NULL; ::SK_ESTATE if already listening or
 *         stopped; ::SK_ESOCKET if the socket cannot be created or
 *         configured; ::SK_EBIND if binding fails (see sk_last_os_error(),
 *         e.g. `EADDRINUSE`); ::SK_EADDR if the socket to adopt is not
 *         there or is not a bound datagram socket; ::SK_ENOMEM; ::SK_ESYS if an I/O thread's
 *         event loop cannot be created. Everything a run needs but its
 *         threads is made here, so a run never lacks descriptors later.
 * @note Not thread-safe.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_server_listen(sk_udp_server *srv);

/**
 * The port the server is bound to, useful after binding port 0.
 *
 * @param srv  the server.
 * @param port receives the port (host byte order); 0 for UNIX sockets.
 * @return ::SK_OK; ::SK_EINVAL for NULL; ::SK_ESTATE before listening.
 * @note Thread-safe once listening.
 * @note Async-signal-safe.
 */
SK_API int sk_udp_server_port(const sk_udp_server *srv, int *port);

/**
 * The address the server is bound to, in the address-string form accepted by
 * sk_udp_server_create().
 *
 * @param srv  the server.
 * @param buf  receives the NUL-terminated text.
 * @param size size of @p buf; ::SK_ADDRSTRLEN always suffices.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments or a buffer too small;
 *         ::SK_ESTATE before listening.
 * @note Thread-safe once listening.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_server_address(const sk_udp_server *srv, char *buf, size_t size);

/**
 * Serve requests in the calling thread until sk_udp_server_stop(). Listens
 * first if needed.
 *
 * @param srv the server.
 * @return ::SK_OK after a stop; ::SK_EINVAL for NULL; ::SK_ESTATE if the
 *         server is running or has run (or was stopped) already; any error of
 *         sk_udp_server_listen(); ::SK_ESYS or ::SK_EREAD if waiting on the
 *         socket fails.
 * @note Blocks. The calling thread serves as the first I/O thread; with
 *       ::SK_OPT_IO_THREADS above 1 or ::SK_MODEL_WORKER_POOL the service
 *       also runs on library threads. After a stop, run returns once queued
 *       requests are served or ::SK_OPT_DRAIN_TIMEOUT_MS has passed; a
 *       service call still running then is not waited for (its reply is
 *       discarded, and the socket and memory are released when it ends).
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_server_run(sk_udp_server *srv);

/**
 * Start serving on threads of the library's own and return at once; for
 * programs that have other work for the calling thread. Listens first if
 * needed. Stop with sk_udp_server_stop(); sk_udp_server_destroy() then waits
 * for the threads to end.
 *
 * @param srv the server.
 * @return ::SK_OK; ::SK_EINVAL for NULL; ::SK_ESTATE if the server is
 *         running or has run (or was stopped) already; any error of
 *         sk_udp_server_listen(); ::SK_ENOMEM; ::SK_ESYS if a thread cannot
 *         be started.
 * @note Not thread-safe with other calls on the same server.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_server_start(sk_udp_server *srv);

/**
 * Hand ownership of replies to the library: after copying each non-NULL
 * reply, the library calls @p fn on it. For services that return heap
 * memory (e.g. `strdup`), with @p fn = `free`. Only before listening.
 *
 * @param srv the server.
 * @param fn  the free function, or NULL (the default) for none.
 * @return ::SK_OK; ::SK_EINVAL for a NULL server; ::SK_ESTATE once listening.
 * @note Not thread-safe: configure before listening. @p fn may be called
 *       from any thread that runs the service.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_server_set_reply_free(sk_udp_server *srv, sk_reply_free fn);

/**
 * Ask the server to stop. sk_udp_server_run() returns soon after, once the
 * service call in progress (if any) has returned. Stopping a server that
 * has not run yet makes a later run return ::SK_ESTATE.
 *
 * @param srv the server.
 * @return ::SK_OK; ::SK_EINVAL for NULL.
 * @note Thread-safe and async-signal-safe: call it from a signal handler or
 *       another thread. Idempotent.
 */
SK_API int sk_udp_server_stop(sk_udp_server *srv);

/**
 * Read a counter.
 *
 * @param srv  the server.
 * @param stat one of ::sk_stat.
 * @param out  receives the value.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments, an unknown counter or a
 *         TCP-only one (::SK_STAT_CONNECTIONS_ACCEPTED to
 *         ::SK_STAT_BYTES_BUFFERED, ::SK_STAT_DROPS_INCOMPLETE,
 *         ::SK_STAT_DROPS_MULTILINE, ::SK_STAT_PROXY_REJECTED,
 *         ::SK_STAT_PROXY_ERRORS).
 * @note Thread-safe: callable from any thread while the server runs.
 * @note Async-signal-safe.
 */
SK_API int sk_udp_server_stat(const sk_udp_server *srv, int stat, uint64_t *out);

/**
 * Destroy a server: close its sockets, remove its UNIX socket file, free it.
 * An adopted socket ("fd:N", "systemd") is closed here, never earlier, and
 * its socket file is left in place.
 * A server started with sk_udp_server_start() is stopped and its threads
 * are joined first (waiting up to ::SK_OPT_DRAIN_TIMEOUT_MS for queued
 * requests). A server inside sk_udp_server_run() must be stopped and run
 * must have returned.
 *
 * @param srv the server; NULL is a no-op.
 * @note Not thread-safe with other calls on the same server.
 * @note Not async-signal-safe.
 */
SK_API void sk_udp_server_destroy(sk_udp_server *srv);

/** @} */

/**
 * @defgroup tcp TCP server
 * Serves many clients at once from one event-loop thread with non-blocking
 * I/O. Each connection carries a stream of messages delimited by the
 * ::SK_OPT_FRAMING option; replies leave in request order, and all replies
 * produced from one read leave in one send.
 *
 * A message larger than ::SK_OPT_MAX_MESSAGE or containing a NUL byte is a
 * protocol error: the replies already owed are delivered, then the server
 * shuts down its side, discards input until the client closes (or 2 s
 * pass), and closes. When a client half-closes after its requests, it still
 * gets every reply before the server closes. The server never raises
 * SIGPIPE. A connection whose unsent replies pass ::SK_OPT_OUTPUT_HIGH_WATER
 * is neither served nor read until they drain, so a client that never
 * reads cannot make memory grow, however many requests one read carries.
 *
 * Lifecycle: sk_tcp_server_create() -> options -> sk_tcp_server_listen()
 * (optional) -> sk_tcp_server_run() -> sk_tcp_server_stop() ->
 * sk_tcp_server_destroy(). A server runs once.
 * @{
 */

/** An opaque TCP server. */
typedef struct sk_tcp_server sk_tcp_server;

/**
 * Create a TCP server. Nothing is bound yet.
 *
 * @param out     receives the server; set to NULL on failure.
 * @param address where to listen, in the forms of sk_udp_server_create();
 *                "unix:/path" is a UNIX stream socket. "fd:N",
 *                "systemd" and "systemd:NAME" adopt a listening TCP or
 *                UNIX stream socket at listen, as sk_udp_server_create()
 *                describes (::SK_OPT_BACKLOG applies to it too).
 * @param service called once per message; must not be NULL.
 * @param user    passed to every call of @p service.
 * @return ::SK_OK; ::SK_EINVAL if @p out, @p address or @p service is NULL;
 *         ::SK_EADDR for a malformed address (syntax only, as for
 *         sk_udp_server_create()); ::SK_ENOMEM; ::SK_ESYS if the event loop
 *         cannot be created.
 * @note Thread-safe (touches no shared state).
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_server_create(sk_tcp_server **out, const char *address, sk_service service,
                                void *user);

/**
 * Set an integer option. Only before the server listens.
 *
 * @param srv    the server.
 * @param option one of ::sk_option that applies to TCP.
 * @param value  the new value; see the option for its range.
 * @return ::SK_OK; ::SK_EINVAL for a NULL server, an option that does not
 *         apply to TCP or a value out of range; ::SK_ESTATE once listening.
 * @note Not thread-safe: configure from one thread before listening.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_server_set(sk_tcp_server *srv, int option, long long value);

/**
 * Read an integer option.
 *
 * @param srv    the server.
 * @param option one of ::sk_option that applies to TCP.
 * @param value  receives the value.
 * @return ::SK_OK; ::SK_EINVAL for a NULL argument or an option that does not
 *         apply to TCP.
 * @note Thread-safe once the server is running (options no longer change).
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_server_get(const sk_tcp_server *srv, int option, long long *value);

/**
 * Create, bind and listen on the socket with the options set so far
 * (SO_REUSEADDR is always set for IP). Afterwards the bound address can be
 * read. Optional: sk_tcp_server_run() listens first if needed.
 *
 * For a UNIX path, an existing file at the path is replaced only if it is a
 * stale socket: one that refuses a connection because no socket listens on
 * it any more (its server exited without removing it). Finding out connects
 * once, so a live server there sees one connection that closes at once. A
 * live socket (another server, even one with a full backlog), or a file
 * that is not a socket, is left alone and listening fails with ::SK_EBIND:
 * `EADDRINUSE` for the socket, `ENOTSOCK` for any other file (a symbolic
 * link too). The file this server created is removed by
 * sk_tcp_server_destroy(), unless by then the path names another file (it
 * was removed, or replaced by another server). An abstract address
 * ("unix:@name") already in use fails the same way.
 *
 * For "fd:N" and "systemd[:NAME]" nothing is bound: the socket is adopted
 * and checked as sk_udp_server_create() describes, and listen() is called
 * on it again with ::SK_OPT_BACKLOG.
 *
 * @param srv the server.
 * @return ::SK_OK; ::SK_EINVAL for NULL; ::SK_ESTATE if already listening or
 *         stopped; ::SK_ESOCKET if the socket cannot be created or
 *         configured; ::SK_EBIND if binding fails (see sk_last_os_error());
 *         ::SK_EADDR if the socket to adopt is not there or is not a
 *         listening stream socket;
 *         ::SK_ELISTEN if listen() fails; ::SK_ENOMEM; ::SK_ESYS if an event
 *         loop cannot be created. Everything a run needs but its threads is
 *         made here, so a run never lacks descriptors later.
 * @note Not thread-safe.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_server_listen(sk_tcp_server *srv);

/**
 * The port the server is bound to, useful after binding port 0.
 *
 * @param srv  the server.
 * @param port receives the port (host byte order); 0 for UNIX sockets.
 * @return ::SK_OK; ::SK_EINVAL for NULL; ::SK_ESTATE before listening.
 * @note Thread-safe once listening.
 * @note Async-signal-safe.
 */
SK_API int sk_tcp_server_port(const sk_tcp_server *srv, int *port);

/**
 * The address the server is bound to, in the address-string form accepted by
 * sk_tcp_server_create().
 *
 * @param srv  the server.
 * @param buf  receives the NUL-terminated text.
 * @param size size of @p buf; ::SK_ADDRSTRLEN always suffices.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments or a buffer too small;
 *         ::SK_ESTATE before listening.
 * @note Thread-safe once listening.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_server_address(const sk_tcp_server *srv, char *buf, size_t size);

/**
 * Serve clients in the calling thread until sk_tcp_server_stop(). Listens
 * first if needed. On stop the listeners close at once and no new request
 * is read; running services finish and owed replies are sent for up to
 * ::SK_OPT_DRAIN_TIMEOUT_MS; then every connection is closed (and, in the
 * fork model, remaining children are killed and reaped) and run returns.
 * A service call (thread or pool model) still running then is not waited
 * for: it finishes on its own thread, its reply is discarded, and the
 * server's memory is freed after it returns (see ::SK_OPT_DRAIN_TIMEOUT_MS).
 *
 * @param srv the server.
 * @return ::SK_OK after a stop; ::SK_EINVAL for NULL; ::SK_ESTATE if the
 *         server is running or has run (or was stopped) already; any error of
 *         sk_tcp_server_listen(); ::SK_ENOMEM; ::SK_ESYS if the event loop
 *         fails.
 * @note Blocks. The calling thread serves as the first event loop; other
 *       loops, the pool and connection threads are library threads with
 *       every signal blocked.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_server_run(sk_tcp_server *srv);

/**
 * Start serving on threads of the library's own and return at once; for
 * programs that have other work for the calling thread. Listens first if
 * needed. Stop with sk_tcp_server_stop(); sk_tcp_server_destroy() then
 * waits for the threads to end.
 *
 * @param srv the server.
 * @return ::SK_OK; ::SK_EINVAL for NULL; ::SK_ESTATE if the server is
 *         running or has run (or was stopped) already; any error of
 *         sk_tcp_server_listen(); ::SK_ENOMEM; ::SK_ESYS if a thread cannot
 *         be started.
 * @note Not thread-safe with other calls on the same server.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_server_start(sk_tcp_server *srv);

/**
 * Hand ownership of replies to the library: after copying each non-NULL
 * reply, the library calls @p fn on it. For services that return heap
 * memory (e.g. `strdup`), with @p fn = `free`. Only before listening.
 *
 * @param srv the server.
 * @param fn  the free function, or NULL (the default) for none.
 * @return ::SK_OK; ::SK_EINVAL for a NULL server; ::SK_ESTATE once listening.
 * @note Not thread-safe: configure before listening. @p fn may be called
 *       from any thread that runs the service.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_server_set_reply_free(sk_tcp_server *srv, sk_reply_free fn);

/**
 * Say which senders may send PROXY protocol headers (::SK_OPT_PROXY_PROTOCOL):
 * a connection from any other address is closed at accept, before anything
 * is read from it, and counted (::SK_STAT_PROXY_REJECTED). Without this
 * call every sender is trusted, so that anyone who can reach the listener
 * can claim any client address: enable the PROXY protocol only on
 * listeners that only your proxies reach, or name them here. The list has
 * no effect while ::SK_OPT_PROXY_PROTOCOL is ::SK_PROXY_OFF. Only before
 * listening.
 *
 * @param srv   the server.
 * @param cidrs the trusted senders, separated by spaces or commas: IPv4
 *              and IPv6 addresses, each with an optional prefix length
 *              ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1"), and
 *              the word "unix" for every peer of a UNIX socket. IPv4
 *              clients of a dual-stack listener match IPv4 entries. NULL
 *              trusts every sender again.
 * @return ::SK_OK; ::SK_EINVAL for a NULL server; ::SK_EADDR for a malformed
 *         entry or a list with none (logged, naming the entry; the list
 *         in force is unchanged); ::SK_ENOMEM; ::SK_ESTATE once listening.
 * @note Not thread-safe: configure before listening.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API int sk_tcp_server_set_proxy_trusted(sk_tcp_server *srv, const char *cidrs);

/**
 * Ask the server to stop; sk_tcp_server_run() returns soon after. Stopping
 * a server that has not run yet makes a later run return ::SK_ESTATE.
 *
 * @param srv the server.
 * @return ::SK_OK; ::SK_EINVAL for NULL.
 * @note Thread-safe and async-signal-safe. Idempotent.
 */
SK_API int sk_tcp_server_stop(sk_tcp_server *srv);

/**
 * Read a counter.
 *
 * @param srv  the server.
 * @param stat one of ::sk_stat.
 * @param out  receives the value.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments, an unknown counter or a
 *         UDP-only one (::SK_STAT_DROPS_NO_ADDRESS,
 *         ::SK_STAT_DROPS_WOULD_BLOCK, ::SK_STAT_DROPS_SEND_ERROR,
 *         ::SK_STAT_DROPS_QUEUE_FULL).
 * @note Thread-safe: callable from any thread while the server runs.
 * @note Async-signal-safe.
 */
SK_API int sk_tcp_server_stat(const sk_tcp_server *srv, int stat, uint64_t *out);

/**
 * Destroy a server: close its sockets, remove its UNIX socket file, free it.
 * An adopted socket ("fd:N", "systemd") is closed here, never earlier, and
 * its socket file is left in place.
 * A server started with sk_tcp_server_start() is stopped and its threads
 * are joined first (the stop drains as described for
 * sk_tcp_server_run()). A server inside sk_tcp_server_run() must be
 * stopped and run must have returned.
 *
 * @param srv the server; NULL is a no-op.
 * @note Not thread-safe with other calls on the same server.
 * @note Not async-signal-safe.
 */
SK_API void sk_tcp_server_destroy(sk_tcp_server *srv);

/** @} */

/**
 * @defgroup clients Clients
 * Blocking clients for the library's servers, or for any server that speaks
 * the same framing: connect with retries, send one request, wait for its
 * reply. Users no longer write the reconnect loop themselves.
 *
 * Addresses: the forms of sk_udp_server_create(), where "8848" or ":8848"
 * means this machine, and host names as well ("localhost:8848",
 * "example.org:8848"). Names are looked up with getaddrinfo() and every
 * address they have is tried in turn. A lookup is not bounded by the
 * client's timeouts: it takes as long as the system resolver takes.
 *
 * Options: ::SK_OPT_ATTEMPTS (default 5), ::SK_OPT_RETRY_DELAY_MS (default
 * 1000: five tries one second apart, like the classic tutorial's client),
 * ::SK_OPT_BACKOFF, ::SK_OPT_RETRY_MAX_MS, ::SK_OPT_REQUEST_TIMEOUT_MS
 * (default 5000) and ::SK_OPT_MAX_MESSAGE, the largest request sent and
 * reply accepted (TCP: default 65536, range 1..67108864; UDP: default and
 * maximum 65507). TCP only: ::SK_OPT_CONNECT_TIMEOUT_MS (default 5000) and
 * ::SK_OPT_FRAMING (default ::SK_FRAME_LINE), which must match the server's.
 *
 * Replies: a reply is a NUL-terminated string owned by the client, valid
 * until the next call on that client; copy it (strdup()) to keep it longer.
 *
 * Binary messages (since 1.1): each request, send and recv call has a twin
 * ending in `_bytes` that takes and returns a pointer and a length instead
 * of a C string, with the same options, timeouts, retries, reconnects and
 * pairing of replies. ::SK_FRAME_LENGTH, ::SK_FRAME_RAW and UDP carry any
 * bytes, NUL included. ::SK_FRAME_LINE carries any bytes but "\n", NUL
 * included too (the framing looks for "\n" only); as with the string calls,
 * a receiver that takes "\r\n" as a line end, as the library does, drops a
 * "\r" that ends a message. A received message is followed by a NUL that
 * its length does not count, so a text reply can be used as a string. The
 * servers of the library pass messages to a service as C strings and so
 * still refuse a request with a NUL byte (::SK_STAT_DROPS_NUL): the binary
 * calls are for servers that speak the framing themselves.
 *
 * A reply is never paired with the wrong request. A TCP client that gives up
 * on a reply closes its connection, so a late reply cannot be read as the
 * next request's; the next call connects again. A UDP client throws away the
 * datagrams already queued before it sends a request. UDP retransmission
 * sends the same request again, so a service may see it more than once and
 * must tolerate that. Plain UDP has no request ids: a reply delayed in the
 * network past its request's timeout and past the start of the next request
 * would be taken for the next reply; protocols that must rule that out carry
 * an id in their messages.
 *
 * Threads: a client must be used by one thread at a time; different clients
 * may be used by different threads at once. Calls block the calling thread;
 * signals do not cut them short. The clients never raise SIGPIPE.
 * @{
 */

/** How the pauses between a client's attempts grow. Values are part of the
 *  ABI. */
typedef enum sk_backoff {
  /** Every pause is ::SK_OPT_RETRY_DELAY_MS. The default. */
  SK_BACKOFF_FIXED = 0,
  /** Pause n (counting from 1) is a random time between 0 and
   *  min(::SK_OPT_RETRY_MAX_MS, ::SK_OPT_RETRY_DELAY_MS * 2^(n-1)): "full
   *  jitter", so that many clients that failed together do not retry in
   *  step. */
  SK_BACKOFF_EXPONENTIAL = 1
} sk_backoff;

/** An opaque TCP client: one connection, made and remade as needed. */
typedef struct sk_tcp_client sk_tcp_client;

/**
 * Create a TCP client. Nothing is looked up or connected yet.
 *
 * @param out     receives the client; set to NULL on failure.
 * @param address the server: "127.0.0.1:8848", "localhost:8848",
 *                "[::1]:8848", "8848" (this machine) or "unix:/path/to.sock"
 *                (a UNIX stream socket).
 * @return ::SK_OK; ::SK_EINVAL if @p out or @p address is NULL; ::SK_EADDR
 *         for a malformed address or port 0 (a name that does not exist is
 *         found out when connecting); ::SK_ENOMEM.
 * @note Thread-safe (touches no shared state).
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_client_create(sk_tcp_client **out, const char *address);

/**
 * Set an integer option. It applies from the next call on the client.
 *
 * @param c      the client.
 * @param option ::SK_OPT_ATTEMPTS, ::SK_OPT_RETRY_DELAY_MS, ::SK_OPT_BACKOFF,
 *               ::SK_OPT_RETRY_MAX_MS, ::SK_OPT_CONNECT_TIMEOUT_MS,
 *               ::SK_OPT_REQUEST_TIMEOUT_MS, ::SK_OPT_MAX_MESSAGE or
 *               ::SK_OPT_FRAMING.
 * @param value  the new value; see the option for its range.
 * @return ::SK_OK; ::SK_EINVAL for a NULL client, another option or a value
 *         out of range; ::SK_ESTATE to change ::SK_OPT_FRAMING while
 *         connected.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_client_set(sk_tcp_client *c, int option, long long value);

/**
 * Read an integer option.
 *
 * @param c      the client.
 * @param option one of the options of sk_tcp_client_set().
 * @param value  receives the value.
 * @return ::SK_OK; ::SK_EINVAL for a NULL argument or another option.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_client_get(const sk_tcp_client *c, int option, long long *value);

/**
 * Connect, retrying as the options say: up to ::SK_OPT_ATTEMPTS attempts,
 * ::SK_OPT_RETRY_DELAY_MS apart (or as ::SK_OPT_BACKOFF says). Each attempt
 * looks the name up again and tries each of its addresses in turn, each for
 * up to ::SK_OPT_CONNECT_TIMEOUT_MS. Each failed attempt is logged at
 * ::SK_LOG_INFO. Calling it is optional: sk_tcp_client_request() and
 * sk_tcp_client_send() connect when needed. sk_tcp_client_attempts() tells
 * how many attempts it took.
 *
 * @param c          the client.
 * @param timeout_ms a bound on the whole call, pauses included, in
 *                   milliseconds; negative for none (the options alone
 *                   decide, as when a request connects).
 * @return ::SK_OK, also at once when already connected; ::SK_EINVAL for NULL;
 *         ::SK_ECONNECT when the last attempt was refused or could not
 *         reach the server, or the name server did not answer
 *         (sk_last_os_error() tells which, e.g. `ECONNREFUSED`);
 *         ::SK_ETIMEDOUT when the last attempt timed out, or @p timeout_ms
 *         ran out (sk_last_os_error() then tells how the last attempt
 *         failed; 0 if it timed out); ::SK_EADDR if the name does not exist; ::SK_ESOCKET if no
 *         socket can be created; ::SK_ENOMEM.
 * @note Not thread-safe with other calls on the same client. Blocks.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_client_connect(sk_tcp_client *c, int timeout_ms);

/**
 * Send one request and wait for its reply.
 *
 * The request is framed as ::SK_OPT_FRAMING says; the reply is the next
 * message from the server, and the whole exchange must end within
 * ::SK_OPT_REQUEST_TIMEOUT_MS. When not connected, the client connects first
 * as sk_tcp_client_connect() does with no bound. A connection that holds
 * data nobody asked for (an extra reply, or the end of a connection the
 * server closed while it was idle) is closed and a new one made first, so
 * the reply read is always this request's. Any failure once sending has
 * begun closes the connection. A request that failed may still have reached
 * the service: the client never sends it again by itself.
 *
 * With ::SK_FRAME_RAW a reply is whatever one read returns, so a reply the
 * network splits in two arrives cut short; prefer the other framings.
 *
 * @param c       the client.
 * @param request the message, a C string (it cannot contain NUL bytes). In
 *                ::SK_FRAME_LINE it must not contain "\n" (that would be two
 *                messages); in ::SK_FRAME_RAW it must not be empty.
 * @param reply   receives the reply, framing removed and NUL-terminated,
 *                owned by the client and valid until the next call on it;
 *                NULL on failure.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments or a request the framing
 *         cannot carry; ::SK_EMSGSIZE for a request or a reply longer than
 *         ::SK_OPT_MAX_MESSAGE; ::SK_ETIMEDOUT if the reply did not come in
 *         time; ::SK_ECLOSED if the server closed or reset the connection
 *         before the whole reply came; ::SK_EPROTO for a reply with a NUL
 *         byte; ::SK_EREAD or ::SK_EWRITE for other socket errors; any error
 *         of sk_tcp_client_connect().
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_client_request(sk_tcp_client *c, const char *request, const char **reply);

/**
 * Send one request of any bytes and wait for its reply: the binary twin of
 * sk_tcp_client_request(), which it is in every other way (connecting,
 * timeouts, reconnects, pairing of replies).
 *
 * @param c         the client.
 * @param req       the request's bytes; NULL only when @p len is 0.
 * @param len       the number of bytes. In ::SK_FRAME_LINE they must not
 *                  contain "\n" (NUL bytes are fine); in ::SK_FRAME_RAW
 *                  there must be at least one.
 * @param reply     receives the reply's bytes, framing removed and followed
 *                  by a NUL that @p reply_len does not count, owned by the
 *                  client and valid until the next call on it; NULL on
 *                  failure. A reply may contain NUL bytes.
 * @param reply_len receives the reply's length; 0 on failure.
 * @return ::SK_OK; ::SK_EINVAL for a NULL @p c, @p reply or @p reply_len, a
 *         NULL @p req with a nonzero @p len, or a request the framing
 *         cannot carry; ::SK_EMSGSIZE for a request or a reply longer than
 *         ::SK_OPT_MAX_MESSAGE; ::SK_ETIMEDOUT if the reply did not come in
 *         time; ::SK_ECLOSED if the server closed or reset the connection
 *         before the whole reply came; ::SK_EREAD or ::SK_EWRITE for other
 *         socket errors; any error of sk_tcp_client_connect().
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API int sk_tcp_client_request_bytes(sk_tcp_client *c, const void *req, size_t len,
                                       const void **reply, size_t *reply_len);

/**
 * Send one message and do not wait for a reply, for one-way use. Connects
 * first when not connected, as sk_tcp_client_request() does. Waits up to
 * ::SK_OPT_REQUEST_TIMEOUT_MS for the kernel to take the message when the
 * server does not read.
 *
 * @param c       the client.
 * @param message the message, as the request of sk_tcp_client_request().
 * @return ::SK_OK once the whole message is handed to the kernel; ::SK_EINVAL
 *         and ::SK_EMSGSIZE as for sk_tcp_client_request(); ::SK_ETIMEDOUT if
 *         the server took too long to take it; ::SK_ECLOSED if the server
 *         closed or reset the connection; ::SK_EWRITE for other socket
 *         errors; any error of sk_tcp_client_connect(). Failures after
 *         sending has begun close the connection.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_client_send(sk_tcp_client *c, const char *message);

/**
 * Send one message of any bytes and do not wait for a reply: the binary
 * twin of sk_tcp_client_send().
 *
 * @param c   the client.
 * @param msg the message's bytes, as the request of
 *            sk_tcp_client_request_bytes(); NULL only when @p len is 0.
 * @param len the number of bytes.
 * @return ::SK_OK once the whole message is handed to the kernel;
 *         ::SK_EINVAL for a NULL @p c, a NULL @p msg with a nonzero @p len,
 *         or a message the framing cannot carry; ::SK_EMSGSIZE for a
 *         message longer than ::SK_OPT_MAX_MESSAGE; ::SK_ETIMEDOUT,
 *         ::SK_ECLOSED, ::SK_EWRITE and the errors of
 *         sk_tcp_client_connect() as for sk_tcp_client_send().
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API int sk_tcp_client_send_bytes(sk_tcp_client *c, const void *msg, size_t len);

/**
 * Wait for one message from the server, for one-way use and for the replies
 * to sk_tcp_client_send(). Messages come in the order the server sent them;
 * the client does not know which request a message answers. Do not leave
 * replies unread before sk_tcp_client_request(): it closes a connection that
 * holds unread data.
 *
 * @param c          the client.
 * @param message    receives the message, framing removed and
 *                   NUL-terminated, owned by the client and valid until the
 *                   next call on it; NULL on failure.
 * @param timeout_ms how long to wait, in milliseconds; 0 takes only a
 *                   message already received; negative waits without limit.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments; ::SK_ESTATE when not
 *         connected; ::SK_ETIMEDOUT if no whole message came in time (the
 *         connection stays open); ::SK_ECLOSED, ::SK_EMSGSIZE, ::SK_EPROTO or
 *         ::SK_EREAD as for sk_tcp_client_request(), after which the
 *         connection is closed.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_client_recv(sk_tcp_client *c, const char **message, int timeout_ms);

/**
 * Wait for one message of any bytes from the server: the binary twin of
 * sk_tcp_client_recv(), for one-way use and for the replies to
 * sk_tcp_client_send_bytes().
 *
 * @param c          the client.
 * @param msg        receives the message's bytes, framing removed and
 *                   followed by a NUL that @p len does not count, owned by
 *                   the client and valid until the next call on it; NULL on
 *                   failure. A message may contain NUL bytes.
 * @param len        receives the message's length; 0 on failure.
 * @param timeout_ms how long to wait, in milliseconds; 0 takes only a
 *                   message already received; negative waits without limit.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments; ::SK_ESTATE when not
 *         connected; ::SK_ETIMEDOUT if no whole message came in time (the
 *         connection stays open); ::SK_ECLOSED, ::SK_EMSGSIZE or ::SK_EREAD
 *         as for sk_tcp_client_request_bytes(), after which the connection
 *         is closed.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API int sk_tcp_client_recv_bytes(sk_tcp_client *c, const void **msg, size_t *len,
                                    int timeout_ms);

/**
 * How many connection attempts the last connect took: 1 when the first
 * succeeded; after a connect that failed, the attempts it made.
 *
 * @param c        the client.
 * @param attempts receives the count; 0 before the first connect.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_tcp_client_attempts(const sk_tcp_client *c, int *attempts);

/**
 * Destroy a client: close its connection and free it, with the last reply.
 *
 * @param c the client; NULL is a no-op.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API void sk_tcp_client_destroy(sk_tcp_client *c);

/** An opaque UDP client: one socket, connected to the server. */
typedef struct sk_udp_client sk_udp_client;

/**
 * Create a UDP client. Nothing is looked up and no socket is made until the
 * first request or send.
 *
 * The addresses of a name are kept from one request to the next, and
 * looked up again when the server may have moved: before the first
 * transmission of a request that follows a failed one (timed out or
 * refused), after every address has refused in turn (the next
 * transmission uses the new addresses), and when the last lookup is a
 * minute old. The socket is kept while the address it is connected to is
 * still among the new ones. A lookup that fails keeps the addresses of the
 * last one that succeeded, so a name server that is down for a while does
 * not stop a client that has reached its server before.
 *
 * @param out     receives the client; set to NULL on failure.
 * @param address the server, in the forms of sk_tcp_client_create();
 *                "unix:/path" is a UNIX datagram socket, and the client binds
 *                an abstract address of its own so the server can reply.
 * @return ::SK_OK; ::SK_EINVAL if @p out or @p address is NULL; ::SK_EADDR
 *         for a malformed address or port 0; ::SK_ENOMEM.
 * @note Thread-safe (touches no shared state).
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_client_create(sk_udp_client **out, const char *address);

/**
 * Set an integer option. It applies from the next call on the client.
 *
 * @param c      the client.
 * @param option ::SK_OPT_ATTEMPTS, ::SK_OPT_RETRY_DELAY_MS, ::SK_OPT_BACKOFF,
 *               ::SK_OPT_RETRY_MAX_MS, ::SK_OPT_REQUEST_TIMEOUT_MS or
 *               ::SK_OPT_MAX_MESSAGE.
 * @param value  the new value; see the option for its range.
 * @return ::SK_OK; ::SK_EINVAL for a NULL client, another option or a value
 *         out of range.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_client_set(sk_udp_client *c, int option, long long value);

/**
 * Read an integer option.
 *
 * @param c      the client.
 * @param option one of the options of sk_udp_client_set().
 * @param value  receives the value.
 * @return ::SK_OK; ::SK_EINVAL for a NULL argument or another option.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_client_get(const sk_udp_client *c, int option, long long *value);

/**
 * Send one request and wait for its reply, sending it again while none
 * comes.
 *
 * Datagrams already queued, such as late replies to earlier requests, are
 * thrown away first. The request goes out as one datagram. When no reply
 * comes within ::SK_OPT_RETRY_DELAY_MS (growing as ::SK_OPT_BACKOFF says),
 * it is sent again, up to ::SK_OPT_ATTEMPTS transmissions, until
 * ::SK_OPT_REQUEST_TIMEOUT_MS have passed since the first. The socket is
 * connected to the server, so datagrams from any other sender are never
 * taken for the reply. When the server refuses (ICMP port unreachable, or
 * no socket at a UNIX path), the next address of the name is tried at once;
 * once every address has refused, the name is looked up again and the next
 * transmission waits its turn. A request that follows a failed one looks
 * the name up first (see sk_udp_client_create()).
 *
 * @param c       the client.
 * @param request the message, a C string; it is sent without its NUL.
 * @param reply   receives the reply, NUL-terminated, owned by the client and
 *                valid until the next call on it; NULL on failure.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments; ::SK_EMSGSIZE for a
 *         request longer than ::SK_OPT_MAX_MESSAGE, or a reply longer than it
 *         (the reply was truncated and is dropped); ::SK_ETIMEDOUT if no
 *         reply came in time; ::SK_ECONNECT if the last transmission was
 *         refused or could not reach the server (sk_last_os_error(), e.g.
 *         `ECONNREFUSED`); ::SK_EADDR if the name does not exist;
 *         ::SK_EPROTO for a reply with a NUL byte; ::SK_ESOCKET or ::SK_EBIND
 *         if the socket cannot be made; ::SK_EREAD or ::SK_EWRITE for other
 *         socket errors; ::SK_ENOMEM.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_client_request(sk_udp_client *c, const char *request, const char **reply);

/**
 * Send one request of any bytes as one datagram and wait for its reply,
 * sending it again while none comes: the binary twin of
 * sk_udp_client_request(), which it is in every other way (retransmission,
 * refusals, lookups, stale and foreign datagrams thrown away).
 *
 * @param c         the client.
 * @param req       the request's bytes, NUL bytes included; NULL only when
 *                  @p len is 0 (an empty datagram).
 * @param len       the number of bytes.
 * @param reply     receives the reply datagram's bytes, followed by a NUL
 *                  that @p reply_len does not count, owned by the client and
 *                  valid until the next call on it; NULL on failure. A reply
 *                  may contain NUL bytes.
 * @param reply_len receives the reply's length; 0 on failure.
 * @return ::SK_OK; ::SK_EINVAL for a NULL @p c, @p reply or @p reply_len, or
 *         a NULL @p req with a nonzero @p len; ::SK_EMSGSIZE for a request
 *         longer than ::SK_OPT_MAX_MESSAGE, or a reply longer than it (the
 *         reply was truncated and is dropped); ::SK_ETIMEDOUT,
 *         ::SK_ECONNECT, ::SK_EADDR, ::SK_ESOCKET, ::SK_EBIND, ::SK_EREAD,
 *         ::SK_EWRITE and ::SK_ENOMEM as for sk_udp_client_request().
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API int sk_udp_client_request_bytes(sk_udp_client *c, const void *req, size_t len,
                                       const void **reply, size_t *reply_len);

/**
 * Send one datagram and do not wait for a reply, for one-way use: no
 * retransmission, and queued datagrams are kept for sk_udp_client_recv().
 *
 * @param c       the client.
 * @param message the message, a C string; it is sent without its NUL.
 * @return ::SK_OK once the kernel took the datagram (it may still be lost);
 *         ::SK_EINVAL for NULL arguments; ::SK_EMSGSIZE for a message longer
 *         than ::SK_OPT_MAX_MESSAGE; ::SK_ECONNECT if the server refused
 *         this or an earlier datagram; ::SK_EADDR, ::SK_ESOCKET, ::SK_EBIND
 *         or ::SK_EWRITE as for sk_udp_client_request().
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_client_send(sk_udp_client *c, const char *message);

/**
 * Send one datagram of any bytes and do not wait for a reply: the binary
 * twin of sk_udp_client_send().
 *
 * @param c   the client.
 * @param msg the datagram's bytes, NUL bytes included; NULL only when @p len
 *            is 0 (an empty datagram).
 * @param len the number of bytes.
 * @return ::SK_OK once the kernel took the datagram (it may still be lost);
 *         ::SK_EINVAL for a NULL @p c, or a NULL @p msg with a nonzero
 *         @p len; ::SK_EMSGSIZE for a message longer than
 *         ::SK_OPT_MAX_MESSAGE; ::SK_ECONNECT, ::SK_EADDR, ::SK_ESOCKET,
 *         ::SK_EBIND or ::SK_EWRITE as for sk_udp_client_send().
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API int sk_udp_client_send_bytes(sk_udp_client *c, const void *msg, size_t len);

/**
 * Wait for one datagram from the server, for one-way use and for the
 * replies to sk_udp_client_send().
 *
 * @param c          the client.
 * @param message    receives the datagram, NUL-terminated, owned by the
 *                   client and valid until the next call on it; NULL on
 *                   failure.
 * @param timeout_ms how long to wait, in milliseconds; 0 takes only a
 *                   datagram already received; negative waits without limit.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments; ::SK_ESTATE before the
 *         first request or send; ::SK_ETIMEDOUT if nothing came in time;
 *         ::SK_ECONNECT if the server refused an earlier datagram;
 *         ::SK_EMSGSIZE for a datagram longer than ::SK_OPT_MAX_MESSAGE
 *         (dropped); ::SK_EPROTO for one with a NUL byte; ::SK_EREAD.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_client_recv(sk_udp_client *c, const char **message, int timeout_ms);

/**
 * Wait for one datagram of any bytes from the server: the binary twin of
 * sk_udp_client_recv(), for one-way use and for the replies to
 * sk_udp_client_send_bytes().
 *
 * @param c          the client.
 * @param msg        receives the datagram's bytes, followed by a NUL that
 *                   @p len does not count, owned by the client and valid
 *                   until the next call on it; NULL on failure. A datagram
 *                   may contain NUL bytes, or none at all (@p len 0).
 * @param len        receives the datagram's length; 0 on failure.
 * @param timeout_ms how long to wait, in milliseconds; 0 takes only a
 *                   datagram already received; negative waits without limit.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments; ::SK_ESTATE before the
 *         first request or send; ::SK_ETIMEDOUT if nothing came in time;
 *         ::SK_ECONNECT if the server refused an earlier datagram;
 *         ::SK_EMSGSIZE for a datagram longer than ::SK_OPT_MAX_MESSAGE
 *         (dropped); ::SK_EREAD.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 * @since 1.1
 */
SK_API int sk_udp_client_recv_bytes(sk_udp_client *c, const void **msg, size_t *len,
                                    int timeout_ms);

/**
 * How many transmissions the last request took: 1 when the first one was
 * answered; after a request that failed, the transmissions it made.
 *
 * @param c        the client.
 * @param attempts receives the count; 0 before the first request.
 * @return ::SK_OK; ::SK_EINVAL for NULL arguments.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API int sk_udp_client_attempts(const sk_udp_client *c, int *attempts);

/**
 * Destroy a client: close its socket and free it, with the last reply.
 *
 * @param c the client; NULL is a no-op.
 * @note Not thread-safe with other calls on the same client.
 * @note Not async-signal-safe.
 */
SK_API void sk_udp_client_destroy(sk_udp_client *c);

/** @} */

/**
 * @defgroup notify Service manager notification
 * Telling systemd (or another manager that speaks its protocol) how the
 * service is doing: that it is ready once it listens, that it is stopping,
 * a line of status. Together with the "systemd" address forms of
 * sk_tcp_server_create() and sk_udp_server_create(), this is what a
 * socket-activated `Type=notify` service needs, without libsystemd.
 * @{
 */

/**
 * Send a state to the service manager, as sd_notify(3) does: @p state
 * goes as one datagram to the UNIX datagram socket `$NOTIFY_SOCKET` names,
 * an absolute path ("/run/systemd/notify") or an abstract name ("@name").
 * Typical states are "READY=1" (once the servers listen), "STOPPING=1",
 * "RELOADING=1" and "STATUS=text"; several go in one call, one per line
 * ("READY=1
STATUS=serving"). Without `$NOTIFY_SOCKET` (not started by a
 * manager that listens) there is no one to tell, and nothing happens. The
 * environment is left as it is.
 *
 * @param state the assignments to send, NUL-terminated; the bytes before
 *              the NUL are sent exactly as they are.
 * @return ::SK_OK, also when `$NOTIFY_SOCKET` is unset or empty;
 *         ::SK_EINVAL if @p state is NULL or empty; ::SK_EADDR if
 *         `$NOTIFY_SOCKET` is of a form this function cannot use (a
 *         relative path, a path or name too long for a UNIX socket, a
 *         "vsock:" address); ::SK_ESOCKET if the socket cannot be
 *         created; ::SK_EWRITE if the datagram cannot be sent, which is
 *         also what a `$NOTIFY_SOCKET` where nothing listens gives
 *         (sk_last_os_error(): `ENOENT` for a path with no socket file,
 *         `ECONNREFUSED` for a socket nothing is bound to any more).
 *         Every failure is logged as a warning.
 * @note Thread-safe, as long as no thread changes the environment
 *       meanwhile (it reads `$NOTIFY_SOCKET` with getenv()). Allocates
 *       nothing; its socket is opened close-on-exec and closed before it
 *       returns, and it never raises `SIGPIPE`.
 * @note Not async-signal-safe (getenv() and the log handler are not).
 */
SK_API int sk_notify(const char *state);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* SOCKKIT_H */
