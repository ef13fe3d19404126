/* sk-echo-server.c -- example: a UDP or TCP echo server in one service function. */
#define _GNU_SOURCE /* getopt_long, pipe2, strsignal */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sockkit.h>

/* Exit statuses, also listed in the usage text. */
enum { EXIT_OK = 0, EXIT_SERVER_ERROR = 1, EXIT_USAGE = 2 };

enum transport { TRANSPORT_UDP, TRANSPORT_TCP };

/* --processes takes 1 to this many workers. */
#define MAX_PROCESSES 256

struct options {
  enum transport transport;
  const char *address;
  int framing;               /* TCP: SK_FRAME_LINE, SK_FRAME_LENGTH or SK_FRAME_RAW */
  int model;                 /* SK_MODEL_EVENT_LOOP, ... */
  int processes;             /* 0: serve in this process; else fork that many workers */
  int proxy;                 /* TCP: SK_PROXY_OFF, SK_PROXY_V1, SK_PROXY_V2 or SK_PROXY_ANY */
  const char *proxy_trusted; /* TCP: who may send PROXY headers; NULL: anyone */
  int ready_fd;              /* in a worker, its end of the pipe to the parent; else -1 */
};

/* The server the signal handler stops. The stop functions are
 * async-signal-safe, so calling one from the handler is the whole shutdown. */
static sk_udp_server *udp_server;
static sk_tcp_server *tcp_server;
static volatile sig_atomic_t stop_signal;

/* [service] */
/* The service: the request is the reply. Returning the request is correct
 * because the library copies a reply before the request buffer is reused. */
static const char *echo(const char *request, void *user) {
  (void)user;
  return request;
}
/* [service] */

static void usage(FILE *out) {
  fputs("Usage: sk-echo-server [--udp | --tcp] [--framing F] [--model M] [--processes N]\n"
        "                      [--proxy V [--proxy-trusted LIST]] [ADDRESS]\n"
        "Echo every request back to its sender.\n"
        "\n"
        "  --udp          serve UDP datagrams (the default)\n"
        "  --tcp          serve TCP connections\n"
        "  --framing F    TCP message framing: line (default; works with nc),\n"
        "                 length (4-byte big-endian length prefix) or raw\n"
        "  --model M      who runs the service: event (default), pool, thread\n"
        "                 or process (thread and process are TCP only)\n"
        "  --processes N  fork N worker processes (1 to 256), each with a socket of\n"
        "                 its own on the same port (SO_REUSEPORT), so that the kernel\n"
        "                 spreads clients over them; not for unix: addresses. The\n"
        "                 parent passes SIGINT and SIGTERM on to them and reports a\n"
        "                 worker that dies; it does not start a new one\n"
        "  --proxy V      TCP behind HAProxy or nginx: every connection begins with\n"
        "                 a PROXY protocol header, version v1, v2 or any\n"
        "  --proxy-trusted LIST\n"
        "                 only these senders may send one, e.g. \"127.0.0.1 10.0.0.0/8\"\n"
        "                 (addresses with /prefix, and unix); others are refused\n"
        "  -h, --help     show this help and exit\n"
        "\n"
        "ADDRESS is where to listen; the default is 8848:\n"
        "  8848 or :8848        port 8848 on all interfaces (IPv6 and IPv4)\n"
        "  127.0.0.1:9000       one IPv4 address\n"
        "  [::1]:9000           one IPv6 address\n"
        "  unix:/tmp/echo.sock  a UNIX socket (datagram or stream)\n"
        "  systemd              the socket systemd passed (socket activation)\n"
        "  systemd:NAME         the one named NAME (FileDescriptorName=)\n"
        "  fd:3                 descriptor 3, already open\n"
        "Port 0 picks a free port. Once ready, the server prints one line,\n"
        "\"listening on udp ADDRESS\" (or tcp), with the address it is bound to.\n"
        "Stop it with Ctrl-C (SIGINT) or SIGTERM.\n"
        "\n"
        "With --processes, the line comes once every worker listens. Under systemd\n"
        "(Type=notify) it then sends READY=1, and STOPPING=1 when stopped.\n"
        "\n"
        "Exit status: 0 when stopped by a signal, 1 if the server cannot listen\n"
        "or fails while running (with --processes: if any worker did), 2 for bad\n"
        "arguments.\n",
        out);
}

