#!/usr/bin/env bash
# check-abi.sh -- compare the ABI of a freshly built libsockkit.so with the
# committed baseline (abi/libsockkit.abi), types included, with libabigail.
#
# Usage: check-abi.sh LIBRARY INCLUDE_DIR BASELINE           compare (the test)
#        check-abi.sh --update LIBRARY INCLUDE_DIR BASELINE  rewrite BASELINE
#
# The library must carry debug info (-g: the RelWithDebInfo and Debug build
# types do). Any change abidiff reports fails, except added symbols in a
# version node the baseline does not have yet (a compatible addition, e.g.
# SOCKKIT_1.1 after the 1.0 baseline). Exit 77 (ctest SKIP_RETURN_CODE) when
# libabigail is missing, the library has no debug info, or it was built for
# another architecture than the baseline.
set -euo pipefail
export LC_ALL=C # sort and comm must agree on the order

update=0
if [[ ${1:-} == --update ]]; then
  update=1
  shift
fi
if (($# != 3)); then
  echo "usage: check-abi.sh [--update] LIBRARY INCLUDE_DIR BASELINE" >&2
  exit 2
fi
lib=$1 include=$2 baseline=$3

skip() {
  echo "SKIP: $*"
  exit 77
}
for tool in abidw abidiff; do
  command -v "$tool" >/dev/null || skip "$tool not found (Debian: apt-get install abigail-tools)"
done

# Only the types of the public headers count (--headers-dir, and private
# types such as the layout behind the opaque handles are dropped). Nothing
# that depends on where or how the tree was built is written: no paths, no
# source locations (they move with every edit), no DT_NEEDED list (the
# sanitizer runtimes add to it). The same flags make the baseline and the
# fresh dump, so the two are compared like for like.
dump() {
  abidw --headers-dir "$include" --drop-private-types --drop-undefined-syms \
    --no-corpus-path --no-comp-dir-path --no-show-locs --short-locs --no-elf-needed \
    --type-id-style hash --out-file "$2" "$1"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockkit-abi.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dump "$lib" "$tmp/new.abi"

# Without DWARF, abidw sees symbol names only and every type change would
# pass unnoticed.
if ! grep -q '<abi-instr' "$tmp/new.abi"; then
  ((update == 0)) || { echo "FAIL: $lib has no debug info; build it with -g" >&2; exit 1; }
  skip "$lib has no debug info (build type RelWithDebInfo or Debug checks the ABI)"
fi

if ((update == 1)); then
  cp "$tmp/new.abi" "$baseline"
  echo "wrote $baseline: $(grep -c '<elf-symbol ' "$baseline") symbols"
  exit 0
fi

[[ -r $baseline ]] || { echo "FAIL: no baseline at $baseline" >&2; exit 1; }
arch() { sed -n "s/^<abi-corpus .*architecture='\([^']*\)'.*/\1/p" "$1"; }
[[ $(arch "$tmp/new.abi") == "$(arch "$baseline")" ]] ||
  skip "the baseline is for $(arch "$baseline"), this build is $(arch "$tmp/new.abi")"

status=0

# 1. Types and symbols. abidiff's exit status is a bit mask: 1 error, 2 usage
# error, 4 ABI change, 8 incompatible change. Bit 8 covers only removed
# symbols, so a changed parameter type shows as bit 4 alone: any bit fails.
# Added symbols are left to step 2.
set +e
abidiff --no-added-syms "$baseline" "$tmp/new.abi" >"$tmp/report"
rc=$?
set -e
if ((rc != 0)); then
  echo "FAIL: abidiff found ABI changes (exit status $rc) against $baseline:"
  cat "$tmp/report"
  status=1
fi

# 2. Symbol versions. An added symbol is compatible only in a version node
# that is new since the baseline: a node that has shipped never grows.
syms() { sed -n "s/^ *<elf-symbol name='\([^']*\)' version='\([^']*\)'.*/\1@\2/p" "$1" | sort -u; }
nodes() { syms "$1" | sed 's/.*@//' | sort -u; }
syms "$baseline" >"$tmp/old.syms"
syms "$tmp/new.abi" >"$tmp/new.syms"
nodes "$baseline" >"$tmp/old.nodes"
while IFS= read -r sym; do
  name=${sym%@*} node=${sym#*@}
  if grep -q "^$name@" "$tmp/old.syms"; then
    continue # moved, not added: reported below
  elif grep -qxF "$node" "$tmp/old.nodes"; then
    echo "FAIL: $sym is added to version node $node, which the baseline already has;"
    echo "      new symbols go into a new node (see lib/libsockkit.map)"
    status=1
  else
    echo "note: $sym is new since the baseline (compatible); abi/update-baseline records it"
  fi
done < <(comm -13 "$tmp/old.syms" "$tmp/new.syms")
while IFS= read -r sym; do
  name=${sym%@*}
  moved=$(grep "^$name@" "$tmp/new.syms" | paste -sd ' ' || true)
  echo "FAIL: $sym is gone${moved:+, moved to $moved}"
  status=1
done < <(comm -23 "$tmp/old.syms" "$tmp/new.syms")

((status != 0)) || echo "abi ok: $(wc -l <"$tmp/new.syms") symbols match $baseline"
exit $status
