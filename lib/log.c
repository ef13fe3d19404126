/* log.c -- the process-wide log handler and level. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "internal.h"

/* The handler and its user pointer change together, so they sit behind a
 * mutex; the level is read on hot paths, so it is a lone atomic. Logging is
 * rare (drops, lifecycle), so the lock costs nothing that matters. */
static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static sk_log_fn handler_fn;
static void *handler_user;
static atomic_int max_level = SK_LOG_WARN;

/* A fork() while another thread holds the lock would leave it locked for
 * good in the child, and children of the process-per-connection model log.
 * So every fork() of the process takes the lock first and both sides
 * release it. That never makes a fork wait long: the lock guards two loads
 * or two stores, never a handler call. (Reading the pair without a lock
 * would need a 16-byte atomic, which libatomic may implement with a lock of
 * its own, or published copies that can never be freed.) Registered once,
 * when the library is loaded, so that no fork can come before it. */
static void lock_for_fork(void) {
  pthread_mutex_lock(&handler_lock);
}

static void unlock_after_fork(void) {
  pthread_mutex_unlock(&handler_lock);
}

__attribute__((constructor)) static void register_fork_handlers(void) {
  /* Fails only for lack of memory at load time; logging works regardless. */
  (void)pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
}

static void default_handler(int level, const char *message, void *user) {
  static const char *const names[] = {"error", "warning", "info", "debug"};
  (void)user;
  /* One fprintf per line: stdio locks the stream, so lines from several
   * threads do not interleave. */
  fprintf(stderr, "sockkit: %s: %s\n", names[level], message);
}

void sk_set_log_handler(sk_log_fn fn, void *user) {
  pthread_mutex_lock(&handler_lock);
  handler_fn = fn;
  handler_user = user;
  pthread_mutex_unlock(&handler_lock);
}

int sk_set_log_level(int level) {
  if (level < SK_LOG_ERROR || level > SK_LOG_DEBUG) {
    sk__log(SK_LOG_WARN,
            "sk_set_log_level: level %d: not one of SK_LOG_ERROR (0) to SK_LOG_DEBUG (3)", level);
    return sk__fail(SK_EINVAL, 0);
  }
  atomic_store_explicit(&max_level, level, memory_order_relaxed);
  return SK_OK;
}

bool sk__log_enabled(int level) {
  return level <= atomic_load_explicit(&max_level, memory_order_relaxed);
}

void sk__log(int level, const char *fmt, ...) {
  if (!sk__log_enabled(level))
    return;
  /* Callers often log between a failed call and reading errno. */
  int saved_errno = errno;
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);

  pthread_mutex_lock(&handler_lock);
  sk_log_fn fn = handler_fn;
  void *user = handler_user;
  pthread_mutex_unlock(&handler_lock);
  if (fn)
    fn(level, message, user);
  else
    default_handler(level, message, NULL);
  errno = saved_errno;
}

int sk__log_limited(sk_log_limit *limit) {
  long long now = (long long)time(NULL);
  long long seen = atomic_load_explicit(&limit->second, memory_order_relaxed);
  if (now != seen && atomic_compare_exchange_strong(&limit->second, &seen, now))
    atomic_store(&limit->count, 0);
  unsigned n = atomic_fetch_add(&limit->count, 1) + 1;
  return n > SK_LOG_BURST ? 0 : n == SK_LOG_BURST ? 2 : 1;
}
