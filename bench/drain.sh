#!/usr/bin/env bash
# Drain of a node running 10 service replicas, time to `drained` (issue 14), default
# settings: three Mill nodes in network namespaces of their own on this host
# (tests/integration/cluster.h) and one service of 30 replicas, 10 per node. Each round
# drains a non-server node (POST /v1/nodes/:id/drain) and times drain -> its 10
# replacements healthy elsewhere -> the node `drained`, checking that the service never
# has fewer than 30 healthy replicas meanwhile (surge-first); then undoes the drain and
# redeploys the service under a new name for a fresh 10/10/10. Prints each round, p50
# and max, and the ratio to the node-loss target of 15 s (there is no drain target and
# no fair published drain figure to compare with; see bench/RESULTS.md).
#
#   bench/drain.sh            (root; ROUNDS=3, PER_NODE=10)
#
# Builds the bench binary in build/dev (the preset must have the container tests on,
# as the dev preset does). Everything it makes (namespaces, bridges, mounts, registry)
# is removed at the end, also on failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "needs root (namespaces, containers)" >&2; exit 2; }
build=${BUILD:-$root/build/dev}
nice cmake --build "$build" --target mill_bench_drain mill mill-shim mill_probe >/dev/null
exec "$build/tests/integration/mill_bench_drain" --gtest_brief=1
