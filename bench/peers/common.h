/* common.h -- what every peer echo server shares: the command line, the
 * listening socket and the line echo, so that peers differ only in their
 * event library. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Longest line a peer accepts, as libsockkit's default SK_OPT_MAX_MESSAGE. */
#define MAX_LINE 65536
/* Bytes one read takes: as libsockkit's read chunk. */
#define READ_SIZE 65536

/* The command line every peer takes: --tcp|--udp HOST:PORT. */
typedef struct peer_options {
  int udp;
  const char *name; /* the program's name, for messages */
  char host[64];
  int port;
} peer_options;

/* Parse argv into opts; on a usage error print to stderr and exit 2. */
void peer_parse_args(peer_options *opts, int argc, char **argv);

/* Bind (and for TCP, listen on) a non-blocking socket at opts with
 * SO_REUSEADDR (TCP) and backlog SOMAXCONN, then print "listening on tcp
 * HOST:PORT" (or udp) with the port bound. Exits 1 on failure. */
int peer_listen(const peer_options *opts);

/* Set TCP_NODELAY on an accepted socket, as libsockkit does: replies must
 * not wait for Nagle. */
void peer_nodelay(int fd);

/* Bytes of an incomplete line kept between reads; 16 bytes, and no heap
 * memory while no line is split. */
typedef struct line_carry {
  char *buf;
  uint32_t len;
  uint32_t cap;
} line_carry;

/* The echo service applied to one read: copy each complete line of the
 * carried bytes followed by data[0, len) to out, one line at a time, and
 * keep the incomplete tail in *carry. out must hold carry->len + len bytes.
 * Returns the bytes written to out, or -1 if a line exceeds MAX_LINE or
 * memory runs out (the caller closes the connection). */
long echo_lines(line_carry *carry, const char *data, size_t len, char *out);

/* Free the carried bytes. */
void line_carry_free(line_carry *carry);

#endif
