#!/usr/bin/env bash
# What a large spawn body costs the server's memory (issue 16 item 4): a `mill server`
# with no node (--no-agent: nothing on the host changes, no root needed, and a spawn
# that passes its checks fails at once with 503) gets COUNT spawns of ENTRIES env
# entries each (ENTRIES=40000 is the issue's 0.95 MB body), and VmRSS is read from /proc
# before and SETTLE s after them. Before the env limits such a spawn was decoded whole
# and failed only at placement; with them it is 400 at once.
#
#   bench/spawn_body_rss.sh                       (this build's mill)
#   MILL=/tmp/before/mill bench/spawn_body_rss.sh (another build)
#
# Env: MILL=path/to/mill (default build/release/src/mill, else build/dev/src/mill);
#      ENTRIES=40000; COUNT=5; SETTLE=2 (s).
# Everything lives in a temp dir, removed on exit with the server.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
entries=${ENTRIES:-40000}
count=${COUNT:-5}
settle=${SETTLE:-2}
command -v curl >/dev/null || { echo "missing curl" >&2; exit 2; }

tmp=$(mktemp -d /tmp/mill-spawnrss-XXXXXX)
pid=
cleanup() {
  [[ -z $pid ]] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT

MILL_CONFIG=$tmp/client.toml "$mill" init --data-dir "$tmp/data" >"$tmp/init.out" 2>&1
token=$(tr -d '\n' <"$tmp/data/api.token")
"$mill" server --data-dir "$tmp/data" --listen 127.0.0.1:0 --no-agent --quiet \
  >"$tmp/server.log" 2>&1 &
pid=$!
addr=
for _ in $(seq 100); do
  addr=$(grep -o 'API listening on [a-z:/]*[0-9.:]*' "$tmp/server.log" | head -1 |
    sed 's|.*listening on ||; s|^[a-z]*://||') || true
  [[ -n $addr ]] && break
  sleep 0.1
done
[[ -n $addr ]] || { echo "the server did not start:" >&2; cat "$tmp/server.log" >&2; exit 2; }
sleep "$settle"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

python3 - "$entries" >"$tmp/body.json" <<'PY'
import json, sys
n = int(sys.argv[1])
print(json.dumps({"image": "127.0.0.1:1/none:v1",
                  "env": {"VARIABLE_%06d" % i: "v" for i in range(n)}}))
PY
before=$(rss)
statuses=()
for _ in $(seq "$count"); do
  statuses+=("$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' --data-binary "@$tmp/body.json" \
    "http://$addr/v1/tasks/spawn")")
done
sleep "$settle"
after=$(rss)
echo "mill:    $mill"
echo "body:    $(stat -c %s "$tmp/body.json") bytes, $entries env entries, $count spawns"
echo "answers: ${statuses[*]}"
echo "VmRSS:   $before kB before, $after kB after (+$((after - before)) kB)"
