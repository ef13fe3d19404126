/* server.c -- the server core: lifecycle, listener set, I/O threads, stop,
 * drain and lifetime, shared by the TCP and UDP servers. */
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "activate.h"

#define STATS_SIZE (SK_SERVER_STAT_COUNT * sizeof(_Atomic uint64_t))

/* The warning a malformed server address gets: what was wrong, and the
 * forms that are right. A host name gets its own: servers bind to an
 * interface's address, and a name may stand for several or move. */
static void explain_address(const char *transport, const char *address) {
  if (sk__addr_is_adopt_text(address)) {
    sk__log(SK_LOG_WARN,
            "sk_%s_server_create: address \"%.200s\": not a socket to adopt; the forms are "
            "\"fd:N\" (an open descriptor, N in decimal digits from 0 to %d), \"systemd\" "
            "(the first socket systemd passed) and \"systemd:NAME\" (the one named NAME, 1 "
            "to %d printable characters without ':')",
            transport, address, INT_MAX, SK__ADOPT_NAME_MAX);
    return;
  }
  const char *colon = strrchr(address, ':');
  size_t host = colon ? (size_t)(colon - address) : 0;
  bool named = !sk__addr_is_unix_text(address) && host > 0 && address[0] != '[' &&
               strspn(address, "0123456789.") < host;
  if (named)
    sk__log(SK_LOG_WARN,
            "sk_%s_server_create: address \"%.200s\": a host name; servers take numeric "
            "addresses only (\"127.0.0.1:8848\", \"[::1]:8848\", or \":8848\" for every "
            "interface) and look no names up",
            transport, address);
  else
    sk__log(SK_LOG_WARN,
            "sk_%s_server_create: address \"%.200s\": not an address; the forms are "
            "\"127.0.0.1:8848\", \"[::1]:8848\", \":8848\" or \"8848\" (every interface), "
            "\"unix:/path\" and \"unix:@name\", with a port of 0 to 65535; or \"fd:N\", "
            "\"systemd\" and \"systemd:NAME\" for a socket already open",
            transport, address);
}

static void free_server(void *arg);

static int init(sk_server *s, const sk_server_ops *ops, const char *address, sk_service service,
                void *user) {
  int rc = sk__addr_is_adopt_text(address) ? sk__addr_parse_adopt(&s->adopt, address)
                                           : sk__addr_parse(&s->addr, address);
  if (rc != 0) {
    explain_address(ops->name, address);
    return sk__fail(rc, 0);
  }
  s->ops = ops;
  s->service = service;
  s->user = user;
  s->stopfd = -1;
  s->stats = mmap(NULL, STATS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s->stats == MAP_FAILED)
    return sk__fail(SK_ENOMEM, errno);
  s->stopfd = sk__wakefd_open();
  if (s->stopfd < 0) {
    rc = sk__fail(SK_ESYS, errno);
    munmap(s->stats, STATS_SIZE);
    return rc;
  }
  sk__life_init(&s->life, free_server, s);
  return SK_OK;
}

int sk__server_create(void **out, size_t size, const sk_server_ops *ops, const char *address,
                      sk_service service, void *user) {
  if (!out || !address || !service) {
    sk__log(SK_LOG_WARN, "sk_%s_server_create: %s is NULL", ops->name,
            !out       ? "out"
            : !address ? "address"
                       : "service");
    if (out)
      *out = NULL;
    return sk__fail(SK_EINVAL, 0);
  }
  *out = NULL;
  sk_server *s = calloc(1, size);
  if (!s)
    return sk__fail(SK_ENOMEM, ENOMEM);
  int rc = init(s, ops, address, service, user);
  if (rc != SK_OK) {
    free(s);
    return rc;
  }
  *out = s;
  return SK_OK;
}

/* An adopted socket is left open until the server is freed. */
static void close_listeners(sk_server *s) {
  if (s->adopted)
    return;
  for (int i = 0; i < s->nfds; i++) {
    sk__close(s->fds[i]);
    s->fds[i] = -1;
  }
}

/* Undo what the transport allocated at listen for the run. */
static void end_run(sk_server *s) {
  s->ops->end(s);
  free(s->threads);
  s->threads = NULL;
}

/* The socket "fd:N" or "systemd[:NAME]" names is the whole set, shared
 * by every I/O thread, and its address is what the transports see (the
 * family for TCP_NODELAY, a wildcard for packet info, UNIX or not). */
static int adopt(sk_server *s, const sk_bind_options *opts) {
  sk_addr a;
  int fd = sk__activate_take(&s->adopt, s->ops->name, s->ops->socktype, opts, &a);
  if (fd < 0)
    return fd;
  s->fds[0] = fd;
  s->adopted = true;
  s->addr = a;
  memcpy(&s->bound, &a.ss, sizeof s->bound);
  s->bound_len = a.len;
  return s->ops->bound(s, fd, 0);
}

