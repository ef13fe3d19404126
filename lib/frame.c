/* frame.c -- pure decoders and encoders for LINE, LENGTH and RAW framing. */
#include "frame.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "sockkit.h"

/* Messages reach the service as C strings, so an embedded NUL would silently
 * truncate them; we reject such payloads as a protocol error instead. */
static int check_payload(const char *p, size_t n) {
  return memchr(p, '\0', n) != NULL ? SK_EPROTO : 1;
}

static int decode_line(const char *buf, size_t len, size_t max, sk_frame *out) {
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
  return check_payload(buf, n);
}

static int decode_length(const char *buf, size_t len, size_t max, sk_frame *out) {
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
  return check_payload(buf + 4, n);
}

static int decode_raw(const char *buf, size_t len, size_t max, sk_frame *out) {
  if (len > max)
    return SK_EMSGSIZE;
  out->offset = 0;
  out->length = len;
  out->consumed = len;
  return check_payload(buf, len);
}

int sk__frame_decode(int framing, const char *buf, size_t len, size_t max, sk_frame *out) {
  assert(out != NULL);
  /* No framing completes a message in zero bytes. Returning here also lets a
   * connection with no buffer yet pass buf == NULL, which memchr must not see. */
  if (len == 0)
    return 0;
  assert(buf != NULL);
  switch (framing) {
  case SK_FRAME_LINE:
    return decode_line(buf, len, max, out);
  case SK_FRAME_LENGTH:
    return decode_length(buf, len, max, out);
  case SK_FRAME_RAW:
    return decode_raw(buf, len, max, out);
  }
  assert(!"unknown framing");
  return SK_EPROTO;
}

size_t sk__frame_overhead(int framing) {
  switch (framing) {
  case SK_FRAME_LINE:
    return 1;
  case SK_FRAME_LENGTH:
    return 4;
  case SK_FRAME_RAW:
    return 0;
  }
  assert(!"unknown framing");
  return 0;
}

size_t sk__frame_encode(int framing, char *dst, const char *payload, size_t len) {
  assert(dst != NULL && (payload != NULL || len == 0));
  size_t at = 0;
  switch (framing) {
  case SK_FRAME_LINE:
  case SK_FRAME_RAW:
    break;
  case SK_FRAME_LENGTH:
    /* Callers bound replies by the max message size; a length the header
     * cannot hold would be silently truncated on the wire. */
    assert((uint64_t)len <= UINT32_MAX);
    dst[0] = (char)(len >> 24 & 0xff);
    dst[1] = (char)(len >> 16 & 0xff);
    dst[2] = (char)(len >> 8 & 0xff);
    dst[3] = (char)(len & 0xff);
    at = 4;
    break;
  default:
    assert(!"unknown framing");
    return 0;
  }
  if (len > 0) /* memcpy with a NULL source is undefined even for 0 bytes */
    memcpy(dst + at, payload, len);
  at += len;
  if (framing == SK_FRAME_LINE)
    dst[at++] = '\n';
  return at;
}
