/* sk-cmd-server.c -- example: run a few allowed commands for remote
 * clients, without ever giving them a shell. */
#define _GNU_SOURCE /* getopt_long, getline */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sockkit.h>

/* Exit statuses, also listed in the usage text. */
enum { EXIT_OK = 0, EXIT_SERVER_ERROR = 1, EXIT_USAGE = 2 };

/* Limits of one request. Anything longer is refused, not truncated. */
enum { MAX_REQUEST = 1024, MAX_WORDS = 32, MAX_COMMANDS = 64 };

/* Output caps: a small spoofed UDP datagram must not trigger a large reply
 * (amplification), so UDP replies stay within one ordinary packet. */
enum { UDP_OUTPUT_CAP = 1200, TCP_OUTPUT_CAP = 256 * 1024 };

static const char TRUNCATED[] = "...[truncated]";

/* One allowed command: the name clients use and the program it runs. */
struct command {
  char name[64];
  char path[256];
};

struct config {
  bool udp;
  int framing;
  const char *address;
  const char *allow_file;
  int timeout_ms;
  int workers;
  size_t output_cap;
  struct command commands[MAX_COMMANDS];
  int ncommands;
};

/* The read-only commands offered when no --allow file is given. */
static const char *const default_commands[] = {"date", "uptime", "whoami", "uname",
                                               "ls",   "pwd",    "df",     "echo"};
/* Where the default commands are looked for: fixed, never $PATH. */
static const char *const trusted_dirs[] = {"/usr/bin", "/bin"};

/* The environment commands run with: nothing inherited from the server. */
static char env_path[] = "PATH=/usr/bin:/bin";
static char env_locale[] = "LC_ALL=C";
static char *clean_env[] = {env_path, env_locale, NULL};

static struct config cfg;
static atomic_ulong served, refused;

static sk_udp_server *udp_server;
static sk_tcp_server *tcp_server;
static volatile sig_atomic_t stop_signal;

static void usage(FILE *out) {
  fputs("Usage: sk-cmd-server [--udp | --tcp] [--framing length|line] [--allow FILE]\n"
        "                     [--timeout MS] [--workers N] [ADDRESS]\n"
        "Run allowed commands for remote clients: no shell, ever.\n"
        "\n"
        "  --tcp           serve TCP connections (the default)\n"
        "  --udp           serve UDP datagrams (output capped at 1200 bytes)\n"
        "  --framing F     TCP framing: length (default; what sk-cmd-client speaks)\n"
        "                  or line (for nc: the reply is the output and a newline)\n"
        "  --allow FILE    the allowed commands, one per line: NAME /absolute/path\n"
        "                  (default: date uptime whoami uname ls pwd df echo)\n"
        "  --timeout MS    kill a command (its whole process group) after MS\n"
        "                  milliseconds; default 2000\n"
        "  --workers N     commands run at once; default 8\n"
        "  -h, --help      show this help and exit\n"
        "\n"
        "ADDRESS defaults to 127.0.0.1:8849: only this machine. Listening on other\n"
        "interfaces takes an explicit address such as :8849.\n"
        "\n"
        "A request is a command name and arguments separated by spaces. Arguments\n"
        "may use letters, digits and - _ . , : / + @ % = only; anything else, a\n"
        "path as the command, '..', or a command not on the list is refused with\n"
        "a one-line reply starting with \"error: \".\n"
        "\n"
        "Exit status: 0 when stopped by a signal, 1 if the server cannot start,\n"
        "2 for bad arguments.\n",
        out);
}

/* ---- the allowlist ----------------------------------------------------- */

