/* sk-echo-client.c -- example: send lines from stdin to an echo server and
 * print the replies. Plain sockets for now; the library's client API will
 * replace open_udp() and exchange() when it lands. */
#define _GNU_SOURCE /* getopt_long, getline */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Exit statuses, also listed in the usage text. */
enum { EXIT_OK = 0, EXIT_SOCKET_ERROR = 1, EXIT_USAGE = 2, EXIT_NO_REPLY = 3 };

/* The largest UDP payload over IPv4, and the server's default limit. */
enum { MAX_DATAGRAM = 65507 };

/* Transports this build can use. TCP joins the list when the library has it. */
enum transport { TRANSPORT_UDP };

struct options {
  enum transport transport;
  int timeout_ms;
  const char *address;
};

/* What happened to one line. */
enum outcome { REPLIED, NO_REPLY, FAILED };

static void usage(FILE *out) {
  fputs("Usage: sk-echo-client [--udp] [--timeout MS] [ADDRESS]\n"
        "Send each line of standard input to an echo server and print each reply.\n"
        "\n"
        "  --udp           send UDP datagrams, one per line (the default)\n"
        "  --timeout MS    wait up to MS milliseconds for each reply (default 2000)\n"
        "  -h, --help      show this help and exit\n"
        "\n"
        "ADDRESS is the server; the default is 127.0.0.1:8848:\n"
        "  127.0.0.1:9000       an IPv4 address\n"
        "  localhost:9000       a host name\n"
        "  [::1]:9000           an IPv6 address\n"
        "  9000 or :9000        this machine\n"
        "  unix:/tmp/echo.sock  a UNIX datagram socket\n"
        "\n"
        "Exit status: 0 if every line got a reply, 1 for a socket error,\n"
        "2 for bad arguments, 3 if some line got no reply (timed out, refused\n"
        "or too long).\n",
        out);
}

/* Fill `opts` from the command line. Returns -1 after printing usage to
 * stderr, 1 after printing it to stdout for --help, 0 to go on. */
static int parse_args(int argc, char **argv, struct options *opts) {
  static const struct option longopts[] = {
      {"udp", no_argument, NULL, 'u'},
      {"timeout", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  char *end;
  long ms;
  int c;

  opts->transport = TRANSPORT_UDP;
  opts->timeout_ms = 2000;
  opts->address = "127.0.0.1:8848";
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'u':
      opts->transport = TRANSPORT_UDP;
      break;
    case 't':
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
  if (argc - optind > 1) {
    fprintf(stderr, "sk-echo-client: too many arguments\n");
    usage(stderr);
    return -1;
  }
  if (optind < argc)
    opts->address = argv[optind];
  return 0;
}

/* A connected UNIX datagram socket. It is bound to an abstract address the
 * kernel picks (autobind: an address of just the family), because a server
 * can only reply to a sender that has an address. */
static int open_unix(const char *address, const char *path) {
  struct sockaddr_un sun;
  socklen_t len;
  sa_family_t family = AF_UNIX;
  size_t n = strlen(path);
  int fd;

  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  if (n == 0 || n >= sizeof sun.sun_path) {
    fprintf(stderr, "sk-echo-client: bad UNIX socket path in '%s'\n", address);
    return -EXIT_USAGE;
  }
  memcpy(sun.sun_path, path, n);
  if (path[0] == '@')
    sun.sun_path[0] = '\0'; /* "unix:@name" is an abstract address */
  len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));

  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fprintf(stderr, "sk-echo-client: socket: %s\n", strerror(errno));
    return -EXIT_SOCKET_ERROR;
  }
  if (bind(fd, (const struct sockaddr *)&family, sizeof family) != 0 ||
      connect(fd, (const struct sockaddr *)&sun, len) != 0) {
    fprintf(stderr, "sk-echo-client: cannot connect to %s: %s\n", address, strerror(errno));
    close(fd);
    return -EXIT_SOCKET_ERROR;
  }
  return fd;
}

/* A port to send to: 1 to 65535, digits only. */
static bool valid_port(const char *text) {
  size_t digits = strspn(text, "0123456789");

  return digits > 0 && digits <= 5 && text[digits] == '\0' && atoi(text) >= 1 &&
         atoi(text) <= 65535;
}

/* A connected UDP socket. Connecting makes the kernel drop datagrams from
 * anyone but the server and report ICMP "port unreachable" as ECONNREFUSED.
 * Host names are looked up; a name with several addresses gets the first
 * one a socket can be connected to. */
