#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

namespace mill::scheduler {
namespace {

constexpr int64_t kGiB = 1024LL * 1024 * 1024;

NodeView node(std::string id, double cpu, int64_t mem, double cpu_used = 0, int64_t mem_used = 0) {
  NodeView n;
  n.id = std::move(id);
  n.ready = true;
  n.cpu_total = cpu;
  n.memory_total = mem;
  n.cpu_reserved = cpu_used;
  n.memory_reserved = mem_used;
  return n;
}

std::string placed(const std::variant<Placement, Rejection>& r) {
  if (auto* p = std::get_if<Placement>(&r)) return p->node;
  return "rejected: " + std::get<Rejection>(r).message;
}

TEST(Place, PicksTheOnlyNodeThatFits) {
  std::vector<NodeView> nodes{node("node-1", 2, 4 * kGiB, 1.5, 0), node("node-2", 2, 4 * kGiB)};
  EXPECT_EQ(placed(place(nodes, {1, kGiB})), "node-2");
}

TEST(Place, NeverOvercommitsCpuOrMemory) {
  std::vector<NodeView> nodes{node("node-1", 2, 4 * kGiB, 1.5, 0)};
  auto r = place(nodes, {1, kGiB});
  ASSERT_TRUE(std::holds_alternative<Rejection>(r));
  EXPECT_EQ(std::get<Rejection>(r).reason, Rejection::Reason::kNoCapacity);
  EXPECT_NE(std::get<Rejection>(r).message.find("cpu 0.5"), std::string::npos)
      << std::get<Rejection>(r).message;

  nodes[0].cpu_reserved = 0;
  nodes[0].memory_reserved = 3 * kGiB + 1;
  EXPECT_TRUE(std::holds_alternative<Rejection>(place(nodes, {1, kGiB})));
  nodes[0].memory_reserved = 3 * kGiB;
  EXPECT_EQ(placed(place(nodes, {1, kGiB})), "node-1");  // exactly full is fine
}

TEST(Place, SkipsDownAndDrainingNodes) {
  auto down = node("node-1", 8, 8 * kGiB);
  down.ready = false;
  auto draining = node("node-2", 8, 8 * kGiB);
  draining.draining = true;
  auto r = place({down, draining}, {0.1, 1});
  ASSERT_TRUE(std::holds_alternative<Rejection>(r));
  EXPECT_EQ(std::get<Rejection>(r).reason, Rejection::Reason::kNoNodes);
  EXPECT_EQ(placed(place({down, draining, node("node-3", 1, kGiB)}, {0.1, 1})), "node-3");
}

TEST(Place, SpreadsAGroupThenPacksBestFit) {
  auto a = node("node-1", 4, 8 * kGiB, 3, 0);  // fuller: best fit
  auto b = node("node-2", 4, 8 * kGiB);
  EXPECT_EQ(placed(place({a, b}, {0.5, kGiB})), "node-1");
  a.group_allocations = 1;  // but a replica of this group already runs there
  EXPECT_EQ(placed(place({a, b}, {0.5, kGiB})), "node-2");
}

TEST(Place, BreaksTiesBySeedNotByInputOrder) {
  auto a = node("node-1", 1, kGiB);
  auto b = node("node-2", 1, kGiB);
  for (uint64_t seed = 0; seed < 16; ++seed) {
    EXPECT_EQ(placed(place({a, b}, {0.1, 1}, seed)), placed(place({b, a}, {0.1, 1}, seed)));
  }
  EXPECT_EQ(placed(place({a, b}, {0.1, 1})), placed(place({a, b}, {0.1, 1}, 0)));
}

}  // namespace
}  // namespace mill::scheduler
