#!/usr/bin/env bash
# run.sh -- run one fuzz target on a scratch copy of its seed corpus, so the
# committed corpus is never modified. New inputs it finds are kept only if
# SK_FUZZ_KEEP names a directory to copy them to.
# Usage: run.sh TARGET CORPUS_DIR [libFuzzer options...]
#   CI:   run.sh build/fuzz/tests/fuzz/fuzz_frame tests/fuzz/corpus/frame -runs=20000
#   long: run.sh build/fuzz/tests/fuzz/fuzz_frame tests/fuzz/corpus/frame \
#           -max_total_time=3600 -print_final_stats=1
set -euo pipefail
(($# >= 2)) || { echo "usage: run.sh TARGET CORPUS_DIR [libFuzzer options...]" >&2; exit 2; }
target=$1 corpus=$2
shift 2
scratch=$(mktemp -d "${TMPDIR:-/tmp}/skfuzz-corpus.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# libFuzzer adds what it finds to the first directory and only reads the
# others. Crash reproducers land in the current directory by default.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
"$target" -print_final_stats=1 "$@" "$scratch" "$corpus" || status=$?
if [[ -n ${SK_FUZZ_KEEP:-} ]]; then
  mkdir -p "$SK_FUZZ_KEEP"
  cp -n "$scratch"/* "$SK_FUZZ_KEEP"/ 2>/dev/null || true
fi
exit "$status"
