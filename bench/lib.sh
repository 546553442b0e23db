# Sourced by the bench scripts: which build to measure, and how to stop what they start.
#   root           the repository
#   default_build  build/release if it has a mill binary, else build/dev
#   mill           $MILL, else default_build's src/mill (an absolute path)
#   stop PID       SIGTERM, up to 5 s, then SIGKILL, and reaps it; nothing for "" or a
#                  process already gone
# shellcheck shell=bash

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
default_build=$root/build/release
[[ -x $default_build/src/mill ]] || default_build=$root/build/dev
mill=$(realpath "${MILL:-$default_build/src/mill}")

stop() {
  local p=$1
  [[ -n $p ]] && kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
