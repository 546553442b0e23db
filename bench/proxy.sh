#!/usr/bin/env bash
# Ingress proxy benchmark of issue 5: wrk through Mill's proxy and, in the same run,
# through nginx configured as a reverse proxy to the same backend with the same
# keep-alive settings (HTTP/1.1 to the upstream, a pool of idle connections), and
# straight to the backend. The backend is a second nginx answering a 6-byte body.
# Mill's proxy runs as bench/proxy_serve.cc: the proxy::Proxy the agent runs, with
# one route to the backend.
#
#   bench/proxy.sh          (build first, or BUILD=1; needs nginx: MILL_BENCH_NGINX=1
#                           scripts/install-deps.sh)
#
# Env: BUILD=1 builds mill_proxy_serve (release preset); THREADS=1 (Mill's event
#      loops = nginx's worker_processes); CONNS=32 wrk connections; DURATION=10 s per
#      run; ROUNDS=3 (direct, nginx, Mill in turn; medians reported).
# Prints requests/s, p50 and p99 of each with $CONNS connections (saturated) and with
# one (rows ending in 1: one request at a time, no queueing), the ratios against nginx
# (saturated), what the proxy adds to the direct p50 (one connection), and the
# proxies' RSS under load. Everything runs on
# 127.0.0.1 from a temp dir that a trap removes. Exit status: 0 all targets met, 1 a
# target missed, 2 the benchmark could not run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build/release
if [[ ${BUILD:-0} == 1 ]]; then
  [[ -f $build/build.ninja ]] || nice cmake --preset release >/dev/null
  nice cmake --build --preset release -j2 --target mill_proxy_serve
fi
serve=$build/bench/mill_proxy_serve
[[ -x $serve ]] || { echo "not built: $serve (BUILD=1)" >&2; exit 2; }
command -v nginx >/dev/null || { echo "nginx missing: MILL_BENCH_NGINX=1 scripts/install-deps.sh" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk missing: scripts/install-deps.sh" >&2; exit 2; }
threads=${THREADS:-1} conns=${CONNS:-32} duration=${DURATION:-10} rounds=${ROUNDS:-3}

tmp=$(mktemp -d /tmp/mill-proxybench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend=$(free_port) nginx_port=$(free_port)

common="daemon off; error_log $tmp/error.log warn; events { worker_connections 4096; }"
cat > "$tmp/backend.conf" <<CONF
worker_processes 1; pid $tmp/backend.pid; $common
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  server { listen 127.0.0.1:$backend; location / { return 200 "hello\n"; } }
}
CONF
cat > "$tmp/proxy.conf" <<CONF
worker_processes $threads; pid $tmp/proxy.pid; $common
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 60s;
  upstream backend { server 127.0.0.1:$backend; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_buffering off;
    }
  }
}
CONF
for c in backend proxy; do
  mkdir -p "$tmp/$c"
  nginx -p "$tmp/$c" -c "$tmp/$c.conf" -e "$tmp/error.log" & pids+=($!)
done
"$serve" --upstream "127.0.0.1:$backend" --threads "$threads" > "$tmp/mill.out" & pids+=($!)
mill_pid=$!
for _ in $(seq 50); do grep -q '^ready' "$tmp/mill.out" 2>/dev/null && break; sleep 0.1; done
mill_port=$(awk '/^ready/ {print $2}' "$tmp/mill.out")
[[ -n $mill_port ]] || { echo "Mill's proxy did not start" >&2; exit 2; }
sleep 0.5
for p in $backend $nginx_port $mill_port; do
  curl -sf "http://127.0.0.1:$p/" >/dev/null || { echo "nothing answers on :$p" >&2; cat "$tmp/error.log" >&2; exit 2; }
done

# wrk's latency figures in microseconds.
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000}}'; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
nginx_worker() { pgrep -P "$(cat "$tmp/proxy.pid")" | head -1; }

declare -A rps p50 p99 rss
run() {  # name port pid-for-rss [connections]
  local out sampler
  (sleep $((duration / 2)); [[ -z $3 ]] || rss_kb "$3" > "$tmp/rss.$1") &
  sampler=$!
  out=$(wrk -t1 -c"${4:-$conns}" -d"${duration}s" --latency "http://127.0.0.1:$2/")
  wait "$sampler" || true
  rps[$1]+="$(awk '/^Requests\/sec/ {print $2}' <<< "$out") "
  p50[$1]+="$(awk '$1=="50%" {print $2}' <<< "$out" | to_us) "
  p99[$1]+="$(awk '$1=="99%" {print $2}' <<< "$out" | to_us) "
  [[ -f $tmp/rss.$1 ]] && rss[$1]+="$(cat "$tmp/rss.$1") "
  if grep -q 'Non-2xx\|Socket errors' <<< "$out"; then echo "$1: errors: $(grep 'Non-2xx\|Socket errors' <<< "$out")" >&2; fi
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "proxy benchmark: wrk -t1 -c$conns -d${duration}s, $rounds rounds, $threads proxy thread(s)/worker(s), $(nproc) cores"
# Saturated (wrk's $conns connections): throughput and tail latency. One connection,
# one request at a time: what the proxy adds to a request, without queueing.
for r in $(seq "$rounds"); do
  run direct "$backend" ""
  run nginx "$nginx_port" "$(nginx_worker)"
  run mill "$mill_port" "$mill_pid"
  run direct1 "$backend" "" 1
  run nginx1 "$nginx_port" "" 1
  run mill1 "$mill_port" "" 1
done

printf '%-8s %12s %10s %10s %10s\n' "" "requests/s" "p50 µs" "p99 µs" "RSS kB"
for n in direct nginx mill direct1 nginx1 mill1; do
  printf '%-8s %12.0f %10.0f %10.0f %10s\n' "$n" "$(median <<< "${rps[$n]}")" \
    "$(median <<< "${p50[$n]}")" "$(median <<< "${p99[$n]}")" "$(median <<< "${rss[$n]:-0}")"
done
status=0
check() {  # label value op target
  if awk -v v="$2" -v t="$4" "BEGIN {exit !(v $3 t)}"; then
    printf '%-44s %10.3f  (target %s %s) PASS\n' "$1" "$2" "$3" "$4"
  else
    printf '%-44s %10.3f  (target %s %s) FAIL\n' "$1" "$2" "$3" "$4"; status=1
  fi
}
m_rps=$(median <<< "${rps[mill]}") n_rps=$(median <<< "${rps[nginx]}")
m99=$(median <<< "${p99[mill]}") n99=$(median <<< "${p99[nginx]}")
m50=$(median <<< "${p50[mill1]}") d50=$(median <<< "${p50[direct1]}")
check "requests/s, Mill / nginx" "$(awk -v a="$m_rps" -v b="$n_rps" 'BEGIN {print a/b}')" ">=" 0.9
check "p99, Mill / nginx" "$(awk -v a="$m99" -v b="$n99" 'BEGIN {print a/b}')" "<=" 1.2
check "p50 added to direct (1 connection), µs" "$(awk -v a="$m50" -v b="$d50" 'BEGIN {print a-b}')" "<" 100
exit $status
