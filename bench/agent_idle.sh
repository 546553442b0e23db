#!/usr/bin/env bash
# Agent idle CPU (issue 13): what `mill server` (control plane + this node's agent) and
# its mill-shims cost while nothing happens but long-running containers, measured from
# /proc over a window, for a build and, in the same run, for a baseline build:
#   empty    the server with no allocation (the floor: heartbeats, watch loops)
#   tasks    TASKS long-running tasks (the probe image, no health check)
#   service  one service of TASKS replicas with an HTTP health check every
#            HEALTH_INTERVAL (2s), so the health checker's polling is in the figure
# Per scenario: a fresh server, everything running, SETTLE s, then two snapshots WINDOW
# s apart of /proc/PID/stat (utime+stime of all threads, also those that ended) and
# /proc/PID/task/*/status (voluntary + nonvoluntary context switches per thread: the
# thread's wake-ups, plus preemptions), for the server and summed over its shims.
#
#   MILL=/tmp/after/mill BASELINE_MILL=/tmp/before/mill bench/agent_idle.sh   (root)
#
# Env: MILL=path/to/mill (default build/release/src/mill, else build/dev/src/mill; its
#      mill-shim beside it); BASELINE_MILL=path/to/mill measures that build too, in the
#      same run, scenario by scenario (baseline first), and prints baseline/this ratios;
#      PROBE=path/to/mill_probe (default: the build's tests/apps/probe/mill_probe);
#      TASKS=50; WINDOW=30 (s); SETTLE=5 (s); ONLY=empty,tasks,service;
#      TASK_CPU=0.01; TASK_MEMORY=4M; HEALTH_INTERVAL=2s; TOP=5 (busiest threads shown);
#      STACKS=1 attaches gdb to the server after each window (outside it) and prints the
#      3 innermost mill:: functions on the stack of each of the TOP threads.
# Builds nothing. Everything lives in a temp dir, a local docker-registry on 127.0.0.1
# and a bridge per server (mai<hex><k>, 10.<A+k>.0.0/16 with A random in 180..219); the
# servers listen on 127.0.0.1:0, their ingress proxy on 127.0.0.1:0, they advertise
# 127.0.0.1. A trap removes it all, also on failure: servers (SIGTERM, then `mill
# cleanup --data-dir`), registry, mounts, bridges, cgroups, the temp dir.
# Exit status: 0 measured, 2 the benchmark could not run.
set -euo pipefail

[[ $(id -u) == 0 ]] || { echo "needs root (containers, bridges)" >&2; exit 2; }
source "$(dirname "$0")/lib.sh"
baseline=${BASELINE_MILL:+$(realpath "$BASELINE_MILL")}
probe=$(realpath "${PROBE:-$default_build/tests/apps/probe/mill_probe}")
tasks=${TASKS:-50}
window=${WINDOW:-30}
settle=${SETTLE:-5}
only=,${ONLY:-empty,tasks,service},
task_cpu=${TASK_CPU:-0.01}
task_memory=${TASK_MEMORY:-4M}
health_interval=${HEALTH_INTERVAL:-2s}
top=${TOP:-5}
for f in "$mill" "$(dirname "$mill")/mill-shim" "$probe" \
  ${baseline:+"$baseline" "$(dirname "$baseline")/mill-shim"}; do
  [[ -x $f ]] || { echo "missing: $f (MILL, BASELINE_MILL, PROBE; mill-shim beside mill)" >&2; exit 2; }
done
for tool in docker-registry umoci skopeo busybox runc curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-deps.sh" >&2; exit 2; }
done
[[ ${STACKS:-0} != 1 ]] || command -v gdb >/dev/null || { echo "STACKS=1 needs gdb" >&2; exit 2; }
hz=$(getconf CLK_TCK)

tmp=$(mktemp -d /tmp/mill-idlebench-XXXXXX)
hex=$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')
# A /16 per server (up to 6): A+1..A+6 must not be routed here already (other Mills,
# tests); the server would refuse to start on such a route anyway.
for _ in $(seq 20); do
  octet=$((180 + RANDOM % 40))
  grep -qE "(^|[^0-9.])10\.($((octet + 1))|$((octet + 2))|$((octet + 3))|$((octet + 4))|$((octet + 5))|$((octet + 6)))\." \
    <<<"$(ip -4 route show)" || break
