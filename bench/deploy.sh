#!/usr/bin/env bash
# Deploy benchmarks of issue 4, each against Docker Swarm in the same run:
#   rolling  a rolling update of a 3-replica service to a new image (cached on the
#            node): `mill deploy` of the changed config until `done`, health interval
#            100 ms, vs `docker service update --image` (update delay 0 s, a 100 ms
#            update monitor, start-first, stop grace 1 s, --init) until converged
#   fresh    a new 20-replica service until all are healthy (Mill) / running (Swarm,
#            `docker service create --replicas 20`, which waits until converged)
# Both run the same images from one local registry: busybox httpd serving
# "hello from mill vN" on :8080 (scripts/demo-registry.sh builds them).
#
#   bench/deploy.sh                 (needs root and docker.io: MILL_BENCH_DOCKER=1
#                                    scripts/install-deps.sh; build first, or BUILD=1)
#
# Env: BUILD=1 builds mill and mill-shim (release preset); RUNS=3 (median reported);
#      MILL=path/to/mill measures another build.
# Everything lives in a temp dir, on a bridge of its own (mdb*, 10.<A>.0.0/16 with A
# random in 140..179) and a private dockerd (own root, socket and bridge, no
# iptables); a trap removes it all, also on failure. Swarm listens on 127.0.0.1 only.
# Exit status: 0 all targets met, 1 a target missed, 2 the benchmark could not run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build/release
[[ $(id -u) == 0 ]] || { echo "needs root (containers, dockerd)" >&2; exit 2; }
if [[ ${BUILD:-0} == 1 ]]; then
  [[ -f $build/build.ninja ]] || nice cmake --preset release >/dev/null
  nice cmake --build --preset release -j2 --target mill mill-shim
fi
mill=$(realpath "${MILL:-$build/src/mill}")
[[ -x $mill && -x $(dirname "$mill")/mill-shim ]] || { echo "not built: $mill (BUILD=1)" >&2; exit 2; }
command -v dockerd >/dev/null || { echo "dockerd missing: MILL_BENCH_DOCKER=1 scripts/install-deps.sh" >&2; exit 2; }
runs=${RUNS:-3}

tmp=$(mktemp -d /tmp/mill-deploybench-XXXXXX)
hex=$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')
octet=$((140 + RANDOM % 40))
bridge=mdb$hex dbr=mdd$hex
reg_port=$((20000 + RANDOM % 20000))
registry=127.0.0.1:$reg_port
docker_pid='' server_pid='' registry_pid=''
had_gwbridge=0
[[ -e /sys/class/net/docker_gwbridge ]] && had_gwbridge=1  # someone else's swarm
dk() { docker -H "unix://$tmp/docker/sock" "$@"; }
export MILL_CONFIG=$tmp/client.toml