/* One socket per I/O thread on one port, or one for a UNIX path. */
static int bind_set(sk_server *s, const sk_bind_options *opts) {
  for (int i = 0; i < s->nfds; i++) {
    sk_addr a = s->addr;
    if (i > 0) {
      /* With port 0 the first socket picked the port: the others take it.
       * Still the wildcard form: dual-stack (IPV6_V6ONLY off) on every
       * socket, whatever net.ipv6.bindv6only says. */
      a.ss = s->bound;
      a.len = s->bound_len;
    }
    int fd = sk__bind_socket(&a, s->ops->socktype, opts);
    if (fd < 0)
      return fd;
    s->fds[i] = fd;
    if (i == 0) {
      s->addr = a; /* keeps an IPv4 fallback of the wildcard form */
      s->unlink_path = sk__unix_file_record(&a, &s->unix_file);
      s->bound_len = sizeof s->bound;
      if (getsockname(fd, (struct sockaddr *)&s->bound, &s->bound_len) != 0)
        return sk__fail(SK_ESOCKET, errno);
    }
    int rc = s->ops->bound(s, fd, i);
    if (rc != SK_OK)
      return rc;
  }
  return SK_OK;
}

int sk__server_listen(sk_server *s) {
  if (s->state != SK_SERVER_CREATED || atomic_load(&s->stop_requested))
    return sk__fail(SK_ESTATE, 0);
  int nio = s->io_threads ? (int)s->io_threads : sk__cpu_count();
  bool adopting = s->adopt.kind != SK_ADOPT_NONE;
  bool shared = adopting || s->addr.ss.ss_family == AF_UNIX;
  int nfds = shared ? 1 : nio;
  s->fds = malloc((size_t)nfds * sizeof *s->fds);
  if (!s->fds)
    return sk__fail(SK_ENOMEM, ENOMEM);
  for (int i = 0; i < nfds; i++)
    s->fds[i] = -1;
  s->nfds = nfds;
  s->nio = nio;
  sk_bind_options opts = {.reuseport = s->reuseport != 0 || nfds > 1,
                          .rcvbuf = (int)s->rcvbuf,
                          .sndbuf = (int)s->sndbuf};
  int rc = adopting ? adopt(s, &opts) : bind_set(s, &opts);
  if (rc != SK_OK)
    goto fail;
  /* Everything a run needs but its threads is made now, so that a run
   * cannot fail for want of descriptors once listen has succeeded. */
  s->threads = calloc((size_t)s->nio, sizeof *s->threads);
  if (!s->threads) {
    rc = sk__fail(SK_ENOMEM, ENOMEM);
    goto fail;
  }
  for (int i = 0; i < s->nio; i++)
    s->threads[i] = (sk_server_thread){.server = s, .index = i};
  if ((rc = s->ops->begin(s)) != SK_OK)
    goto fail;
  s->state = SK_SERVER_LISTENING;
  if (sk__log_enabled(SK_LOG_INFO)) {
    char text[SK__ADDR_TEXT_MAX];
    if (sk__addr_format((struct sockaddr *)&s->bound, s->bound_len, text, sizeof text) == 0)
      s->ops->listening(s, text);
  }
  return SK_OK;
fail:
  if (s->threads) {
    int os_error = sk_last_os_error();
    end_run(s);
    sk__fail(rc, os_error);
  }
  if (s->adopted) /* not ours after all: the caller's, or systemd's */
    s->fds[0] = -1;
  s->adopted = false;
  close_listeners(s);
  free(s->fds);
  s->fds = NULL;
  s->nfds = 0;
  s->bound_len = 0;
  if (s->unlink_path)
    sk__unlink_unix_path(&s->addr, &s->unix_file);
  s->unlink_path = false;
  return rc;
}

int sk__server_port(const sk_server *s, int *port) {
  if (s->state == SK_SERVER_CREATED)
    return sk__fail(SK_ESTATE, 0);
  *port = sk__addr_port((const struct sockaddr *)&s->bound);
  return SK_OK;
}

int sk__server_address(const sk_server *s, char *buf, size_t size) {
  if (s->state == SK_SERVER_CREATED)
    return sk__fail(SK_ESTATE, 0);
  int rc = sk__addr_format((const struct sockaddr *)&s->bound, s->bound_len, buf, size);
  return rc == SK_OK ? SK_OK : sk__fail(rc, 0);
}

int sk__server_set_reply_free(sk_server *s, sk_reply_free fn) {
  if (s->state != SK_SERVER_CREATED) {
    sk__log(SK_LOG_WARN,
            "sk_%s_server_set_reply_free: the reply free function is set before "
            "listen, and this server has listened already",
            s->ops->name);
    return sk__fail(SK_ESTATE, 0);
  }
  s->reply_free = fn;
  return SK_OK;
}

/* ---- running ---------------------------------------------------------- */

static void *io_main(void *arg) {
  sk_server_thread *t = arg;
  sk_server *s = t->server;
  t->rc = s->ops->serve(s, t->index);
  if (t->rc != SK_OK) {
    /* One I/O thread failing stops them all, so that run returns the
     * error instead of serving on fewer threads. */
    t->os_error = sk_last_os_error();
    sk__server_stop(s);
  }
  return NULL;
}

