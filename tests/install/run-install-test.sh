#!/usr/bin/env bash
# run-install-test.sh -- install the build tree into a fresh prefix, then build
# consumer.c against it as users do (pkg-config, shared and static;
# find_package(sockkit), shared and static) and run each program. Against the
# installed tree only, check the example programs (each runs --help from the
# prefix and has a man1 page whose options are those of its --help) and the
# man3 pages (one named after each SK_API function of the installed header,
# sockkit.3, and nothing else), the examples' files (the command server's
# allow file, the echo server's systemd units), and that the "tools"
# component installs the programs alone.
#
# ctest passes the inputs in the environment (see CMakeLists.txt next to this):
#   SK_BUILD_DIR, SK_CONFIG       the build tree to install and its configuration
#   SK_LIBDIR, SK_INCLUDEDIR      CMAKE_INSTALL_LIBDIR and CMAKE_INSTALL_INCLUDEDIR
#   SK_BINDIR, SK_MANDIR, SK_DOCDIR   CMAKE_INSTALL_BINDIR, _MANDIR and _DOCDIR
#   SK_TOOLS                      the programs that must be installed, or empty
#   SK_MAN3                       1 if the man3 pages were built, else 0
#   SK_VERSION                    the project version, e.g. 1.0.0
#   SK_SANITIZE                   the sanitizers the library was built with, or empty
#   SK_GENERATOR, CC, CMAKE, PKG_CONFIG, OBJDUMP   the tools to use
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${SK_BUILD_DIR:?}" "${SK_CONFIG:?}" "${SK_LIBDIR:?}" "${SK_INCLUDEDIR:?}" "${SK_VERSION:?}"
: "${SK_BINDIR:?}" "${SK_MANDIR:?}" "${SK_DOCDIR:?}" "${SK_TOOLS:=}" "${SK_MAN3:=0}"
: "${SK_GENERATOR:?}" "${CC:=cc}" "${CMAKE:=cmake}" "${PKG_CONFIG:=pkg-config}" "${OBJDUMP:=objdump}"

if [[ $SK_LIBDIR == /* || $SK_INCLUDEDIR == /* || $SK_BINDIR == /* || $SK_MANDIR == /* ||
  $SK_DOCDIR == /* ]]; then
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

bindir=$prefix/$SK_BINDIR
man1=$prefix/$SK_MANDIR/man1
man3=$prefix/$SK_MANDIR/man3
read -r -a tools <<<"$SK_TOOLS"
shopt -s nullglob

# The line after .SH NAME, "name[, name...] \- summary", must name $2.
check_name_line() {
  local line names
  line=$(awk '/^\.SH +"?NAME"?[[:space:]]*$/ { getline; print; exit }' "$1")
  [[ $line == *' \- '* ]] || fail "$1: no NAME line of the form 'name \\- summary': '$line'"
  names=", ${line%% \\- *},"
  [[ $names == *", $2,"* ]] || fail "$1: the NAME line '$line' does not name $2"
}

# The options a --help text lists (indented lines starting with -x or --xx),
# and those the OPTIONS section of a man page lists (the tag of each .TP).
help_options() {
  grep -E '^ +(-[[:alnum:]], )?--?[[:alnum:]]' | grep -oE -- '(^|[ ,])--?[[:alnum:]][[:alnum:]-]*' |
    tr -d ' ,' | sort -u
}
page_options() {
  awk '/^\.SH/ { in_options = ($2 == "OPTIONS") } in_options && tag { print } { tag = /^\.TP/ }' "$1" |
    sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' | grep -oE -- '(^|[ "])--?[[:alnum:]][[:alnum:]-]*' |
    tr -d ' "' | sort -u
}

step "installed programs: --help from the prefix, man page, run path"
for t in "${tools[@]}"; do
  [[ -x $bindir/$t ]] || fail "not installed: $SK_BINDIR/$t"
done
if [[ " $SK_TOOLS " == *" sk-cmd-server "* ]]; then
  [[ -f $prefix/$SK_DOCDIR/cmd-allow.sample ]] || fail "not installed: $SK_DOCDIR/cmd-allow.sample"
fi
if [[ " $SK_TOOLS " == *" sk-echo-server "* ]]; then
  for f in sk-echo.socket sk-echo.service README.md; do
    [[ -f $prefix/$SK_DOCDIR/examples/systemd/$f ]] ||
      fail "not installed: $SK_DOCDIR/examples/systemd/$f"
  done
fi
for program in "$bindir"/*; do
  name=${program##*/}
  # No LD_LIBRARY_PATH: the program must find the library by its run path.
  help=$(env -u LD_LIBRARY_PATH "$program" --help) || fail "$name --help exits with status $?"
  [[ -n $help ]] || fail "$name --help prints nothing"
  if command -v ldd >/dev/null; then
    found=$(env -u LD_LIBRARY_PATH ldd "$program" | awk '$1 ~ /^libsockkit\.so/ { print $3 }')
    [[ -n $found && $(realpath "$found") == $(realpath "$libdir/libsockkit.so.${SK_VERSION%%.*}") ]] ||
      fail "$name loads libsockkit from '${found}', not from $libdir"
  fi
  page=$man1/$name.1
  [[ -f $page ]] || fail "no man page for $SK_BINDIR/$name: $SK_MANDIR/man1/$name.1"
  check_name_line "$page" "$name"
  if ! diff <(help_options <<<"$help") <(page_options "$page") >"$tmp/options.diff"; then
    sed 's/^/  /' "$tmp/options.diff" >&2
    fail "the options of $name --help (<) and of its man page (>) differ"
  fi
  echo "$name: --help, $SK_MANDIR/man1/$name.1"
done
for page in "$man1"/*; do
  [[ -x $bindir/$(basename "$page" .1) ]] || fail "$SK_MANDIR/man1/${page##*/} has no program"
