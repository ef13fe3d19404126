#!/usr/bin/env bash
# run-install-test.sh -- install the build tree into a fresh prefix, then build
# consumer.c against it as users do (pkg-config, shared and static;
# find_package(sockkit), shared and static) and run each program.
#
# ctest passes the inputs in the environment (see CMakeLists.txt next to this):
#   SK_BUILD_DIR, SK_CONFIG       the build tree to install and its configuration
#   SK_LIBDIR, SK_INCLUDEDIR      CMAKE_INSTALL_LIBDIR and CMAKE_INSTALL_INCLUDEDIR
#   SK_VERSION                    the project version, e.g. 1.0.0
#   SK_SANITIZE                   the sanitizers the library was built with, or empty
#   SK_GENERATOR, CC, CMAKE, PKG_CONFIG, OBJDUMP   the tools to use
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${SK_BUILD_DIR:?}" "${SK_CONFIG:?}" "${SK_LIBDIR:?}" "${SK_INCLUDEDIR:?}" "${SK_VERSION:?}"
: "${SK_GENERATOR:?}" "${CC:=cc}" "${CMAKE:=cmake}" "${PKG_CONFIG:=pkg-config}" "${OBJDUMP:=objdump}"

if [[ $SK_LIBDIR == /* || $SK_INCLUDEDIR == /* ]]; then
  echo "SKIP: absolute install directories cannot be moved into a temporary prefix"
  exit 77 # ctest SKIP_RETURN_CODE
fi

# A directory of our own, so that parallel runs do not meet; removed on exit.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockkit-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
libdir=$prefix/$SK_LIBDIR

step() { echo "--- $*"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

step "cmake --install into $prefix"
"$CMAKE" --install "$SK_BUILD_DIR" --config "$SK_CONFIG" --prefix "$prefix"
for f in "$SK_INCLUDEDIR/sockkit.h" "$SK_LIBDIR/libsockkit.a" "$SK_LIBDIR/libsockkit.so.$SK_VERSION" \
  "$SK_LIBDIR/libsockkit.so.${SK_VERSION%%.*}" "$SK_LIBDIR/libsockkit.so" \
  "$SK_LIBDIR/pkgconfig/sockkit.pc" "$SK_LIBDIR/cmake/sockkit/sockkitConfig.cmake" \
  "$SK_LIBDIR/cmake/sockkit/sockkitConfigVersion.cmake" \
  "$SK_LIBDIR/cmake/sockkit/sockkitTargets.cmake"; do
  [[ -e $prefix/$f ]] || fail "not installed: $f"
done
[[ -L $libdir/libsockkit.so ]] || fail "libsockkit.so is not a symbolic link (namelink)"

# The public header must compile cleanly as strict C11. With sanitizers, the
# consumer links their runtimes, as the library was built with them.
san=${SK_SANITIZE:+-fsanitize=$SK_SANITIZE}
export CFLAGS="-std=c11 -Wall -Wextra -pedantic -Werror $san" LDFLAGS="$san"
export PKG_CONFIG_PATH=$libdir/pkgconfig

step "pkg-config sockkit"
cat "$libdir/pkgconfig/sockkit.pc"
version=$("$PKG_CONFIG" --modversion sockkit)
[[ $version == "$SK_VERSION" ]] || fail "pkg-config says version $version, expected $SK_VERSION"

# The flags are split into words on purpose, as in a Makefile.
step "build and run with pkg-config, shared library"
# shellcheck disable=SC2046,SC2086
$CC $CFLAGS "$here/consumer.c" -o "$tmp/consumer" $LDFLAGS $("$PKG_CONFIG" --cflags --libs sockkit)
LD_LIBRARY_PATH=$libdir "$tmp/consumer"

# -Bstatic makes -lsockkit choose libsockkit.a over the shared library beside it.
step "build and run with pkg-config --static, static library"
# shellcheck disable=SC2046,SC2086
$CC $CFLAGS "$here/consumer.c" -o "$tmp/consumer-static" $LDFLAGS \
  $("$PKG_CONFIG" --cflags sockkit) -Wl,-Bstatic $("$PKG_CONFIG" --static --libs sockkit) -Wl,-Bdynamic
if "$OBJDUMP" -p "$tmp/consumer-static" | grep -q 'NEEDED.*libsockkit'; then
  fail "the static consumer depends on the shared library"
fi
"$tmp/consumer-static"

step "build and run with find_package(sockkit)"
mkdir "$tmp/cmake"
cat >"$tmp/cmake/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(sockkit_consumer LANGUAGES C)
find_package(sockkit ${SK_VERSION%%.*} REQUIRED)
message(STATUS "Found sockkit \${sockkit_VERSION} in \${sockkit_DIR}")
enable_testing()
add_executable(consumer "$here/consumer.c")
target_link_libraries(consumer PRIVATE sockkit::sockkit)
add_test(NAME shared COMMAND consumer)
add_executable(consumer_static "$here/consumer.c")
target_link_libraries(consumer_static PRIVATE sockkit::sockkit_static)
add_test(NAME static COMMAND consumer_static)
CMAKE
# The build tree of the consumer gets an rpath to the imported library, so no
# LD_LIBRARY_PATH is needed here.
"$CMAKE" -S "$tmp/cmake" -B "$tmp/cmake/build" -G "$SK_GENERATOR" \
  -DCMAKE_BUILD_TYPE="$SK_CONFIG" -DCMAKE_PREFIX_PATH="$prefix"
"$CMAKE" --build "$tmp/cmake/build" --config "$SK_CONFIG"
ctest --test-dir "$tmp/cmake/build" -C "$SK_CONFIG" --output-on-failure

echo "install test passed"
