/* sk-cmd-server.c -- example: run a few allowed commands, with allowed
 * arguments only, for remote clients, without ever giving them a shell. */
#define _GNU_SOURCE /* getopt_long, setgroups */

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sockkit.h>

#include "cmd_exec.h"
#include "cmd_policy.h"

/* Exit statuses, also listed in the usage text. */
enum { EXIT_OK = 0, EXIT_SERVER_ERROR = 1, EXIT_USAGE = 2 };

/* Limits of one request. Anything longer is refused, not truncated. */
enum { MAX_REQUEST = 1024, MAX_WORDS = 32 };

/* Output caps: a small spoofed UDP datagram must not trigger a large reply
 * (amplification), so UDP replies stay within one ordinary packet. */
enum { UDP_OUTPUT_CAP = 1200, TCP_OUTPUT_CAP = 256 * 1024 };

struct config {
  bool udp;
  int framing;
  const char *address;
  const char *allow_file;
  const char *root;    /* --root, or NULL: the current directory */
  const char *workdir; /* --chdir, or NULL: the root */
  const char *user;    /* --user, or NULL */
  uid_t uid;
  gid_t gid;
  int workers;
  struct cmd_limits limits;
  struct cmd_policy policy;
};

static struct config cfg;
static atomic_ulong served, refused;

static sk_udp_server *udp_server;
static sk_tcp_server *tcp_server;
static volatile sig_atomic_t stop_signal;

