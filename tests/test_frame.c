/* test_frame.c -- LINE, LENGTH and RAW decoders and encoders, including
 * split delivery, limits, round trips and over-read detection at a guard page. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "frame.h"
#include "sockkit.h"

/* Decode `s` (a string literal, possibly with embedded NULs) whole. */
#define DECODE(framing, s, max, f) sk__frame_decode((framing), (s), sizeof(s) - 1, (max), (f))

/* Assert that frame f over buf carries exactly the payload `want`. */
static void assert_payload(const char *buf, const sk_frame *f, const char *want, size_t want_len) {
  ck_assert_uint_eq(f->length, want_len);
  if (want_len > 0)
    ck_assert_mem_eq(buf + f->offset, want, want_len);
}

/* Deterministic xorshift64 so failures reproduce. */
static uint64_t rng_state;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 32);
}

/* ---- LINE ---------------------------------------------------------------- */

START_TEST(line_single) {
  sk_frame f;
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "hello\n", 100, &f), 1);
  ck_assert_uint_eq(f.offset, 0);
  ck_assert_uint_eq(f.consumed, 6);
  assert_payload("hello\n", &f, "hello", 5);
}
END_TEST

START_TEST(line_crlf_and_lone_cr) {
  sk_frame f;
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "hello\r\n", 100, &f), 1);
  ck_assert_uint_eq(f.consumed, 7);
  assert_payload("hello\r\n", &f, "hello", 5);

  /* Only a '\r' right before '\n' is framing; others are payload. */
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "a\rb\n", 100, &f), 1);
  assert_payload("a\rb\n", &f, "a\rb", 3);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "ab\r\r\n", 100, &f), 1);
  assert_payload("ab\r\r\n", &f, "ab\r", 3);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "\r\n", 100, &f), 1);
  ck_assert_uint_eq(f.length, 0);
  ck_assert_uint_eq(f.consumed, 2);
  /* A '\r' with no '\n' yet is still an incomplete line. */
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "ab\r", 100, &f), 0);
}
END_TEST

START_TEST(line_empty) {
  sk_frame f;
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "\n", 100, &f), 1);
  ck_assert_uint_eq(f.length, 0);
  ck_assert_uint_eq(f.consumed, 1);
  /* Empty input (even with no buffer at all) needs more bytes. */
  ck_assert_int_eq(sk__frame_decode(SK_FRAME_LINE, NULL, 0, 100, &f), 0);
  ck_assert_int_eq(sk__frame_decode(SK_FRAME_LENGTH, NULL, 0, 100, &f), 0);
  ck_assert_int_eq(sk__frame_decode(SK_FRAME_RAW, NULL, 0, 100, &f), 0);
}
END_TEST

START_TEST(line_many) {
  static const char in[] = "one\ntwo\r\n\nthree\nfour";
  static const char *const want[] = {"one", "two", "", "three"};
  const char *p = in;
  size_t len = sizeof(in) - 1, i = 0;
  sk_frame f;
  int rc;
  while ((rc = sk__frame_decode(SK_FRAME_LINE, p, len, 100, &f)) == 1) {
    ck_assert_uint_lt(i, 4);
    assert_payload(p, &f, want[i], strlen(want[i]));
    p += f.consumed;
    len -= f.consumed;
    i++;
  }
  ck_assert_int_eq(rc, 0);
  ck_assert_uint_eq(i, 4);
  ck_assert_uint_eq(len, 4); /* "four" waits for its '\n' */
  ck_assert_mem_eq(p, "four", 4);
}
END_TEST

START_TEST(line_bytewise) {
  static const char in[] = "hello world\r\n";
  size_t n = sizeof(in) - 1;
  char buf[sizeof(in)];
  sk_frame f;
  for (size_t len = 1; len <= n; len++) {
    buf[len - 1] = in[len - 1]; /* the buffer grows by one byte per "read" */
    int rc = sk__frame_decode(SK_FRAME_LINE, buf, len, 11, &f);
    if (len < n) {
      ck_assert_int_eq(rc, 0);
    } else {
      ck_assert_int_eq(rc, 1);
      ck_assert_uint_eq(f.consumed, n);
      assert_payload(buf, &f, "hello world", 11);
    }
  }
}
END_TEST

