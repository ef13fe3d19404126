/* pool.c -- worker threads for services that block (SK_MODEL_WORKER_POOL). */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "loop.h"

struct sk_pool {
  pthread_mutex_t lock;
  pthread_cond_t ready;  /* a task was queued, or the pool closes */
  pthread_cond_t exited; /* a worker ended or finished a task */
  sk_pool_task *head;
  sk_pool_task *tail;
  bool closing;
  bool abandoned; /* closed with workers left in a task: the last frees it */
  void (*done)(void *);
  void *done_arg;
  int threads;
  int alive;   /* workers that have not ended */
  int in_task; /* workers running a task */
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

static void pool_free(sk_pool *p) {
  pthread_cond_destroy(&p->exited);
  pthread_cond_destroy(&p->ready);
  pthread_mutex_destroy(&p->lock);
  free(p->ids);
  free(p);
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
    p->in_task++;
    pthread_mutex_unlock(&p->lock);
    t->run(t);
    pthread_mutex_lock(&p->lock);
    p->in_task--;
    if (p->closing)
      pthread_cond_broadcast(&p->exited);
  }
  p->alive--;
  bool last = p->alive == 0 && p->abandoned;
  pthread_cond_broadcast(&p->exited);
  pthread_mutex_unlock(&p->lock);
  if (last) {
    void (*done)(void *) = p->done;
    void *done_arg = p->done_arg;
    pool_free(p);
    if (done)
      done(done_arg);
  }
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
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&p->exited, &attr);
  pthread_condattr_destroy(&attr);
  for (int i = 0; i < threads; i++) {
    pthread_mutex_lock(&p->lock);
    p->alive++;
    pthread_mutex_unlock(&p->lock);
    int rc = sk__thread_start(&p->ids[i], worker, p);
    if (rc != 0) {
      pthread_mutex_lock(&p->lock);
      p->alive--;
      pthread_mutex_unlock(&p->lock);
      sk__pool_close(p, 0, NULL, NULL);
      return sk__fail(SK_ESYS, rc);
    }
    p->threads++;
  }
  *out = p;
  return SK_OK;
}

void sk__pool_submit(sk_pool *p, sk_pool_task *t) {
  t->next = NULL;
  sk__pool_submit_list(p, t, t, 1);
}

void sk__pool_submit_list(sk_pool *p, sk_pool_task *first, sk_pool_task *last, int n) {
  if (n == 0)
    return;
  last->next = NULL;
  pthread_mutex_lock(&p->lock);
  if (p->tail)
    p->tail->next = first;
  else
    p->head = first;
  p->tail = last;
  if (n == 1)
    pthread_cond_signal(&p->ready);
  else
    pthread_cond_broadcast(&p->ready);
  pthread_mutex_unlock(&p->lock);
}

bool sk__pool_close(sk_pool *p, int64_t deadline_ms, void (*done)(void *), void *arg) {
  if (!p)
    return true;
  pthread_mutex_lock(&p->lock);
  p->closing = true;
  pthread_cond_broadcast(&p->ready);
  while (p->alive > 0) {
    int64_t left = deadline_ms - sk__clock_ms();
    if (left <= 0) {
      /* Out of time: idle workers end at once; wait only for them. */
      if (p->alive == p->in_task)
        break;
      pthread_cond_wait(&p->exited, &p->lock);
      continue;
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(left / 1000);
    until.tv_nsec += (long)(left % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&p->exited, &p->lock, &until);
  }
  if (p->alive > 0) {
    /* Detaching a worker that has ended already releases it, as a join
     * would; the others release themselves when they end. */
    for (int i = 0; i < p->threads; i++)
      pthread_detach(p->ids[i]);
    p->abandoned = true;
    p->done = done;
    p->done_arg = arg;
    int left = p->alive;
    pthread_mutex_unlock(&p->lock);
    sk__log(SK_LOG_WARN,
            "pool: %d service call(s) still running after the drain timeout; "
            "left to finish on their own",
            left);
    return false;
  }
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < p->threads; i++)
    pthread_join(p->ids[i], NULL);
  pool_free(p);
  return true;
}
