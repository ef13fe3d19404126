/* frame.h -- internal: pure decoders and encoders for the TCP framings.
 *
 * The decoder that skips the NUL check and the encoder are inline: the event
 * loop runs them once per message, where a call each costs more than the
 * work (bench/profile showed them among the top user-space entries). */
#ifndef SK_FRAME_H
#define SK_FRAME_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sockkit.h"

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

static inline int sk__frame_decode_line(const char *buf, size_t len, size_t max, sk_frame *out) {
  /* A valid line is at most max payload bytes, an optional '\r' and the '\n',
   * so looking further than max + 2 bytes can only find an oversize line; the
   * bound also keeps a large buffer of garbage from being rescanned on every
   * read. Clamp so that max near SIZE_MAX does not wrap around. */
  size_t window = max > SIZE_MAX - 2 ? SIZE_MAX : max + 2;
  const char *nl = memchr(buf, '\n', len < window ? len : window);
  if (nl == NULL)
    return len >= window ? SK_EMSGSIZE : 0;
  size_t end = (size_t)(nl - buf);
  size_t n = end > 0 && buf[end - 1] == '\r' ? end - 1 : end;
  if (n > max)
    return SK_EMSGSIZE;
  out->offset = 0;
  out->length = n;
  out->consumed = end + 1;
  return 1;
}

static inline int sk__frame_decode_length(const char *buf, size_t len, size_t max, sk_frame *out) {
  if (len < 4)
    return 0;
  /* Assemble byte by byte: no unaligned load, and correct on any host order. */
  const unsigned char *b = (const unsigned char *)buf;
  uint32_t n = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
  /* Reject as soon as the header says too much, rather than buffering up to
   * 4 GiB of payload we would refuse anyway. */
  if (n > max)
    return SK_EMSGSIZE;
  if (len - 4 < n) /* not 4 + n < len: that can wrap where size_t is 32 bits */
    return 0;
  out->offset = 4;
  out->length = n;
  out->consumed = 4 + (size_t)n;
  return 1;
}

/* sk__frame_decode for a caller that has searched all of buf[0, len) for a
 * NUL byte and found none: the same results, without scanning each payload
 * again (SK_EPROTO is never returned). It is also the decoder of the binary
 * clients (sk_*_client_*_bytes), for which a NUL is payload like any other
 * byte: the framings themselves never look at NUL. */
static inline int sk__frame_decode_nul_free(int framing, const char *buf, size_t len, size_t max,
                                            sk_frame *out) {
  assert(out != NULL);
  /* No framing completes a message in zero bytes. Returning here also lets a
   * connection with no buffer yet pass buf == NULL, which memchr must not see. */
  if (len == 0)
    return 0;
  assert(buf != NULL);
  switch (framing) {
  case SK_FRAME_LINE:
    return sk__frame_decode_line(buf, len, max, out);
  case SK_FRAME_LENGTH:
    return sk__frame_decode_length(buf, len, max, out);
  case SK_FRAME_RAW:
    if (len > max)
      return SK_EMSGSIZE;
    out->offset = 0;
    out->length = len;
    out->consumed = len;
    return 1;
  }
  assert(!"unknown framing");
  return SK_EPROTO;
}

/* Bytes the framing adds around a payload: 1 (LINE), 4 (LENGTH), 0 (RAW). */
static inline size_t sk__frame_overhead(int framing) {
  return framing == SK_FRAME_LENGTH ? 4 : framing == SK_FRAME_LINE ? 1 : 0;
}

/* Write `payload` framed for `framing` into dst, which has room for
 * len + sk__frame_overhead(framing) bytes. Returns the bytes written. */
static inline size_t sk__frame_encode(int framing, char *dst, const char *payload, size_t len) {
  assert(dst != NULL && (payload != NULL || len == 0));
  assert(framing == SK_FRAME_LINE || framing == SK_FRAME_LENGTH || framing == SK_FRAME_RAW);
  size_t at = 0;
  if (framing == SK_FRAME_LENGTH) {
    /* Callers bound replies by the max message size; a length the header
     * cannot hold would be silently truncated on the wire. */
    assert((uint64_t)len <= UINT32_MAX);
    dst[0] = (char)(len >> 24 & 0xff);
    dst[1] = (char)(len >> 16 & 0xff);
    dst[2] = (char)(len >> 8 & 0xff);
    dst[3] = (char)(len & 0xff);
    at = 4;
  }
  if (len > 0) /* memcpy with a NULL source is undefined even for 0 bytes */
    memcpy(dst + at, payload, len);
  at += len;
  if (framing == SK_FRAME_LINE)
    dst[at++] = '\n';
  return at;
}

#endif