static bool valid_name(const char *name) {
  if (!*name || strlen(name) >= sizeof cfg.commands[0].name)
    return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_' || *p == '.'))
      return false;
  return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static bool executable_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static int add_command(const char *name, const char *path) {
  if (cfg.ncommands == MAX_COMMANDS) {
    fprintf(stderr, "sk-cmd-server: more than %d commands\n", MAX_COMMANDS);
    return -1;
  }
  struct command *c = &cfg.commands[cfg.ncommands++];
  snprintf(c->name, sizeof c->name, "%s", name);
  snprintf(c->path, sizeof c->path, "%s", path);
  return 0;
}

static int load_defaults(void) {
  for (size_t i = 0; i < sizeof default_commands / sizeof *default_commands; i++) {
    for (size_t d = 0; d < sizeof trusted_dirs / sizeof *trusted_dirs; d++) {
      char path[256];
      snprintf(path, sizeof path, "%s/%s", trusted_dirs[d], default_commands[i]);
      if (executable_file(path)) {
        if (add_command(default_commands[i], path) != 0)
          return -1;
        break;
      }
    }
  }
  return 0;
}

/* Lines "NAME /absolute/path"; blank lines and lines starting with # are
 * skipped. Every mistake is reported with its line number. */
static int load_allow_file(const char *file) {
  FILE *f = fopen(file, "r");
  if (!f) {
    fprintf(stderr, "sk-cmd-server: %s: %s\n", file, strerror(errno));
    return -1;
  }
  char *line = NULL;
  size_t size = 0;
  int number = 0, rc = 0;
  while (rc == 0 && getline(&line, &size, f) >= 0) {
    number++;
    char name[128], path[512], extra[2];
    int n = sscanf(line, "%127s %511s %1s", name, path, extra);
    if (n <= 0 || name[0] == '#')
      continue;
    if (n != 2 || !valid_name(name) || path[0] != '/' || strlen(path) >= 256) {
      fprintf(stderr, "sk-cmd-server: %s:%d: expected NAME /absolute/path\n", file, number);
      rc = -1;
    } else if (!executable_file(path)) {
      fprintf(stderr, "sk-cmd-server: %s:%d: %s is not an executable file\n", file, number, path);
      rc = -1;
    } else {
      rc = add_command(name, path);
    }
  }
  free(line);
  fclose(f);
  return rc;
}

static const struct command *find_command(const char *name) {
  for (int i = 0; i < cfg.ncommands; i++)
    if (strcmp(cfg.commands[i].name, name) == 0)
      return &cfg.commands[i];
  return NULL;
}

/* ---- parsing a request ------------------------------------------------- */

/* [split] */
/* Characters an argument may contain. No quoting, no globbing, no
 * variables, no redirection: every character a shell would treat
 * specially is simply not accepted, and bytes outside ASCII (look-alike
 * Unicode, direction overrides) neither. */
static bool allowed_char(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         strchr("-_.,:/+@%=", ch) != NULL;
}

/* Split `request` (copied into `buf`) into words at spaces. Returns the
 * word count, or -1 with a reason for the client in *why. */
static int split(const char *request, char *buf, char **words, const char **why) {
  size_t len = strlen(request);
  if (len >= MAX_REQUEST) {
    *why = "request too long";
    return -1;
  }
  memcpy(buf, request, len + 1);
  int n = 0;
  for (char *p = buf; *p;) {
    while (*p == ' ')
      *p++ = '\0';
    if (!*p)
      break;
    if (n == MAX_WORDS) {
      *why = "too many arguments";
      return -1;
    }
    words[n++] = p;
    while (*p && *p != ' ') {
      if (!allowed_char((unsigned char)*p)) {
        *why = "character not allowed";
        return -1;
      }
      p++;
    }
  }
  words[n] = NULL;
  if (n == 0) {
    *why = "empty request";
    return -1;
  }
  for (int i = 0; i < n; i++)
    if (strstr(words[i], "..")) {
      *why = "'..' not allowed";
      return -1;
    }
  if (strchr(words[0], '/')) {
    *why = "a command is a name, not a path";
    return -1;
  }
  return n;
}
/* [split] */

/* ---- running a command ------------------------------------------------- */

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The reply under construction: heap memory handed to the library, which
 * frees it after copying (sk_*_server_set_reply_free). */
struct output {
  char *data;
  size_t len, cap;
};

static void append(struct output *o, const char *bytes, size_t n) {
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 1024;
    while (cap < o->len + n + 1)
      cap *= 2;
    char *grown = realloc(o->data, cap);
    if (!grown)
      return; /* keep what fits; the reply is still a valid string */
    o->data = grown;
    o->cap = cap;
  }
  memcpy(o->data + o->len, bytes, n);
  o->len += n;
  o->data[o->len] = '\0';
}

static void appendf(struct output *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(struct output *o, const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0)
    append(o, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Start `path` with `argv`, stdin from /dev/null, stdout and stderr into a
 * pipe, a clean environment, default signals, in a process group of its
 * own so that a timeout can kill everything it started. */
static pid_t spawn(const char *path, char **argv, int *out_fd) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0)
    return -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  /* The library runs services on threads that block every signal; the
   * command must start with none blocked and default actions. */
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid;
  int rc = posix_spawn(&pid, path, &fa, &attr, argv, clean_env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    errno = rc;
    return -1;
  }
  *out_fd = pipefd[0];
  return pid;
}

