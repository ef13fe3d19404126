/* sk-cmd-client.c -- example: ask an sk-cmd-server to run commands and
 * print their output, one request per line or one from the command line. */
#define _GNU_SOURCE /* getopt_long, getline */

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sockkit.h>

/* Exit statuses, also listed in the usage text. */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_REFUSED = 3, EXIT_NO_SERVER = 4 };

struct options {
  bool udp;
  int framing;
  long long timeout_ms;
  const char *address;
  char *command; /* one-shot: the words after "--", joined */
};

static void usage(FILE *out) {
  fputs("Usage: sk-cmd-client [--tcp | --udp] [--framing length|line] [--timeout MS]\n"
        "                     [ADDRESS] [-- COMMAND [ARG...]]\n"
        "Ask an sk-cmd-server to run commands; print what they printed.\n"
        "\n"
        "  --tcp          talk TCP (the default)\n"
        "  --udp          talk UDP (the server caps output at about 1200 bytes)\n"
        "  --framing F    TCP framing, as the server's: length (default) or line\n"
        "  --timeout MS   wait this long for each reply; default 5000\n"
        "  -h, --help     show this help and exit\n"
        "\n"
        "ADDRESS defaults to 127.0.0.1:8849. With \"-- COMMAND ARG...\" the client\n"
        "sends that one request and exits; otherwise it reads requests from\n"
        "standard input, one per line (with a prompt on a terminal).\n"
        "\n"
        "Exit status: 0 when every request ran, 1 on a network error or timeout,\n"
        "2 for bad arguments, 3 if the server refused a request, 4 if the server\n"
        "could not be reached.\n",
        out);
}

static char *join(char **words, int n) {
  size_t len = 1;
  for (int i = 0; i < n; i++)
    len += strlen(words[i]) + 1;
  char *s = calloc(1, len);
  for (int i = 0; s && i < n; i++) {
    if (i)
      strcat(s, " ");
    strcat(s, words[i]);
  }
  return s;
}

static int parse_args(int argc, char **argv, struct options *o) {
  static const struct option longopts[] = {
      {"tcp", no_argument, NULL, 't'},           {"udp", no_argument, NULL, 'u'},
      {"framing", required_argument, NULL, 'f'}, {"timeout", required_argument, NULL, 'T'},
      {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
  };
  *o =
      (struct options){.framing = SK_FRAME_LENGTH, .timeout_ms = 5000, .address = "127.0.0.1:8849"};
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
    switch (c) {
    case 't':
      o->udp = false;
      break;
    case 'u':
      o->udp = true;
      break;
    case 'f':
      if (strcmp(optarg, "length") && strcmp(optarg, "line")) {
        fprintf(stderr, "sk-cmd-client: framing must be length or line\n");
        return -1;
      }
      o->framing = strcmp(optarg, "line") == 0 ? SK_FRAME_LINE : SK_FRAME_LENGTH;
      break;
    case 'T':
      o->timeout_ms = strtoll(optarg, &end, 10);
      if (*end || o->timeout_ms <= 0) {
        fprintf(stderr, "sk-cmd-client: bad --timeout '%s'\n", optarg);
        return -1;
      }
      break;
    case 'h':
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return -1;
    }
  }
  /* getopt_long stops at "--": what follows is the one-shot command. */
  if (optind < argc && strcmp(argv[optind - 1], "--") != 0)
    o->address = argv[optind++];
  if (optind < argc && strcmp(argv[optind], "--") == 0)
    optind++;
  if (optind < argc && !(o->command = join(argv + optind, argc - optind)))
    return -1;
  return 0;
}

/* One client, either kind, behind two small functions. */
struct client {
  sk_tcp_client *tcp;
  sk_udp_client *udp;
};

static int client_open(struct client *cl, const struct options *o) {
  int rc;
  if (o->udp) {
    rc = sk_udp_client_create(&cl->udp, o->address);
    if (rc == SK_OK)
      rc = sk_udp_client_set(cl->udp, SK_OPT_REQUEST_TIMEOUT_MS, o->timeout_ms);
  } else {
    rc = sk_tcp_client_create(&cl->tcp, o->address);
    if (rc == SK_OK)
      rc = sk_tcp_client_set(cl->tcp, SK_OPT_FRAMING, o->framing);
    if (rc == SK_OK)
      rc = sk_tcp_client_set(cl->tcp, SK_OPT_REQUEST_TIMEOUT_MS, o->timeout_ms);
    /* Connect now, so that an absent server is reported before any input. */
    if (rc == SK_OK)
      rc = sk_tcp_client_connect(cl->tcp, -1);
  }
  return rc;
}

static int client_request(struct client *cl, const char *request, const char **reply) {
  return cl->udp ? sk_udp_client_request(cl->udp, request, reply)
                 : sk_tcp_client_request(cl->tcp, request, reply);
}

static void client_close(struct client *cl) {
  sk_udp_client_destroy(cl->udp);
  sk_tcp_client_destroy(cl->tcp);
}

static void report(const char *what, int rc) {
  int os_error = sk_last_os_error();
  fprintf(stderr, "sk-cmd-client: %s: %s", what, sk_strerror(rc));
  if (os_error)
    fprintf(stderr, " (%s)", strerror(os_error));
  fputc('\n', stderr);
}

/* Send one request and print its reply. Returns an exit status. */
static int run_one(struct client *cl, const char *request) {
  const char *reply;
  int rc = client_request(cl, request, &reply);
  if (rc != SK_OK) {
    report("request failed", rc);
    return rc == SK_ECONNECT ? EXIT_NO_SERVER : EXIT_FAILED;
  }
  puts(reply);
  fflush(stdout);
  return strncmp(reply, "error: ", 7) == 0 ? EXIT_REFUSED : EXIT_OK;
}

int main(int argc, char **argv) {
  struct options o;
  int rc = parse_args(argc, argv, &o);
  if (rc != 0)
    return rc > 0 ? EXIT_OK : EXIT_USAGE;
  struct client cl = {0};
  rc = client_open(&cl, &o);
  if (rc != SK_OK) {
    report(o.address, rc);
    client_close(&cl);
    free(o.command);
    return rc == SK_ECONNECT ? EXIT_NO_SERVER : rc == SK_EADDR ? EXIT_USAGE : EXIT_FAILED;
  }
  int status = EXIT_OK;
  if (o.command) {
    status = run_one(&cl, o.command);
  } else {
    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    for (;;) {
      if (tty) {
        fputs("cmd> ", stdout);
        fflush(stdout);
      }
      if ((len = getline(&line, &size, stdin)) < 0)
        break;
      if (len > 0 && line[len - 1] == '\n')
        line[--len] = '\0';
      int one = run_one(&cl, line);
      /* Keep going after a refusal; the worst status decides the exit. */
      if (one != EXIT_OK && (status == EXIT_OK || status == EXIT_REFUSED))
        status = one;
      if (one == EXIT_NO_SERVER)
        break;
    }
    free(line);
  }
  client_close(&cl);
  free(o.command);
  return status;
}