START_TEST(line_oversize) {
  sk_frame f;
  /* With the '\n' present. */
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "12345678\n", 8, &f), 1);
  ck_assert_uint_eq(f.length, 8);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "12345678\r\n", 8, &f), 1);
  ck_assert_uint_eq(f.length, 8);
  ck_assert_uint_eq(f.consumed, 10);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "123456789\n", 8, &f), SK_EMSGSIZE);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "123456789\r\n", 8, &f), SK_EMSGSIZE);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "1234567890123\n", 8, &f), SK_EMSGSIZE);
  /* Without it: up to max + 1 bytes may still become a valid line (max bytes
   * then "\r\n"); at max + 2 it never can. */
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "12345678", 8, &f), 0);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "12345678\r", 8, &f), 0);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "123456789", 8, &f), 0);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "1234567890", 8, &f), SK_EMSGSIZE);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "12345678\r\r", 8, &f), SK_EMSGSIZE);
  /* A valid line before junk is still delivered first. */
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "ok\n1234567890123", 8, &f), 1);
  ck_assert_uint_eq(f.length, 2);
  /* max = 0 allows only empty lines. */
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "\r\n", 0, &f), 1);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "a\n", 0, &f), SK_EMSGSIZE);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "a", 0, &f), 0);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "ab", 0, &f), SK_EMSGSIZE);
}
END_TEST

START_TEST(line_max_near_size_max) {
  /* max + 2 must not wrap to a tiny search window. */
  sk_frame f;
  for (size_t max = SIZE_MAX - 2; max != 0; max++) {
    ck_assert_int_eq(DECODE(SK_FRAME_LINE, "abc", max, &f), 0);
    ck_assert_int_eq(DECODE(SK_FRAME_LINE, "abc\r\n", max, &f), 1);
    ck_assert_uint_eq(f.length, 3);
  }
}
END_TEST

START_TEST(line_nul) {
  sk_frame f;
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "a\0b\n", 100, &f), SK_EPROTO);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "\0\n", 100, &f), SK_EPROTO);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "ab\0\r\n", 100, &f), SK_EPROTO);
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "ab\0\n", 100, &f), SK_EPROTO);
  /* A NUL after the message belongs to the next one. */
  ck_assert_int_eq(DECODE(SK_FRAME_LINE, "ab\n\0", 100, &f), 1);
  ck_assert_uint_eq(f.length, 2);
}
END_TEST

/* ---- LENGTH -------------------------------------------------------------- */

START_TEST(length_split_header_and_payload) {
  static const char in[] = "\0\0\0\5hello";
  size_t n = sizeof(in) - 1;
  sk_frame f;
  for (size_t len = 1; len < n; len++) /* 1, 2, 3 bytes of header, then partial payload */
    ck_assert_int_eq(sk__frame_decode(SK_FRAME_LENGTH, in, len, 100, &f), 0);
  ck_assert_int_eq(sk__frame_decode(SK_FRAME_LENGTH, in, n, 100, &f), 1);
  ck_assert_uint_eq(f.offset, 4);
  ck_assert_uint_eq(f.consumed, 9);
  assert_payload(in, &f, "hello", 5);
}
END_TEST

START_TEST(length_zero_and_many) {
  static const char in[] = "\0\0\0\0"
                           "\0\0\0\2hi"
                           "\0\0\0\0"
                           "\0\0\0\3ab";
  static const char *const want[] = {"", "hi", ""};
  const char *p = in;
  size_t len = sizeof(in) - 1, i = 0;
  sk_frame f;
  int rc;
  while ((rc = sk__frame_decode(SK_FRAME_LENGTH, p, len, 100, &f)) == 1) {
    ck_assert_uint_lt(i, 3);
    ck_assert_uint_eq(f.offset, 4);
    assert_payload(p, &f, want[i], strlen(want[i]));
    p += f.consumed;
    len -= f.consumed;
    i++;
  }
  ck_assert_int_eq(rc, 0);
  ck_assert_uint_eq(i, 3);
  ck_assert_uint_eq(len, 6);
  /* Zero-length is valid even when max is 0. */
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\0\0\0\0", 0, &f), 1);
  ck_assert_uint_eq(f.consumed, 4);
}
END_TEST

