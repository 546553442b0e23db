#!/usr/bin/env bash
# Heartbeat cost (issue 14): what the control plane pays, in CPU and memory, for AGENTS
# agents heartbeating at the default 2 s interval. A real `mill server --no-agent` (the
# control plane alone: no agent of its own, so no node and no containers) on loopback,
# on a fresh `mill init` data dir; mill_heartbeat_agents registers AGENTS simulated
# nodes over the node protocol and heartbeats for each (bench/heartbeat_agents.cc).
# Two windows of WINDOW s, read from /proc: first with no agent (the baseline: the idle
# control plane), then with AGENTS heartbeating. Per window the server's CPU time
# (utime+stime of /proc/PID/stat, all threads) and VmRSS; then per-agent CPU, total CPU
# % of one core, the RSS delta and the ratio to the idle window.
#
#   bench/heartbeat_cost.sh                 (no root needed)
#   TLS=1 bench/heartbeat_cost.sh           (root: HTTPS, as agents on other machines use)
#
# TLS=1: the API is HTTPS only when it listens beyond loopback, so the server listens on
# 0.0.0.0:0 inside a network namespace of the bench's own that has nothing but `lo`
# (mhb<hex>, removed at the end), and the agents, in the same namespace, dial
# https://127.0.0.1:PORT trusting the cluster CA: every heartbeat then pays a TLS
# handshake, as a real agent's does (one connection per call). They present the join
# secret, not a node certificate, so the server verifies no client certificate here.
#
# Env: MILL=path/to/mill (default build/release/src/mill, else build/dev/src/mill);
#      AGENTS_BIN (default: bench/mill_heartbeat_agents of the same build);
#      AGENTS=50; WINDOW=60 (s); SETTLE=5 (s, after start-up and after registration);
#      INTERVAL_MS (default: the server's heartbeat interval, 2000; to tell the cost per
#      heartbeat from the cost per node, keep it under the 10 s node TTL).
# Builds nothing: nice cmake --build build/dev --target mill mill_heartbeat_agents.
# Everything lives in a temp dir; a trap stops the agents and the server (SIGTERM, then
# SIGKILL) and deletes the dir, also on failure or Ctrl-C.
# Exit status: 0 measured, 1 a heartbeat failed, 2 the benchmark could not run.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
agents_bin=$(realpath "${AGENTS_BIN:-$(dirname "$(dirname "$mill")")/bench/mill_heartbeat_agents}")
agents=${AGENTS:-50}
window=${WINDOW:-60}
settle=${SETTLE:-5}
interval_ms=${INTERVAL_MS:-0}
tls=${TLS:-0}
for f in "$mill" "$agents_bin"; do
  [[ -x $f ]] || { echo "not built: $f (MILL, AGENTS_BIN)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "missing curl" >&2; exit 2; }
hz=$(getconf CLK_TCK)

tmp=$(mktemp -d /tmp/mill-hbbench-XXXXXX)
server_pid=
agents_pid=
netns=
in_ns=()
sleep_pid=
# A sleep that a signal interrupts (a trap waits for a foreground sleep to end).
pause() {
  sleep "$1" &
  sleep_pid=$!
  wait "$sleep_pid"
  sleep_pid=
}
cleanup() {
  [[ -n $sleep_pid ]] && kill "$sleep_pid" 2>/dev/null
  stop "$agents_pid"
  stop "$server_pid"
  [[ -n $netns ]] && ip netns del "$netns" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listen=127.0.0.1:0
scheme=http
if [[ $tls == 1 ]]; then
  [[ $(id -u) == 0 ]] || { echo "TLS=1 needs root (a network namespace)" >&2; exit 2; }
  netns=mhb$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')
  ip netns add "$netns"
  ip -n "$netns" link set lo up
  in_ns=(ip netns exec "$netns")
  listen=0.0.0.0:0
  scheme=https
fi
MILL_CONFIG=$tmp/client.toml "$mill" init --data-dir "$tmp/data" >/dev/null
"${in_ns[@]}" "$mill" server --data-dir "$tmp/data" --listen "$listen" --no-agent --quiet \
  >"$tmp/server.log" 2>&1 &
server_pid=$!
address=
for _ in $(seq 200); do
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; echo "server exited" >&2; exit 2; }
  address=$(sed -n "s|.*API listening on $scheme://\([0-9.:]*\).*|\1|p" "$tmp/server.log" | head -1)
  [[ -n $address ]] && break
  sleep 0.1
done
[[ -n $address ]] || { cat "$tmp/server.log" >&2; echo "server did not come up" >&2; exit 2; }
address=${address/#0.0.0.0:/127.0.0.1:}

echo "== $("$mill" --version 2>/dev/null || echo mill) ($mill), control plane only (--no-agent) at $scheme://$address${netns:+ (in netns $netns)}, pid $server_pid"
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%M:%SZ)"

cpu_ticks() {  # utime + stime of pid (fields 14, 15; after the ")" of comm: 12, 13)
  sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# measure NAME: one window; sets NAME_cpu (ms/s), NAME_rss0/NAME_rss (kB), NAME_threads.
measure() {
  local name=$1 c0 c1 t0 t1 r0 a0=0 a1=0 secs
  r0=$(rss_kb "$server_pid")
  c0=$(cpu_ticks "$server_pid")
  [[ -n $agents_pid ]] && a0=$(cpu_ticks "$agents_pid")
  t0=$(date +%s.%N)
  echo "   window '$name': ${window} s from $(date -u +%H:%M:%S), load $(load)"
  pause "$window"
  c1=$(cpu_ticks "$server_pid")
  [[ -n $agents_pid ]] && a1=$(cpu_ticks "$agents_pid")
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
  printf -v "${name}_cpu" '%s' "$(awk -v d=$((c1 - c0)) -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.3f", d * 1000 / hz / s}')"
  printf -v "${name}_agents_cpu" '%s' "$(awk -v d=$((a1 - a0)) -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.3f", d * 1000 / hz / s}')"
  printf -v "${name}_ticks" '%s' $((c1 - c0))
  printf -v "${name}_rss0" '%s' "$r0"
  printf -v "${name}_rss" '%s' "$(rss_kb "$server_pid")"
  printf -v "${name}_threads" '%s' "$(threads "$server_pid")"
  echo "   load at its end $(load); busiest other processes:"
  ps -eo pcpu=,comm= --sort=-pcpu | grep -vE " (mill|mill_heartbeat_|ps)$" | head -3 | sed 's/^/     /'
}

