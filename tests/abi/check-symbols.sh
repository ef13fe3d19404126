#!/usr/bin/env bash
# check-symbols.sh -- three lists of the public functions must be the same:
# the dynamic symbols the library exports (with their version nodes), the
# global names of the linker version script (with the node each is in), and
# the functions the public header declares with SK_API, each right after its
# documentation comment. (The docs test then has Doxygen check that each
# documentation block is complete.)
#
# Usage: check-symbols.sh LIBRARY VERSION_SCRIPT HEADER [NM]
set -euo pipefail
export LC_ALL=C # sort and comm must agree on the order

lib=$1 map=$2 header=$3 nm=${4:-nm}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockkit-symbols.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Both awk programs below read C-style text: this removes /* */ comments from
# a line, keeping `incomment` across lines, and sets `doc` when a /** comment
# has just ended.
strip='
function strip(line,   out, i) {
  out = ""
  while (line != "") {
    if (incomment) {
      i = index(line, "*/")
      if (i == 0) return out
      line = substr(line, i + 2); incomment = 0; doc = isdoc
    } else {
      i = index(line, "/*")
      if (i == 0) return out line
      out = out substr(line, 1, i - 1) " "
      isdoc = substr(line, i + 2, 1) == "*"
      line = substr(line, i + 2); incomment = 1
    }
  }
  return out
}'

# "name node" for each exported function or object; nm prints
# "ADDRESS TYPE NAME@@NODE" (type A marks the version nodes themselves).
"$nm" -D --defined-only "$lib" |
  awk '$2 != "A" { n = split($3, p, "@+"); print p[1], (n > 1 ? p[n] : "(no version)") }' |
  sort >"$tmp/exported"

# "name node" for each name under global: in a node of the version script.
awk "$strip"'
{ $0 = strip($0) }
/^[ \t]*[A-Za-z_][A-Za-z0-9_.]*[ \t]*\{/ { node = $1; sub(/\{.*/, "", node); scope = ""; next }
/global:/ { scope = "global"; next }
/local:/ { scope = "local"; next }
/\}/ { node = ""; next }
node != "" && scope == "global" {
  gsub(/[ \t;]+/, " ")
  for (i = 1; i <= NF; i++) print $i, node
}' "$map" | sort >"$tmp/map"

# The header, statement by statement (comments and preprocessor lines
# removed, the C++ guard skipped): "name" for each SK_API function, and
# complaints about SK_API functions without a /** comment right above, and
# about sk_ functions declared without SK_API (the library would not export
# them, so a program using one would not link).
awk "$strip"'
{ $0 = strip($0) }
/^[ \t]*#/ { doc = 0; next }
/^extern "C" \{$/ || /^\}$/ { next }
{
  for (i = 1; i <= length($0); i++) {
    c = substr($0, i, 1)
    if (stmt ~ /^[ \t]*$/ && c !~ /[ \t]/) { stmt = ""; stmtdoc = doc; doc = 0 }
    stmt = stmt c
    if (c == "{") depth++
    if (c == "}") depth--
    if (c == ";" && depth == 0) { statement(stmt, stmtdoc); stmt = "" }
  }
  stmt = stmt " "
}
function statement(s, documented,   name) {
  gsub(/[ \t]+/, " ", s)
  if (s ~ /^typedef /) return
  if (!match(s, /[A-Za-z_][A-Za-z0-9_]* ?\(/)) return
  name = substr(s, RSTART, RLENGTH); sub(/ ?\($/, "", name)
  if (s !~ /^SK_API /) {
    if (name ~ /^sk_/) print "FAIL: " name " is declared without SK_API, so it is not exported" > "/dev/stderr"
    return
  }
  if (!documented) print "FAIL: " name " has no /** documentation comment right above it" > "/dev/stderr"
  print name
}' "$header" 2>"$tmp/header.errors" | sort >"$tmp/header"

status=0
report() { # report TITLE FILE: print the lines of FILE under TITLE, if any
  if [[ -s $2 ]]; then
    echo "FAIL: $1"
    sed 's/^/  /' "$2"
    status=1
  fi
}
[[ -s $tmp/header.errors ]] && { cat "$tmp/header.errors"; status=1; }
cut -d' ' -f1 "$tmp/exported" >"$tmp/exported.names"
comm -23 "$tmp/exported" "$tmp/map" >"$tmp/x"
report "exported, but not in this version node of $map:" "$tmp/x"
comm -13 "$tmp/exported" "$tmp/map" >"$tmp/x"
report "in $map, but not exported in this version node (missing, not SK_API, or misspelt):" "$tmp/x"
comm -23 "$tmp/exported.names" "$tmp/header" >"$tmp/x"
report "exported, but not declared with SK_API in $header:" "$tmp/x"
comm -13 "$tmp/exported.names" "$tmp/header" >"$tmp/x"
report "declared with SK_API in $header, but not exported:" "$tmp/x"
if [[ ! -s $tmp/header ]]; then
  echo "FAIL: found no SK_API declarations in $header"
  status=1
fi

((status != 0)) || echo "symbols ok: $(wc -l <"$tmp/exported") exported = version script = header"
exit $status
