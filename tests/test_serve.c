/* test_serve.c -- the serving path's lean LINE loop (with AVX2 and with the
 * portable scan) gives exactly what its general, checked loop gives: the
 * same replies, bytes consumed, result and counts, for lines of every
 * length around the scan's 32-byte steps, "\r\n", NUL bytes, lines at and
 * past the maximum, incomplete tails, output limits and replies that are
 * the request, a part of it, another string, none, or several lines. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "internal.h"
#include "support.h"
#include "tcp.h"

#define MAX_MESSAGE 100

static const char long_reply[] =
    "a reply longer than sixty-four bytes, so that it is copied by memcpy and not inline";

/* The reply depends on the request's first byte. */
static const char *service(const char *request, void *user) {
  (void)user;
  switch (request[0]) {
  case 's':
    return request + 1; /* a part of the request that runs to its end */
  case 'c':
    return "ok";
  case 'n':
    return NULL;
  case 'm':
    return "two\nlines"; /* refused in LINE framing */
  case 'l':
    return long_reply;
  case 'h':
    return request + strlen(request) / 2;
  default:
    return request;
  }
}

static int frees;
static void reply_free(void *reply) {
  (void)reply;
  frees++;
}

/* A deterministic generator (xorshift), so a failure is reproducible. */
static uint64_t rng = 88172645463325252ull;
static uint32_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

/* Fill buf with lines of random shapes; returns its length. */
static size_t make_input(char *buf, size_t cap) {
  static const char first[] = "esncmlhx";
  size_t len = 0;
  int lines = (int)(next_random() % 40);
  for (int i = 0; i < lines && len + MAX_MESSAGE + 8 < cap; i++) {
    uint32_t r = next_random();
    size_t n;
    switch (r % 8) {
    case 0:
      n = MAX_MESSAGE; /* at the maximum */
      break;
    case 1:
      n = MAX_MESSAGE - 1 + r / 8 % 3; /* around it */
      break;
    case 2:
      n = r / 8 % 4; /* empty or tiny */
      break;
    default:
      n = r / 8 % 80; /* across the 32- and 64-byte steps */
    }
    for (size_t k = 0; k < n; k++)
      buf[len + k] = (char)('a' + (r + k) % 26);
    if (n > 0)
      buf[len] = first[r / 1024 % (sizeof first - 1)];
    if (n > 2 && r / 65536 % 97 == 0)
      buf[len + n / 2] = (r & 1) ? '\0' : '\r'; /* a NUL, or a lone CR */
    len += n;
    if (r / 4096 % 3 == 0)
      buf[len++] = '\r';
    if (i + 1 < lines || r / 8192 % 4 != 0)
      buf[len++] = '\n'; /* else the last line is incomplete */
  }
  return len;
}

typedef struct result {
  int rc;
  size_t used;
  char out[16384];
  size_t out_len;
  sk_tally tally;
  uint64_t truncated, nul, multiline;
} result;

static uint64_t stat_of(sk_tcp_server *srv, int stat) {
  uint64_t v = 0;
  ck_assert_int_eq(sk_tcp_server_stat(srv, stat, &v), SK_OK);
  return v;
}

/* Serve a copy of input on a fresh server; lean: the event loop's LINE
 * loop (count_first false), else the general one. `prefix` bytes already
 * wait in the output buffer, `head` bytes before them were sent. */
static void serve(const char *input, size_t len, bool lean, bool portable, bool with_free,
                  size_t limit, size_t prefix, size_t head, result *res) {
  sk_tcp_server *srv = NULL;
  ck_assert_int_eq(sk_tcp_server_create(&srv, "127.0.0.1:0", service, NULL), SK_OK);
  ck_assert_int_eq(sk_tcp_server_set(srv, SK_OPT_MAX_MESSAGE, MAX_MESSAGE), SK_OK);
  if (with_free)
    ck_assert_int_eq(sk_tcp_server_set_reply_free(srv, reply_free), SK_OK);
  char *buf = malloc(len + 1);
  ck_assert_ptr_nonnull(buf);
  memcpy(buf, input, len);
  sk_buf *out = NULL;
  if (prefix + head) {
    char filler[512];
    memset(filler, 'p', sizeof filler);
    ck_assert_int_eq(sk__buf_append(&out, filler, prefix + head), 0);
    sk__buf_consume(&out, head);
  }
  sk_tally tally = {0};
  sk_peer peer = {0};
  sk__scan_portable = portable;
  res->used = 0;
  res->rc = sk__tcp_serve_all(srv, -1, !lean, buf, len, limit, &res->used, &out, &tally, &peer);
  sk__scan_portable = false;
  sk__tcp_flush_tally(srv, &tally);
  res->tally.in = stat_of(srv, SK_STAT_MESSAGES_IN);
  res->tally.bytes_in = stat_of(srv, SK_STAT_BYTES_IN);
  res->tally.out = stat_of(srv, SK_STAT_MESSAGES_OUT);
  res->tally.bytes_out = stat_of(srv, SK_STAT_BYTES_OUT);
  res->out_len = sk__buf_len(out);
  ck_assert_uint_le(res->out_len, sizeof res->out);
  if (res->out_len)
    memcpy(res->out, sk__buf_bytes(out), res->out_len);
  /* Bytes not consumed are as they came. */
  ck_assert_int_eq(memcmp(buf + res->used, input + res->used, len - res->used), 0);
  free(out);
  free(buf);
  sk_tcp_server_destroy(srv);
}