echo "== no agent: settle ${settle} s, then measure"
pause "$settle"
measure idle

echo "== $agents agents: $agents_bin --agents $agents --interval-ms $interval_ms"
"${in_ns[@]}" "$agents_bin" --address "$scheme://$address" --join-token-file "$tmp/data/join.token" \
  --agents "$agents" --interval-ms "$interval_ms" ${netns:+--ca-file "$tmp/data/ca.pem"} >"$tmp/agents.out" 2>"$tmp/agents.err" &
agents_pid=$!
for _ in $(seq 300); do
  grep -qs '^registered' "$tmp/agents.out" && break
  kill -0 "$agents_pid" 2>/dev/null || { cat "$tmp/agents.err" >&2; echo "agents exited" >&2; exit 2; }
  sleep 0.1
done
grep -q '^registered' "$tmp/agents.out" || { cat "$tmp/agents.err" >&2; echo "agents did not register" >&2; exit 2; }
echo "   $(head -1 "$tmp/agents.out")"
interval_ms=$(sed -n 's/.*heartbeat every \([0-9]*\) ms.*/\1/p' "$tmp/agents.out")
pause "$settle"
measure busy
ready=$("${in_ns[@]}" curl -sf --cacert "$tmp/data/ca.pem" -H "Authorization: Bearer $(cat "$tmp/data/api.token")" \
  "$scheme://$address/v1/nodes" |
  grep -oE '"status": ?"ready"' | wc -l) || ready=0
stop "$agents_pid"
agents_pid=
result=$(grep '^RESULT ' "$tmp/agents.out" || true)
echo "   agents: ${result#RESULT }"
[[ -s $tmp/agents.err ]] && sed 's/^/   agents stderr: /' "$tmp/agents.err" | head -5
echo "   nodes ready in GET /v1/nodes at the end of the window: $ready of $agents"

echo
echo "== summary (server = mill server --no-agent; CPU over each window, resolution $(awk -v hz="$hz" -v w="$window" 'BEGIN {printf "%.2f", 1000 / hz / w}') ms/s)"
awk -v i="$idle_cpu" -v b="$busy_cpu" -v n="$agents" -v ir="$idle_rss" -v br="$busy_rss" \
  -v br0="$busy_rss0" -v it="$idle_threads" -v bt="$busy_threads" -v ac="$busy_agents_cpu" \
  -v interval="$(awk -v ms="$interval_ms" 'BEGIN {print ms / 1000}')" 'BEGIN {
  printf "idle (0 agents):   %7.3f ms/s CPU (%.3f %% of a core), VmRSS %.1f MB, %d threads\n", i, i / 10, ir / 1024, it
  printf "%3d agents:        %7.3f ms/s CPU (%.3f %% of a core), VmRSS %.1f MB (%.1f MB at the window\047s start), %d threads\n", n, b, b / 10, br / 1024, br0 / 1024, bt
  d = b - i
  printf "per agent:         %7.4f ms/s CPU (= %.3f ms of CPU per heartbeat at %g s), VmRSS %+.1f kB\n", d / n, d / n * interval, interval, (br - ir) / n
  printf "%d agents total:   %+7.3f ms/s = %.3f %% of one core, VmRSS %+.1f MB\n", n, d, d / 10, (br - ir) / 1024
  if (i > 0) printf "ratio to idle:     CPU %.2fx, VmRSS %.2fx\n", b / i, br / ir
  printf "(the simulated agents themselves: %.3f ms/s, client side, not in the above)\n", ac
}'
[[ -n $result ]] && grep -q ' errors=0 ' <<<"$result" || { echo "RESULT: heartbeats failed" >&2; exit 1; }
echo "RESULT: measured"
