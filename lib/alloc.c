/* alloc.c -- the allocations that serving depends on, in one place so that
 * tests can make chosen ones fail. */
#include <stdlib.h>

#include "internal.h"

_Atomic(sk_alloc_fail_fn) sk__alloc_fail;

static bool refused(int site, size_t size) {
  sk_alloc_fail_fn fail = atomic_load_explicit(&sk__alloc_fail, memory_order_relaxed);
  return fail && fail(site, size);
}

void *sk__malloc(int site, size_t size) {
  return refused(site, size) ? NULL : malloc(size);
}

void *sk__realloc(int site, void *p, size_t size) {
  return refused(site, size) ? NULL : realloc(p, size);
}
