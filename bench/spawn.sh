#!/usr/bin/env bash
# Container benchmarks of issue 3, each against its baseline in one run:
#   spawn   Mill's spawn -> 201 and -> first 200 from the task's /health (image cached),
#           p50/p99 over RUNS spawns, vs `runc run -d` of the bundle Mill wrote (same
#           rootfs content and config, own netns) and `docker run -d --init` of the image
#   pull    cold pull of a ~100 MB 7-layer image: Mill's pull_ms vs `skopeo copy`
#   memory  RSS of `mill server` and per mill-shim with TASKS tasks running
#
#   bench/spawn.sh                      (needs root; build first, or BUILD=1)
#
# Env: BUILD=1 builds mill, mill-shim, mill_probe and mill_spawn_bench (release preset,
#      nice, -j2); ONLY=spawn,pull,memory; RUNS=100; PULLS=3; TASKS=50; TASK_MEMORY=4M;
#      DOCKER=0 skips the docker baseline; MILL=path/to/mill measures another build
#      (its mill-shim beside it).
# Everything lives in a temp dir and on interfaces of its own (bridges msb*/msr*/msd*,
# 10.<A..A+9>.0.0/16 with A random in 100..139); a trap removes it all, also on failure:
# tasks (mill cleanup), runc containers, dockerd (private --data-root/--exec-root/socket,
# --iptables=false --ip-forward=false, its own bridge), netns, bridges, cgroups.
# Exit status: 0 all targets met, 1 a target missed, 2 the benchmark could not run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build/release
[[ $(id -u) == 0 ]] || { echo "needs root (containers, netns, dockerd)" >&2; exit 2; }
if [[ ${BUILD:-0} == 1 ]]; then
  [[ -f $build/build.ninja ]] || nice cmake --preset release >/dev/null
  nice cmake --build --preset release -j2 --target mill mill-shim mill_probe mill_spawn_bench
fi
mill=$(realpath "${MILL:-$build/src/mill}")
probe=$build/tests/apps/probe/mill_probe
bench=$build/bench/mill_spawn_bench
for f in "$mill" "$(dirname "$mill")/mill-shim" "$probe" "$bench"; do
  [[ -x $f ]] || { echo "not built: $f (BUILD=1 builds it)" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/mill-spawnbench-XXXXXX)
hex=$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')
octet=$((100 + RANDOM % 40))
runc_net=10.$((octet + 9)).0
docker_net=10.$((octet + 8)).0
rbr=msr$hex rns=msr$hex-ns rveth=msr${hex}v dbr=msd$hex
docker_pid=
dk() { docker -H "unix://$tmp/docker/sock" "$@"; }

cleanup() {
  set +e
  if [[ -n $docker_pid ]]; then
    ids=$(dk ps -aq 2>/dev/null)
    [[ -n $ids ]] && dk rm -f $ids >/dev/null 2>&1
    kill -TERM "$docker_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$docker_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$docker_pid" 2>/dev/null
  fi
  for pidfile in "$tmp"/*/server.pid; do
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    if [[ $(cat /proc/"$pid"/cmdline 2>/dev/null | tr '\0' ' ') == *"$tmp"* ]]; then
      kill -TERM "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null
    fi
  done
  for data in "$tmp"/*/data; do
    [[ -d $data ]] && "$mill" cleanup --data-dir "$data" >/dev/null 2>&1
  done
  if [[ -d $tmp/runc/state ]]; then
    for id in $(runc --root "$tmp/runc/state" list -q 2>/dev/null); do
      runc --root "$tmp/runc/state" delete --force "$id" 2>/dev/null
    done
  fi
  grep -o " $tmp[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
  ip netns del "$rns" 2>/dev/null
  ip link del "$rbr" 2>/dev/null
  ip link del "$dbr" 2>/dev/null
  # mill cleanup leaves the node's (empty) cgroup parents /mill-<bridge>: remove ours.
  for cg in /sys/fs/cgroup/*/mill-bench-runc /sys/fs/cgroup/*/mill-bench-docker \
    /sys/fs/cgroup/*/mill-msb"$hex"*; do
    [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The runc floor's network: a bridge and one netns (10.<octet+9>.0.2) reused by every
# `runc run` (the probe binds with SO_REUSEADDR); set up once, outside the timing.
ip link add "$rbr" type bridge
ip addr add "$runc_net.1/24" dev "$rbr"
ip link set "$rbr" up
ip netns add "$rns"
ip link add "$rveth" type veth peer name eth0 netns "$rns"
ip link set "$rveth" master "$rbr" up
ip -n "$rns" addr add "$runc_net.2/24" dev eth0
ip -n "$rns" link set eth0 up
ip -n "$rns" link set lo up

docker_args=()
if [[ ${DOCKER:-1} != 0 && ,${ONLY:-spawn}, == *,spawn,* ]]; then
  if ! command -v dockerd >/dev/null; then
    echo "== docker: dockerd not installed (MILL_BENCH_DOCKER=1 scripts/install-deps.sh), no docker baseline"
  else
    mkdir -p "$tmp/docker"
    ip link add "$dbr" type bridge
    ip addr add "$docker_net.1/24" dev "$dbr"
    ip link set "$dbr" up
    dockerd --data-root "$tmp/docker/root" --exec-root "$tmp/docker/exec" \
      --pidfile "$tmp/docker/pid" -H "unix://$tmp/docker/sock" --bridge "$dbr" \
      --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=false \
      --cgroup-parent /mill-bench-docker --storage-driver overlay2 --log-level warn \
      >"$tmp/docker/dockerd.log" 2>&1 &
    docker_pid=$!
    up=0
    for _ in $(seq 150); do
      kill -0 "$docker_pid" 2>/dev/null || break
      dk info >/dev/null 2>&1 && { up=1; break; }
      sleep 0.2
    done
    if [[ $up == 1 ]]; then
      echo "== docker: $(dk version -f '{{.Server.Version}}') (dockerd pid $docker_pid, private root, bridge $dbr)"
      docker_args=(--docker-host "unix://$tmp/docker/sock" --docker-root "$tmp/docker/root")
    else
      echo "== docker: dockerd did not come up, no docker baseline. Its log:"
      tail -20 "$tmp/docker/dockerd.log" | sed 's/^/   /'
    fi
  fi
fi

echo "== $("$mill" --version 2>/dev/null || echo mill), $(runc --version | head -1), $(skopeo --version)"
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg); busiest other processes:"
ps -eo pcpu=,comm= --sort=-pcpu | grep -vE " (ps|spawn.sh)$" | head -3 | sed 's/^/   /' || true

set +e
"$bench" --mill "$mill" --probe "$probe" --work "$tmp" --bridge-prefix "msb$hex" \
  --net-octet "$octet" --only "${ONLY:-spawn,pull,memory}" --runs "${RUNS:-100}" \
  --pulls "${PULLS:-3}" --tasks "${TASKS:-50}" --task-memory "${TASK_MEMORY:-4M}" \
  --runc-netns "/run/netns/$rns" --runc-ip "$runc_net.2" "${docker_args[@]}"
status=$?
set -e
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