done
prefix=mai$hex
registry_pid='' sleep_pid=''
servers=0
# A sleep in the background, so that a signal's trap runs at once, not after it.
pause() { sleep "$1" & sleep_pid=$!; wait "$sleep_pid"; sleep_pid=''; }

# Stops the server of DIR (only if it is ours: its command line names DIR) and runs
# `mill cleanup` for its data dir with the binary that started it.
stop_server() {
  local dir=$1 pid
  if [[ -f $dir/server.pid ]]; then
    pid=$(cat "$dir/server.pid")
    if [[ $(tr '\0' ' ' 2>/dev/null </proc/"$pid"/cmdline) == *"$dir/data"* ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/server.pid"
  fi
  if [[ -f $dir/mill.path && -d $dir/data ]]; then
    "$(cat "$dir/mill.path")" cleanup --data-dir "$dir/data" >>"$dir/cleanup.log" 2>&1 ||
      echo "   mill cleanup --data-dir $dir/data failed: $(tail -1 "$dir/cleanup.log")" >&2
    rm -f "$dir/mill.path"
  fi
}

cleanup() {
  set +e
  [[ -n $sleep_pid ]] && kill "$sleep_pid" 2>/dev/null
  for dir in "$tmp"/s*; do [[ -d $dir ]] && stop_server "$dir"; done
  if [[ -n $registry_pid ]]; then
    kill -TERM "$registry_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$registry_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$registry_pid" 2>/dev/null
  fi
  grep -o " ${tmp}[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
  for k in $(seq "$servers"); do
    ip link show "$prefix$k" >/dev/null 2>&1 && ip link del "$prefix$k"
  done
  # mill cleanup leaves the node's (empty) cgroup parents /mill-<bridge>: remove ours.
  for cg in /sys/fs/cgroup/*/mill-"$prefix"*; do
    [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the probe image, in a registry of our own on loopback ---------------------------
# As tests/support/probe_image.cc builds it: a busybox layer (bin/busybox, bin/sh,
# tmp 1777) and a layer with /probe, the entrypoint (HTTP on :8080, /health answers 200).
mkdir -p "$tmp/registry/data" "$tmp/image"
registry=''
for _ in $(seq 5); do
  port=$((20000 + RANDOM % 20000))
  curl -fsS -m 1 "http://127.0.0.1:$port/" >/dev/null 2>&1 && continue  # taken
  cat >"$tmp/registry/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $tmp/registry/data
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve "$tmp/registry/registry.yml" >"$tmp/registry/log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 50); do
    kill -0 "$registry_pid" 2>/dev/null || break
    curl -fsS -m 1 "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && { registry=127.0.0.1:$port; break; }
    sleep 0.1
  done
  [[ -n $registry ]] && break
  kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true
  registry_pid=''
done
[[ -n $registry ]] || { echo "the registry did not start:"; tail -5 "$tmp/registry/log"; exit 2; }
image=$registry/probe:v1
(
  cd "$tmp/image"
  umoci init --layout layout
  umoci new --image layout:v1
  umoci unpack --rootless --image layout:v1 bundle >/dev/null
  mkdir -p bundle/rootfs/bin bundle/rootfs/tmp
  chmod 1777 bundle/rootfs/tmp
  cp "$(command -v busybox)" bundle/rootfs/bin/busybox
  ln -s busybox bundle/rootfs/bin/sh
  umoci repack --image layout:v1 bundle
  rm -rf bundle
  umoci unpack --rootless --image layout:v1 bundle >/dev/null
  cp "$probe" bundle/rootfs/probe
  chmod 0755 bundle/rootfs/probe
  umoci repack --image layout:v1 bundle
  umoci config --image layout:v1 --config.entrypoint /probe --config.env PATH=/bin \
    --config.exposedports 8080/tcp
  skopeo copy --quiet --dest-tls-verify=false oci:layout:v1 "docker://$image"
) >"$tmp/image.log" 2>&1 || { echo "building the probe image failed:"; tail "$tmp/image.log"; exit 2; }

# --- one server ------------------------------------------------------------------------
# start_server BIN: a fresh data dir, bridge and /16; sets dir, pid and the CLI's env.
start_server() {
  local bin=$1 addr=''
  servers=$((servers + 1))
  dir=$tmp/s$servers
  mkdir -p "$dir"
  export MILL_CONFIG=$dir/client.toml
  "$bin" init --data-dir "$dir/data" >/dev/null
  echo "$bin" >"$dir/mill.path"
  "$bin" server --data-dir "$dir/data" --listen 127.0.0.1:0 --advertise 127.0.0.1 --quiet \
    --bridge "$prefix$servers" --cluster-network "10.$((octet + servers)).0.0/16" \
    --proxy-http 127.0.0.1:0 --proxy-https 127.0.0.1:0 --stop-grace 2s \
    >"$dir/server.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/server.pid"
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || { echo "mill server exited:"; tail "$dir/server.log"; exit 2; }
    [[ -z $addr ]] && addr=$(sed -n 's|.*API listening on http://\([0-9.:]*\).*|\1|p' "$dir/server.log" | head -1)
    [[ -n $addr ]] && grep -q "this node runs containers" "$dir/server.log" && break
    sleep 0.1
  done
  grep -q "this node runs containers" "$dir/server.log" ||
    { echo "mill server did not come up:"; tail "$dir/server.log"; exit 2; }
  export MILL_ADDR=$addr
}

shim_pids() {  # the mill-shims of the current server's data dir
  local p cmd
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    [[ $cmd == *mill-shim* && $cmd == *"$dir/data/"* ]] && echo "${p#/proc/}"
  done
}

count() { grep -o "$1" | wc -l; }

# snapshot OUT SERVER_PID SHIM_PID...: one pass over /proc, no process of ours forked
# between the reads of one thread's files (grep -s skips threads that just ended).
snapshot() {
  local out=$1 server=$2 p t0 t1 s
  shift 2
  local files=()
  for p in "$server" "$@"; do files+=(/proc/"$p"/task/*/stat /proc/"$p"/task/*/status /proc/"$p"/task/*/syscall); done
  t0=$(date +%s%N)
  {
    for p in "$server" "$@"; do
      read -r s </proc/"$p"/stat 2>/dev/null && echo "P $p ${s##*) }"
    done
    grep -sH -E '^(Name|voluntary_ctxt_switches|nonvoluntary_ctxt_switches):|^[0-9]+ \(|^[-0-9r]' "${files[@]}" || true
  } >"$out"
  t1=$(date +%s%N)
  echo "T $(((t0 + t1) / 2)) $server" >>"$out"
}

# analyse A B: figures as key=value lines, then the TOP busiest server threads.
analyse() {
  awk -v hz="$hz" -v top="$top" '
    FNR == 1 { f++ }
    $1 == "T" { t[f] = $2; server = $3; next }
    $1 == "P" { ticks[f, $2] = $14 + $15; if (f == 1) pids[$2] = 1; next }
    {
      split($0, a, ":"); n = split(a[1], path, "/"); pid = path[3]; tid = path[5]; kind = path[6]
      rest = substr($0, length(a[1]) + 2)
      key = pid SUBSEP tid
      if (kind == "stat") {
        sub(/^[0-9]+ \(.*\) /, "", rest); split(rest, s, " ")
        tt[f, key] = s[12] + s[13]; start[f, key] = s[20]
        if (tid == pid) pstart[pid] = s[20]
      } else if (kind == "status") {
        split(rest, kv, ":"); v = kv[2]; gsub(/^[ \t]+/, "", v)
        if (kv[1] == "Name") name[key] = v; else cs[f, key] += v
        if (kv[1] == "nonvoluntary_ctxt_switches") nv[f, key] = v
      } else if (kind == "syscall") {
        split(rest, sc, " "); sys[f, key] = sc[1]
      }
      if (f == 2) seen2[key] = 1; else seen1[key] = 1
    }
    END {
      secs = (t[2] - t[1]) / 1e9
      split("0:read 1:write 7:poll 23:select 35:nanosleep 45:recvfrom 47:recvmsg 61:wait4 202:futex 230:clock_nanosleep 232:epoll_wait 247:waitid 270:pselect6 271:ppoll 281:epoll_pwait 288:accept4 441:epoll_pwait2", m, " ")
      for (i in m) { split(m[i], kv, ":"); sysname[kv[1]] = kv[2] }
      for (k in seen2) {
        split(k, pt, SUBSEP); pid = pt[1]; tid = pt[2]
        d = cs[2, k] - ((1, k) in cs ? cs[1, k] : 0)
        role = (pid == server) ? "server" : "shim"
        sw[role] += d; threads[role]++
        nvsw[role] += nv[2, k] - ((1, k) in nv ? nv[1, k] : 0)
        if (!(k in seen1)) born[role]++
        if (role == "server") {
          rate = d / secs; nt++; trate[nt] = rate; ttid[nt] = tid
          tcpu[nt] = (tt[2, k] - ((1, k) in tt ? tt[1, k] : 0)) / hz / secs * 1000
          tname[nt] = name[k]; tage[nt] = (start[2, k] - pstart[pid]) / hz
          sc2 = sys[2, k]; tsys[nt] = (sc2 in sysname) ? sysname[sc2] : sc2
          bk = rate < 0.5 ? 1 : rate < 3 ? 2 : rate < 7 ? 3 : rate < 20 ? 4 : 5
          b[bk]++; bcpu[bk] += tcpu[nt]
        }
      }
      for (k in seen1) if (!(k in seen2)) { split(k, pt, SUBSEP); died[(pt[1] == server) ? "server" : "shim"]++ }
      for (p in pids) {
        if (!((2, p) in ticks)) { gone++; continue }
        d = (ticks[2, p] - ticks[1, p]) / hz
        if (p == server) cpu["server"] += d; else { cpu["shim"] += d; nshim++ }
      }
      printf "secs=%.3f\n", secs
      printf "server_cpu=%.3f\nserver_wake=%.2f\nserver_threads=%d\n", cpu["server"] / secs * 1000, sw["server"] / secs, threads["server"]
      printf "server_born=%d\nserver_died=%d\n", born["server"], died["server"]
      printf "server_nonvol=%.2f\nshim_nonvol=%.2f\n", nvsw["server"] / secs, nvsw["shim"] / secs
      printf "shims=%d\nshims_gone=%d\nshim_cpu=%.3f\nshim_wake=%.2f\nshim_threads=%d\n", nshim, gone, cpu["shim"] / secs * 1000, sw["shim"] / secs, threads["shim"]
      split("<0.5/s 0.5-3/s 3-7/s 7-20/s >=20/s", bn, " ")
      printf "buckets="
      for (i = 1; i <= 5; i++) printf "%s%s: %d (%.1f ms/s)", (i > 1 ? ", " : ""), bn[i], b[i], bcpu[i]
      printf "\n"
      for (i = 1; i <= nt && i <= top; i++) {  # selection of the top rates
        best = 0
        for (j = 1; j <= nt; j++) if (!(j in used) && (best == 0 || trate[j] > trate[best])) best = j
        used[best] = 1
        printf "top %s %s %.2f %.2f %.1f %s\n", ttid[best], tname[best], trate[best], tcpu[best], tage[best], tsys[best]
      }
    }' "$1" "$2"
}

# stacks PID TID...: the 3 innermost mill:: functions on each thread's stack (gdb
# attaches after the window). The binary needs its symbols (every preset has -g).
stacks() {
  local pid=$1
  shift
  gdb -p "$pid" -batch -nx -ex 'set pagination off' -ex 'thread apply all bt 30' 2>/dev/null |
    awk -v want=" $* " '
      /^Thread [0-9]+ .*LWP [0-9]+/ { match($0, /LWP [0-9]+/); tid = substr($0, RSTART + 4, RLENGTH - 4); done = 0; last = ""; next }
      /^#[0-9]/ && done < 3 && index(want, " " tid " ") && match($0, /mill::([A-Za-z0-9_:]|\(anonymous namespace\))*[A-Za-z0-9_]/) {
        name = substr($0, RSTART, RLENGTH)
        if (name == last) next
        frames[tid] = frames[tid] (done ? " < " : "") name; done++; last = name
      }
      END { for (t in frames) print t, frames[t] }'
}

