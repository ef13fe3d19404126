#!/usr/bin/env bash
# check-docs.sh -- what Doxygen 1.9.4 cannot check in the public header:
# every enumerator has a doc comment, and every public function's doc says
# whether it is thread-safe and whether it is async-signal-safe.
# Usage: check-docs.sh include/sockkit.h
set -euo pipefail
header=${1:?usage: check-docs.sh HEADER}

awk '
  # Inside an enum body: each "NAME = value" line needs a doc comment, either
  # trailing (/**< ... */) or a /** ... */ block just before it.
  /^typedef enum/ { in_enum = 1; documented = 0; next }
  in_enum && /^}/ { in_enum = 0; next }
  in_enum && /\/\*\*</ { trailing = 1 }
  in_enum && /^[[:space:]]*\/\*\*/ && !/\/\*\*</ { documented = 1 }
  in_enum && /^[[:space:]]*SK_[A-Z0-9_]+[[:space:]]*=/ {
    if (!documented && !trailing_on_line($0)) {
      printf "%s:%d: enumerator without documentation: %s\n", FILENAME, NR, $1
      bad = 1
    }
    documented = 0
  }
  function trailing_on_line(line) { return line ~ /\/\*\*</ }
  END { exit bad }
' "$header"

awk '
  # Collect each /** ... */ block; check it when an SK_API declaration follows.
  /^\/\*\*/ { doc = ""; collecting = 1 }
  collecting { doc = doc "\n" $0 }
  collecting && /\*\// { collecting = 0; last = doc; next }
  /^SK_API/ {
    name = $0; sub(/\(.*/, "", name); sub(/.* \**/, "", name)
    lower = tolower(last)
    if (lower !~ /thread/) { printf "%s:%d: %s: doc does not say whether it is thread-safe\n", FILENAME, NR, name; bad = 1 }
    if (lower !~ /signal-safe/) { printf "%s:%d: %s: doc does not say whether it is async-signal-safe\n", FILENAME, NR, name; bad = 1 }
    last = ""
  }
  END { exit bad }
' "$header"
echo "check-docs: every enumerator and public function of $header is documented"
