/* reply.c -- per-thread reply formatting (sk_replyf) and the peer of the
 * request being served (sk_peer_address, sk_peer_sockaddr). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "internal.h"

/* The sk_replyf buffer is heap memory owned by the thread. A pthread key
 * (rather than a bare _Thread_local pointer) gives it a destructor, so pool
 * and connection threads that exit do not leak it. */
typedef struct reply_buffer {
  char *data;
  size_t size;
} reply_buffer;

static pthread_key_t buffer_key;
static pthread_once_t buffer_once = PTHREAD_ONCE_INIT;
static int buffer_key_ok;

static void buffer_free(void *p) {
  reply_buffer *b = p;
  free(b->data);
  free(b);
}

static void buffer_key_create(void) {
  buffer_key_ok = pthread_key_create(&buffer_key, buffer_free) == 0;
}

static reply_buffer *thread_buffer(void) {
  pthread_once(&buffer_once, buffer_key_create);
  if (!buffer_key_ok)
    return NULL;
  reply_buffer *b = pthread_getspecific(buffer_key);
  if (b)
    return b;
  b = calloc(1, sizeof *b);
  if (b && pthread_setspecific(buffer_key, b) != 0) {
    free(b);
    b = NULL;
  }
  return b;
}

const char *sk_replyf(const char *fmt, ...) {
  if (!fmt)
    return NULL;
  reply_buffer *b = thread_buffer();
  if (!b)
    return NULL;
  for (int attempt = 0; attempt < 2; attempt++) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data, b->size, fmt, ap);
    va_end(ap);
    if (n < 0)
      return NULL;
    if ((size_t)n < b->size)
      return b->data;
    /* Too small: grow to the exact size once, then format again. */
    size_t want = (size_t)n + 1;
    if (want < 256)
      want = 256;
    char *grown = realloc(b->data, want);
    if (!grown)
      return NULL;
    b->data = grown;
    b->size = want;
  }
  return NULL;
}

/* The request being served on this thread. `fd` >= 0 means a stream whose
 * address has not been asked for yet. */
typedef struct peer_state {
  bool active;
  bool have_addr;
  bool have_text;
  int fd;
  socklen_t len;
  const struct sockaddr *addr; /* borrowed (datagram) or &storage (stream) */
  struct sockaddr_storage storage;
  char text[SK__ADDR_TEXT_MAX];
} peer_state;

static _Thread_local peer_state peer;

void sk__peer_set_addr(const struct sockaddr *sa, socklen_t len) {
  peer.active = true;
  peer.have_addr = true;
  peer.have_text = false;
  peer.fd = -1;
  peer.addr = sa;
  peer.len = len;
}

void sk__peer_set_fd(int fd) {
  peer.active = true;
  peer.have_addr = false;
  peer.have_text = false;
  peer.fd = fd;
}

void sk__peer_clear(void) {
  peer.active = false;
}

static bool peer_resolve(void) {
  if (!peer.active)
    return false;
  if (!peer.have_addr) {
    socklen_t len = sizeof peer.storage;
    if (getpeername(peer.fd, (struct sockaddr *)&peer.storage, &len) != 0)
      return false;
    peer.addr = (const struct sockaddr *)&peer.storage;
    peer.len = len;
    peer.have_addr = true;
  }
  return true;
}

const struct sockaddr *sk_peer_sockaddr(socklen_t *len) {
  if (!peer_resolve())
    return NULL;
  if (len)
    *len = peer.len;
  return peer.addr;
}

const char *sk_peer_address(void) {
  if (!peer_resolve())
    return NULL;
  if (!peer.have_text) {
    if (sk__addr_format(peer.addr, peer.len, peer.text, sizeof peer.text) != 0)
      return NULL;
    peer.have_text = true;
  }
  return peer.text;
}