# measure LABEL BIN SCENARIO: a fresh server, the scenario's allocations, the window.
measure() {
  local label=$1 bin=$2 scenario=$3 out=$tmp/result.$1.$3 i running shims
  start_server "$bin"
  case $scenario in
    tasks)
      for i in $(seq "$tasks"); do
        "$bin" spawn --image "$image" --cpu "$task_cpu" --memory "$task_memory" --port 8080 \
          >>"$dir/spawn.log" 2>&1 || { echo "spawn $i failed:"; tail -3 "$dir/spawn.log"; exit 2; }
      done
      for _ in $(seq 300); do
        running=$("$bin" tasks --json | count '"status": *"running"')
        [[ $running == "$tasks" ]] && break
        sleep 0.2
      done
      [[ $running == "$tasks" ]] || { echo "$running of $tasks tasks running"; exit 2; }
      ;;
    service)
      cat >"$dir/idle.toml" <<EOF
[service.idle]
image    = "$image"
replicas = $tasks
port     = 8080
cpu      = $task_cpu
memory   = "$task_memory"
health   = { path = "/health", interval = "$health_interval", deadline = "120s" }
EOF
      "$bin" deploy --plain "$dir/idle.toml" >"$dir/deploy.log" 2>&1 ||
        { echo "deploy failed:"; tail -5 "$dir/deploy.log"; exit 2; }
      running=$("$bin" services --json | count '"status": *"healthy"')
      [[ $running == "$tasks" ]] || { echo "$running of $tasks replicas healthy:"; "$bin" services; exit 2; }
      ;;
  esac
  mapfile -t shims < <(shim_pids)
  local want=0
  [[ $scenario == empty ]] || want=$tasks
  [[ ${#shims[@]} == "$want" ]] || { echo "${#shims[@]} mill-shims, expected $want"; exit 2; }
  pause "$settle"
  local la0 cpu0 cpu1
  la0=$(cut -d' ' -f1 /proc/loadavg)
  cpu0=$(head -1 /proc/stat)
  snapshot "$out.a" "$pid" "${shims[@]}"
  pause "$window"
  snapshot "$out.b" "$pid" "${shims[@]}"
  cpu1=$(head -1 /proc/stat)
  analyse "$out.a" "$out.b" >"$out"
  # The whole machine's busy share over the window (other jobs share these cores).
  awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ")
    for (i = 2; i <= n; i++) { d = y[i] - x[i]; tot += d; if (i == 5 || i == 6) idle += d }
    printf "machine_busy=%.0f\n", 100 * (tot - idle) / tot }' >>"$out"
  echo "load=$la0 -> $(cut -d' ' -f1 /proc/loadavg)" >>"$out"
  if [[ ${STACKS:-0} == 1 ]]; then
    local tids
    mapfile -t tids < <(awk '$1 == "top" {print $2}' "$out")
    stacks "$pid" "${tids[@]}" | sed 's/^/frame /' >>"$out"
  fi
  stop_server "$dir"
  print_one "$label" "$scenario" "$bin"
}

get() { sed -n "s/^$2=//p" "$1"; }

describe() {
  case $1 in
    empty) echo "idle with no allocation" ;;
    tasks) echo "idle with $tasks tasks" ;;
    service) echo "idle with a $tasks-replica service (health every $health_interval)" ;;
  esac
}

