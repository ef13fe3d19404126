/* conn.c -- connection slots by descriptor, byte buffers and timer lists. */
#include "conn.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "loop.h"

_Atomic uint64_t sk__buf_bytes_moved;

static void count_moved(size_t n) {
  atomic_fetch_add_explicit(&sk__buf_bytes_moved, n, memory_order_relaxed);
}

char *sk__buf_reserve(sk_buf **bp, size_t n) {
  sk_buf *b = *bp;
  size_t len = b ? b->len : 0;
  if (n > UINT32_MAX - len)
    return NULL;
  if (b && (size_t)b->head + len + n <= b->cap)
    return b->data + b->head + len;
  if (b && b->head && len + n <= b->cap / 2) {
    /* Room exists once consumed bytes are dropped from the front. Moving
     * only while the kept bytes fill at most half the buffer means each
     * move follows more consumed bytes than it moves: moving costs a
     * constant per byte passed through, however the reads fall. */
    memmove(b->data, b->data + b->head, len);
    count_moved(len);
    b->head = 0;
    return b->data + len;
  }
  size_t cap = b ? b->cap : 0;
  cap = cap < 256 ? 512 : cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
  while (cap < len + n)
    cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
  if (b && b->head) {
    memmove(b->data, b->data + b->head, len);
    count_moved(len);
    b->head = 0;
  }
  /* Doubling: realloc copies each byte a constant number of times on
   * average. */
  sk_buf *grown = sk__realloc(SK_ALLOC_BUFFER, b, sizeof *grown + cap);
  if (!grown)
    return NULL;
  count_moved(len);
  if (!b)
    grown->head = grown->len = 0;
  grown->cap = (uint32_t)cap;
  *bp = grown;
  return grown->data + len;
}

int sk__buf_append(sk_buf **bp, const void *bytes, size_t n) {
  char *dst = sk__buf_reserve(bp, n);
  if (!dst)
    return -1;
  memcpy(dst, bytes, n);
  (*bp)->len += (uint32_t)n;
  return 0;
}

void sk__buf_consume(sk_buf **bp, size_t n) {
  sk_buf *b = *bp;
  assert(b && n <= b->len);
  b->head += (uint32_t)n;
  b->len -= (uint32_t)n;
  if (b->len == 0) {
    free(b);
    *bp = NULL;
  }
}

void sk__conn_table_init(sk_conn_table *t) {
  memset(t, 0, sizeof *t);
  for (int i = 0; i < SK_LIST_COUNT; i++)
    t->lists[i].head = t->lists[i].tail = -1;
}

void sk__conn_table_free(sk_conn_table *t) {
  for (int fd = 0; fd < t->cap; fd++)
    if (t->slots[fd].flags & SK_CONN_OPEN)
      sk__conn_release(t, fd);
  free(t->slots);
  t->slots = NULL;
  t->cap = 0;
}

sk_conn *sk__conn_open(sk_conn_table *t, int fd) {
  assert(fd >= 0);
  if (fd >= t->cap) {
    /* Descriptors are handed out lowest-first, so the table stays dense. */
    int cap = t->cap ? t->cap : 64;
    while (cap <= fd)
      cap *= 2;
    sk_conn *slots = sk__realloc(SK_ALLOC_TABLE, t->slots, (size_t)cap * sizeof *slots);
    if (!slots)
      return NULL;
    memset(slots + t->cap, 0, (size_t)(cap - t->cap) * sizeof *slots);
    t->slots = slots;
    t->cap = cap;
  }
  sk_conn *c = &t->slots[fd];
  assert(!(c->flags & SK_CONN_OPEN));
  *c = (sk_conn){.flags = SK_CONN_OPEN, .prev = -1, .next = -1};
  t->count++;
  return c;
}

static void unlink_timer(sk_conn_table *t, int fd) {
  sk_conn *c = &t->slots[fd];
  int list = (int)((c->flags & SK_CONN_LIST_MASK) >> SK_CONN_LIST_SHIFT);
  if (list == SK_LIST_NONE)
    return;
  sk_timer_list *l = &t->lists[list];
  if (c->prev >= 0)
    t->slots[c->prev].next = c->next;
  else
    l->head = c->next;
  if (c->next >= 0)
    t->slots[c->next].prev = c->prev;
  else
    l->tail = c->prev;
  c->prev = c->next = -1;
  c->flags &= ~(uint32_t)SK_CONN_LIST_MASK;
}

void sk__conn_release(sk_conn_table *t, int fd) {
  sk_conn *c = sk__conn_get(t, fd);
  assert(c);
  unlink_timer(t, fd);
  free(c->in);
  free(c->out);
  memset(c, 0, sizeof *c);
  t->count--;
}

void sk__conn_set_timer(sk_conn_table *t, int fd, int list, uint32_t now) {
  sk_conn *c = &t->slots[fd];
  /* Already on that list with that deadline (restarted within the same
   * millisecond): every member after it has a deadline at least as late,
   * so the list stays sorted where it is. */
  if (list != SK_LIST_NONE && (int)((c->flags & SK_CONN_LIST_MASK) >> SK_CONN_LIST_SHIFT) == list &&
      c->deadline == now + t->lists[list].timeout_ms)
    return;
  unlink_timer(t, fd);
  if (list == SK_LIST_NONE || t->lists[list].timeout_ms == 0)
    return;
  sk_timer_list *l = &t->lists[list];
  c->deadline = now + l->timeout_ms;
  c->flags |= (uint32_t)list << SK_CONN_LIST_SHIFT;
  c->prev = l->tail;
  c->next = -1;
  if (l->tail >= 0)
    t->slots[l->tail].next = fd;
  else
    l->head = fd;
  l->tail = fd;
}

int sk__conn_expired(sk_conn_table *t, uint32_t now) {
  for (int i = 1; i < SK_LIST_COUNT; i++) {
    int fd = t->lists[i].head;
    if (fd >= 0 && !sk__time_before(now, t->slots[fd].deadline))
      return fd;
  }
  return -1;
}

int sk__conn_next_timeout(const sk_conn_table *t, uint32_t now) {
  int best = -1;
  for (int i = 1; i < SK_LIST_COUNT; i++) {
    int fd = t->lists[i].head;
    if (fd < 0)
      continue;
    uint32_t deadline = t->slots[fd].deadline;
    int wait = sk__time_before(now, deadline) ? (int)(deadline - now) : 0;
    if (best < 0 || wait < best)
      best = wait;
  }
  return best;
}
