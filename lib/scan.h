/* scan.h -- internal: the LINE serving path's byte scan and reply copy,
 * inline with AVX2 where the processor has it.
 *
 * strchrnul and memcpy cost more in their call and set-up than in the
 * work for a line or a reply of a few dozen bytes, which is what a
 * pipelined read mostly holds (bench/profile counts the instructions).
 * The serving path is therefore compiled twice: with the libc functions
 * for any processor, and with the inline versions below for processors
 * with AVX2, chosen per read (sk__scan_avx2). Both give the same results;
 * tests/test_frame.c compares them byte for byte. */
#ifndef SK_SCAN_H
#define SK_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SK__SCAN_AVX2 1
#include <immintrin.h>

/* True when the processor (and the kernel, for its registers) has AVX2. */
static inline bool sk__scan_avx2(void) {
  return __builtin_cpu_supports("avx2");
}

/* The offset from p of the first '\n' or NUL in p[0, end - p), where
 * end[-1] is NUL, so that there is one. Reads nothing outside [p, end). */
static inline __attribute__((always_inline, target("avx2"))) size_t
sk__scan_stop_avx2(const char *p, const char *end) {
  const __m256i nl = _mm256_set1_epi8('\n'), zero = _mm256_setzero_si256();
  /* q runs while 32 bytes remain from it; as integers, since end - 32
   * may lie before the buffer. */
  uintptr_t q = (uintptr_t)p, last = (uintptr_t)end - 32;
  if (q <= last) {
    do {
      __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)q);
      uint32_t m = (uint32_t)_mm256_movemask_epi8(
          _mm256_or_si256(_mm256_cmpeq_epi8(v, nl), _mm256_cmpeq_epi8(v, zero)));
      if (m)
        return (size_t)(q - (uintptr_t)p) + (unsigned)__builtin_ctz(m);
      q += 32;
    } while (q <= last);
    /* Fewer than 32 bytes from q: the 32 that end at `end`, those before
     * q shifted out (they were searched). */
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)last);
    uint32_t m = (uint32_t)_mm256_movemask_epi8(
                     _mm256_or_si256(_mm256_cmpeq_epi8(v, nl), _mm256_cmpeq_epi8(v, zero))) >>
                 (q - last);
    return (size_t)(q - (uintptr_t)p) + (unsigned)__builtin_ctz(m); /* m != 0: end[-1] is NUL */
  }
  if (*p == '\0')
    return 0;                              /* at the terminator: the end of every read */
  return (size_t)(strchrnul(p, '\n') - p); /* fewer than 32 bytes: rare */
}

/* memcpy(dst, src, n) for ranges that do not overlap, inline up to 64
 * bytes: two moves of the largest size that fits, overlapping in the
 * middle, reading only src[0, n) and writing only dst[0, n). */
static inline __attribute__((always_inline, target("avx2"))) void
sk__scan_copy_avx2(char *dst, const char *src, size_t n) {
  if (n >= 32 && n <= 64) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)src);
    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + n - 32));
    _mm256_storeu_si256((__m256i *)(void *)dst, a);
    _mm256_storeu_si256((__m256i *)(void *)(dst + n - 32), b);
  } else if (n >= 16 && n < 32) {
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + n - 16));
    _mm_storeu_si128((__m128i *)(void *)dst, a);
    _mm_storeu_si128((__m128i *)(void *)(dst + n - 16), b);
  } else {
    memcpy(dst, src, n);
  }
}
#endif

/* The same for any processor, with libc. */
static inline __attribute__((always_inline)) size_t sk__scan_stop(const char *p, const char *end) {
  (void)end;
  return (size_t)(strchrnul(p, '\n') - p);
}

static inline __attribute__((always_inline)) void sk__scan_copy(char *dst, const char *src,
                                                                size_t n) {
  memcpy(dst, src, n);
}

#endif