/* The index of `word` in the NULL-terminated `names`, or -1. The names are
 * listed in the order of the library's enum values. */
static int pick(const char *word, const char *const *names) {
  for (int i = 0; names[i]; i++)
    if (strcmp(word, names[i]) == 0)
      return i;
  return -1;
}

/* Fill `opts` from the command line. Returns -1 after printing usage to
 * stderr, 1 after printing it to stdout for --help, 0 to go on. */
static int parse_args(int argc, char **argv, struct options *opts) {
  static const struct option longopts[] = {
      {"udp", no_argument, NULL, 'u'},
      {"tcp", no_argument, NULL, 't'},
      {"framing", required_argument, NULL, 'f'},
      {"model", required_argument, NULL, 'm'},
      {"processes", required_argument, NULL, 'p'},
      {"proxy", required_argument, NULL, 'P'},
      {"proxy-trusted", required_argument, NULL, 'T'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  static const char *const framings[] = {"line", "length", "raw", NULL};
  static const char *const models[] = {"event", "pool", "thread", "process", NULL};
  static const char *const proxies[] = {"off", "v1", "v2", "any", NULL};
  int c;
  char *end;
  long n;
  bool framing_set = false;

  opts->transport = TRANSPORT_UDP;
  opts->address = "8848";
  opts->framing = SK_FRAME_LINE;
  opts->model = SK_MODEL_EVENT_LOOP;
  opts->processes = 0;
  opts->proxy = SK_PROXY_OFF;
  opts->proxy_trusted = NULL;
  opts->ready_fd = -1;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'u':
      opts->transport = TRANSPORT_UDP;
      break;
    case 't':
      opts->transport = TRANSPORT_TCP;
      break;
    case 'f':
      framing_set = true;
      if ((opts->framing = pick(optarg, framings)) < 0) {
        fprintf(stderr, "sk-echo-server: unknown framing '%s'\n", optarg);
        usage(stderr);
        return -1;
      }
      break;
    case 'm':
      if ((opts->model = pick(optarg, models)) < 0) {
        fprintf(stderr, "sk-echo-server: unknown model '%s'\n", optarg);
        usage(stderr);
        return -1;
      }
      break;
    case 'p':
      errno = 0;
      n = strtol(optarg, &end, 10);
      if (errno != 0 || end == optarg || *end != '\0' || n < 1 || n > MAX_PROCESSES) {
        fprintf(stderr, "sk-echo-server: --processes takes a number from 1 to %d, not '%s'\n",
                MAX_PROCESSES, optarg);
        usage(stderr);
        return -1;
      }
      opts->processes = (int)n;
      break;
    case 'P':
      if ((opts->proxy = pick(optarg, proxies)) < 0) {
        fprintf(stderr, "sk-echo-server: --proxy takes v1, v2, any or off, not '%s'\n", optarg);
        usage(stderr);
        return -1;
      }
      break;
    case 'T':
      opts->proxy_trusted = optarg;
      break;
    case 'h':
      usage(stdout);
      return 1;
    default: /* getopt_long has already said what was wrong */
      usage(stderr);
      return -1;
    }
  }
  if (argc - optind > 1) {
    fprintf(stderr, "sk-echo-server: too many arguments\n");
    usage(stderr);
    return -1;
  }
  if (optind < argc)
    opts->address = argv[optind];
  /* UDP has no framing (a datagram is a message) and no connections to
   * give a thread or a process each. */
  if (opts->transport != TRANSPORT_TCP && framing_set) {
    fprintf(stderr, "sk-echo-server: --framing is for --tcp (a UDP datagram is one message)\n");
    usage(stderr);
    return -1;
  }
  if (opts->transport != TRANSPORT_TCP && opts->model > SK_MODEL_WORKER_POOL) {
    fprintf(stderr, "sk-echo-server: --model %s is for --tcp; UDP takes event or pool\n",
            opts->model == SK_MODEL_THREAD_PER_CONNECTION ? "thread" : "process");
    usage(stderr);
    return -1;
  }
  if (opts->transport != TRANSPORT_TCP && (opts->proxy != SK_PROXY_OFF || opts->proxy_trusted)) {
    fprintf(stderr, "sk-echo-server: --proxy and --proxy-trusted are for --tcp\n");
    usage(stderr);
    return -1;
  }
  if (opts->proxy_trusted && opts->proxy == SK_PROXY_OFF) {
    fprintf(stderr, "sk-echo-server: --proxy-trusted needs --proxy\n");
    usage(stderr);
    return -1;
  }
  /* Each worker binds the address itself, and a UNIX path is bound once. */
  if (opts->processes > 0 &&
      (strncmp(opts->address, "fd:", 3) == 0 || strncmp(opts->address, "systemd", 7) == 0)) {
    fprintf(stderr,
            "sk-echo-server: --processes cannot share %s: each worker binds a socket of its "
            "own, and this address names one that is already open\n",
            opts->address);
    usage(stderr);
    return -1;
  }
  if (opts->processes > 0 && strncmp(opts->address, "unix:", 5) == 0) {
    fprintf(stderr,
            "sk-echo-server: --processes cannot share %s: a UNIX socket address "
            "is bound by one socket only\n",
            opts->address);
    usage(stderr);
    return -1;
  }
  return 0;
}

