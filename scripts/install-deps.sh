#!/usr/bin/env bash
# Installs every Debian 12 package that building, running and testing Mill needs.
# Idempotent: apt-get skips what is already installed. Run as root.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache clang-format clang-tidy
  clang libclang-rt-14-dev  # the fuzz preset (libFuzzer)
  # libraries
  libboost1.81-dev libboost-json1.81-dev libtomlplusplus-dev libsqlite3-dev
  libssl-dev libcli11-dev libarchive-dev libzstd-dev
  # containers: OCI runtimes, the init run as PID 1, networking
  runc crun tini iproute2 nftables iptables
  e2fsprogs  # volumes: mkfs.ext4, e2fsck, resize2fs
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev sqlite3 curl wrk prometheus procps
  docker-registry apache2-utils openssl umoci skopeo busybox-static dnsutils
)

# Bench only, opt-in: the `docker run` baseline of bench/spawn.sh. Not needed to build
# or test, and large, so CI does not install it. The package's dockerd is never started
# as a service by Mill's scripts: bench/spawn.sh runs a private one and stops it.
if [[ ${MILL_BENCH_DOCKER:-0} == 1 ]]; then
  packages+=(docker.io)
fi
# Bench only, opt-in: the nginx baseline of bench/proxy.sh. Not by default: on a
# machine with systemd the package starts nginx on port 80, where Mill's proxy goes.
if [[ ${MILL_BENCH_NGINX:-0} == 1 ]]; then
  packages+=(nginx-light)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