cleanup() {
  set +e
  if [[ -n $docker_pid ]]; then
    dk service rm web many >/dev/null 2>&1
    dk swarm leave --force >/dev/null 2>&1
    ids=$(dk ps -aq 2>/dev/null)
    [[ -n $ids ]] && dk rm -f $ids >/dev/null 2>&1
    kill -TERM "$docker_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$docker_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$docker_pid" 2>/dev/null
  fi
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null
  fi
  [[ -d $tmp/data ]] && "$mill" cleanup --data-dir "$tmp/data" >/dev/null 2>&1
  [[ -n $registry_pid ]] && kill "$registry_pid" 2>/dev/null
  grep -o " $tmp[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
  ip link del "$dbr" 2>/dev/null
  [[ $had_gwbridge == 1 ]] || ip link del docker_gwbridge 2>/dev/null
  for cg in /sys/fs/cgroup/*/mill-$bridge /sys/fs/cgroup/*/mill-bench-swarm; do
    [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

# The images, in a registry of our own on loopback (dockerd takes 127.0.0.0/8 as
# insecure by default, Mill allows plain HTTP on loopback).
DIR=$tmp/registry ADDR=$registry "$root/scripts/demo-registry.sh" >"$tmp/registry.log" 2>&1 ||
  { cat "$tmp/registry.log"; exit 2; }
registry_pid=$(pgrep -f "$tmp/registry/registry.yml" | head -1)

# Mill: a single node on its own bridge.
"$mill" init --data-dir "$tmp/data" >/dev/null
"$mill" server --data-dir "$tmp/data" --listen 127.0.0.1:0 --quiet --bridge "$bridge" \
  --cluster-network "10.$octet.0.0/16" >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 200); do
  addr=$(grep -o 'API listening on http://[0-9.:]*' "$tmp/server.log" | head -1 | sed 's|.*http://||' || true)
  [[ -n $addr ]] && "$mill" nodes 2>/dev/null | grep -q ready && break
  sleep 0.1
done
export MILL_ADDR=$addr
"$mill" nodes | grep -q ready || { echo "mill server did not come up:"; tail "$tmp/server.log"; exit 2; }

# Docker: a private dockerd, a single-node swarm on loopback.
mkdir -p "$tmp/docker"
ip link add "$dbr" type bridge
ip addr add "10.$((octet + 1)).0.1/24" dev "$dbr"
ip link set "$dbr" up
dockerd --data-root "$tmp/docker/root" --exec-root "$tmp/docker/exec" \
  --pidfile "$tmp/docker/pid" -H "unix://$tmp/docker/sock" --bridge "$dbr" \
  --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=false \
  --cgroup-parent /mill-bench-swarm --storage-driver overlay2 --log-level warn \
  >"$tmp/docker/dockerd.log" 2>&1 &
docker_pid=$!
for _ in $(seq 150); do dk info >/dev/null 2>&1 && break; sleep 0.2; done
dk info >/dev/null 2>&1 || { echo "dockerd did not come up:"; tail "$tmp/docker/dockerd.log"; exit 2; }
dk swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:$((reg_port + 1)) >/dev/null ||
  { echo "docker swarm init failed:"; tail "$tmp/docker/dockerd.log"; exit 2; }
for v in v1 v2; do dk pull -q "$registry/hello:$v" >/dev/null; done

echo "== $("$mill" --version 2>/dev/null || echo mill), docker $(dk version -f '{{.Server.Version}}') swarm, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

config() {  # NAME REPLICAS TAG [CPU]
  cat <<EOF
[service.$1]
image    = "$registry/hello:$3"
replicas = $2
port     = 8080
cpu      = ${4:-0.1}
memory   = "32M"
health   = { path = "/", interval = "100ms" }
EOF
}

# --- rolling update, 3 replicas ------------------------------------------------------
config web 3 v1 >"$tmp/web.toml"
"$mill" deploy --plain "$tmp/web.toml" >"$tmp/mill-first.log" || { cat "$tmp/mill-first.log"; exit 2; }
dk service create -q --name web --replicas 3 --init --stop-grace-period 1s \
  "$registry/hello:v1" >/dev/null
mill_roll=() swarm_roll=()
tag=v1
for i in $(seq "$runs"); do
  [[ $tag == v1 ]] && tag=v2 || tag=v1
  config web 3 "$tag" >"$tmp/web.toml"
  t0=$(ms)
  "$mill" deploy --plain "$tmp/web.toml" >"$tmp/mill-roll-$i.log" || { cat "$tmp/mill-roll-$i.log"; exit 2; }
  mill_roll+=($(($(ms) - t0)))
  t0=$(ms)
  dk service update -q --image "$registry/hello:$tag" --update-delay 0s \
    --update-monitor 100ms --update-parallelism 1 --update-order start-first web >/dev/null
  swarm_roll+=($(($(ms) - t0)))
  echo "   run $i: mill ${mill_roll[-1]} ms, swarm ${swarm_roll[-1]} ms"
done

# --- fresh deploy, 20 replicas -------------------------------------------------------
mill_fresh=() swarm_fresh=()
for i in $(seq "$runs"); do
  # 0.05 cores each, so 20 fit beside web on 2 cores (Swarm reserves nothing).
  { config web 3 "$tag"; config many 20 v1 0.05; } >"$tmp/many.toml"
  t0=$(ms)
  "$mill" deploy --plain "$tmp/many.toml" >"$tmp/mill-fresh-$i.log" || { cat "$tmp/mill-fresh-$i.log"; exit 2; }
  mill_fresh+=($(($(ms) - t0)))
  t0=$(ms)
  dk service create -q --name many --replicas 20 --init --stop-grace-period 1s \
    "$registry/hello:v1" >/dev/null
  swarm_fresh+=($(($(ms) - t0)))
  echo "   run $i: mill ${mill_fresh[-1]} ms, swarm ${swarm_fresh[-1]} ms (20 replicas)"
  config web 3 "$tag" >"$tmp/web.toml"
  "$mill" deploy --plain "$tmp/web.toml" >/dev/null
  dk service rm many >/dev/null
  for _ in $(seq 100); do [[ -z $(dk ps -q --filter label=com.docker.swarm.service.name=many) ]] && break; sleep 0.2; done
done

status=0
report() {  # LABEL MILL_MS SWARM_MS
  local ratio verdict
  ratio=$(awk -v m="$2" -v s="$3" 'BEGIN {printf "%.2f", m / s}')
  verdict=$(awk -v r="$ratio" 'BEGIN {print (r <= 0.5) ? "PASS" : "MISS"}')
  [[ $verdict == PASS ]] || status=1
  printf '%-40s mill %6d ms   swarm %6d ms   %sx (target <= 0.5x) %s\n' "$1" "$2" "$3" "$ratio" "$verdict"
}
echo "== medians of $runs runs"
report "rolling update, 3 replicas" "$(printf '%s\n' "${mill_roll[@]}" | median)" \
  "$(printf '%s\n' "${swarm_roll[@]}" | median)"
report "fresh deploy, 20 replicas" "$(printf '%s\n' "${mill_fresh[@]}" | median)" \
  "$(printf '%s\n' "${swarm_fresh[@]}" | median)"
echo "== a Mill rolling update, event by event:"
sed 's/^/   /' "$tmp/mill-roll-$runs.log"
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