static void on_signal(int sig) {
  stop_signal = sig;
  if (udp_server)
    sk_udp_server_stop(udp_server);
  if (tcp_server)
    sk_tcp_server_stop(tcp_server);
}

/* A worker of --processes starts with SIGINT and SIGTERM blocked, so that a
 * signal that comes early waits for the handler; unblocking them here lets
 * it in. In a single process they are not blocked, and this changes nothing. */
static int install_signal_handlers(void) {
  struct sigaction sa;
  sigset_t set;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
    fprintf(stderr, "sk-echo-server: sigaction: %s\n", strerror(errno));
    return -1;
  }
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_UNBLOCK, &set, NULL); /* fails only for a bad argument */
  return 0;
}

/* Once the server is about to be destroyed, the handler must not reach it:
 * later signals stay pending and die with the process. */
static void block_signals(void) {
  sigset_t set;

  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, NULL); /* fails only for a bad argument */
}

/* Print a library error with the OS error behind it, when there is one. */
static void report(const char *what, const char *address, int status) {
  int os_error = sk_last_os_error();

  fprintf(stderr, "sk-echo-server: %s %s: %s", what, address, sk_strerror(status));
  if (os_error != 0)
    fprintf(stderr, " (%s)", strerror(os_error));
  fputc('\n', stderr);
}

