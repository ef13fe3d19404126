#!/usr/bin/env bash
# check-cxx.sh -- build consumer.cpp with a C++ compiler against the public
# header and the shared library, with warnings as errors, and run it.
#
# Usage: check-cxx.sh CXX INCLUDE_DIR LIBRARY
# SK_SANITIZE in the environment: the sanitizers the library was built with;
# the consumer is built with them too, as their runtimes must be linked.
# Exit 77 (ctest SKIP_RETURN_CODE) when there is no C++ compiler.
set -euo pipefail

cxx=$1 include=$2 lib=$3
if [[ -z $cxx ]] || ! command -v "$cxx" >/dev/null; then
  echo "SKIP: no C++ compiler (Debian: apt-get install g++)"
  exit 77
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockkit-cxx.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
san=()
[[ -z ${SK_SANITIZE:-} ]] || san=("-fsanitize=$SK_SANITIZE")

run() {
  echo "+ $*"
  "$@"
}
# Link the library by its path, with an rpath to its directory, as a build
# tree would. -pedantic with -Werror rejects C-only constructs in the header.
run "$cxx" -std=c++11 -Wall -Wextra -pedantic -Werror "${san[@]}" -I "$include" \
  "$here/consumer.cpp" -o "$tmp/consumer" "$lib" -Wl,-rpath,"$(dirname "$lib")"
run "$tmp/consumer"
