/* pool.h -- internal: a fixed pool of worker threads running intrusive
 * tasks from one FIFO queue. */
#ifndef SK_POOL_H
#define SK_POOL_H

#include <pthread.h>

/* A unit of work; embed it in a larger struct. Submitting never allocates. */
typedef struct sk_pool_task {
  struct sk_pool_task *next;
  void (*run)(struct sk_pool_task *task);
} sk_pool_task;

typedef struct sk_pool sk_pool;

/* Start `threads` workers (signals blocked in them, so the process's
 * handlers keep running on the application's threads). Returns SK_OK,
 * SK_ENOMEM or SK_ESYS; on failure nothing is left running. */
int sk__pool_create(sk_pool **out, int threads);

/* Queue a task; a worker runs task->run(task) soon. Thread-safe. */
void sk__pool_submit(sk_pool *pool, sk_pool_task *task);

/* Let the workers finish every queued task, then join and free them. */
void sk__pool_destroy(sk_pool *pool);

/* Number of online CPUs (at least 1): the default pool and loop size. */
int sk__cpu_count(void);

/* Start a thread with every signal blocked, for library-owned threads. */
int sk__thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

#endif
