/* frame.h -- internal: pure decoders and encoders for the TCP framings. */
#ifndef SK_FRAME_H
#define SK_FRAME_H

#include <stddef.h>

/* Result of decoding one message from the front of a buffer. */
typedef struct sk_frame {
  size_t offset;   /* where the payload starts in the buffer */
  size_t length;   /* payload length, framing removed ("\r\n" too in LINE) */
  size_t consumed; /* bytes to drop from the front of the buffer after it */
} sk_frame;

/* Decode the first message in buf[0, len) for `framing` (SK_FRAME_*),
 * accepting payloads of at most `max` bytes.
 * Returns 1 when a whole message was found (*out filled), 0 when more bytes
 * are needed, SK_EMSGSIZE when the message is (or must become) longer than
 * max, SK_EPROTO when its payload contains a NUL byte.
 * LINE: payload ends at '\n'; one '\r' before it is dropped. A line longer
 * than max is reported as soon as max + 2 bytes arrive without '\n'.
 * LENGTH: a 4-byte big-endian length, then the payload; zero-length is valid.
 * RAW: everything in the buffer is one message (len > 0).
 * Pure: reads only buf[0, len), writes only *out. */
int sk__frame_decode(int framing, const char *buf, size_t len, size_t max, sk_frame *out);

/* Bytes the framing adds around a payload: 1 (LINE), 4 (LENGTH), 0 (RAW). */
size_t sk__frame_overhead(int framing);

/* Write `payload` framed for `framing` into dst, which has room for
 * len + sk__frame_overhead(framing) bytes. Returns the bytes written. */
size_t sk__frame_encode(int framing, char *dst, const char *payload, size_t len);

#endif
