// Benchmark (issue 14): drain of a node running 10 service replicas, time to `drained`,
// with default settings, on the several-machines harness (cluster.h). Not a ctest test:
// bench/drain.sh runs it. Three nodes and one service of 30 replicas, which the
// scheduler spreads 10 per node; each round drains a node that is not the server's
// (POST /v1/nodes/:id/drain) and times how long until its 10 replacements are healthy
// on the other two nodes and until GET /v1/nodes shows it `drained`, watching all the
// while that the service never has fewer healthy replicas than its 30 (surge-first).
// Between rounds the drain is undone (DELETE /v1/nodes/:id/drain) and the next round
// deploys the service under a new name, which places a fresh 10/10/10 and stops the
// previous one. Prints each round, then p50 and max of drain -> drained against the
// node-loss target of 15 s (issue 14 sets no drain target, and neither Nomad nor Swarm
// publishes a measured drain time). For scale only, also against a figure derived from
// Nomad's documented defaults, not measured: its `migrate` block (max_parallel = 1,
// min_healthy_time = 10s) moves one allocation at a time and waits until each
// replacement has been healthy for 10 s, so 10 allocations of one group take at least
// 10 x 10 s = 100 s (Nomad also stops each old allocation before its replacement runs:
// not surge-first).
//   ROUNDS=3 (env); PER_NODE=10 (replicas on the drained node; the service has 3x)

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "cluster.h"
#include "support/eventually.h"
#include "support/probe_image.h"
#include "support/test_registry.h"