START_TEST(length_oversize_early) {
  sk_frame f;
  /* Rejected once the header is complete, before any payload. */
  ck_assert_int_eq(sk__frame_decode(SK_FRAME_LENGTH, "\0\0\0\13", 3, 10, &f), 0);
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\0\0\0\13", 10, &f), SK_EMSGSIZE);
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\0\0\0\12", 10, &f), 0);
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\xff\xff\xff\xff", 10, &f), SK_EMSGSIZE);
  /* The largest length with a huge max just waits for the payload. */
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\xff\xff\xff\xff", SIZE_MAX, &f), 0);
}
END_TEST

START_TEST(length_byte_order) {
  char buf[4 + 300];
  memcpy(buf, "\x00\x00\x01\x2c", 4);
  memset(buf + 4, 'x', 300);
  sk_frame f;
  ck_assert_int_eq(sk__frame_decode(SK_FRAME_LENGTH, buf, sizeof buf, 300, &f), 1);
  ck_assert_uint_eq(f.length, 300);
  ck_assert_uint_eq(f.consumed, 304);
  ck_assert_int_eq(sk__frame_decode(SK_FRAME_LENGTH, buf, sizeof buf - 1, 300, &f), 0);
  ck_assert_int_eq(sk__frame_decode(SK_FRAME_LENGTH, buf, sizeof buf, 299, &f), SK_EMSGSIZE);
  /* Every header byte counts, most significant first: 0x01020304. */
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\1\2\3\4", 0x01020304, &f), 0);
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\1\2\3\4", 0x01020303, &f), SK_EMSGSIZE);
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\4\3\2\1", 0x04030201, &f), 0);
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\4\3\2\1", 0x04030200, &f), SK_EMSGSIZE);
}
END_TEST

START_TEST(length_nul) {
  sk_frame f;
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\0\0\0\3a\0b", 100, &f), SK_EPROTO);
  /* Zeros in the header are not payload. */
  ck_assert_int_eq(DECODE(SK_FRAME_LENGTH, "\0\0\0\3abc\0", 100, &f), 1);
}
END_TEST

/* ---- RAW ----------------------------------------------------------------- */

START_TEST(raw_whole_buffer) {
  sk_frame f;
  ck_assert_int_eq(DECODE(SK_FRAME_RAW, "one\ntwo\r\n", 100, &f), 1);
  ck_assert_uint_eq(f.offset, 0);
  ck_assert_uint_eq(f.consumed, 9);
  assert_payload("one\ntwo\r\n", &f, "one\ntwo\r\n", 9);
  ck_assert_int_eq(sk__frame_decode(SK_FRAME_RAW, "x", 0, 100, &f), 0);
}
END_TEST

START_TEST(raw_limits) {
  sk_frame f;
  ck_assert_int_eq(DECODE(SK_FRAME_RAW, "12345678", 8, &f), 1);
  ck_assert_uint_eq(f.length, 8);
  ck_assert_int_eq(DECODE(SK_FRAME_RAW, "123456789", 8, &f), SK_EMSGSIZE);
  ck_assert_int_eq(DECODE(SK_FRAME_RAW, "ab\0c", 8, &f), SK_EPROTO);
}
END_TEST

/* ---- Encoding ------------------------------------------------------------ */

START_TEST(encode_each) {
  char buf[512];
  ck_assert_uint_eq(sk__frame_overhead(SK_FRAME_LINE), 1);
  ck_assert_uint_eq(sk__frame_overhead(SK_FRAME_LENGTH), 4);
  ck_assert_uint_eq(sk__frame_overhead(SK_FRAME_RAW), 0);

  ck_assert_uint_eq(sk__frame_encode(SK_FRAME_LINE, buf, "hi", 2), 3);
  ck_assert_mem_eq(buf, "hi\n", 3);
  ck_assert_uint_eq(sk__frame_encode(SK_FRAME_LENGTH, buf, "hi", 2), 6);
  ck_assert_mem_eq(buf, "\0\0\0\2hi", 6);
  ck_assert_uint_eq(sk__frame_encode(SK_FRAME_RAW, buf, "hi", 2), 2);
  ck_assert_mem_eq(buf, "hi", 2);

  ck_assert_uint_eq(sk__frame_encode(SK_FRAME_LINE, buf, NULL, 0), 1);
  ck_assert_int_eq(buf[0], '\n');
  ck_assert_uint_eq(sk__frame_encode(SK_FRAME_LENGTH, buf, "", 0), 4);
  ck_assert_mem_eq(buf, "\0\0\0\0", 4);
  ck_assert_uint_eq(sk__frame_encode(SK_FRAME_RAW, buf, "", 0), 0);

  char big[300];
  memset(big, 'y', sizeof big);
  ck_assert_uint_eq(sk__frame_encode(SK_FRAME_LENGTH, buf, big, sizeof big), 304);
  ck_assert_mem_eq(buf, "\x00\x00\x01\x2c", 4);
}
END_TEST