static void usage(FILE *out) {
  fputs("Usage: sk-cmd-server [--udp | --tcp] [--framing length|line] [--allow FILE]\n"
        "                     [--root DIR] [--chdir DIR] [--user NAME] [--timeout MS]\n"
        "                     [--workers N] [--max-cpu S] [--max-memory MIB]\n"
        "                     [--max-procs N] [--max-file-size KIB] [ADDRESS]\n"
        "Run allowed commands, with allowed arguments only, for remote clients:\n"
        "no shell, ever.\n"
        "\n"
        "  --tcp              serve TCP connections (the default)\n"
        "  --udp              serve UDP datagrams (output capped at 1200 bytes)\n"
        "  --framing F        TCP framing: length (default; what sk-cmd-client speaks)\n"
        "                     or line (for nc: the output on one line, each newline\n"
        "                     in it sent as \\n and each backslash as \\\\)\n"
        "  --allow FILE       the allowed commands and their arguments (below);\n"
        "                     default: the read-only policy shown below\n"
        "  --root DIR         the served directory: path arguments must resolve inside\n"
        "                     it; default the current directory, which must not be /\n"
        "  --chdir DIR        where commands run (relative paths start there);\n"
        "                     default the root\n"
        "  --user NAME        after listening, drop to this unprivileged user and its\n"
        "                     group; required when started as root\n"
        "  --timeout MS       kill a command (its whole process group) after MS\n"
        "                     milliseconds; default 2000\n"
        "  --workers N        commands run at once; default 8\n"
        "  --max-cpu S        CPU seconds per command (RLIMIT_CPU); default 2\n"
        "  --max-memory MIB   address space per command (RLIMIT_AS); default 256\n"
        "  --max-procs N      processes and threads of the user (RLIMIT_NPROC),\n"
        "                     the server's own included; default 64\n"
        "  --max-file-size KIB\n"
        "                     largest file a command may write (RLIMIT_FSIZE);\n"
        "                     default 0: commands write no file at all\n"
        "  -h, --help         show this help and exit\n"
        "\n"
        "ADDRESS defaults to 127.0.0.1:8849: only this machine. Listening on other\n"
        "interfaces takes an explicit address such as :8849; port 0 picks a free\n"
        "port. Once ready the server prints \"listening on tcp|udp ADDRESS ...\".\n"
        "\n"
        "A request is a command name and arguments separated by spaces. Arguments\n"
        "may use letters, digits and - _ . , : / + @ % = only, and no '..'. Each\n"
        "argument must then match one of the command's rules. Anything else is\n"
        "refused with a one-line reply starting with \"error: \".\n"
        "\n"
        "Allow file: one command per line, '#' starts a comment:\n"
        "  NAME /absolute/program [RULE...]\n"
        "where each RULE is one kind of argument the command accepts (any number\n"
        "of them, in any order; with no rule it takes no argument):\n"
        "  WORD       that word exactly, e.g. -r\n"
        "  PATTERN    a glob (fnmatch: * ? [...]) the word must match, e.g. +*;\n"
        "             never use one where the program would open the word as a file\n"
        "  <path>     an existing file or directory that, with every symlink\n"
        "             followed, is inside the root; the program gets its canonical\n"
        "             absolute path. A word starting with '-' is never a path.\n"
        "  <stderr>   not a rule: the command's stderr goes into the reply too\n"
        "             (by default it is discarded)\n"
        "\n"
        "The default policy is:\n",
        out);
  cmd_policy_print_defaults(out);
  fputs("\n"
        "Commands run with a clean environment, stdin from /dev/null, no new\n"
        "privileges (PR_SET_NO_NEW_PRIVS) and the limits above.\n"
        "\n"
        "Exit status: 0 when stopped by a signal, 1 if the server cannot start,\n"
        "2 for bad arguments, a bad allow file, or root without --user.\n",
        out);
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

/* ---- the service ------------------------------------------------------- */

static const char *refuse(struct cmd_output *o, const char *request, const char *why) {
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
  cmd_output_appendf(o, "error: %s", why);
  return o->data;
}

/* Line framing carries one line per reply: each newline inside the output
 * is sent as the two characters "\\n", and each backslash as "\\\\", so
 * that the client can undo it. Consumes *o; returns the reply (heap: the
 * library frees it). Out of memory, the newlines become spaces in place. */
static const char *one_line(struct cmd_output *o) {
  size_t extra = 0;
  for (size_t i = 0; i < o->len; i++)
    extra += o->data[i] == '\n' || o->data[i] == '\\';
  if (!extra)
    return o->data;
  char *line = malloc(o->len + extra + 1);
  if (!line) {
    for (size_t i = 0; i < o->len; i++)
      if (o->data[i] == '\n')
        o->data[i] = ' ';
    return o->data;
  }
  size_t k = 0;
  for (size_t i = 0; i < o->len; i++) {
    char ch = o->data[i];
    if (ch == '\n' || ch == '\\') {
      line[k++] = '\\';
      ch = ch == '\n' ? 'n' : '\\';
    }
    line[k++] = ch;
  }
  line[k] = '\0';
  free(o->data);
  return line;
}

static const char *command_service(const char *request, void *user) {
  (void)user;
  struct cmd_output o = {0};
  char buf[MAX_REQUEST];
  char *argv[MAX_WORDS + 1];
  char paths[8192]; /* the canonical forms of path arguments */
  const char *why = NULL;
  if (split(request, buf, argv, &why) < 0)
    return refuse(&o, request, why);
  const struct cmd_command *cmd = cmd_policy_find(&cfg.policy, argv[0]);
  if (!cmd)
    return refuse(&o, request, "command not allowed");
  if (cmd_policy_check(&cfg.policy, cmd, argv, paths, sizeof paths, &why) < 0)
    return refuse(&o, request, why);
  argv[0] = (char *)cmd->name;
  cmd_exec_run(cmd, argv, cfg.policy.workdir, &cfg.limits, &o);
  atomic_fetch_add(&served, 1);
  /* The reply is the output without its last newline: in line framing the
   * library adds the one that ends the reply, and clients print one. */
  if (o.len && o.data[o.len - 1] == '\n')
    o.data[--o.len] = '\0';
  if (!o.data)
    cmd_output_append(&o, "", 0);
  if (!cfg.udp && cfg.framing == SK_FRAME_LINE)
    return one_line(&o);
  return o.data; /* freed by the library after copying */
}

/* ---- setup ------------------------------------------------------------- */

/* A decimal option value in [min, max]. Returns 0, or -1 after saying why. */
static int number(const char *option, const char *text, long long min, long long max,
                  long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end || v < min || v > max) {
    fprintf(stderr, "sk-cmd-server: bad --%s '%s' (%lld to %lld)\n", option, text, min, max);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_args(int argc, char **argv) {
  static const struct option longopts[] = {
      {"udp", no_argument, NULL, 'u'},
      {"tcp", no_argument, NULL, 't'},
      {"framing", required_argument, NULL, 'f'},
      {"allow", required_argument, NULL, 'a'},
      {"root", required_argument, NULL, 'r'},
      {"chdir", required_argument, NULL, 'C'},
      {"user", required_argument, NULL, 'U'},
      {"timeout", required_argument, NULL, 'T'},
      {"workers", required_argument, NULL, 'w'},
      {"max-cpu", required_argument, NULL, 'c'},
      {"max-memory", required_argument, NULL, 'm'},
      {"max-procs", required_argument, NULL, 'p'},
      {"max-file-size", required_argument, NULL, 's'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  cfg.address = "127.0.0.1:8849";
  cfg.framing = SK_FRAME_LENGTH;
  long long timeout_ms = 2000, workers = 8, cpu = 2, memory_mib = 256, procs = 64, file_kib = 0;
  int c, rc = 0;
  while (rc == 0 && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
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
        rc = -1;
      }
      break;
    case 'a':
      cfg.allow_file = optarg;
      break;
    case 'r':
      cfg.root = optarg;
      break;
    case 'C':
      cfg.workdir = optarg;
      break;
    case 'U':
      cfg.user = optarg;
      break;
    case 'T':
      rc = number("timeout", optarg, 1, 3600 * 1000, &timeout_ms);
      break;
    case 'w':
      rc = number("workers", optarg, 1, 1024, &workers);
      break;
    case 'c':
      rc = number("max-cpu", optarg, 1, 3600, &cpu);
      break;
    case 'm':
      rc = number("max-memory", optarg, 16, 1024 * 1024, &memory_mib);
      break;
    case 'p':
      rc = number("max-procs", optarg, 1, 1 << 20, &procs);
      break;
    case 's':
      rc = number("max-file-size", optarg, 0, 1LL << 30, &file_kib);
      break;
    case 'h':
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return -1;
    }
  }
  if (rc != 0)
    return -1;
  if (argc - optind > 1) {
    usage(stderr);
    return -1;
  }
  if (optind < argc)
    cfg.address = argv[optind];
  cfg.workers = (int)workers;
  cfg.limits = (struct cmd_limits){
      .timeout_ms = (int)timeout_ms,
      .output_cap = cfg.udp ? UDP_OUTPUT_CAP : TCP_OUTPUT_CAP,
      .cpu_seconds = (rlim_t)cpu,
      .memory = (rlim_t)memory_mib << 20,
      .processes = (rlim_t)procs,
      .file_size = (rlim_t)file_kib << 10,
  };
  return 0;
}

/* Look up --user before anything else, and refuse to run commands as root:
 * a single mistake in a policy would then hand a client the machine. */
static int check_user(void) {
  if (!cfg.user) {
    if (geteuid() == 0) {
      fprintf(stderr, "sk-cmd-server: refusing to run commands as root; "
                      "pass --user NAME, an unprivileged user such as nobody\n");
      return -1;
    }
    return 0;
  }
  struct passwd *pw = getpwnam(cfg.user);
  if (!pw) {
    fprintf(stderr, "sk-cmd-server: --user %s: no such user\n", cfg.user);
    return -1;
  }
  if (pw->pw_uid == 0 || pw->pw_gid == 0) {
    fprintf(stderr, "sk-cmd-server: --user %s: not an unprivileged user\n", cfg.user);
    return -1;
  }
  if (geteuid() != 0 && pw->pw_uid != geteuid()) {
    fprintf(stderr, "sk-cmd-server: --user %s: only root can change user\n", cfg.user);
    return -1;
  }
  cfg.uid = pw->pw_uid;
  cfg.gid = pw->pw_gid;
  return 0;
}

/* After listening (the port may be privileged): become --user for good,
 * server and commands alike, so that a flaw in the server itself does not
 * hand out root either. Each step is checked, and then that it cannot be
 * undone. */
static int drop_privileges(void) {
  if (!cfg.user || geteuid() != 0)
    return 0;
  if (setgroups(1, &cfg.gid) != 0 || setgid(cfg.gid) != 0 || setuid(cfg.uid) != 0) {
    fprintf(stderr, "sk-cmd-server: cannot become %s: %s\n", cfg.user, strerror(errno));
    return -1;
  }
  if (getuid() != cfg.uid || geteuid() != cfg.uid || getgid() != cfg.gid || getegid() != cfg.gid ||
      setuid(0) == 0 || setgid(0) == 0) {
    fprintf(stderr, "sk-cmd-server: still privileged after becoming %s\n", cfg.user);
    return -1;
  }
  return 0;
}

/* Resolve the root and the working directory as the user commands run as,
 * so that a directory it cannot enter is reported now, not per request. */
static int resolve_dirs(void) {
  struct cmd_policy *p = &cfg.policy;
  const char *root = cfg.root ? cfg.root : ".";
  if (!realpath(root, p->root)) {
    fprintf(stderr, "sk-cmd-server: --root %s: %s\n", root, strerror(errno));
    return -1;
  }
  if (!cfg.root && strcmp(p->root, "/") == 0) {
    fprintf(stderr, "sk-cmd-server: refusing to serve / by default; pass --root DIR\n");
    return -1;
  }
  const char *workdir = cfg.workdir ? cfg.workdir : p->root;
  if (!realpath(workdir, p->workdir) || access(p->workdir, X_OK) != 0) {
    fprintf(stderr, "sk-cmd-server: --chdir %s: %s\n", workdir, strerror(errno));
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

static void report(const char *what, int status) {
  int os_error = sk_last_os_error();
  fprintf(stderr, "sk-cmd-server: %s %s: %s", what, cfg.address, sk_strerror(status));
  if (os_error)
    fprintf(stderr, " (%s)", strerror(os_error));
  fputc('\n', stderr);
}

/* Create, configure and listen; the bound address into `bound`. */
static int start(char *bound, size_t size) {
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
      rc = sk_udp_server_address(udp_server, bound, size);
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
      rc = sk_tcp_server_address(tcp_server, bound, size);
  }
  if (rc != SK_OK)
    report("cannot listen on", rc);
  return rc;
}

int main(int argc, char **argv) {
  int rc = parse_args(argc, argv);
  if (rc != 0)
    return rc > 0 ? EXIT_OK : EXIT_USAGE;
  if (check_user() != 0 || cmd_policy_load(&cfg.policy, cfg.allow_file) != 0)
    return EXIT_USAGE;
  if (cfg.policy.ncommands == 0) {
    fprintf(stderr, "sk-cmd-server: no command is allowed\n");
    return EXIT_USAGE;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  int status = EXIT_SERVER_ERROR;
  char bound[SK_ADDRSTRLEN];
  if (start(bound, sizeof bound) != SK_OK) {
    /* reported by start */
  } else if (drop_privileges() != 0 || resolve_dirs() != 0) {
    status = EXIT_USAGE;
  } else {
    /* The line scripts and tests wait for: printed only once requests
     * would be served as described. */
    printf("listening on %s %s (%d commands, root %s, user %s)\n", cfg.udp ? "udp" : "tcp", bound,
           cfg.policy.ncommands, cfg.policy.root, cfg.user ? cfg.user : "unchanged");
    fflush(stdout);
    /* Under systemd (Type=notify): ready now; nothing happens otherwise. */
    char state[SK_ADDRSTRLEN + 48];
    snprintf(state, sizeof state, "READY=1\nSTATUS=listening on %s", bound);
    (void)sk_notify(state);
    rc = cfg.udp ? sk_udp_server_run(udp_server) : sk_tcp_server_run(tcp_server);
    if (rc == SK_OK || stop_signal) {
      (void)sk_notify("STOPPING=1");
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
