/* sk-echo-client.c -- example: send lines from stdin (or the arguments after
 * "--") to an echo server over UDP or TCP and print the replies. */
#define _GNU_SOURCE /* getopt_long, getline */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sockkit.h>

/* Exit statuses, also listed in the usage text. */
enum { EXIT_OK = 0, EXIT_SOCKET_ERROR = 1, EXIT_USAGE = 2, EXIT_NO_REPLY = 3, EXIT_NO_SERVER = 4 };

enum transport { TRANSPORT_UDP, TRANSPORT_TCP };

struct options {
  enum transport transport;
  int framing; /* TCP only; -1 when not given */
  int timeout_ms;
  const char *address;
  char **messages; /* the arguments after "--", or NULL to read stdin */
  int nmessages;
};

/* The client of either transport; the one not in use is NULL. */
struct client {
  sk_udp_client *udp;
  sk_tcp_client *tcp;
  const char *address;
  int timeout_ms;
};

/* What happened to one message. */
enum outcome { REPLIED, NO_REPLY, FAILED, NO_SERVER };

static void usage(FILE *out) {
  fputs("Usage: sk-echo-client [--udp | --tcp] [--framing F] [--timeout MS] [ADDRESS]\n"
        "                      [-- MESSAGE...]\n"
        "Send each line of standard input, or each MESSAGE, to an echo server and\n"
        "print each reply.\n"
        "\n"
        "  --udp          send UDP datagrams, one per line (the default); a datagram\n"
        "                 with no reply is sent again every second\n"
        "  --tcp          use a TCP connection; connecting is tried 5 times, one\n"
        "                 second apart, and again after the connection is lost\n"
        "  --framing F    TCP message framing, as the server's: line (default),\n"
        "                 length (4-byte big-endian length prefix) or raw\n"
        "  --timeout MS   wait up to MS milliseconds for each reply (default 2000)\n"
        "  -h, --help     show this help and exit\n"
        "\n"
        "ADDRESS is the server; the default is 127.0.0.1:8848:\n"
        "  127.0.0.1:9000       an IPv4 address\n"
        "  localhost:9000       a host name\n"
        "  [::1]:9000           an IPv6 address\n"
        "  9000 or :9000        this machine\n"
        "  unix:/tmp/echo.sock  a UNIX socket (datagram or stream)\n"
        "\n"
        "With \"-- MESSAGE...\", the messages are sent in turn instead of lines of\n"
        "standard input, for scripts:\n"
        "  sk-echo-client --tcp 127.0.0.1:8848 -- \"hello\"\n"
        "\n"
        "Exit status: 0 if every message got a reply, 1 for a socket error,\n"
        "2 for bad arguments, 3 if some message got no reply (timed out, refused,\n"
        "cut off or too long), 4 if no TCP connection could be made.\n",
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
      {"framing", required_argument, NULL, 'f'}, {"timeout", required_argument, NULL, 'T'},
      {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
  };
  static const char *const framings[] = {"line", "length", "raw", NULL};
  char *end;
  long ms;
  int c, nopts;

  opts->transport = TRANSPORT_UDP;
  opts->framing = -1;
  opts->timeout_ms = 2000;
  opts->address = "127.0.0.1:8848";
  opts->messages = NULL;
  opts->nmessages = 0;
  /* Everything after the first "--" is a message, never an option or the
   * address: getopt only sees what comes before it. */
  for (nopts = 1; nopts < argc && strcmp(argv[nopts], "--") != 0; nopts++)
    ;
  if (nopts < argc) {
    opts->messages = argv + nopts + 1;
    opts->nmessages = argc - nopts - 1;
  }
  while ((c = getopt_long(nopts, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'u':
      opts->transport = TRANSPORT_UDP;
      break;
    case 't':
      opts->transport = TRANSPORT_TCP;
      break;
    case 'f':
      if ((opts->framing = pick(optarg, framings)) < 0) {
        fprintf(stderr, "sk-echo-client: unknown framing '%s'\n", optarg);
        usage(stderr);
        return -1;
      }
      break;
    case 'T':
      errno = 0;
      ms = strtol(optarg, &end, 10);
      if (errno != 0 || end == optarg || *end != '\0' || ms < 1 || ms > INT_MAX) {
        fprintf(stderr, "sk-echo-client: --timeout wants milliseconds from 1 to %d, not '%s'\n",
                INT_MAX, optarg);
        usage(stderr);
        return -1;
      }
      opts->timeout_ms = (int)ms;
      break;
    case 'h':
      usage(stdout);
      return 1;
    default: /* getopt_long has already said what was wrong */
      usage(stderr);
      return -1;
    }
  }
  if (nopts - optind > 1) {
    fprintf(stderr, "sk-echo-client: too many arguments (messages go after \"--\")\n");
    usage(stderr);
    return -1;
  }
  if (optind < nopts)
    opts->address = argv[optind];
  if (opts->framing >= 0 && opts->transport != TRANSPORT_TCP) {
    fprintf(stderr, "sk-echo-client: --framing is for --tcp (a datagram is one message)\n");
    usage(stderr);
    return -1;
  }
  return 0;
}

/* The library's log lines (such as each failed connection attempt) go to
 * stderr under our name. */
static void log_line(int level, const char *message, void *user) {
  (void)level;
  (void)user;
  fprintf(stderr, "sk-echo-client: %s\n", message);
}

/* Why the last call failed, with the OS error behind it when there is one. */
static const char *why(int status) {
  int os_error = sk_last_os_error();

  return os_error != 0 ? strerror(os_error) : sk_strerror(status);
}

/* Create the client and connect it (TCP). Returns an exit status. */
static int open_client(struct client *c, const struct options *opts) {
  int status, attempts = 0;

  c->address = opts->address;
  c->timeout_ms = opts->timeout_ms;
  if (opts->transport == TRANSPORT_UDP) {
    status = sk_udp_client_create(&c->udp, opts->address);
    if (status == SK_OK)
      status = sk_udp_client_set(c->udp, SK_OPT_REQUEST_TIMEOUT_MS, opts->timeout_ms);
  } else {
    status = sk_tcp_client_create(&c->tcp, opts->address);
    if (status == SK_OK)
      status = sk_tcp_client_set(c->tcp, SK_OPT_REQUEST_TIMEOUT_MS, opts->timeout_ms);
    if (status == SK_OK && opts->framing >= 0)
      status = sk_tcp_client_set(c->tcp, SK_OPT_FRAMING, opts->framing);
  }
  if (status == SK_EADDR) {
    fprintf(stderr, "sk-echo-client: bad address '%s'\n", opts->address);
    usage(stderr);
    return EXIT_USAGE;
  }
  if (status != SK_OK) {
    fprintf(stderr, "sk-echo-client: %s\n", sk_strerror(status));
    return EXIT_SOCKET_ERROR;
  }
  if (c->tcp == NULL)
    return EXIT_OK; /* a UDP client makes its socket with the first datagram */

  /* The library retries as the tutorial's client did by hand: 5 attempts,
   * one second apart, each one logged. */
  sk_set_log_level(SK_LOG_INFO);
  status = sk_tcp_client_connect(c->tcp, -1);
  if (status == SK_OK)
    return EXIT_OK;
  if (status == SK_EADDR) {
    fprintf(stderr, "sk-echo-client: cannot resolve %s\n", opts->address);
    return EXIT_SOCKET_ERROR;
  }
  sk_tcp_client_attempts(c->tcp, &attempts);
  fprintf(stderr, "sk-echo-client: cannot connect to %s after %d attempt%s: %s%s\n", opts->address,
          attempts, attempts == 1 ? "" : "s", why(status),
          status == SK_ECONNECT ? " (is the server running?)" : "");
  return status == SK_ECONNECT || status == SK_ETIMEDOUT ? EXIT_NO_SERVER : EXIT_SOCKET_ERROR;
}

static void close_client(struct client *c) {
  sk_udp_client_destroy(c->udp);
  sk_tcp_client_destroy(c->tcp);
}

/* The largest message the client sends. */
static long long max_message(const struct client *c) {
  long long max = 0;

  if (c->udp)
    sk_udp_client_get(c->udp, SK_OPT_MAX_MESSAGE, &max);
  else
    sk_tcp_client_get(c->tcp, SK_OPT_MAX_MESSAGE, &max);
  return max;
}

/* Send one message and print the reply. */
static enum outcome exchange(struct client *c, const char *message) {
  const char *reply = NULL;
  size_t len = strlen(message);
  int status, attempts = 0;

  if ((long long)len > max_message(c)) {
    fprintf(stderr, "sk-echo-client: message of %zu bytes skipped: the limit is %lld\n", len,
            max_message(c));
    return NO_REPLY;
  }
  if (c->udp)
    status = sk_udp_client_request(c->udp, message, &reply);
  else
    status = sk_tcp_client_request(c->tcp, message, &reply);
  switch (status) {
  case SK_OK:
    fwrite(reply, 1, strlen(reply), stdout);
    putchar('\n');
    fflush(stdout);
    return REPLIED;
  case SK_ETIMEDOUT:
    fprintf(stderr, "sk-echo-client: no reply within %d ms\n", c->timeout_ms);
    return NO_REPLY;
  case SK_ECLOSED:
    fprintf(stderr, "sk-echo-client: the server closed the connection before replying\n");
    return NO_REPLY;
  case SK_EMSGSIZE:
    fprintf(stderr, "sk-echo-client: the reply was longer than %lld bytes\n", max_message(c));
    return NO_REPLY;
  case SK_EPROTO:
    fprintf(stderr, "sk-echo-client: the reply was malformed\n");
    return NO_REPLY;
  case SK_EINVAL: /* a newline in line framing, or nothing to send in raw */
    fprintf(stderr, "sk-echo-client: this framing cannot carry the message '%s'\n", message);
    return NO_REPLY;
  case SK_ECONNECT:
    if (c->udp) {
      fprintf(stderr, "sk-echo-client: the server refused the datagram (is it running?)\n");
      return NO_REPLY;
    }
    /* The connection was lost and the new attempts failed. */
    sk_tcp_client_attempts(c->tcp, &attempts);
    fprintf(stderr, "sk-echo-client: cannot reconnect to %s after %d attempts: %s\n", c->address,
            attempts, why(status));
    return NO_SERVER;
  case SK_EADDR:
    fprintf(stderr, "sk-echo-client: cannot resolve %s\n", c->address);
    return FAILED;
  default:
    fprintf(stderr, "sk-echo-client: %s\n", why(status));
    return FAILED;
  }
}

/* The next message: the next argument, or the next line of stdin without
 * its newline. NULL at the end. */
static const char *next_message(const struct options *opts, int *index, char **line, size_t *cap) {
  ssize_t len;

  if (opts->messages)
    return *index < opts->nmessages ? opts->messages[(*index)++] : NULL;
  len = getline(line, cap, stdin);
  if (len < 0)
    return NULL;
  if (len > 0 && (*line)[len - 1] == '\n')
    (*line)[--len] = '\0';
  return *line;
}

static int run(struct client *c, const struct options *opts) {
  bool interactive = !opts->messages && isatty(STDIN_FILENO);
  bool missed = false;
  char *line = NULL;
  size_t cap = 0;
  int index = 0, status = EXIT_OK;
  const char *message;

  for (;;) {
    if (interactive) {
      fputs("> ", stdout);
      fflush(stdout);
    }
    if ((message = next_message(opts, &index, &line, &cap)) == NULL)
      break;
    enum outcome outcome = exchange(c, message);
    if (outcome == FAILED || outcome == NO_SERVER) {
      status = outcome == FAILED ? EXIT_SOCKET_ERROR : EXIT_NO_SERVER;
      break;
    }
    if (outcome == NO_REPLY)
      missed = true;
  }
  if (!opts->messages && ferror(stdin)) {
    fprintf(stderr, "sk-echo-client: reading standard input: %s\n", strerror(errno));
    status = EXIT_SOCKET_ERROR;
  }
  if (interactive && feof(stdin))
    putchar('\n'); /* end the prompt line after Ctrl-D */
  free(line);
  if (status == EXIT_OK && missed)
    status = EXIT_NO_REPLY;
  return status;
}

int main(int argc, char **argv) {
  struct options opts;
  struct client client = {0};
  int rc = parse_args(argc, argv, &opts);

  if (rc != 0)
    return rc > 0 ? EXIT_OK : EXIT_USAGE;
  sk_set_log_handler(log_line, NULL);
  rc = open_client(&client, &opts);
  if (rc == EXIT_OK)
    rc = run(&client, &opts);
  close_client(&client);
  if (fclose(stdout) != 0 && rc == EXIT_OK) {
    fprintf(stderr, "sk-echo-client: writing standard output: %s\n", strerror(errno));
    rc = EXIT_SOCKET_ERROR;
  }
  return rc;
}