/* Run the command and collect up to the cap of its output. */
static void run_command(const struct command *cmd, char **argv, struct output *o) {
  int fd;
  pid_t pid = spawn(cmd->path, argv, &fd);
  if (pid < 0) {
    appendf(o, "error: cannot run %s: %s", cmd->name, strerror(errno));
    return;
  }
  long long deadline = now_ms() + cfg.timeout_ms;
  bool timed_out = false, truncated = false;
  char chunk[4096];
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      timed_out = r == 0;
      break;
    }
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* EOF: the command (and all it started) closed its output */
    size_t room = cfg.output_cap - o->len;
    if ((size_t)n > room) {
      append(o, chunk, room);
      truncated = true;
      break;
    }
    append(o, chunk, (size_t)n);
  }
  close(fd);
  /* Timed out, or talked too much: end the whole group, not only the
   * leader, so that nothing it started outlives the request. */
  if (timed_out || truncated)
    kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  /* NUL bytes cannot travel in a C-string reply: show them as '?'. */
  for (size_t i = 0; i < o->len; i++)
    if (o->data[i] == '\0')
      o->data[i] = '?';
  if (truncated)
    append(o, TRUNCATED, sizeof TRUNCATED - 1);
  if (timed_out)
    appendf(o, "%serror: %s killed after %d ms", o->len ? "\n" : "", cmd->name, cfg.timeout_ms);
  else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    appendf(o, "%s[exit status %d]", o->len && o->data[o->len - 1] != '\n' ? "\n" : "",
            WEXITSTATUS(status));
  else if (WIFSIGNALED(status) && !truncated)
    appendf(o, "%s[killed by signal %d]", o->len && o->data[o->len - 1] != '\n' ? "\n" : "",
            WTERMSIG(status));
}

/* ---- the service ------------------------------------------------------- */

