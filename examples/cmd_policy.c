/* cmd_policy.c -- the allow file of sk-cmd-server: which commands run, with
 * which arguments, and the check that path arguments stay in the root. */
#define _GNU_SOURCE /* getline, realpath */

#include "cmd_policy.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The policy when no --allow file is given, in the allow-file format. Each
 * command only reads, and nothing it can be asked discloses a file outside
 * the root: no option of these that names a file is accepted, and ls only
 * lists paths that resolve inside the root. A program missing from
 * /usr/bin is looked for in /bin, and left out if absent there too. */
static const char *const default_lines[] = {
    "date   /usr/bin/date   -u -R -I +*",
    "uname  /usr/bin/uname  -a -r -m -s",
    "uptime /usr/bin/uptime -p",
    "whoami /usr/bin/whoami",
    "pwd    /usr/bin/pwd",
    "ls     /usr/bin/ls     -1 -a -A -l -h -F -R -t -r -S -d <path>",
    "echo   /usr/bin/echo   *",
};

static bool valid_name(const char *name) {
  if (!*name || strlen(name) >= sizeof((struct cmd_command *)0)->name)
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

/* Parse one line "NAME /absolute/program [RULE...]" into *c. Returns 0, 1
 * for a blank or comment line, or -1 with the mistake in *why. */
static int parse_line(char *line, struct cmd_command *c, const char **why) {
  static const char spaces[] = " \t\r\n";
  char *save = NULL;
  char *name = strtok_r(line, spaces, &save);
  if (!name || name[0] == '#')
    return 1;
  char *program = strtok_r(NULL, spaces, &save);
  memset(c, 0, sizeof *c);
  if (!valid_name(name)) {
    *why = "bad command name (letters, digits, - _ . only)";
    return -1;
  }
  if (!program || program[0] != '/' || strlen(program) >= sizeof c->program) {
    *why = "expected NAME /absolute/program [ARGUMENT...]";
    return -1;
  }
  snprintf(c->name, sizeof c->name, "%s", name);
  snprintf(c->program, sizeof c->program, "%s", program);
  for (char *word; (word = strtok_r(NULL, spaces, &save));) {
    if (word[0] == '#')
      break;
    if (strcmp(word, "<stderr>") == 0) {
      c->show_stderr = true;
      continue;
    }
    if (word[0] == '<' && strcmp(word, "<path>") != 0) {
      *why = "unknown keyword (known: <path> <stderr>)";
      return -1;
    }
    if (c->nrules == CMD_MAX_RULES || strlen(word) >= sizeof c->rules[0].pattern) {
      *why = "too many or too long arguments";
      return -1;
    }
    struct cmd_rule *r = &c->rules[c->nrules++];
    r->path = strcmp(word, "<path>") == 0;
    if (!r->path)
      snprintf(r->pattern, sizeof r->pattern, "%s", word);
  }
  return 0;
}

static int add(struct cmd_policy *p, const struct cmd_command *c, const char **why) {
  if (cmd_policy_find(p, c->name)) {
    *why = "command listed twice";
    return -1;
  }
  if (p->ncommands == CMD_MAX_COMMANDS) {
    *why = "too many commands";
    return -1;
  }
  p->commands[p->ncommands++] = *c;
  return 0;
}

static int load_defaults(struct cmd_policy *p) {
  for (size_t i = 0; i < sizeof default_lines / sizeof *default_lines; i++) {
    char line[256];
    struct cmd_command c;
    const char *why = NULL;
    snprintf(line, sizeof line, "%s", default_lines[i]);
    int rc = parse_line(line, &c, &why);
    if (rc == 0 && !executable_file(c.program))
      snprintf(c.program, sizeof c.program, "/bin/%s", c.name);
    if (rc == 0 && executable_file(c.program))
      rc = add(p, &c, &why);
    if (rc < 0) {
      fprintf(stderr, "sk-cmd-server: built-in policy: %s\n", why);
      return -1;
    }
  }
  return 0;
}

int cmd_policy_load(struct cmd_policy *p, const char *file) {
  if (!file)
    return load_defaults(p);
  FILE *f = fopen(file, "re");
  if (!f) {
    fprintf(stderr, "sk-cmd-server: %s: %s\n", file, strerror(errno));
    return -1;
  }
  char *line = NULL;
  size_t size = 0;
  int number = 0, rc = 0;
  while (rc == 0 && getline(&line, &size, f) >= 0) {
    number++;
    struct cmd_command c;
    const char *why = NULL;
    rc = parse_line(line, &c, &why);
    if (rc == 0 && !executable_file(c.program))
      why = "the program is not an executable file";
    if (rc == 0 && !why)
      rc = add(p, &c, &why);
    if (rc == 1)
      rc = 0;
    else if (why) {
      fprintf(stderr, "sk-cmd-server: %s:%d: %s\n", file, number, why);
      rc = -1;
    }
  }
  free(line);
  fclose(f);
  return rc;
}

void cmd_policy_print_defaults(FILE *out) {
  for (size_t i = 0; i < sizeof default_lines / sizeof *default_lines; i++)
    fprintf(out, "  %s\n", default_lines[i]);
}

const struct cmd_command *cmd_policy_find(const struct cmd_policy *p, const char *name) {
  for (int i = 0; i < p->ncommands; i++)
    if (strcmp(p->commands[i].name, name) == 0)
      return &p->commands[i];
  return NULL;
}

/* True if canonical `path` is `root` or below it. A plain prefix test would
 * take "/srv/data-old" to be inside "/srv/data". */
static bool inside(const char *root, const char *path) {
  size_t n = strlen(root);
  if (n == 1)
    return path[0] == '/'; /* the root is "/" */
  return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Resolve `word` as the command would, from the working directory, with
 * every symlink followed; true if it exists and stays inside the root. A
 * path that does not exist and one outside get the same answer, so the
 * reply tells a client nothing about files outside. */
static bool resolve_inside(const struct cmd_policy *p, const char *word, char *real) {
  char joined[PATH_MAX];
  int n = word[0] == '/' ? snprintf(joined, sizeof joined, "%s", word)
                         : snprintf(joined, sizeof joined, "%s/%s", p->workdir, word);
  if (n < 0 || (size_t)n >= sizeof joined)
    return false;
  return realpath(joined, real) != NULL && inside(p->root, real);
}

int cmd_policy_check(const struct cmd_policy *p, const struct cmd_command *c, char **argv,
                     char *paths, size_t size, const char **why) {
  size_t used = 0;
  for (int i = 1; argv[i]; i++) {
    bool ok = false;
    for (int r = 0; r < c->nrules && !ok; r++) {
      const struct cmd_rule *rule = &c->rules[r];
      if (!rule->path) {
        ok = fnmatch(rule->pattern, argv[i], 0) == 0;
        continue;
      }
      /* A word starting with '-' is an option, never a path: a file named
       * "-L" in the root must not smuggle in an option. */
      char real[PATH_MAX];
      if (argv[i][0] == '-' || !resolve_inside(p, argv[i], real))
        continue;
      size_t len = strlen(real) + 1;
      if (len > size - used) {
        *why = "paths too long";
        return -1;
      }
      memcpy(paths + used, real, len);
      argv[i] = paths + used;
      used += len;
      ok = true;
    }
    if (!ok) {
      *why = "argument not allowed";
      return -1;
    }
  }
  return 0;
}
