/* conn.h -- internal: connection slots indexed by descriptor, byte buffers
 * that exist only while they hold data, and intrusive timer lists. */
#ifndef SK_CONN_H
#define SK_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A byte buffer: bytes live in data[head, head + len). */
typedef struct sk_buf {
  uint32_t head;
  uint32_t len;
  uint32_t cap;
  char data[];
} sk_buf;

/* Make room for n more bytes at the end of *b, creating or growing it, and
 * return where they go (commit them by adding to len). NULL if out of
 * memory or the buffer would pass 4 GiB. */
char *sk__buf_reserve(sk_buf **b, size_t n);
/* Bytes sk__buf_reserve has moved or copied to make room, process-wide:
 * tests bound it to show that no input is copied more than a constant
 * number of times. */
extern _Atomic uint64_t sk__buf_bytes_moved;
/* sk__buf_reserve without a call when the room is already there: the
 * event loop asks once per reply. */
static inline char *sk__buf_room(sk_buf **bp, size_t n) {
  sk_buf *b = *bp;
  if (b && n <= (size_t)(b->cap - b->head - b->len))
    return b->data + b->head + b->len;
  return sk__buf_reserve(bp, n);
}
/* Append n bytes to *b. 0, or -1 as for sk__buf_reserve. */
int sk__buf_append(sk_buf **b, const void *bytes, size_t n);
/* Drop n bytes from the front; frees the buffer when it becomes empty. */
void sk__buf_consume(sk_buf **b, size_t n);
static inline size_t sk__buf_len(const sk_buf *b) {
  return b ? b->len : 0;
}
static inline char *sk__buf_bytes(sk_buf *b) {
  return b->data + b->head;
}

enum {
  SK_CONN_OPEN = 1u << 0,        /* slot in use */
  SK_CONN_CLOSING = 1u << 1,     /* no more requests: flush, then linger */
  SK_CONN_PEER_EOF = 1u << 2,    /* the client shut down its writing side */
  SK_CONN_WANT_OUT = 1u << 3,    /* EPOLLOUT is registered */
  SK_CONN_READ_PAUSED = 1u << 4, /* output over the high-water mark */
  SK_CONN_SHUT_WR = 1u << 5,     /* our FIN is sent; draining input */
  SK_CONN_LIST_SHIFT = 8,        /* bits 8-10: which timer list, 0 none */
  SK_CONN_LIST_MASK = 7u << 8,
};

/* Per-connection state: 32 bytes, and nothing else is allocated for an
 * idle connection. The descriptor is the slot index, so it is not stored;
 * the peer address is asked of the kernel only when a service wants it;
 * timer links are slot indices rather than pointers. */
typedef struct sk_conn {
  uint32_t flags;
  uint32_t deadline; /* loop clock, valid while in a timer list */
  int32_t prev;      /* timer list neighbours, -1 at the ends */
  int32_t next;
  sk_buf *in;  /* bytes of an incomplete message */
  sk_buf *out; /* replies the socket has not taken yet */
} sk_conn;

_Static_assert(sizeof(sk_conn) <= 32, "an idle connection must stay within 32 bytes");

/* Timer lists: every member of one list has the same timeout, so appending
 * at the tail keeps each list sorted by deadline and every operation is
 * O(1). Which list a connection is in is kept in its flags. */
enum {
  SK_LIST_NONE = 0,
  SK_LIST_IDLE = 1,   /* waiting for a request */
  SK_LIST_WRITE = 2,  /* waiting for the client to take output */
  SK_LIST_LINGER = 3, /* closing: waiting for the client's EOF */
  SK_LIST_PROXY = 4,  /* waiting for the rest of a PROXY protocol header */
  SK_LIST_COUNT = 5
};

typedef struct sk_timer_list {
  int32_t head;
  int32_t tail;
  uint32_t timeout_ms; /* 0: the list is not used */
} sk_timer_list;

typedef struct sk_conn_table {
  sk_conn *slots; /* indexed by descriptor */
  int cap;
  int count;
  sk_timer_list lists[SK_LIST_COUNT];
} sk_conn_table;

void sk__conn_table_init(sk_conn_table *t);
/* Frees the slots and buffers; does not close descriptors. */
void sk__conn_table_free(sk_conn_table *t);

/* Claim the slot of descriptor fd. Returns it, or NULL if out of memory.
 * The pointer is valid until the next sk__conn_open (the table may move). */
sk_conn *sk__conn_open(sk_conn_table *t, int fd);
/* Free the slot's buffers, take it off its timer list and clear it. */
void sk__conn_release(sk_conn_table *t, int fd);
static inline sk_conn *sk__conn_get(sk_conn_table *t, int fd) {
  return fd >= 0 && fd < t->cap && (t->slots[fd].flags & SK_CONN_OPEN) ? &t->slots[fd] : NULL;
}

/* Put fd on timer list `list` (SK_LIST_NONE just takes it off), with the
 * deadline now + that list's timeout. Lists with timeout 0 are skipped. */
void sk__conn_set_timer(sk_conn_table *t, int fd, int list, uint32_t now);
/* The first descriptor whose deadline has passed on any list, or -1. */
int sk__conn_expired(sk_conn_table *t, uint32_t now);
/* Milliseconds until the earliest deadline, or -1 if no timer is set. */
int sk__conn_next_timeout(const sk_conn_table *t, uint32_t now);

#endif
