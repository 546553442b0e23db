#!/usr/bin/env bash
# Node loss to replacements healthy (issue 14), default settings: three Mill nodes in
# network namespaces of their own on this host (tests/integration/cluster.h), a
# service of 3 replicas (one per node); each round SIGKILLs one node's agent and cuts
# its link, and times node silent -> down -> every replica healthy on the other nodes,
# then brings the node back. Prints each round, p50 and max, and the ratio to Docker
# Swarm's ~15 s (the baseline; Nomad's default heartbeat grace alone is 10 s or more).
#
#   bench/node_loss.sh            (root; ROUNDS=10)
#
# Builds the bench binary in build/dev (the preset must have the container tests on,
# as the dev preset does). Everything it makes (namespaces, bridges, mounts, registry)
# is removed at the end, also on failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "needs root (namespaces, containers)" >&2; exit 2; }
build=${BUILD:-$root/build/dev}
cmake --build "$build" --target mill_bench_node_loss mill mill-shim mill_probe >/dev/null
exec "$build/tests/integration/mill_bench_node_loss" --gtest_brief=1