#define RT_MAX 200 /* max payload in the round trips */
#define RT_MSGS 20 /* messages per stream */
#define RT_ROUNDS 300

/* Random payload that survives `framing`: no NUL anywhere; for LINE also no
 * '\n' and no trailing '\r'; RAW needs at least one byte. */
static size_t random_payload(int framing, char *p) {
  size_t n = rng() % (RT_MAX + 1);
  if (framing == SK_FRAME_RAW && n == 0)
    n = 1;
  for (size_t i = 0; i < n; i++) {
    char c;
    do
      c = (char)(rng() & 0xff);
    while (c == '\0' || (framing == SK_FRAME_LINE && c == '\n'));
    p[i] = c;
  }
  if (framing == SK_FRAME_LINE && n > 0 && p[n - 1] == '\r')
    p[n - 1] = 'r';
  return n;
}

START_TEST(roundtrip_random_splits) {
  static const int framings[] = {SK_FRAME_LINE, SK_FRAME_LENGTH, SK_FRAME_RAW};
  static char msgs[RT_MSGS][RT_MAX];
  static size_t lens[RT_MSGS];
  static char stream[RT_MSGS * (RT_MAX + 4)];
  static char buf[sizeof stream];
  rng_state = UINT64_C(0x9e3779b97f4a7c15);

  for (size_t fi = 0; fi < 3; fi++) {
    int framing = framings[fi];
    for (int round = 0; round < RT_ROUNDS; round++) {
      /* RAW has no boundaries: one read is one message, so one per stream. */
      size_t count = framing == SK_FRAME_RAW ? 1 : 1 + rng() % RT_MSGS;
      size_t total = 0;
      for (size_t i = 0; i < count; i++) {
        lens[i] = random_payload(framing, msgs[i]);
        size_t w = sk__frame_encode(framing, stream + total, msgs[i], lens[i]);
        ck_assert_uint_eq(w, lens[i] + sk__frame_overhead(framing));
        total += w;
      }
      /* Deliver the stream in random-size reads; decode all that is complete
       * after each, as a connection would. */
      size_t fed = 0, have = 0, got = 0;
      while (fed < total) {
        size_t chunk = framing == SK_FRAME_RAW ? total : 1 + rng() % 64;
        if (chunk > total - fed)
          chunk = total - fed;
        memcpy(buf + have, stream + fed, chunk);
        fed += chunk;
        have += chunk;
        sk_frame f;
        int rc;
        while ((rc = sk__frame_decode(framing, buf, have, RT_MAX, &f)) == 1) {
          ck_assert_uint_lt(got, count);
          ck_assert_uint_le(f.consumed, have);
          assert_payload(buf, &f, msgs[got], lens[got]);
          memmove(buf, buf + f.consumed, have - f.consumed);
          have -= f.consumed;
          got++;
        }
        ck_assert_int_eq(rc, 0);
      }
      ck_assert_uint_eq(got, count);
      ck_assert_uint_eq(have, 0);
    }
  }
}
END_TEST

/* ---- Over-read detection ------------------------------------------------- */

/* Decode every prefix of `in`, placed so that its last byte is the last
 * readable byte before a PROT_NONE page, consuming messages as they come.
 * Any read past the prefix faults. Returns the messages found in the whole
 * input; *last receives what the decoder said last about the whole input
 * (RAW stops after its one message). */
static size_t decode_at_guard(char *page_end, int framing, const char *in, size_t n, size_t max,
                              int *last) {
  size_t msgs = 0;
  int rc = 0;
  for (size_t len = 0; len <= n; len++) {
    char *p = page_end - len;
    memcpy(p, in, len);
    size_t left = len;
    sk_frame f;
    msgs = 0;
    while ((rc = sk__frame_decode(framing, p, left, max, &f)) == 1) {
      ck_assert_uint_le(f.consumed, left);
      ck_assert_uint_le(f.offset + f.length, f.consumed);
      p += f.consumed;
      left -= f.consumed;
      msgs++;
      if (framing == SK_FRAME_RAW)
        break;
    }
    ck_assert(rc == 0 || rc == 1 || rc == SK_EMSGSIZE);
  }
  *last = rc;
  return msgs;
}