/* What run() returned, seen from the user's side. */
static int finished(const char *address, int status) {
  if (stop_signal) {
    /* A signal that came before run() makes run() return SK_ESTATE: that is
     * still the stop we were asked for, not a failure. */
    fprintf(stderr, "sk-echo-server: stopped by %s\n",
            stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
    (void)sk_notify("STOPPING=1");
    return SK_OK;
  }
  if (status != SK_OK)
    report("failed while serving", address, status);
  return status;
}

/* What a worker tells its parent once it listens. One write of fewer than
 * PIPE_BUF bytes to a pipe arrives whole. */
struct ready {
  int port;
  char bound[SK_ADDRSTRLEN];
};

/* Tell systemd (Type=notify) that we are ready; nothing happens when we
 * were not started by it ($NOTIFY_SOCKET unset). */
static void notify_ready(const char *bound) {
  char state[SK_ADDRSTRLEN + 48];

  snprintf(state, sizeof state, "READY=1\nSTATUS=listening on %s", bound);
  (void)sk_notify(state);
}

/* Say that the server listens: the "listening on" line, or in a worker the
 * same news to the parent, which prints the line once every worker listens.
 * 0, or -1 if the parent cannot be told. */
static int announce(const struct options *opts, const char *bound, int port) {
  struct ready r;

  if (opts->ready_fd < 0) {
    printf("listening on %s %s\n", opts->transport == TRANSPORT_TCP ? "tcp" : "udp", bound);
    fflush(stdout);
    notify_ready(bound);
    return 0;
  }
  memset(&r, 0, sizeof r);
  r.port = port;
  snprintf(r.bound, sizeof r.bound, "%s", bound);
  if (write(opts->ready_fd, &r, sizeof r) != (ssize_t)sizeof r) {
    fprintf(stderr, "sk-echo-server: cannot tell the parent: %s\n", strerror(errno));
    return -1;
  }
  close(opts->ready_fd);
  return 0;
}

/* [udp] */
static int serve_udp(const struct options *opts) {
  const char *address = opts->address;
  char bound[SK_ADDRSTRLEN];
  int status, port = 0;

  status = sk_udp_server_create(&udp_server, address, echo, NULL);
  if (status == SK_OK)
    status = sk_udp_server_set(udp_server, SK_OPT_MODEL, opts->model);
  if (status == SK_OK && opts->processes > 0) /* a worker shares the port */
    status = sk_udp_server_set(udp_server, SK_OPT_REUSEPORT, 1);
  if (status != SK_OK) {
    report("cannot listen on", address, status);
    sk_udp_server_destroy(udp_server);
    return EXIT_SERVER_ERROR;
  }
  /* Handlers go in once there is a server to stop, and before the
   * "listening" line, so a script that signals us as soon as it reads the
   * line never meets the default action. */
  if (install_signal_handlers() != 0) {
    sk_udp_server_destroy(udp_server);
    return EXIT_SERVER_ERROR;
  }
  status = sk_udp_server_listen(udp_server);
  if (status == SK_OK)
    status = sk_udp_server_address(udp_server, bound, sizeof bound);
  if (status == SK_OK)
    status = sk_udp_server_port(udp_server, &port);
  if (status != SK_OK) {
    report("cannot listen on", address, status);
    goto done;
  }
  if (announce(opts, bound, port) != 0) {
    status = SK_ESYS;
    goto done;
  }

  status = finished(address, sk_udp_server_run(udp_server));
done:
  block_signals();
  sk_udp_server_destroy(udp_server);
  return status == SK_OK ? EXIT_OK : EXIT_SERVER_ERROR;
}
/* [udp] */

/* [tcp] */
static int serve_tcp(const struct options *opts) {
  const char *address = opts->address;
  char bound[SK_ADDRSTRLEN];
  int status, port = 0;

  status = sk_tcp_server_create(&tcp_server, address, echo, NULL);
  if (status == SK_OK)
    status = sk_tcp_server_set(tcp_server, SK_OPT_FRAMING, opts->framing);
  if (status == SK_OK)
    status = sk_tcp_server_set(tcp_server, SK_OPT_MODEL, opts->model);
  if (status == SK_OK && opts->processes > 0) /* a worker shares the port */
    status = sk_tcp_server_set(tcp_server, SK_OPT_REUSEPORT, 1);
  if (status == SK_OK) /* behind a proxy: the client is the one its header names */
    status = sk_tcp_server_set(tcp_server, SK_OPT_PROXY_PROTOCOL, opts->proxy);
  if (status == SK_OK && opts->proxy_trusted)
    status = sk_tcp_server_set_proxy_trusted(tcp_server, opts->proxy_trusted);
  if (status != SK_OK) {
    report("cannot listen on", address, status);
    sk_tcp_server_destroy(tcp_server);
    return EXIT_SERVER_ERROR;
  }
  if (install_signal_handlers() != 0) {
    sk_tcp_server_destroy(tcp_server);
    return EXIT_SERVER_ERROR;
  }
  status = sk_tcp_server_listen(tcp_server);
  if (status == SK_OK)
    status = sk_tcp_server_address(tcp_server, bound, sizeof bound);
  if (status == SK_OK)
    status = sk_tcp_server_port(tcp_server, &port);
  if (status != SK_OK) {
    report("cannot listen on", address, status);
    goto done;
  }
  if (announce(opts, bound, port) != 0) {
    status = SK_ESYS;
    goto done;
  }

  status = finished(address, sk_tcp_server_run(tcp_server));
done:
  block_signals();
  sk_tcp_server_destroy(tcp_server);
  return status == SK_OK ? EXIT_OK : EXIT_SERVER_ERROR;
}
/* [tcp] */

static int serve(const struct options *opts) {
  return opts->transport == TRANSPORT_TCP ? serve_tcp(opts) : serve_udp(opts);
}

/* ---- --processes: a parent and its workers ------------------------------ */

/* The parent only starts, signals and reaps the workers; each worker is the
 * single-process server above, with SK_OPT_REUSEPORT. The first worker binds
 * the address as given, so port 0 picks a port there; the others bind the
 * port it got. No socket of the parent ever listens, so no client can land
 * in a queue that nobody accepts from. */
struct worker {
  pid_t pid;
  bool running;
};

static struct worker workers[MAX_PROCESSES];
static int started;             /* workers forked so far */
static int running;             /* of those, not yet reaped */
static sigset_t worker_sigmask; /* what a worker blocks until its handler is in */

/* The address the workers after the first bind: the one asked for, with the
 * port of the first worker (the same, unless 0 was asked for). The port is
 * what follows the last ':', or the whole address ("8848", ":0",
 * "127.0.0.1:0", "[::1]:0"). */
static void with_port(char *buf, size_t size, const char *address, int port) {
  const char *colon = strrchr(address, ':');
  int keep = colon ? (int)(colon - address + 1) : 0;

  snprintf(buf, size, "%.*s%d", keep, address, port);
}

/* In the child: serve `address` as a worker, telling the parent through
 * `ready_fd` once it listens. */
static int run_worker(const struct options *opts, const char *address, int ready_fd, pid_t parent) {
  struct options w = *opts;

  sigprocmask(SIG_SETMASK, &worker_sigmask, NULL);
  /* The parent alone talks to systemd (NotifyAccess=main). */
  unsetenv("NOTIFY_SOCKET");
  /* A worker whose parent is gone would never be told to stop: it stops
   * itself then, gracefully, as if the parent had passed on a SIGTERM. */
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
    return EXIT_SERVER_ERROR;
  w.address = address;
  w.ready_fd = ready_fd;
  return serve(&w);
}

/* Fork the next worker on `address` and wait until it listens (its news in *r)
 * or has failed (it has said why). Returns 0 once it listens, -1 if not. */
static int start_worker(const struct options *opts, const char *address, struct ready *r) {
  pid_t parent = getpid();
  int pipe_fds[2];
  ssize_t n;

  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    fprintf(stderr, "sk-echo-server: pipe: %s\n", strerror(errno));
    return -1;
  }
  workers[started].pid = fork();
  if (workers[started].pid < 0) {
    fprintf(stderr, "sk-echo-server: fork: %s\n", strerror(errno));
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return -1;
  }
  if (workers[started].pid == 0) {
    close(pipe_fds[0]);
    exit(run_worker(opts, address, pipe_fds[1], parent));
  }
  workers[started++].running = true;
  running++;
  close(pipe_fds[1]);
  /* The parent blocks the signals it waits for, so no EINTR here. A worker
   * that fails exits, which closes its end: a short read. */
  n = read(pipe_fds[0], r, sizeof *r);
  close(pipe_fds[0]);
  return n == (ssize_t)sizeof *r ? 0 : -1;
}