namespace mill::testing {
namespace {

using namespace std::chrono_literals;
using Ms = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) {
  return static_cast<double>(std::chrono::duration_cast<Ms>(d).count()) / 1000;
}

// Like Cluster::service_config, with a smaller reservation so that 30 replicas plus a
// drain's 10 surge replacements fit three nodes of this 2-core host with room to spare.
std::string config(const Cluster& cluster, const std::string& name, int replicas) {
  return "[registry.\"" + cluster.registry_host() + "\"]\ninsecure = true\n\n[service." + name +
         "]\nimage = \"" + cluster.registry_host() +
         "/probe:v1\"\nreplicas = " + std::to_string(replicas) +
         "\nport = 8080\ncpu = 0.05\nmemory = \"16M\"\n";
}

// Node id -> live allocations on it, from GET /v1/nodes.
std::map<std::string, int> allocations_per_node(const Cluster& cluster) {
  std::map<std::string, int> out;
  auto res = cluster.call("GET", "/v1/nodes");
  if (res.status != 200) return out;
  boost::system::error_code ec;
  auto v = boost::json::parse(res.body, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& n : v.as_array()) {
    out[std::string(n.at("id").as_string())] =
        static_cast<int>(n.at("allocations").to_number<int64_t>());
  }
  return out;
}

TEST(DrainBench, NodeWithTenReplicasToDrained) {
  ASSERT_EQ(::geteuid(), 0) << "needs root";
  const int rounds = std::getenv("ROUNDS") ? std::atoi(std::getenv("ROUNDS")) : 3;
  const int per_node = std::getenv("PER_NODE") ? std::atoi(std::getenv("PER_NODE")) : 10;
  ASSERT_GT(rounds, 0);
  ASSERT_GT(per_node, 0);
  TestRegistry registry;
  ASSERT_TRUE(registry.ok());
  ASSERT_TRUE(registry.push("probe", "v1",
                            probe_image(MILL_PROBE_PATH, {"VERSION=1"}, LayerCompression::kZstd,
                                        /*probe_as_cmd=*/true)));
  ClusterOptions options;
  options.nodes = 3;
  Cluster cluster(options);
  ASSERT_TRUE(cluster.ok());
  ASSERT_TRUE(cluster.serve_registry(registry));
  const int replicas = per_node * cluster.size();

  std::vector<double> to_drained;
  std::printf("service of %d replicas on %d nodes, %d per node; each round drains one node\n\n",
              replicas, cluster.size(), per_node);
  std::printf("%-6s %-8s %8s %22s %20s %14s %12s\n", "round", "node", "on it", "drain->replaced",
              "replaced->drained", "drain->drained", "min healthy");
  for (int r = 0; r < rounds; ++r) {
    const std::string service = "web" + std::to_string(r + 1);
    const int victim = 1 + r % (cluster.size() - 1);  // never the server's node
    const std::string id = cluster.node_id(victim);
    // A fresh service spreads evenly; the deploy also stops the previous round's.
    auto deployed = cluster.call("POST", "/v1/deploy?file=bench.toml",
                                 config(cluster, service, replicas), "text/plain");
    ASSERT_NE(deployed.body.find("event: done"), std::string::npos) << deployed.body;
    auto healthy = [&] {
      int n = 0;
      for (const auto& [alloc, placed] : cluster.allocations_of(service)) {
        if (placed.status == "healthy") ++n;
      }
      return n;
    };
    ASSERT_TRUE(eventually([&] { return healthy() == replicas; }, 120s)) << "round " << r;
    // Only this service left anywhere, per_node of it on the victim.
    ASSERT_TRUE(eventually(
        [&] {
          auto per = allocations_per_node(cluster);
          if (per.size() != static_cast<size_t>(cluster.size())) return false;
          for (const auto& [node, n] : per) {
            if (n != per_node) return false;
          }
          return true;
        },
        60s))
        << "round " << r << ": not " << per_node << " allocations on every node";

    auto t0 = Clock::now();
    auto drain = cluster.call("POST", "/v1/nodes/" + id + "/drain", "{}", "application/json");
    ASSERT_EQ(drain.status, 200) << drain.body;
    int min_healthy = replicas;
    Clock::time_point replaced{};
    Clock::time_point drained{};
    const auto limit = t0 + 180s;
    while (Clock::now() < limit) {
      int healthy = 0;
      int healthy_elsewhere = 0;
      for (const auto& [alloc, placed] : cluster.allocations_of(service)) {
        if (placed.status != "healthy") continue;
        ++healthy;
        if (placed.node != id) ++healthy_elsewhere;
      }
      min_healthy = std::min(min_healthy, healthy);
      if (replaced == Clock::time_point{} && healthy_elsewhere == replicas) replaced = Clock::now();
      if (cluster.node_statuses()[id] == "drained") {
        drained = Clock::now();
        if (replaced == Clock::time_point{}) replaced = drained;
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_NE(drained, Clock::time_point{})
        << "round " << r << ": " << id << " not drained in 180 s";
    to_drained.push_back(seconds(drained - t0));
    std::printf("%-6d %-8s %8d %21.1fs %19.1fs %13.1fs %8d/%d\n", r + 1, id.c_str(), per_node,
                seconds(replaced - t0), seconds(drained - replaced), seconds(drained - t0),
                min_healthy, replicas);
    std::fflush(stdout);
    EXPECT_GE(min_healthy, replicas) << "round " << r << ": fewer healthy replicas mid-drain";
    auto undo = cluster.call("DELETE", "/v1/nodes/" + id + "/drain");
    ASSERT_EQ(undo.status, 200) << undo.body;
    ASSERT_TRUE(eventually([&] { return cluster.node_statuses()[id] == "ready"; }, 30s));
  }
  std::sort(to_drained.begin(), to_drained.end());
  const double p50 = to_drained[to_drained.size() / 2];
  const double max = to_drained.back();
  constexpr double kTarget = 15.0;
  const double nomad = 10.0 * per_node;
  std::printf(
      "\ndrain of a node running %d replicas -> drained, %d rounds: p50 %.1f s, max %.1f s\n",
      per_node, rounds, p50, max);
  std::printf(
      "vs the node-loss target of %.0f s (issue 14 sets none for drains; no published Nomad or "
      "Swarm drain time exists): p50 %.2fx, max %.2fx\n",
      kTarget, p50 / kTarget, max / kTarget);
  std::printf(
      "for scale, vs >= %.0f s derived from Nomad's default migrate block (one at a time, each "
      "healthy 10 s; not measured): p50 %.2fx, max %.2fx\n",
      nomad, p50 / nomad, max / nomad);
}

}  // namespace
}  // namespace mill::testing
