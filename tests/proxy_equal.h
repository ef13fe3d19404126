/* proxy_equal.h -- test helper: two decoded PROXY headers say the same
 * (every field the decoder fills), for the unit tests and the fuzz target. */
#ifndef SK_TEST_PROXY_EQUAL_H
#define SK_TEST_PROXY_EQUAL_H

#include <stdbool.h>
#include <string.h>

#include "proxy.h"

static inline bool sk_test_same_header(const sk_proxy_header *a, const sk_proxy_header *b) {
  return a->version == b->version && a->local == b->local && a->family == b->family &&
         a->src_len == b->src_len && a->dst_len == b->dst_len && a->length == b->length &&
         memcmp(&a->src, &b->src, sizeof a->src) == 0 &&
         memcmp(&a->dst, &b->dst, sizeof a->dst) == 0 && a->unique_id_at == b->unique_id_at &&
         a->unique_id_len == b->unique_id_len && a->authority_at == b->authority_at &&
         a->authority_len == b->authority_len && a->crc32c_at == b->crc32c_at;
}

#endif
