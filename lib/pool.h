/* pool.h -- internal: a fixed pool of worker threads running intrusive
 * tasks from one FIFO queue. */
#ifndef SK_POOL_H
#define SK_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

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
/* Queue n tasks chained through `next` from first to last, in that
 * order, under one lock and with one wake-up (n == 0: nothing). */
void sk__pool_submit_list(sk_pool *pool, sk_pool_task *first, sk_pool_task *last, int n);

/* Let the workers finish every queued task, then end them. Waits until
 * every worker has ended, but past deadline_ms (on sk__clock_ms) no longer
 * for one that is inside a task: a task that never returns must not hold
 * up a stop. Returns true if every worker ended (the pool is freed).
 * Otherwise the workers still in a task are left running, detached; the
 * last of them frees the pool and then calls done(arg), on its thread, so
 * that the owner can free what those tasks use. A pool that is NULL: true. */
bool sk__pool_close(sk_pool *pool, int64_t deadline_ms, void (*done)(void *), void *arg);

/* Number of online CPUs (at least 1): the default pool and loop size. */
int sk__cpu_count(void);

/* Start a thread with every signal blocked, for library-owned threads. */
int sk__thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

#endif
