#!/usr/bin/env bash
# check-exports.sh -- the shared library exports the public API and nothing
# else: sk_* symbols (never internal sk__*) and its version nodes SOCKKIT_x.y;
# and it carries the expected SONAME.
# Usage: check-exports.sh LIBRARY SONAME [NM [OBJDUMP]]
set -euo pipefail

lib=$1 soname=$2 nm=${3:-nm} objdump=${4:-objdump}

# nm prints "ADDRESS TYPE NAME[@@VERSION]"; keep the bare names.
symbols=$("$nm" -D --defined-only "$lib" | awk '{ sub(/@.*/, "", $NF); print $NF }' | sort -u)
stray=$(grep -Ev '^(sk_[^_].*|SOCKKIT_[0-9]+\.[0-9]+)$' <<<"$symbols" || true)
status=0
if [[ -n $stray ]]; then
  echo "FAIL: $lib exports symbols outside the public API:"
  sed 's/^/  /' <<<"$stray"
  status=1
fi
count=$(grep -c '^sk_' <<<"$symbols" || true)
if ((count == 0)); then
  echo "FAIL: $lib exports no sk_ symbols"
  status=1
fi

found=$("$objdump" -p "$lib" | awk '$1 == "SONAME" { print $2 }')
if [[ $found != "$soname" ]]; then
  echo "FAIL: $lib has SONAME '${found}', expected '$soname'"
  status=1
fi

((status != 0)) || echo "exports ok: $count sk_ symbols, SONAME $found"
exit $status
