/* frame.c -- the checked decoder; the framing itself is in frame.h. */
#include "frame.h"

#include <string.h>

/* Messages reach the service as C strings, so an embedded NUL would silently
 * truncate them; we reject such payloads as a protocol error instead. */
int sk__frame_decode(int framing, const char *buf, size_t len, size_t max, sk_frame *out) {
  int rc = sk__frame_decode_nul_free(framing, buf, len, max, out);
  if (rc == 1 && memchr(buf + out->offset, '\0', out->length) != NULL)
    return SK_EPROTO;
  return rc;
}
