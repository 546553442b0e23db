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
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev sqlite3 curl wrk prometheus procps
  docker-registry apache2-utils openssl umoci skopeo busybox-static dnsutils
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
