#!/usr/bin/env bash
# check-code-blocks.sh -- compile every ```c block of Markdown files, so that
# the code a reader pastes from README.md and docs/tutorial.md builds.
#
# Usage: check-code-blocks.sh CC INCLUDE_DIR LIBRARY WORK_DIR EXTRA_FLAGS FILE.md...
#   CC           the C compiler
#   INCLUDE_DIR  the directory that holds sockkit.h
#   LIBRARY      the built shared library (libsockkit.so) to link against
#   WORK_DIR     scratch directory, emptied first; each block lands there as
#                a .c file, so a failure can be rebuilt by hand
#   EXTRA_FLAGS  more compiler flags, e.g. -fsanitize=address when the library
#                was built with it; may be empty
#
# How a block is treated, from its fence:
#   ```c            compiled with -std=c11 -Wall -Wextra -Werror; when it
#                   defines main() it is also linked against LIBRARY
#   ```c fragment   skipped: code that is deliberately not a whole
#                   translation unit (keep these rare)
#   anything else   (```sh, ```cmake, a bare ```) ignored
# A block that needs POSIX or GNU interfaces defines _POSIX_C_SOURCE or
# _GNU_SOURCE itself, as a reader's program would have to. Each block starts
# with a #line directive, so compiler messages name the Markdown file and line.
# Exits 1 if any block fails, or if a file has no ```c block at all (so that a
# broken extraction cannot pass by finding nothing).
set -euo pipefail

if (($# < 6)); then
  echo "usage: check-code-blocks.sh CC INCLUDE_DIR LIBRARY WORK_DIR EXTRA_FLAGS FILE.md..." >&2
  exit 2
fi
cc=$1 include_dir=$2 library=$3 work=$4 extra=$5
shift 5

rm -rf "$work"
mkdir -p "$work"
# EXTRA_FLAGS is a list of words: split it on purpose.
read -r -a extra_flags <<<"$extra"
cflags=(-std=c11 -Wall -Wextra -Werror -I"$include_dir" "${extra_flags[@]}")
libdir=$(cd "$(dirname "$library")" && pwd)

compiled=0 skipped=0 failed=0
for md in "$@"; do
  [[ -r $md ]] || { echo "check-code-blocks: cannot read $md" >&2; exit 2; }
  stem=$(echo "$md" | tr '/.' '__')
  # Write each ```c block to WORK/STEM-LINE.c and print one line per block:
  # "LINE fragment" or "LINE compile". A fence may be indented (a block in a
  # list); that indentation is removed from the block's lines.
  manifest=$(awk -v md="$md" -v out="$work/$stem" '
    function indent_of(s) { match(s, /^ */); return RLENGTH }
    !in_block && /^ *(```|~~~)/ {
      in_block = 1
      indent = indent_of($0)
      line = substr($0, indent + 1)
      match(line, /^(`+|~+)/)
      fence = substr(line, 1, RLENGTH)
      info = substr(line, RLENGTH + 1)
      sub(/^[ \t]+/, "", info)
      n = split(info, words, /[ \t]+/)
      is_c = n > 0 && words[1] == "c"
      fragment = 0
      for (i = 2; i <= n; i++)
        if (words[i] == "fragment")
          fragment = 1
      if (is_c) {
        start = NR + 1
        file = out "-" start ".c"
        print start, (fragment ? "fragment" : "compile")
        if (!fragment)
          printf "#line %d \"%s\"\n", start, md > file
      }
      next
    }
    in_block {
      line = $0
      stripped = line
      sub(/^ +/, "", stripped)
      if (index(stripped, fence) == 1 && stripped ~ /^(`+|~+)[ \t]*$/ &&
          length(stripped) >= length(fence) && indent_of(line) <= 3 + indent) {
        if (is_c && !fragment)
          close(file)
        in_block = 0
        next
      }
      if (is_c && !fragment) {
        for (i = 0; i < indent && substr(line, 1, 1) == " "; i++)
          line = substr(line, 2)
        print line > file
      }
    }
    END { if (in_block) { printf "%s: unterminated code block\n", md > "/dev/stderr"; exit 1 } }
  ' "$md")
  if [[ -z $manifest ]]; then
    echo "FAIL $md: no \`\`\`c block found" >&2
    failed=$((failed + 1))
    continue
  fi
  while read -r line kind; do
    src=$work/$stem-$line.c
    if [[ $kind == fragment ]]; then
      echo "skip $md:$line (fragment)"
      skipped=$((skipped + 1))
      continue
    fi
    if grep -Eq '^[[:space:]]*int[[:space:]]+main[[:space:]]*\(' "$src"; then
      what="compile and link"
      cmd=("$cc" "${cflags[@]}" "$src" -o "${src%.c}" "$library" -Wl,-rpath,"$libdir" -pthread)
    else
      what="compile"
      cmd=("$cc" "${cflags[@]}" -c "$src" -o "${src%.c}.o")
    fi
    if "${cmd[@]}"; then
      echo "ok   $md:$line ($what)"
      compiled=$((compiled + 1))
    else
      echo "FAIL $md:$line ($what): ${cmd[*]}" >&2
      failed=$((failed + 1))
    fi
  done <<<"$manifest"
done

echo "code blocks: $compiled built, $skipped skipped as fragments, $failed failed"
((failed == 0))