print_one() {  # LABEL SCENARIO BIN
  local r=$tmp/result.$1.$2 cpu
  cpu=$(get "$r" server_cpu)
  printf '%s [%s]: server CPU %.1f ms/s (%.2f%% of a core), %.1f wake-ups/s, %s threads; ' \
    "$(describe "$2")" "$1" "$cpu" "$(awk -v c="$cpu" 'BEGIN {print c / 10}')" \
    "$(get "$r" server_wake)" "$(get "$r" server_threads)"
  printf 'shims (%s): CPU %.1f ms/s, %.1f wake-ups/s, %s threads\n' "$(get "$r" shims)" \
    "$(get "$r" shim_cpu)" "$(get "$r" shim_wake)" "$(get "$r" shim_threads)"
  echo "   $3; window $(get "$r" secs) s; machine busy $(get "$r" machine_busy)% (load $(get "$r" load));" \
    "server threads started/ended in the window: $(get "$r" server_born)/$(get "$r" server_died)" \
    "$( (($(get "$r" shims_gone) == 0)) || echo "; $(get "$r" shims_gone) shims ended in the window")"
  echo "   of the wake-ups, nonvoluntary (preempted, not woken): server $(get "$r" server_nonvol)/s, shims $(get "$r" shim_nonvol)/s"
  echo "   server threads by wake-ups (count, their CPU): $(get "$r" buckets)"
  echo "   busiest server threads (tid, comm, wake-ups/s, CPU ms/s, started s after the server, syscall at the end$([[ ${STACKS:-0} != 1 ]] || echo ", innermost mill:: functions")):"
  awk '$1 == "frame" { f[$2] = substr($0, length($1 " " $2 " ") + 1) }
       $1 == "top" { t[++n] = $0 }
       END { for (i = 1; i <= n; i++) { split(t[i], x, " ")
             printf "     %7s %-8s %7.2f/s %7.2f ms/s %7.1f s  %-14s %s\n", x[2], x[3], x[4], x[5], x[6], x[7], f[x[2]] } }' "$r"
}

