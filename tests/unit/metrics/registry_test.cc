#include "metrics/registry.h"

#include <gtest/gtest.h>

namespace mill::metrics {
namespace {

TEST(Registry, RendersGaugesAndCounters) {
  Registry r;
  r.declare("mill_node_memory_available_bytes", Type::kGauge, "Free memory per node.");
  r.declare("mill_tasks_spawned_total", Type::kCounter, "Tasks spawned.");
  r.set("mill_node_memory_available_bytes", {{"node", "node-1"}}, 1073741824);
  r.add("mill_tasks_spawned_total", {{"task", "build"}}, 1);
  r.add("mill_tasks_spawned_total", {{"task", "build"}}, 2);
  r.add("mill_tasks_spawned_total", {{"task", "build"}}, -5);  // counters never go down
  EXPECT_EQ(r.render(),
            "# HELP mill_node_memory_available_bytes Free memory per node.\n"
            "# TYPE mill_node_memory_available_bytes gauge\n"
            "mill_node_memory_available_bytes{node=\"node-1\"} 1073741824\n"
            "# HELP mill_tasks_spawned_total Tasks spawned.\n"
            "# TYPE mill_tasks_spawned_total counter\n"
            "mill_tasks_spawned_total{task=\"build\"} 3\n");
}

TEST(Registry, HistogramBucketsAreCumulative) {
  Registry r;
  r.declare("lat_seconds", Type::kHistogram, "Latency.", {0.1, 1});
  r.observe("lat_seconds", {{"route", "a"}}, 0.05);
  r.observe("lat_seconds", {{"route", "a"}}, 0.5);
  r.observe("lat_seconds", {{"route", "a"}}, 3);
  std::string out = r.render();
  EXPECT_NE(out.find("lat_seconds_bucket{route=\"a\",le=\"0.1\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("lat_seconds_bucket{route=\"a\",le=\"1\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("lat_seconds_bucket{route=\"a\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("lat_seconds_sum{route=\"a\"} 3.55\n"), std::string::npos) << out;
  EXPECT_NE(out.find("lat_seconds_count{route=\"a\"} 3\n"), std::string::npos);
}

TEST(Registry, EscapesLabelValues) {
  Registry r;
  r.declare("g", Type::kGauge, "help with \\ and\nnewline");
  r.set("g", {{"name", "a\"b\\c\nd"}}, 1);
  std::string out = r.render();
  EXPECT_NE(out.find("g{name=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("# HELP g help with \\\\ and\\nnewline\n"), std::string::npos) << out;
}

TEST(Registry, CollectorsRefreshOnRender) {
  Registry r;
  r.declare("g", Type::kGauge, "A gauge.");
  int calls = 0;
  r.add_collector([&](Registry& reg) { reg.set("g", {}, ++calls); });
  EXPECT_NE(r.render().find("g 1\n"), std::string::npos);
  EXPECT_NE(r.render().find("g 2\n"), std::string::npos);
}

TEST(Registry, RemoveDropsSeriesAndWrongTypeIsIgnored) {
  Registry r;
  r.declare("g", Type::kGauge, "A gauge.");
  r.set("g", {{"node", "a"}}, 1);
  r.add("g", {{"node", "b"}}, 1);  // wrong type: dropped
  r.set("undeclared", {}, 1);      // undeclared: dropped
  r.remove("g", {{"node", "a"}});
  EXPECT_EQ(r.render(), "# HELP g A gauge.\n# TYPE g gauge\n");
}

}  // namespace
}  // namespace mill::metrics