START_TEST(no_overread_at_guard_page) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  char *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(map, MAP_FAILED);
  ck_assert_int_eq(mprotect(map + page, page, PROT_NONE), 0);
  char *end = map + page;
  int last;

  /* A large max makes the LINE search window larger than the input, so only
   * the buffer length may bound it. The unterminated tail needs more. */
  static const char line[] = "a\nbc\r\n\r\n\ndef\rg\nunterminated";
  ck_assert_uint_eq(decode_at_guard(end, SK_FRAME_LINE, line, sizeof line - 1, SIZE_MAX, &last), 5);
  ck_assert_int_eq(last, 0);
  ck_assert_uint_eq(decode_at_guard(end, SK_FRAME_LINE, line, sizeof line - 1, 100, &last), 5);
  ck_assert_int_eq(last, 0);
  /* Past max + 2 bytes without a newline the line is too long. */
  static const char longline[] = "0123456789abcdef";
  ck_assert_uint_eq(decode_at_guard(end, SK_FRAME_LINE, longline, sizeof longline - 1, 4, &last),
                    0);
  ck_assert_int_eq(last, SK_EMSGSIZE);

  static const char length[] = "\0\0\0\0"
                               "\0\0\0\3abc"
                               "\0\0\0\1z"
                               "\0\0\0\7partial";
  ck_assert_uint_eq(decode_at_guard(end, SK_FRAME_LENGTH, length, sizeof length - 1, 100, &last),
                    4);
  ck_assert_int_eq(last, 0);
  /* Cut before the fourth header: three messages, then more is needed. */
  ck_assert_uint_eq(decode_at_guard(end, SK_FRAME_LENGTH, length, 16, 100, &last), 3);
  ck_assert_int_eq(last, 0);
  /* A header announcing 256 bytes is refused at once against a max of 100. */
  ck_assert_uint_eq(decode_at_guard(end, SK_FRAME_LENGTH, "\0\0\1\0", 4, 100, &last), 0);
  ck_assert_int_eq(last, SK_EMSGSIZE);

  static const char raw[] = "whatever one read returned\n";
  ck_assert_uint_eq(decode_at_guard(end, SK_FRAME_RAW, raw, sizeof raw - 1, 100, &last), 1);
  ck_assert_int_eq(last, 1);
  /* RAW refuses a read longer than max: nothing is cut off silently. */
  ck_assert_uint_eq(decode_at_guard(end, SK_FRAME_RAW, raw, sizeof raw - 1, 5, &last), 0);
  ck_assert_int_eq(last, SK_EMSGSIZE);

  ck_assert_int_eq(munmap(map, 2 * page), 0);
}
END_TEST

#ifdef NDEBUG
/* Without asserts, an unknown framing is refused rather than misread. */
START_TEST(unknown_framing_refused) {
  sk_frame f;
  ck_assert_int_eq(DECODE(7, "abc\n", 100, &f), SK_EPROTO);
  ck_assert_uint_eq(sk__frame_overhead(7), 0);
}
END_TEST
#endif

static Suite *frame_suite(void) {
  Suite *s = suite_create("frame");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, line_single);
  tcase_add_test(tc, line_crlf_and_lone_cr);
  tcase_add_test(tc, line_empty);
  tcase_add_test(tc, line_many);
  tcase_add_test(tc, line_bytewise);
  tcase_add_test(tc, line_oversize);
  tcase_add_test(tc, line_max_near_size_max);
  tcase_add_test(tc, line_nul);
  tcase_add_test(tc, length_split_header_and_payload);
  tcase_add_test(tc, length_zero_and_many);
  tcase_add_test(tc, length_oversize_early);
  tcase_add_test(tc, length_byte_order);
  tcase_add_test(tc, length_nul);
  tcase_add_test(tc, raw_whole_buffer);
  tcase_add_test(tc, raw_limits);
  tcase_add_test(tc, encode_each);
  tcase_add_test(tc, roundtrip_random_splits);
  tcase_add_test(tc, no_overread_at_guard_page);
#ifdef NDEBUG
  tcase_add_test(tc, unknown_framing_refused);
#endif
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(frame_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
