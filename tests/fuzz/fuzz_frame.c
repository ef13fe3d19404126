/* fuzz_frame.c -- libFuzzer target: the frame decoders, fed a stream in
 * pieces at random split points, against an independent reference. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "sockkit.h"

/* Input: byte 0 picks the framing, byte 1 the maximum message size, bytes
 * 2-3 seed the split points; the rest is the stream a client would send. */

/* Inputs are capped at MAX_INPUT bytes, so no stream holds more messages or
 * pieces than that. */
#define MAX_INPUT 65536
#define MAX_MESSAGES MAX_INPUT

typedef struct message {
  size_t at; /* offset of the payload in the stream */
  size_t len;
} message;

typedef struct outcome {
  message messages[MAX_MESSAGES];
  size_t count;
  int end; /* 0: the stream ends mid-message; else SK_EMSGSIZE / SK_EPROTO */
} outcome;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz_frame: check failed: %s (line %d)\n", #cond, __LINE__);                \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static void record(outcome *o, size_t at, size_t len) {
  CHECK(o->count < MAX_MESSAGES);
  o->messages[o->count++] = (message){at, len};
}

/* What the framing says the stream holds, written straight from the
 * documented rules and sharing no code with frame.c. */
static void reference(int framing, const uint8_t *s, size_t n, size_t max, outcome *o) {
  size_t pos = 0;
  o->count = 0;
  o->end = 0;
  while (pos < n) {
    if (framing == SK_FRAME_LINE) {
      const uint8_t *nl = memchr(s + pos, '\n', n - pos);
      if (!nl) {
        /* An unterminated line of max + 2 bytes can only be oversize. */
        size_t rest = n - pos;
        if (max <= SIZE_MAX - 2 && rest >= max + 2)
          o->end = SK_EMSGSIZE;
        return;
      }
      size_t end = (size_t)(nl - s), len = end - pos;
      if (len > 0 && s[end - 1] == '\r')
        len--;
      if (len > max) {
        o->end = SK_EMSGSIZE;
        return;
      }
      if (memchr(s + pos, 0, len)) {
        o->end = SK_EPROTO;
        return;
      }
      record(o, pos, len);
      pos = end + 1;
    } else { /* SK_FRAME_LENGTH */
      if (n - pos < 4)
        return;
      uint64_t len = (uint64_t)s[pos] << 24 | (uint64_t)s[pos + 1] << 16 |
                     (uint64_t)s[pos + 2] << 8 | s[pos + 3];
      if (len > max) {
        o->end = SK_EMSGSIZE;
        return;
      }
      if (n - pos - 4 < len)
        return;
      if (memchr(s + pos + 4, 0, (size_t)len)) {
        o->end = SK_EPROTO;
        return;
      }
      record(o, pos + 4, (size_t)len);
      pos += 4 + (size_t)len;
    }
  }
}

static uint32_t next_random(uint32_t *state) {
  uint32_t x = *state ? *state : 0x9e3779b9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x;
}

/* Decode one buffer exactly as large as its contents, so that ASan sees
 * any read past the end. Checks the frame's invariants. */
static int decode_exact(int framing, const uint8_t *bytes, size_t len, size_t max, sk_frame *f) {
  char *copy = malloc(len ? len : 1);
  CHECK(copy);
  if (len)
    memcpy(copy, bytes, len);
  *f = (sk_frame){0};
  int rc = sk__frame_decode(framing, len ? copy : NULL, len, max, f);
  CHECK(rc == 0 || rc == 1 || rc == SK_EMSGSIZE || rc == SK_EPROTO);
  if (rc == 1) {
    CHECK(f->consumed >= 1 && f->consumed <= len);
    CHECK(f->offset + f->length <= f->consumed);
    CHECK(f->length <= max);
    CHECK(!memchr(copy + f->offset, 0, f->length));
  }
  free(copy);
  return rc;
}

/* Feed the stream in pieces, carrying the undecoded tail in front of the
 * next piece as the server does. RAW: each piece is one read. */
static void chunked(int framing, const uint8_t *s, size_t n, size_t max, uint32_t seed, outcome *o,
                    size_t *piece_ends, size_t *npieces) {
  size_t pos = 0, carry_from = 0;
  o->count = 0;
  o->end = 0;
  *npieces = 0;
  while (pos < n) {
    uint32_t r = next_random(&seed);
    /* Mostly tiny pieces (split inside headers and before "\n"), now
     * and then large ones. */
    size_t piece = r % 8 == 0 ? 1 + r % 4096 : 1 + r % 7;
    if (piece > n - pos)
      piece = n - pos;
    pos += piece;
    piece_ends[(*npieces)++] = pos;
    /* The buffer is stream[carry_from, pos). */
    for (;;) {
      sk_frame f;
      int rc = decode_exact(framing, s + carry_from, pos - carry_from, max, &f);
      if (rc == 0)
        break;
      if (rc < 0) {
        o->end = rc;
        return;
      }
      record(o, carry_from + f.offset, f.length);
      carry_from += f.consumed;
    }
  }
}

/* Encoding a decoded payload and decoding it again gives it back. */
static void round_trip(int framing, const uint8_t *payload, size_t len, size_t max) {
  if (framing == SK_FRAME_RAW && len == 0)
    return; /* RAW has no empty message */
  if (framing == SK_FRAME_LINE && len > 0 && payload[len - 1] == '\r')
    return; /* "a\r" + "\n" reads back as "a": the documented CR rule */
  size_t cap = len + sk__frame_overhead(framing);
  char *buf = malloc(cap);
  CHECK(buf);
  size_t n = sk__frame_encode(framing, buf, (const char *)payload, len);
  CHECK(n == cap);
  sk_frame f;
  int rc = decode_exact(framing, (const uint8_t *)buf, n, max, &f);
  CHECK(rc == 1);
  CHECK(f.length == len && f.consumed == n);
  CHECK(memcmp(buf + f.offset, payload, len) == 0);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4 || size > MAX_INPUT)
    return 0;
  int framing = data[0] % 3;
  size_t max = data[1] == 0xff ? SIZE_MAX : data[1] >= 0xf0 ? 65536 : (size_t)data[1] % 64;
  uint32_t seed = (uint32_t)data[2] << 8 | data[3];
  const uint8_t *s = data + 4;
  size_t n = size - 4;

  static outcome got, want;
  static size_t piece_ends[MAX_INPUT];
  size_t npieces;
  chunked(framing, s, n, max, seed, &got, piece_ends, &npieces);

  if (framing == SK_FRAME_RAW) {
    /* Every piece is one message, until one is oversize or holds a NUL. */
    size_t from = 0;
    CHECK(got.count <= npieces);
    for (size_t i = 0; i < got.count; i++) {
      CHECK(got.messages[i].at == from && got.messages[i].len == piece_ends[i] - from);
      from = piece_ends[i];
    }
    if (got.count < npieces) {
      size_t len = piece_ends[got.count] - from;
      CHECK(got.end == (len > max ? SK_EMSGSIZE : SK_EPROTO));
      CHECK(len > max || memchr(s + from, 0, len));
    } else {
      CHECK(got.end == 0);
    }
  } else {
    /* Where the stream was split must not matter. */
    reference(framing, s, n, max, &want);
    CHECK(got.count == want.count);
    CHECK(got.end == want.end);
    for (size_t i = 0; i < got.count; i++)
      CHECK(got.messages[i].at == want.messages[i].at &&
            got.messages[i].len == want.messages[i].len);
  }
  for (size_t i = 0; i < got.count; i++)
    round_trip(framing, s + got.messages[i].at, got.messages[i].len, max);
  return 0;
}
