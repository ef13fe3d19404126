/* reply.c -- per-thread reply formatting (sk_replyf) and the peer of the
 * request being served (sk_peer_address, sk_peer_sockaddr, and the proxy
 * it came through). */
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

/* The record of the request being served on this thread, if any. */
static _Thread_local sk_peer *current;

sk_peer *sk__peer_bind(sk_peer *peer) {
  sk_peer *was = current;
  current = peer;
  return was;
}

static sk_peer *peer_resolve(void) {
  sk_peer *p = current;
  if (!p || !p->active)
    return NULL;
  if (!p->have_addr) {
    if (p->proxied && p->origin && p->origin->len) {
      p->addr = (const struct sockaddr *)&p->origin->addr;
      p->len = p->origin->len;
    } else {
      socklen_t len = sizeof p->storage;
      if (getpeername(p->fd, (struct sockaddr *)&p->storage, &len) != 0)
        return NULL;
      p->addr = (const struct sockaddr *)&p->storage;
      p->len = len;
    }
    p->have_addr = true;
  }
  return p;
}

const struct sockaddr *sk_peer_sockaddr(socklen_t *len) {
  sk_peer *p = peer_resolve();
  if (!p)
    return NULL;
  if (len)
    *len = p->len;
  return p->addr;
}

const char *sk_peer_address(void) {
  sk_peer *p = peer_resolve();
  if (!p)
    return NULL;
  if (!p->have_text) {
    if (sk__addr_format(p->addr, p->len, p->text, sizeof p->text) != 0)
      return NULL;
    p->have_text = true;
  }
  return p->text;
}

/* The connection's own peer, when it came through a proxy. */
static sk_peer *proxy_resolve(void) {
  sk_peer *p = current;
  if (!p || !p->active || !p->proxied)
    return NULL;
  if (!p->have_proxy) {
    socklen_t len = sizeof p->proxy_storage;
    if (p->fd < 0 || getpeername(p->fd, (struct sockaddr *)&p->proxy_storage, &len) != 0)
      return NULL;
    p->proxy_addr = (const struct sockaddr *)&p->proxy_storage;
    p->proxy_len = len;
    p->have_proxy = true;
  }
  return p;
}

const struct sockaddr *sk_peer_proxy_sockaddr(socklen_t *len) {
  sk_peer *p = proxy_resolve();
  if (!p)
    return NULL;
  if (len)
    *len = p->proxy_len;
  return p->proxy_addr;
}

const char *sk_peer_proxy_address(void) {
  sk_peer *p = proxy_resolve();
  if (!p)
    return NULL;
  if (!p->have_proxy_text) {
    if (sk__addr_format(p->proxy_addr, p->proxy_len, p->proxy_text, sizeof p->proxy_text) != 0)
      return NULL;
    p->have_proxy_text = true;
  }
  return p->proxy_text;
}

const void *sk_peer_proxy_unique_id(size_t *len) {
  sk_peer *p = current;
  if (!p || !p->active || !p->proxied || !p->origin || !p->origin->has_unique_id)
    return NULL;
  if (len)
    *len = p->origin->unique_id_len;
  return p->origin->tlv;
}

const char *sk_peer_proxy_authority(size_t *len) {
  sk_peer *p = current;
  if (!p || !p->active || !p->proxied || !p->origin || !p->origin->has_authority)
    return NULL;
  if (len)
    *len = p->origin->authority_len;
  return p->origin->tlv + p->origin->unique_id_len + 1;
}
