// Several machines, simulated on one host (cluster.h): `mill server` on one, `mill
// agent --join` on the others, each in a network namespace of its own. Needs root.

#include "cluster.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <map>
#include <set>

#include "support/eventually.h"
#include "support/probe_image.h"
#include "support/require.h"
#include "support/test_registry.h"

namespace mill::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

class ClusterTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }

  // The registry starts with the first test that needs it, from SetUp (a failure in
  // SetUpTestSuite would make gtest skip the suite, and a skip is not a failure).
  static void start_registry() {
    if (registry_) return;
    auto registry = std::make_unique<TestRegistry>();
    ASSERT_TRUE(registry->ok());
    ASSERT_TRUE(registry->push("probe", "v1",
                               probe_image(MILL_PROBE_PATH, {"VERSION=1"}, LayerCompression::kZstd,
                                           /*probe_as_cmd=*/true)));
    registry_ = registry.release();
  }

  void start(ClusterOptions options = {}) {
    MILL_REQUIRE(::geteuid() == 0, "several nodes on one host need root (namespaces, runc)");
    ASSERT_NO_FATAL_FAILURE(start_registry());
    cluster_ = std::make_unique<Cluster>(options);
    ASSERT_TRUE(cluster_->ok());
    ASSERT_TRUE(cluster_->serve_registry(*registry_));
  }

  json::value get_json(const std::string& target) {
    auto res = cluster_->call("GET", target);
    EXPECT_EQ(res.status, 200) << target << ": " << res.body;
    boost::system::error_code ec;
    auto v = json::parse(res.body, ec);
    return ec ? json::value() : v;
  }

  // The nodes' ids by status, from GET /v1/nodes.
  std::map<std::string, std::string> node_status() {
    std::map<std::string, std::string> out;
    auto v = get_json("/v1/nodes");
    if (!v.is_array()) return out;
    for (const auto& n : v.as_array()) {
      out[std::string(n.at("id").as_string())] = std::string(n.at("status").as_string());
    }
    return out;
  }

  std::string config(int replicas) {
    return "[registry.\"" + cluster_->registry_host() + "\"]\ninsecure = true\n\n[service.web]\n" +
           "image = \"" + cluster_->registry_host() +
           "/probe:v1\"\nreplicas = " + std::to_string(replicas) +
           "\nport = 8080\ncpu = 0.1\nmemory = \"32M\"\n";
  }

  // Deploys and returns the stream's last event's name and data.
  std::string deploy(const std::string& text) {
    auto res = cluster_->call("POST", "/v1/deploy?file=cluster.toml", text, "text/plain");
    EXPECT_EQ(res.status, 200) << res.body;
    return res.body;
  }

  // web's allocations: id -> node.
  std::map<std::string, std::string> web_allocations() {
    std::map<std::string, std::string> out;
    auto v = get_json("/v1/services");
    if (!v.is_array()) return out;
    for (const auto& s : v.as_array()) {
      if (s.at("name") != "web") continue;
      for (const auto& a : s.at("allocations").as_array()) {
        out[std::string(a.at("id").as_string())] = std::string(a.at("node").as_string());
      }
    }
    return out;
  }

  static TestRegistry* registry_;
  std::unique_ptr<Cluster> cluster_;
};

TestRegistry* ClusterTest::registry_ = nullptr;

TEST_F(ClusterTest, EveryNodeJoinsAndAServicesReplicasSpreadOnePerNode) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 4, .start = 3}));
  auto listed = get_json("/v1/nodes");
  ASSERT_TRUE(listed.is_array());
  ASSERT_EQ(listed.as_array().size(), 3u) << json::serialize(listed);
  std::set<std::string> addresses;
  for (const auto& n : listed.as_array()) {
    EXPECT_EQ(n.at("status").as_string(), "ready");
    addresses.insert(std::string(n.at("address").as_string()));
  }
  EXPECT_EQ(addresses, (std::set<std::string>{cluster_->node_ip(0), cluster_->node_ip(1),
                                              cluster_->node_ip(2)}))
      << "each node registers the address it advertises";

  std::string stream = deploy(config(3));
  EXPECT_NE(stream.find("event: done"), std::string::npos) << stream << cluster_->log(0);
  auto allocs = web_allocations();
  ASSERT_EQ(allocs.size(), 3u) << json::serialize(get_json("/v1/services"));
  std::set<std::string> used;
  for (const auto& [id, node] : allocs) used.insert(node);
  EXPECT_EQ(used, (std::set<std::string>{cluster_->node_id(0), cluster_->node_id(1),
                                         cluster_->node_id(2)}))
      << "three replicas, one per node";

  // Logs come from the node that keeps them, also a remote agent's.
  for (const auto& [id, node] : allocs) {
    auto log = cluster_->call("GET", "/v1/logs/" + id + "?tail=5");
    EXPECT_EQ(log.status, 200) << node << ": " << log.body;
    EXPECT_NE(log.body.find("data: "), std::string::npos) << node << ": " << log.body;
  }

  // A fourth machine joining changes nothing that runs.
  ASSERT_TRUE(cluster_->join(3));
  EXPECT_TRUE(eventually([&] { return node_status().size() == 4; }));
  EXPECT_EQ(web_allocations(), allocs);
  EXPECT_EQ(node_status().at(cluster_->node_id(3)), "ready");
}

TEST_F(ClusterTest, AWrongJoinTokenRegistersNothing) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 2, .start = 1}));
  auto r =
      run_mill_in(cluster_->netns(1),
                  {"agent", "--join", "http://" + cluster_->api(), "--token", "not-the-token",
                   "--data-dir", cluster_->data_dir(1), "--bridge", cluster_->bridge(1),
                   "--advertise", cluster_->node_ip(1), "--proxy-http", "", "--proxy-https", ""});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("401"), std::string::npos) << r.err;
  EXPECT_EQ(node_status().size(), 1u) << "nothing registered";
  EXPECT_FALSE(std::filesystem::exists(cluster_->data_dir(1) + "/node.id"));
}

}  // namespace
}  // namespace mill::testing