echo "== $("$mill" --version 2>/dev/null || echo mill) at $mill${baseline:+; baseline $baseline}"
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== TASKS=$tasks (cpu $task_cpu, memory $task_memory), SETTLE=${settle}s, WINDOW=${window}s, registry $registry"
echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg); busiest other processes:"
ps -eo pcpu=,comm= --sort=-pcpu | grep -vE " (ps|agent_idle.sh)$" | head -3 | sed 's/^/   /' || true

scenarios=()
for s in empty tasks service; do [[ $only == *,$s,* ]] && scenarios+=("$s"); done
for s in "${scenarios[@]}"; do
  [[ -n $baseline ]] && measure baseline "$baseline" "$s"
  measure this "$mill" "$s"
done

echo
echo "== result (CPU = utime+stime of all threads over the window; wake-ups = voluntary +"
echo "   nonvoluntary context switches summed over all threads)"
for s in "${scenarios[@]}"; do
  r=$tmp/result.this.$s
  line=$(printf '%s: server CPU %.1f ms/s (%.2f%% of a core), %.1f wake-ups/s, %s threads; shims: CPU %.1f ms/s total, %.1f wake-ups/s total, %s threads (%s shims)' \
    "$(describe "$s")" "$(get "$r" server_cpu)" "$(awk -v c="$(get "$r" server_cpu)" 'BEGIN {print c / 10}')" \
    "$(get "$r" server_wake)" "$(get "$r" server_threads)" "$(get "$r" shim_cpu)" \
    "$(get "$r" shim_wake)" "$(get "$r" shim_threads)" "$(get "$r" shims)")
  echo "$line"
  if [[ -n $baseline ]]; then
    b=$tmp/result.baseline.$s
    awk -v bc="$(get "$b" server_cpu)" -v tc="$(get "$r" server_cpu)" \
      -v bw="$(get "$b" server_wake)" -v tw="$(get "$r" server_wake)" \
      -v bt="$(get "$b" server_threads)" -v tt="$(get "$r" server_threads)" \
      -v bsc="$(get "$b" shim_cpu)" -v tsc="$(get "$r" shim_cpu)" \
      -v bsw="$(get "$b" shim_wake)" -v tsw="$(get "$r" shim_wake)" '
      function ratio(b, t) { return t > 0 ? sprintf("%.2fx", b / t) : (b > 0 ? "inf" : "- (both 0)") }
      BEGIN {
        printf "   baseline: server CPU %.1f ms/s, %.1f wake-ups/s, %d threads; shims CPU %.1f ms/s, %.1f wake-ups/s\n", bc, bw, bt, bsc, bsw
        printf "   ratio baseline/this (before/after, > 1 = this costs less): server CPU %s, wake-ups %s, threads %d -> %d; shims CPU %s, wake-ups %s\n", ratio(bc, tc), ratio(bw, tw), bt, tt, ratio(bsc, tsc), ratio(bsw, tsw)
      }'
  fi
done
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