/* Everything run and start share: state checks, listening, the pool. */
static int begin(sk_server *s) {
  if (s->state == SK_SERVER_RUNNING || s->state == SK_SERVER_DONE ||
      atomic_load(&s->stop_requested))
    return sk__fail(SK_ESTATE, 0);
  if (s->state == SK_SERVER_CREATED) {
    int rc = sk__server_listen(s);
    if (rc != SK_OK)
      return rc;
  }
  if (s->model == SK_MODEL_WORKER_POOL) {
    int workers = s->workers ? (int)s->workers : sk__cpu_count();
    int rc = sk__pool_create(&s->pool, workers);
    if (rc != SK_OK)
      return rc;
  }
  s->state = SK_SERVER_RUNNING;
  return SK_OK;
}

/* Start I/O threads first..nio-1 on threads of their own. On failure the
 * server is told to stop; finish joins those already started. */
static int spawn(sk_server *s, int first) {
  for (int i = first; i < s->nio; i++) {
    int err = sk__thread_start(&s->threads[i].id, io_main, &s->threads[i]);
    if (err != 0) {
      sk__server_stop(s);
      return sk__fail(SK_ESYS, err);
    }
    s->threads[i].joinable = true;
  }
  return SK_OK;
}

/* The last hold of the server is gone (sk_life). */
static void free_server(void *arg) {
  sk_server *s = arg;
  if (s->threads)
    end_run(s);       /* left to the stragglers that have now ended */
  s->adopted = false; /* an adopted socket closes now, and only now */
  close_listeners(s);
  free(s->fds);
  sk__close(s->stopfd);
  munmap(s->stats, STATS_SIZE);
  if (s->ops->destroy)
    s->ops->destroy(s);
  free(s); /* the transport's struct, which begins with the core */
}

/* End a run: join the I/O threads, give work in flight what is left of
 * the drain time, and free the run's state unless stragglers still use
 * it. Returns the first error of an I/O thread, or `rc`. */
static int finish(sk_server *s, int rc) {
  int os_error = rc == SK_OK ? 0 : sk_last_os_error();
  for (int i = 0; i < s->nio; i++) {
    sk_server_thread *t = &s->threads[i];
    if (t->joinable)
      pthread_join(t->id, NULL);
    t->joinable = false;
    if (rc == SK_OK && t->rc != SK_OK) {
      rc = t->rc;
      os_error = t->os_error;
    }
  }
  /* A service call still running after the drain time is left to end on
   * its own (its reply is discarded): run must return, and never waits
   * for it without bound. */
  int64_t deadline = sk__life_drain_deadline(&s->life);
  s->ops->settle(s, deadline); /* closes the pool too */
  bool stragglers = sk__life_held(&s->life);
  /* Close now so that clients stop queueing for a server that is done;
   * the bound address stays readable. */
  if (!stragglers) {
    end_run(s);
    close_listeners(s);
  }
  s->state = SK_SERVER_DONE;
  s->started = false;
  sk__log(SK_LOG_INFO, "%s: stopped", s->ops->name);
  return rc == SK_OK ? SK_OK : sk__fail(rc, os_error);
}

int sk__server_run(sk_server *s) {
  int rc = begin(s);
  if (rc != SK_OK)
    return rc;
  /* The calling thread is I/O thread 0. */
  rc = spawn(s, 1);
  if (rc == SK_OK)
    io_main(&s->threads[0]);
  return finish(s, rc);
}

int sk__server_start(sk_server *s) {
  int rc = begin(s);
  if (rc != SK_OK)
    return rc;
  s->started = true;
  rc = spawn(s, 0);
  if (rc != SK_OK)
    rc = finish(s, rc);
  return rc;
}

int sk__server_stop(sk_server *s) {
  /* Only a lock-free atomic store and write(2): both async-signal-safe. */
  atomic_store(&s->stop_requested, true);
  sk__wake(s->stopfd);
  return SK_OK;
}

/* ---- lifetime --------------------------------------------------------- */

static void pool_ended(void *s) {
  sk__life_release(&((sk_server *)s)->life);
}

void sk__server_close_pool(sk_server *s, int64_t deadline) {
  if (!s->pool)
    return;
  /* Held before the close: a pool left to its stragglers may end, and
   * call pool_ended, before sk__pool_close has even returned. */
  sk__life_hold(&s->life);
  if (sk__pool_close(s->pool, deadline, pool_ended, s))
    sk__life_release(&s->life); /* not the last: destroy has not run */
  s->pool = NULL;
}

void sk__server_destroy(sk_server *s) {
  if (s->started) {
    /* Started and not finished: stop and join the threads of the run. */
    sk__server_stop(s);
    finish(s, SK_OK);
  }
  if (s->unlink_path)
    sk__unlink_unix_path(&s->addr, &s->unix_file);
  s->unlink_path = false;
  /* The owner's hold: if stragglers still run, the last of them frees it. */
  sk__life_release(&s->life);
}
