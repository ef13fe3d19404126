/* cmd_exec.h -- run one allowed command of sk-cmd-server, confined, and
 * collect what it prints into a reply. */
#ifndef CMD_EXEC_H
#define CMD_EXEC_H

#include <stddef.h>
#include <sys/resource.h>

#include "cmd_policy.h"

/* A reply under construction: heap memory, always a valid C string once
 * anything was appended. */
struct cmd_output {
  char *data;
  size_t len, cap;
};

/* Append bytes (or formatted text); on allocation failure the reply keeps
 * what fit. */
void cmd_output_append(struct cmd_output *o, const char *bytes, size_t n);
void cmd_output_appendf(struct cmd_output *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What a command may use. The rlimits are set in the command's process
 * only, soft and hard alike (the CPU hard limit one second later, so that
 * SIGXCPU comes first), so it cannot raise them again. */
struct cmd_limits {
  int timeout_ms;     /* wall clock; then its whole process group is killed */
  size_t output_cap;  /* bytes of output kept, a truncation marker included;
                         more, and the group is killed */
  rlim_t cpu_seconds; /* RLIMIT_CPU */
  rlim_t memory;      /* RLIMIT_AS, bytes */
  rlim_t processes;   /* RLIMIT_NPROC: counts every task of the user */
  rlim_t file_size;   /* RLIMIT_FSIZE, bytes; 0: it writes no file at all */
};

/* Run c->program with argv (argv[0] is the command name) in `workdir` and
 * append its output to `o`, then a note if it failed: "[exit status N]",
 * "[killed by signal N]", or "error: NAME killed after N ms". The command
 * runs without a shell, with a clean environment, stdin from /dev/null,
 * stderr discarded unless c->show_stderr, no new privileges, the limits
 * above, and in a process group of its own. */
void cmd_exec_run(const struct cmd_command *c, char **argv, const char *workdir,
                  const struct cmd_limits *limits, struct cmd_output *o);

#endif