static void expect_same(const result *a, const result *b, int round) {
  ck_assert_msg(a->rc == b->rc && a->used == b->used, "round %d: rc %d/%d, used %zu/%zu", round,
                a->rc, b->rc, a->used, b->used);
  ck_assert_msg(a->out_len == b->out_len && memcmp(a->out, b->out, a->out_len) == 0,
                "round %d: replies differ (%zu/%zu bytes)", round, a->out_len, b->out_len);
  ck_assert_msg(a->tally.in == b->tally.in && a->tally.bytes_in == b->tally.bytes_in &&
                    a->tally.out == b->tally.out && a->tally.bytes_out == b->tally.bytes_out,
                "round %d: counts differ (in %llu/%llu, bytes in %llu/%llu, out %llu/%llu, "
                "bytes out %llu/%llu)",
                round, (unsigned long long)a->tally.in, (unsigned long long)b->tally.in,
                (unsigned long long)a->tally.bytes_in, (unsigned long long)b->tally.bytes_in,
                (unsigned long long)a->tally.out, (unsigned long long)b->tally.out,
                (unsigned long long)a->tally.bytes_out, (unsigned long long)b->tally.bytes_out);
}

START_TEST(test_lean_line_loop_matches_the_checked_one) {
  static char input[8192];
  static result general, lean, portable;
  int full = 0, errors = 0, incomplete = 0;
  int rounds = sk_test_scaled(3000, 300);
  for (int round = 0; round < rounds; round++) {
    size_t len = make_input(input, sizeof input);
    uint32_t r = next_random();
    size_t limit = r % 4 == 0 ? 1 + r / 4 % 600 : SIZE_MAX / 2;
    size_t prefix = r / 16 % 3 == 0 ? r / 64 % 200 : 0;
    size_t head = prefix && r / 256 % 2 ? r / 512 % 100 : 0;
    bool with_free = r / 1024 % 3 == 0;
    frees = 0;
    serve(input, len, false, false, with_free, limit, prefix, head, &general);
    int general_frees = frees;
    frees = 0;
    serve(input, len, true, false, with_free, limit, prefix, head, &lean);
    ck_assert_int_eq(frees, general_frees);
    frees = 0;
    serve(input, len, true, true, with_free, limit, prefix, head, &portable);
    ck_assert_int_eq(frees, general_frees);
    expect_same(&general, &lean, round);
    expect_same(&general, &portable, round);
    full += general.rc == SK_TCP_SERVE_FULL;
    errors += general.rc < 0;
    incomplete += general.rc == 0 && general.used < len;
  }
  /* The generator reached every ending. */
  ck_assert_int_gt(full, rounds / 60);
  ck_assert_int_gt(errors, rounds / 60);
  ck_assert_int_gt(incomplete, rounds / 60);
}
END_TEST

START_TEST(test_lean_line_loop_scans_every_offset) {
  /* One line of each length from 0 to 200, then the same with "\r\n",
   * each followed by a second line, at every start offset within 64
   * bytes: the scan's steps and its last, overlapping step are met at
   * every alignment. */
  static char input[600];
  static result general, lean, portable;
  for (size_t n = 0; n <= 200; n++)
    for (size_t skip = 0; skip < 64; skip += 7)
      for (int crlf = 0; crlf < 2; crlf++) {
        size_t len = 0;
        for (size_t k = 0; k < skip; k++)
          input[len++] = '\n'; /* empty lines before */
        for (size_t k = 0; k < n; k++)
          input[len++] = (char)('a' + k % 26);
        if (crlf)
          input[len++] = '\r';
        input[len++] = '\n';
        memcpy(input + len, "x\n", 2);
        len += 2;
        serve(input, len, false, false, false, SIZE_MAX / 2, 0, 0, &general);
        serve(input, len, true, false, false, SIZE_MAX / 2, 0, 0, &lean);
        serve(input, len, true, true, false, SIZE_MAX / 2, 0, 0, &portable);
        expect_same(&general, &lean, (int)n);
        expect_same(&general, &portable, (int)n);
        /* Past the maximum only the lines before it are served. */
        ck_assert_int_eq(general.rc, n > MAX_MESSAGE ? SK_EMSGSIZE : 0);
      }
}
END_TEST

int main(void) {
  Suite *s = suite_create("serve");
  TCase *tc = tcase_create("lines");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_lean_line_loop_matches_the_checked_one);
  tcase_add_test(tc, test_lean_line_loop_scans_every_offset);
  suite_add_tcase(s, tc);
  return sk_test_run(s);
}
