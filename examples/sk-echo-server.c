/* sk-echo-server.c -- example: a UDP or TCP echo server in one service function. */
#define _GNU_SOURCE /* getopt_long */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sockkit.h>

/* Exit statuses, also listed in the usage text. */
enum { EXIT_OK = 0, EXIT_SERVER_ERROR = 1, EXIT_USAGE = 2 };

enum transport { TRANSPORT_UDP, TRANSPORT_TCP };

struct options {
  enum transport transport;
  const char *address;
  int framing; /* TCP: SK_FRAME_LINE, SK_FRAME_LENGTH or SK_FRAME_RAW */
  int model;   /* SK_MODEL_EVENT_LOOP, ... */
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
  fputs("Usage: sk-echo-server [--udp | --tcp] [--framing F] [--model M] [ADDRESS]\n"
        "Echo every request back to its sender.\n"
        "\n"
        "  --udp          serve UDP datagrams (the default)\n"
        "  --tcp          serve TCP connections\n"
        "  --framing F    TCP message framing: line (default; works with nc),\n"
        "                 length (4-byte big-endian length prefix) or raw\n"
        "  --model M      who runs the service: event (default), pool, thread\n"
        "                 or process (thread and process are TCP only)\n"
        "  -h, --help     show this help and exit\n"
        "\n"
        "ADDRESS is where to listen; the default is 8848:\n"
        "  8848 or :8848        port 8848 on all interfaces (IPv6 and IPv4)\n"
        "  127.0.0.1:9000       one IPv4 address\n"
        "  [::1]:9000           one IPv6 address\n"
        "  unix:/tmp/echo.sock  a UNIX socket (datagram or stream)\n"
        "  systemd              the socket systemd passed (socket activation)\n"
        "Port 0 picks a free port. Once ready, the server prints one line,\n"
        "\"listening on udp ADDRESS\" (or tcp), with the address it is bound to.\n"
        "Stop it with Ctrl-C (SIGINT) or SIGTERM.\n"
        "\n"
        "Exit status: 0 when stopped by a signal, 1 if the server cannot listen\n"
        "or fails while running, 2 for bad arguments.\n",
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
      {"udp", no_argument, NULL, 'u'},           {"tcp", no_argument, NULL, 't'},
      {"framing", required_argument, NULL, 'f'}, {"model", required_argument, NULL, 'm'},
      {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
  };
  static const char *const framings[] = {"line", "length", "raw", NULL};
  static const char *const models[] = {"event", "pool", "thread", "process", NULL};
  int c;

  opts->transport = TRANSPORT_UDP;
  opts->address = "8848";
  opts->framing = SK_FRAME_LINE;
  opts->model = SK_MODEL_EVENT_LOOP;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'u':
      opts->transport = TRANSPORT_UDP;
      break;
    case 't':
      opts->transport = TRANSPORT_TCP;
      break;
    case 'f':
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
  return 0;
}

static void on_signal(int sig) {
  stop_signal = sig;
  if (udp_server)
    sk_udp_server_stop(udp_server);
  if (tcp_server)
    sk_tcp_server_stop(tcp_server);
}

static int install_signal_handlers(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
    fprintf(stderr, "sk-echo-server: sigaction: %s\n", strerror(errno));
    return -1;
  }
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
    return SK_OK;
  }
  if (status != SK_OK)
    report("failed while serving", address, status);
  return status;
}

/* [udp] */
static int serve_udp(const struct options *opts) {
  const char *address = opts->address;
  char bound[SK_ADDRSTRLEN];
  int status;

  status = sk_udp_server_create(&udp_server, address, echo, NULL);
  if (status == SK_OK)
    status = sk_udp_server_set(udp_server, SK_OPT_MODEL, opts->model);
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
  if (status != SK_OK) {
    report("cannot listen on", address, status);
    goto done;
  }
  printf("listening on udp %s\n", bound);
  fflush(stdout);

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
  int status;

  status = sk_tcp_server_create(&tcp_server, address, echo, NULL);
  if (status == SK_OK)
    status = sk_tcp_server_set(tcp_server, SK_OPT_FRAMING, opts->framing);
  if (status == SK_OK)
    status = sk_tcp_server_set(tcp_server, SK_OPT_MODEL, opts->model);
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
  if (status != SK_OK) {
    report("cannot listen on", address, status);
    goto done;
  }
  printf("listening on tcp %s\n", bound);
  fflush(stdout);

  status = finished(address, sk_tcp_server_run(tcp_server));
done:
  block_signals();
  sk_tcp_server_destroy(tcp_server);
  return status == SK_OK ? EXIT_OK : EXIT_SERVER_ERROR;
}
/* [tcp] */

int main(int argc, char **argv) {
  struct options opts;
  int rc = parse_args(argc, argv, &opts);

  if (rc != 0)
    return rc > 0 ? EXIT_OK : EXIT_USAGE;
  switch (opts.transport) {
  case TRANSPORT_UDP:
    return serve_udp(&opts);
  case TRANSPORT_TCP:
    return serve_tcp(&opts);
  }
  return EXIT_USAGE;
}