static int open_ip(const char *address) {
  struct addrinfo hints, *list, *ai;
  char host[256];
  const char *host_start = address, *port, *colon;
  size_t host_len;
  int fd = -1, err;

  if (address[0] == '[') { /* "[v6]:port" */
    host_start = address + 1;
    colon = strchr(address, ']');
    if (colon == NULL || *++colon != ':')
      goto bad;
    host_len = (size_t)(colon - 1 - host_start);
  } else { /* "host:port", ":port" or "port" */
    colon = strchr(address, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL)
      goto bad; /* an IPv6 address needs brackets */
    host_len = colon ? (size_t)(colon - address) : 0;
  }
  port = colon ? colon + 1 : address;
  if (host_len >= sizeof host || !valid_port(port))
    goto bad;
  memcpy(host, host_start, host_len);
  host[host_len] = '\0';

  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  /* No host means this machine: getaddrinfo then gives the loopback
   * addresses. */
  err = getaddrinfo(host_len ? host : NULL, port, &hints, &list);
  if (err != 0) {
    fprintf(stderr, "sk-echo-client: cannot resolve %s: %s\n", address,
            err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err));
    return -EXIT_SOCKET_ERROR;
  }
  for (ai = list; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      err = errno;
    else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    else {
      err = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(list);
  if (fd < 0) {
    fprintf(stderr, "sk-echo-client: cannot connect to %s: %s\n", address, strerror(err));
    return -EXIT_SOCKET_ERROR;
  }
  return fd;

bad:
  fprintf(stderr, "sk-echo-client: bad address '%s'\n", address);
  usage(stderr);
  return -EXIT_USAGE;
}

/* Returns a connected socket, or minus the exit status after saying why. */
static int open_udp(const char *address) {
  if (strncmp(address, "unix:", 5) == 0)
    return open_unix(address, address + 5);
  return open_ip(address);
}

/* Throw away datagrams already queued, such as a reply that came after its
 * request timed out, so it is not taken for the reply to the next line. A
 * reply later still can yet be mistaken: plain UDP has no request ids. */
static int discard_stale(int fd, char *buf, size_t size) {
  for (;;) {
    if (recv(fd, buf, size, MSG_DONTWAIT) >= 0)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return 0;
    if (errno != EINTR && errno != ECONNREFUSED) /* a refusal of an earlier line */
      return -1;
  }
}

static long long now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send one line and print the reply. */
static enum outcome exchange(int fd, const char *line, size_t len, int timeout_ms, char *buf,
                             size_t size) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  long long deadline;
  ssize_t n;
  int ready;

  if (discard_stale(fd, buf, size) != 0) {
    fprintf(stderr, "sk-echo-client: recv: %s\n", strerror(errno));
    return FAILED;
  }
  while (send(fd, line, len, 0) < 0) {
    if (errno == ECONNREFUSED)
      goto refused;
    if (errno != EINTR) {
      fprintf(stderr, "sk-echo-client: send: %s\n", strerror(errno));
      return FAILED;
    }
  }

  deadline = now_ms() + timeout_ms;
  for (;;) {
    long long left = deadline - now_ms();
    ready = poll(&pfd, 1, left > 0 ? (int)left : 0);
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready < 0) {
      fprintf(stderr, "sk-echo-client: poll: %s\n", strerror(errno));
      return FAILED;
    }
    if (ready == 0) {
      fprintf(stderr, "sk-echo-client: no reply within %d ms\n", timeout_ms);
      return NO_REPLY;
    }
    n = recv(fd, buf, size, MSG_DONTWAIT);
    if (n >= 0)
      break;
    if (errno == ECONNREFUSED)
      goto refused;
    if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      fprintf(stderr, "sk-echo-client: recv: %s\n", strerror(errno));
      return FAILED;
    }
  }
  fwrite(buf, 1, (size_t)n, stdout);
  putchar('\n');
  fflush(stdout);
  return REPLIED;

refused:
  fprintf(stderr, "sk-echo-client: the server refused the datagram (is it running?)\n");
  return NO_REPLY;
}

static int run_udp(const struct options *opts) {
  static char reply[65536]; /* more than any datagram the server sends */
  bool interactive = isatty(STDIN_FILENO);
  bool missed = false;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int fd, status = EXIT_OK;

  fd = open_udp(opts->address);
  if (fd < 0)
    return -fd;
  for (;;) {
    if (interactive) {
      fputs("> ", stdout);
      fflush(stdout);
    }
    len = getline(&line, &cap, stdin);
    if (len < 0)
      break;
    if (len > 0 && line[len - 1] == '\n')
      line[--len] = '\0';
    if (len > MAX_DATAGRAM) {
      fprintf(stderr, "sk-echo-client: line of %zd bytes skipped: a datagram holds at most %d\n",
              len, MAX_DATAGRAM);
      missed = true;
      continue;
    }
    enum outcome outcome = exchange(fd, line, (size_t)len, opts->timeout_ms, reply, sizeof reply);
    if (outcome == FAILED) {
      status = EXIT_SOCKET_ERROR;
      break;
    }
    if (outcome == NO_REPLY)
      missed = true;
  }
  if (ferror(stdin)) {
    fprintf(stderr, "sk-echo-client: reading standard input: %s\n", strerror(errno));
    status = EXIT_SOCKET_ERROR;
  }
  if (interactive && feof(stdin))
    putchar('\n'); /* end the prompt line after Ctrl-D */
  free(line);
  close(fd);
  if (status == EXIT_OK && missed)
    status = EXIT_NO_REPLY;
  return status;
}

int main(int argc, char **argv) {
  struct options opts;
  int rc = parse_args(argc, argv, &opts);

  if (rc != 0)
    return rc > 0 ? EXIT_OK : EXIT_USAGE;
  switch (opts.transport) {
  case TRANSPORT_UDP:
    rc = run_udp(&opts);
    break;
  }
  if (fclose(stdout) != 0 && rc == EXIT_OK) {
    fprintf(stderr, "sk-echo-client: writing standard output: %s\n", strerror(errno));
    rc = EXIT_SOCKET_ERROR;
  }
  return rc;
}
