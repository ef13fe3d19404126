/* cmd_policy.h -- what sk-cmd-server may run: the allowed commands, the
 * arguments each one accepts, and the served directory paths must stay in. */
#ifndef CMD_POLICY_H
#define CMD_POLICY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum { CMD_MAX_COMMANDS = 64, CMD_MAX_RULES = 32 };

/* One kind of argument a command accepts. */
struct cmd_rule {
  bool path;         /* "<path>": an existing file or directory inside the root */
  char pattern[128]; /* otherwise a literal word or an fnmatch glob ("+*") */
};

/* One allowed command: the name clients use, the program it runs, and the
 * only arguments it may be given. */
struct cmd_command {
  char name[64];
  char program[256];
  bool show_stderr; /* "<stderr>": the command's stderr goes into the reply */
  int nrules;
  struct cmd_rule rules[CMD_MAX_RULES];
};

/* The whole policy. `root` and `workdir` are canonical absolute paths. */
struct cmd_policy {
  char root[PATH_MAX];    /* path arguments must resolve inside this */
  char workdir[PATH_MAX]; /* where commands run; relative paths start here */
  int ncommands;
  struct cmd_command commands[CMD_MAX_COMMANDS];
};

/* Load the commands of the allow file `file`, or the built-in read-only
 * defaults when `file` is NULL. Every mistake in a file is printed to
 * stderr with its line number. Returns 0, or -1 after printing why. */
int cmd_policy_load(struct cmd_policy *p, const char *file);

/* Print the built-in policy, in the allow-file format, one line each. */
void cmd_policy_print_defaults(FILE *out);

/* The command clients call `name`, or NULL if it is not allowed. */
const struct cmd_command *cmd_policy_find(const struct cmd_policy *p, const char *name);

/* Check the arguments argv[1..] (NULL-terminated) of a request for `c`.
 * A word that passes as a <path> is replaced in argv by its canonical
 * absolute form, kept in `paths` (`size` bytes), so that the command opens
 * exactly what was checked even if the word named a symlink. Returns 0, or
 * -1 with a reason for the client in *why. */
int cmd_policy_check(const struct cmd_policy *p, const struct cmd_command *c, char **argv,
                     char *paths, size_t size, const char **why);

#endif
