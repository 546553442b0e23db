// GET /v1/metrics: Prometheus text with the node gauges, accepted by promtool.

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"
#include "support/eventually.h"

namespace mill::testing {
namespace {

TEST(Metrics, NodeGaugesInPrometheusText) {
  TempDir dir;
  std::string token = init_data_dir(dir);
  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  auto res = api(server->address(), "GET", "/v1/metrics", token);
  ASSERT_EQ(res.status, 200) << res.body;
  const std::string* ct = res.header("Content-Type");
  ASSERT_TRUE(ct);
  EXPECT_TRUE(ct->starts_with("text/plain")) << *ct;
  EXPECT_NE(res.body.find("# TYPE mill_node_cpu_available gauge\n"), std::string::npos) << res.body;
  EXPECT_NE(res.body.find("# TYPE mill_node_memory_available_bytes gauge\n"), std::string::npos)
      << res.body;
  double cpu = metric_sample(res.body, "mill_node_cpu_available{node=\"node-1\"}").value_or(-1);
  double mem =
      metric_sample(res.body, "mill_node_memory_available_bytes{node=\"node-1\"}").value_or(-1);
  EXPECT_GE(cpu, 0) << res.body;
  EXPECT_LE(cpu, static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_GT(mem, 0) << res.body;
  // The metrics agree with /v1/nodes (same source: the last heartbeat). Read between
  // two looks at the node that show the same heartbeat, they are equal.
  auto node = [&] {
    auto nodes = api(server->address(), "GET", "/v1/nodes", token);
    boost::system::error_code ec;
    auto v = boost::json::parse(nodes.body, ec);
    return !ec && v.is_array() && !v.as_array().empty() ? v.as_array()[0].as_object()
                                                        : boost::json::object{};
  };
  boost::json::object before, after;
  std::string scrape;
  ASSERT_TRUE(eventually(
      [&] {
        before = node();
        scrape = api(server->address(), "GET", "/v1/metrics", token).body;
        after = node();
        return !before.empty() && before == after;
      },
      std::chrono::seconds(60)))
      << "the node changed between every two looks";
  // (Equal up to how each format prints a double.) available is allocatable (what
  // placement can still give: nothing runs here, so all of it), used is measured.
  auto figure = [&](const char* part, const char* key) {
    return before.at(part).as_object().at(key).to_number<double>();
  };
  EXPECT_EQ(figure("cpu", "allocatable"), figure("cpu", "total"));
  EXPECT_EQ(figure("memory", "allocatable"), figure("memory", "total"));
  const std::string node1 = "{node=\"node-1\"}";
  const std::vector<std::pair<std::string, double>> expected{
      {"mill_node_cpu_available", figure("cpu", "allocatable")},
      {"mill_node_memory_available_bytes", figure("memory", "allocatable")},
      {"mill_node_cpu_used", figure("cpu", "used")},
      {"mill_node_memory_used_bytes", figure("memory", "used")},
      {"mill_node_cpu_capacity", figure("cpu", "total")},
      {"mill_node_memory_capacity_bytes", figure("memory", "total")}};
  for (const auto& [name, value] : expected) {
    EXPECT_NEAR(metric_sample(scrape, name + node1).value_or(-1), value, 1.0) << name << scrape;
  }
  EXPECT_NEAR(metric_sample(scrape, "mill_node_cpu_used" + node1).value_or(-1),
              figure("cpu", "used"), 1e-9)
      << scrape;
  // Unauthenticated scrapes are refused like any other route.
  EXPECT_EQ(api(server->address(), "GET", "/v1/metrics", "").status, 401);
}

TEST(Metrics, PromtoolAcceptsTheExposition) {
  TempDir dir;
  std::string token = init_data_dir(dir);
  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  // Some traffic first, so any request-count families have samples.
  api(server->address(), "GET", "/v1/status", token);
  api(server->address(), "GET", "/v1/nope", token);
  auto res = api(server->address(), "GET", "/v1/metrics", token);
  ASSERT_EQ(res.status, 200) << res.body;
  ASSERT_FALSE(res.body.empty());
  EXPECT_EQ(promtool_problems(res.body), "") << "--- exposition ---\n" << res.body;
}

}  // namespace
}  // namespace mill::testing