done

step "man pages of the library: one per SK_API function, and sockkit(3)"
if [[ $SK_MAN3 == 1 ]]; then
  # Each SK_API declaration of the installed header, as check-docs.sh reads it.
  mapfile -t functions < <(awk '/^SK_API/ { name = $0; sub(/\(.*/, "", name); sub(/.* \**/, "", name); print name }' \
    "$prefix/$SK_INCLUDEDIR/sockkit.h")
  ((${#functions[@]} > 0)) || fail "no SK_API function found in the installed header"
  [[ -f $man3/sockkit.3 ]] || fail "not installed: $SK_MANDIR/man3/sockkit.3"
  check_name_line "$man3/sockkit.3" sockkit
  for f in "${functions[@]}"; do
    [[ -f $man3/$f.3 ]] || fail "no man page for $f: $SK_MANDIR/man3/$f.3"
    check_name_line "$man3/$f.3" "$f"
    grep -qE "^\.BR $f \(3\)" "$man3/sockkit.3" || fail "sockkit.3 does not list $f(3)"
  done
  # Nothing else: no generic name (tcp.3, status.3), no page of a function
  # the header no longer has.
  for page in "$man3"/*; do
    base=${page##*/}
    [[ $base == sockkit.3 || " ${functions[*]} " == *" ${base%.3} "* ]] ||
      fail "$SK_MANDIR/man3/$base is installed, but documents no SK_API function"
  done
  echo "man3: ${#functions[@]} function pages and sockkit.3"
else
  echo "NOTE: the man3 pages were not built (SK_BUILD_DOCS off, or no doxygen or python3)"
fi

pages=("$man1"/* "$man3"/*)
step "${#pages[@]} man pages: groff without warnings, whatis entries, man finds them"
for page in "${pages[@]}"; do
  if command -v groff >/dev/null; then
    out=$(groff -man -Tutf8 -ww -z "$page" 2>&1) || fail "groff fails on $page: $out"
    [[ -z $out ]] || fail "groff warns about $page: $out"
  fi
  if command -v lexgrog >/dev/null; then
    lexgrog "$page" >/dev/null || fail "lexgrog (whatis) cannot parse the NAME line of $page"
  fi
  if command -v man >/dev/null; then
    name=$(basename "${page%.*}")
    found=$(MANPATH=$prefix/$SK_MANDIR man -w "$name" 2>&1) || fail "man -w $name: $found"
    [[ $(realpath "$found") == $(realpath "$page") ]] || fail "man $name opens $found, not $page"
  fi
done

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

# The program of sockkit(3)'s EXAMPLES must build as printed: its first
# .EX block, with groff's escapes undone.
if [[ $SK_MAN3 == 1 ]]; then
  step "build the example of sockkit(3)"
  awk '/^\.EE/ { exit } go { print } /^\.EX/ { go = 1 }' "$man3/sockkit.3" |
    sed -e 's/\\-/-/g' -e 's/\\e/\\/g' -e 's/\\(aq/'"'"'/g' -e 's/\\&//g' >"$tmp/example.c"
  # shellcheck disable=SC2046,SC2086
  $CC $CFLAGS "$tmp/example.c" -o "$tmp/example" $LDFLAGS $("$PKG_CONFIG" --cflags --libs sockkit)
fi

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

# A packager's split: the "tools" component is the programs, their man pages
# and their documentation, and nothing of the library.
if ((${#tools[@]} > 0)); then
  step "cmake --install --component tools"
  "$CMAKE" --install "$SK_BUILD_DIR" --config "$SK_CONFIG" --prefix "$tmp/tools" --component tools
  for t in "${tools[@]}"; do
    [[ -x $tmp/tools/$SK_BINDIR/$t && -f $tmp/tools/$SK_MANDIR/man1/$t.1 ]] ||
      fail "the tools component lacks $t or its man page"
  done
  other=$(find "$tmp/tools" -type f | grep -vE "^$tmp/tools/($SK_BINDIR|$SK_MANDIR/man1|$SK_DOCDIR)/" || true)
  [[ -z $other ]] || fail "the tools component installs more than the programs: $other"
fi

echo "install test passed"
