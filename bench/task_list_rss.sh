#!/usr/bin/env bash
# What listing tasks with large specs costs the server's memory (issue 16 item 4, the
# readers' half): a `mill server --no-agent` with one simulated node
# (mill_heartbeat_agents: it registers and heartbeats, runs nothing, so the tasks stay
# pending) gets TASKS spawns whose spec is near the limits (ENV_KB KiB of env in 1 KiB
# values, CMD_KB KiB of command in 1 KiB arguments; curl leaves each spawn after 1 s,
# the allocation stays), and is restarted. Then READERS clients each list the tasks
# (GET /v1/tasks?all=true) ROUNDS times, all at once. The listing shows no env or
# command, so whatever it costs beyond its small answer is the records copied for it.
# Read from /proc: VmRSS before, the peak during the listings (VmHWM after
# `echo 5 > clear_refs` resets it; needs root or the server's owner) and VmRSS after.
# Then the node stops: its tasks are lost after --node-ttl (2s) and forgotten after
# --task-retention (2s); VmRSS then is compared with the server's before the spawns.
#
#   bench/task_list_rss.sh                        (this build's mill)
#   MILL=/tmp/before/mill bench/task_list_rss.sh  (another build; AGENTS_BIN from it too)
#
# Env: MILL=path/to/mill (default build/release/src/mill, else build/dev/src/mill);
#      AGENTS_BIN (default: bench/mill_heartbeat_agents of the same build);
#      TASKS=40; ENV_KB=240; CMD_KB=120; READERS=8; ROUNDS=10; SETTLE=2 (s).
# Everything lives in a temp dir, removed on exit with the server and the agent.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
agents_bin=$(realpath "${AGENTS_BIN:-$(dirname "$(dirname "$mill")")/bench/mill_heartbeat_agents}")
tasks=${TASKS:-40}
env_kb=${ENV_KB:-240}
cmd_kb=${CMD_KB:-120}
readers=${READERS:-8}
rounds=${ROUNDS:-10}
settle=${SETTLE:-2}
command -v curl >/dev/null || { echo "missing curl" >&2; exit 2; }
for f in "$mill" "$agents_bin"; do [[ -x $f ]] || { echo "missing $f" >&2; exit 2; }; done

tmp=$(mktemp -d /tmp/mill-listrss-XXXXXX)
pid=
agents_pid=
cleanup() {
  stop "$agents_pid"
  stop "$pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MILL_CONFIG=$tmp/client.toml "$mill" init --data-dir "$tmp/data" >"$tmp/init.out" 2>&1
token=$(tr -d '\n' <"$tmp/data/api.token")
start_server() {  # listen address; sets pid and addr
  "$mill" server --data-dir "$tmp/data" --listen "$1" --no-agent --quiet \
    --heartbeat-ms 500 --node-ttl 2s --task-retention 2s >"$tmp/server.log" 2>&1 &
  pid=$!
  addr=
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; echo "server exited" >&2; exit 2; }
    addr=$(sed -n 's|.*API listening on http://\([0-9.:]*\).*|\1|p' "$tmp/server.log" | head -1)
    [[ -n $addr ]] && break
    sleep 0.1
  done
  [[ -n $addr ]] || { echo "the server did not start:" >&2; cat "$tmp/server.log" >&2; exit 2; }
}
start_server 127.0.0.1:0
"$agents_bin" --address "http://$addr" --join-token-file "$tmp/data/join.token" --agents 1 \
  >"$tmp/agents.out" 2>&1 &
agents_pid=$!
api() { curl -s -H "Authorization: Bearer $token" "$@"; }
for _ in $(seq 100); do
  api "http://$addr/v1/nodes" | grep -q '"ready"' && break
  sleep 0.1
done
api "http://$addr/v1/nodes" | grep -q '"ready"' ||
  { echo "the simulated node is not ready:" >&2; cat "$tmp/agents.out" >&2; exit 2; }
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
sleep "$settle"
fresh=$(status VmRSS)  # a server with its node and no task: the baseline

python3 - "$env_kb" "$cmd_kb" >"$tmp/body.json" <<'PY'
import json, sys
env_kb, cmd_kb = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({"image": "127.0.0.1:1/none:v1", "cpu": 0.04, "memory": "16M",
                  "env": {"VARIABLE_%04d" % i: "v" * 1000 for i in range(env_kb)},
                  "command": ["a" * 1000 for _ in range(cmd_kb)]}))
PY
for _ in $(seq "$tasks"); do
  api --max-time 1 -o /dev/null -H 'Content-Type: application/json' \
    --data-binary "@$tmp/body.json" "http://$addr/v1/tasks/spawn" || true
done
# Restarted on the same address (the node heartbeats on): the records are then loaded
# from the store on the main thread, and the I/O threads' heaps hold no freed memory
# from the spawn bodies that copies for the listings could reuse unseen.
stop "$pid"
start_server "$addr"
sleep "$settle"
before=$(status VmRSS)
echo 5 >"/proc/$pid/clear_refs"  # VmHWM := VmRSS
start=$(date +%s.%N)
reader_pids=()
for _ in $(seq "$readers"); do
  (for _ in $(seq "$rounds"); do api -o /dev/null "http://$addr/v1/tasks?all=true"; done) &
  reader_pids+=($!)
done
wait "${reader_pids[@]}"
end=$(date +%s.%N)
peak=$(status VmHWM)
sleep "$settle"
after=$(status VmRSS)
# Checked after: a listing before would leave its copies on an I/O thread's heap.
listed=$(api "http://$addr/v1/tasks?all=true" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
answer=$(api -o /dev/null -w '%{size_download}' "http://$addr/v1/tasks?all=true")
[[ $listed == "$tasks" ]] || { echo "listed $listed tasks, spawned $tasks" >&2; exit 2; }
echo "mill:      $mill"
echo "records:   $tasks pending tasks, body $(stat -c %s "$tmp/body.json") bytes each ($env_kb KiB env, $cmd_kb KiB command)"
echo "listings:  $readers readers x $rounds GET /v1/tasks?all=true ($answer bytes each) in $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') s"
echo "VmRSS:     $before kB before, peak $peak kB (+$((peak - before)) kB), $after kB after (+$((after - before)) kB)"

# Forgotten: the node stops heartbeating, so after --node-ttl its tasks are lost, and
# --task-retention later forgotten. What the server then holds should be back near a
# server that never had them (`fresh`, measured before the spawns).
stop "$agents_pid"
agents_pid=
for _ in $(seq 300); do
  [[ $(api "http://$addr/v1/tasks?all=true") == "[]" ]] && break
  sleep 0.1
done
[[ $(api "http://$addr/v1/tasks?all=true") == "[]" ]] || { echo "the tasks were not forgotten" >&2; exit 2; }
sleep "$settle"
forgotten=$(status VmRSS)
echo "forgotten: $forgotten kB once the tasks are forgotten; a fresh server had $fresh kB (+$((forgotten - fresh)) kB), loaded $before kB"
