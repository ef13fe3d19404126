#!/usr/bin/env bash
# run.sh -- socket activation end to end: systemd-socket-activate holds the
# socket and starts sk-echo-server only when the first client comes; the
# client, which connected (or sent) before the server ran, is answered
# through the socket the server adopted ("systemd", "systemd:NAME"). Over
# TCP, a UNIX stream socket and UDP. Needs no running systemd.
#
# Usage: run.sh SK_ECHO_SERVER SK_ECHO_CLIENT
# Exit 77 (ctest SKIP_RETURN_CODE) without systemd-socket-activate.
set -euo pipefail

server=$1 client=$2
activate=${SK_SOCKET_ACTIVATE:-/usr/bin/systemd-socket-activate}
[[ -x $activate ]] || {
  echo "SKIP: $activate not found (Debian: apt-get install systemd)"
  exit 77
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockkit-activate.XXXXXX")
pid= # systemd-socket-activate, then (the same process) sk-echo-server

fail() {
  echo "FAIL: $*"
  for f in err out; do
    [[ -s $tmp/$f ]] && { echo "--- std$f:"; cat "$tmp/$f"; }
  done
  exit 1
}

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# stop: SIGTERM, SIGKILL after 5 s, reap; the exit status of the process.
stop() {
  local p=$pid rc=0 i
  pid=
  [[ -n $p ]] || return 0
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$p" || break
    sleep 0.05
  done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" || rc=$?
  return $rc
}

cleanup() {
  stop || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# free_port tcp|udp: a port that was free a moment ago (bound to 0, closed).
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' "$1"
  else
    echo $((20000 + RANDOM % 30000))
  fi
}

# launch ARGS...: systemd-socket-activate ARGS in the background; 0 once it
# listens, 1 if it exited first (its address was taken).
launch() {
  : >"$tmp/out"
  : >"$tmp/err"
  "$activate" "$@" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q "Listening on" "$tmp/err" && return 0
    alive "$pid" || break
    sleep 0.05
  done
  stop || true
  return 1
}

# serve NAME ADDRESS FLAG SERVER_ADDRESS ACTIVATE_ARGS...: sk-echo-server
# FLAG SERVER_ADDRESS under systemd-socket-activate ACTIVATE_ARGS, and a
# client of ADDRESS, where the server must say it listens. Exit 2 if
# systemd-socket-activate could not listen (the caller may try another
# port), or fails.
serve() {
  local name=$1 address=$2 flag=$3 served=$4
  shift 4
  launch "$@" -- "$server" "$flag" "$served" || return 2
  # Not started yet: the process is still systemd-socket-activate, and the
  # server has printed nothing.
  [[ $(cat "/proc/$pid/comm") == systemd-socket* ]] || fail "$name: the server started early"
  [[ ! -s $tmp/out ]] || fail "$name: the server printed before any client came"
  local reply
  reply=$("$client" "$flag" --timeout 10000 "$address" -- "hello $name") ||
    fail "$name: the client got no reply (exit $?)"
  [[ $reply == "hello $name" ]] || fail "$name: the reply was '$reply'"
  grep -qxF "listening on ${flag#--} $address" "$tmp/out" ||
    fail "$name: the server did not say it listens on $address"
  local rc=0
  stop || rc=$?
  ((rc == 0)) || fail "$name: sk-echo-server exited with status $rc after SIGTERM"
  echo "ok: $name"
}

# retry TRANSPORT NAME FLAG SERVER_ADDRESS [ACTIVATE_ARGS...]: on a fresh
# port each time systemd-socket-activate finds it taken.
retry() {
  local transport=$1 name=$2 flag=$3 served=$4
  shift 4
  local attempt port rc
  for ((attempt = 0; attempt < 5; attempt++)); do
    port=$(free_port "$transport")
    rc=0
    serve "$name" "127.0.0.1:$port" "$flag" "$served" "$@" -l "127.0.0.1:$port" || rc=$?
    ((rc == 2)) || return $rc
  done
  fail "$name: no free port in 5 attempts"
}

retry tcp tcp --tcp systemd
retry udp udp --udp systemd --datagram

sock=$tmp/echo.sock
serve unix "unix:$sock" --tcp systemd:echo --fdname=echo -l "$sock" ||
  fail "unix: systemd-socket-activate could not listen on $sock"
[[ -S $sock ]] || fail "unix: the server removed the socket file it adopted"
echo "activate ok: tcp, udp and unix served through systemd-socket-activate"
