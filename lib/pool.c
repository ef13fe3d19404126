/* pool.c -- worker threads for services that block (SK_MODEL_WORKER_POOL). */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

struct sk_pool {
  pthread_mutex_t lock;
  pthread_cond_t ready;
  sk_pool_task *head;
  sk_pool_task *tail;
  bool closing;
  int threads;
  pthread_t *ids;
};

int sk__cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int sk__thread_start(pthread_t *thread, void *(*fn)(void *), void *arg) {
  /* The new thread inherits the mask in force while it is created. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(thread, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

static void *worker(void *arg) {
  sk_pool *p = arg;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    while (!p->head && !p->closing)
      pthread_cond_wait(&p->ready, &p->lock);
    sk_pool_task *t = p->head;
    if (!t)
      break; /* closing and nothing left */
    p->head = t->next;
    if (!p->head)
      p->tail = NULL;
    pthread_mutex_unlock(&p->lock);
    t->run(t);
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

int sk__pool_create(sk_pool **out, int threads) {
  *out = NULL;
  sk_pool *p = calloc(1, sizeof *p);
  if (!p || !(p->ids = calloc((size_t)threads, sizeof *p->ids))) {
    free(p);
    return sk__fail(SK_ENOMEM, ENOMEM);
  }
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->ready, NULL);
  for (int i = 0; i < threads; i++) {
    int rc = sk__thread_start(&p->ids[i], worker, p);
    if (rc != 0) {
      sk__pool_destroy(p);
      return sk__fail(SK_ESYS, rc);
    }
    p->threads++;
  }
  *out = p;
  return SK_OK;
}

void sk__pool_submit(sk_pool *p, sk_pool_task *t) {
  t->next = NULL;
  pthread_mutex_lock(&p->lock);
  if (p->tail)
    p->tail->next = t;
  else
    p->head = t;
  p->tail = t;
  pthread_cond_signal(&p->ready);
  pthread_mutex_unlock(&p->lock);
}

void sk__pool_destroy(sk_pool *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->lock);
  p->closing = true;
  pthread_cond_broadcast(&p->ready);
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < p->threads; i++)
    pthread_join(p->ids[i], NULL);
  pthread_cond_destroy(&p->ready);
  pthread_mutex_destroy(&p->lock);
  free(p->ids);
  free(p);
}