static const char *refuse(struct output *o, const char *request, const char *why) {
  atomic_fetch_add(&refused, 1);
  const char *peer = sk_peer_address();
  /* The request may hold anything: log a bounded, printable rendering. */
  char shown[64];
  size_t k = 0;
  for (const char *p = request; *p && k < sizeof shown - 4; p++)
    shown[k++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
  shown[k] = '\0';
  fprintf(stderr, "sk-cmd-server: refused \"%s%s\" from %s: %s\n", shown,
          *request && k < strlen(request) ? "..." : "", peer ? peer : "unknown", why);
  appendf(o, "error: %s", why);
  return o->data;
}

static const char *command_service(const char *request, void *user) {
  (void)user;
  struct output o = {0};
  char buf[MAX_REQUEST];
  char *argv[MAX_WORDS + 1];
  const char *why = NULL;
  if (split(request, buf, argv, &why) < 0)
    return refuse(&o, request, why);
  const struct command *cmd = find_command(argv[0]);
  if (!cmd)
    return refuse(&o, request, "command not allowed");
  argv[0] = (char *)cmd->name;
  run_command(cmd, argv, &o);
  atomic_fetch_add(&served, 1);
  /* The reply is the output without its last newline: in line framing the
   * library adds the one that ends the reply, and clients print one. */
  if (o.len && o.data[o.len - 1] == '\n')
    o.data[--o.len] = '\0';
  if (!o.data)
    append(&o, "", 0);
  return o.data; /* freed by the library after copying */
}

/* ---- setup ------------------------------------------------------------- */

static int parse_args(int argc, char **argv) {
  static const struct option longopts[] = {
      {"udp", no_argument, NULL, 'u'},           {"tcp", no_argument, NULL, 't'},
      {"framing", required_argument, NULL, 'f'}, {"allow", required_argument, NULL, 'a'},
      {"timeout", required_argument, NULL, 'T'}, {"workers", required_argument, NULL, 'w'},
      {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
  };
  cfg.address = "127.0.0.1:8849";
  cfg.framing = SK_FRAME_LENGTH;
  cfg.timeout_ms = 2000;
  cfg.workers = 8;
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'u':
      cfg.udp = true;
      break;
    case 't':
      cfg.udp = false;
      break;
    case 'f':
      if (strcmp(optarg, "length") == 0)
        cfg.framing = SK_FRAME_LENGTH;
      else if (strcmp(optarg, "line") == 0)
        cfg.framing = SK_FRAME_LINE;
      else {
        fprintf(stderr, "sk-cmd-server: framing must be length or line\n");
        return -1;
      }
      break;
    case 'a':
      cfg.allow_file = optarg;
      break;
    case 'T':
      cfg.timeout_ms = (int)strtol(optarg, &end, 10);
      if (*end || cfg.timeout_ms <= 0 || cfg.timeout_ms > 3600 * 1000) {
        fprintf(stderr, "sk-cmd-server: bad --timeout '%s'\n", optarg);
        return -1;
      }
      break;
    case 'w':
      cfg.workers = (int)strtol(optarg, &end, 10);
      if (*end || cfg.workers <= 0 || cfg.workers > 1024) {
        fprintf(stderr, "sk-cmd-server: bad --workers '%s'\n", optarg);
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
  if (argc - optind > 1) {
    usage(stderr);
    return -1;
  }
  if (optind < argc)
    cfg.address = argv[optind];
  cfg.output_cap = cfg.udp ? UDP_OUTPUT_CAP : TCP_OUTPUT_CAP;
  /* Leave room for the truncation marker within the cap. */
  cfg.output_cap -= sizeof TRUNCATED - 1;
  return 0;
}

static void on_signal(int sig) {
  stop_signal = sig;
  if (udp_server)
    sk_udp_server_stop(udp_server);
  if (tcp_server)
    sk_tcp_server_stop(tcp_server);
}

static void report(const char *what, int status) {
  int os_error = sk_last_os_error();
  fprintf(stderr, "sk-cmd-server: %s %s: %s", what, cfg.address, sk_strerror(status));
  if (os_error)
    fprintf(stderr, " (%s)", strerror(os_error));
  fputc('\n', stderr);
}

/* Create, configure and listen; prints the "listening on" line. */
static int start(void) {
  char bound[SK_ADDRSTRLEN];
  int rc;
  if (cfg.udp) {
    rc = sk_udp_server_create(&udp_server, cfg.address, command_service, NULL);
    if (rc == SK_OK)
      rc = sk_udp_server_set(udp_server, SK_OPT_MODEL, SK_MODEL_WORKER_POOL);
    if (rc == SK_OK)
      rc = sk_udp_server_set(udp_server, SK_OPT_WORKERS, cfg.workers);
    if (rc == SK_OK)
      rc = sk_udp_server_set_reply_free(udp_server, free);
    if (rc == SK_OK)
      rc = sk_udp_server_listen(udp_server);
    if (rc == SK_OK)
      rc = sk_udp_server_address(udp_server, bound, sizeof bound);
  } else {
    rc = sk_tcp_server_create(&tcp_server, cfg.address, command_service, NULL);
    if (rc == SK_OK)
      rc = sk_tcp_server_set(tcp_server, SK_OPT_MODEL, SK_MODEL_WORKER_POOL);
    if (rc == SK_OK)
      rc = sk_tcp_server_set(tcp_server, SK_OPT_WORKERS, cfg.workers);
    if (rc == SK_OK)
      rc = sk_tcp_server_set(tcp_server, SK_OPT_FRAMING, cfg.framing);
    if (rc == SK_OK)
      rc = sk_tcp_server_set(tcp_server, SK_OPT_MAX_MESSAGE, MAX_REQUEST);
    if (rc == SK_OK)
      rc = sk_tcp_server_set_reply_free(tcp_server, free);
    if (rc == SK_OK)
      rc = sk_tcp_server_listen(tcp_server);
    if (rc == SK_OK)
      rc = sk_tcp_server_address(tcp_server, bound, sizeof bound);
  }
  if (rc != SK_OK) {
    report("cannot listen on", rc);
    return rc;
  }
  printf("listening on %s %s (%d commands)\n", cfg.udp ? "udp" : "tcp", bound, cfg.ncommands);
  fflush(stdout);
  return SK_OK;
}

int main(int argc, char **argv) {
  int rc = parse_args(argc, argv);
  if (rc != 0)
    return rc > 0 ? EXIT_OK : EXIT_USAGE;
  if ((cfg.allow_file ? load_allow_file(cfg.allow_file) : load_defaults()) != 0)
    return EXIT_USAGE;
  if (cfg.ncommands == 0) {
    fprintf(stderr, "sk-cmd-server: no command is allowed\n");
    return EXIT_USAGE;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  int status = EXIT_SERVER_ERROR;
  if (start() == SK_OK) {
    rc = cfg.udp ? sk_udp_server_run(udp_server) : sk_tcp_server_run(tcp_server);
    if (rc == SK_OK || stop_signal) {
      status = EXIT_OK;
      fprintf(stderr, "sk-cmd-server: stopped; %lu commands run, %lu requests refused\n",
              atomic_load(&served), atomic_load(&refused));
    } else {
      report("failed while serving on", rc);
    }
  }
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigprocmask(SIG_BLOCK, &block, NULL);
  sk_udp_server_destroy(udp_server);
  sk_tcp_server_destroy(tcp_server);
  return status;
}