static void signal_workers(int sig) {
  for (int i = 0; i < started; i++)
    if (workers[i].running)
      kill(workers[i].pid, sig);
}

/* Reap the workers that have exited, saying so unless it was the clean stop
 * the parent asked for. Returns false if any of them failed. */
static bool reap_workers(bool stopping) {
  bool clean = true;
  pid_t pid;
  int st;

  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    int i = 0;
    while (i < started && workers[i].pid != pid)
      i++;
    if (i == started)
      continue; /* not one of ours */
    workers[i].running = false;
    running--;
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    clean = clean && ok;
    if (ok && stopping)
      continue;
    if (WIFSIGNALED(st))
      fprintf(stderr, "sk-echo-server: worker %d (pid %ld) was killed by %s", i + 1, (long)pid,
              strsignal(WTERMSIG(st)));
    else
      fprintf(stderr, "sk-echo-server: worker %d (pid %ld) exited with status %d", i + 1, (long)pid,
              WEXITSTATUS(st));
    fprintf(stderr, "; %d left%s\n", running, stopping ? "" : ", no new one is started");
  }
  return clean;
}

static int serve_processes(const struct options *opts) {
  char shared[SK_ADDRSTRLEN + 16];
  struct ready first, r;
  struct sigaction dfl;
  sigset_t wanted, old;
  bool stopping = false, clean = true;
  int failed;

  /* The parent takes its signals one at a time with sigwaitinfo(), so they
   * stay blocked; a worker keeps only SIGINT and SIGTERM blocked, until its
   * handler is in (install_signal_handlers). SIGCHLD must not be ignored,
   * or there would be nothing to reap. */
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGCHLD, &dfl, NULL);
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGINT);
  sigaddset(&wanted, SIGTERM);
  sigaddset(&wanted, SIGCHLD);
  sigprocmask(SIG_BLOCK, &wanted, &old);
  worker_sigmask = old;
  sigaddset(&worker_sigmask, SIGINT);
  sigaddset(&worker_sigmask, SIGTERM);

  failed = start_worker(opts, opts->address, &first);
  if (failed == 0)
    with_port(shared, sizeof shared, opts->address, first.port);
  for (int i = 1; i < opts->processes && failed == 0; i++)
    failed = start_worker(opts, shared, &r);
  if (failed == 0) {
    printf("listening on %s %s\n", opts->transport == TRANSPORT_TCP ? "tcp" : "udp", first.bound);
    fflush(stdout);
    notify_ready(first.bound);
  } else {
    fprintf(stderr, "sk-echo-server: a worker did not start; stopping the others\n");
    clean = false;
    stopping = true;
    signal_workers(SIGTERM);
  }

  while (running > 0) {
    int sig = sigwaitinfo(&wanted, NULL);
    if (sig == SIGCHLD) {
      clean = reap_workers(stopping) && clean;
    } else if (sig == SIGINT || sig == SIGTERM) {
      if (!stopping)
        (void)sk_notify("STOPPING=1");
      stopping = true;
      signal_workers(sig);
    }
    /* else EINTR (a stop and continue, say): wait again */
  }
  if (stopping && clean)
    fprintf(stderr, "sk-echo-server: %d workers stopped\n", started);
  return clean ? EXIT_OK : EXIT_SERVER_ERROR;
}

int main(int argc, char **argv) {
  struct options opts;
  int rc = parse_args(argc, argv, &opts);

  if (rc != 0)
    return rc > 0 ? EXIT_OK : EXIT_USAGE;
  return opts.processes > 0 ? serve_processes(&opts) : serve(&opts);
}
