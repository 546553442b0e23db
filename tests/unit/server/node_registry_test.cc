#include "server/node_registry.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "store/memory_store.h"

namespace mill::server {
namespace {

model::Resources resources(double cpu_free, int64_t mem_free) {
  return model::Resources{2, cpu_free, 4096, mem_free};
}

TEST(NodeRegistry, AssignsIdsAndKeepsThem) {
  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry reg(store, clock, std::chrono::seconds(15));
  auto a = reg.register_node({"", "alpha", "10.0.0.1", resources(1, 100)});
  auto b = reg.register_node({"", "beta", "10.0.0.2", resources(1, 100)});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->id, "node-1");
  EXPECT_EQ(b->id, "node-2");
  // Re-registering with its id updates the same node.
  auto again = reg.register_node({"node-1", "alpha2", "10.0.0.9", resources(1, 100)});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, "node-1");
  auto list = *reg.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "alpha2");
  EXPECT_EQ(list[0].address, "10.0.0.9");
}

TEST(NodeRegistry, StatusFollowsHeartbeats) {
  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry reg(store, clock, std::chrono::seconds(15));
  ASSERT_TRUE(reg.register_node({"", "alpha", "10.0.0.1", resources(1.5, 100)}));
  EXPECT_EQ((*reg.list())[0].status, model::NodeStatus::kReady);
  EXPECT_EQ((*reg.list())[0].resources.cpu_available, 1.5);

  clock.advance(std::chrono::seconds(16));
  auto down = (*reg.list())[0];
  EXPECT_EQ(down.status, model::NodeStatus::kDown);
  EXPECT_EQ(down.resources.cpu_available, 0) << "a down node offers nothing";
  EXPECT_EQ(down.resources.cpu_total, 2);

  ASSERT_TRUE(reg.heartbeat("node-1", resources(0.5, 50)));
  auto up = (*reg.list())[0];
  EXPECT_EQ(up.status, model::NodeStatus::kReady);
  EXPECT_EQ(up.resources.cpu_available, 0.5);
  EXPECT_EQ(up.resources.memory_available, 50);
}

// What `mill nodes` shows beside the status: how long since the node was heard, on
// the server's clock, and the Mill version its agent registered with, which is kept
// (a down node still says what it ran) and updated when the agent registers again.
TEST(NodeRegistry, ShowsTimeSinceHeartbeatAndTheAgentsVersion) {
  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry reg(store, clock, std::chrono::seconds(15));
  ASSERT_TRUE(reg.register_node({"", "alpha", "10.0.0.1", resources(1, 1), "0.1.0"}));
  clock.advance(std::chrono::milliseconds(2500));
  auto node = *reg.get("node-1");
  ASSERT_TRUE(node.since_heartbeat.has_value());
  EXPECT_EQ(*node.since_heartbeat, std::chrono::milliseconds(2500));
  EXPECT_EQ(node.version, "0.1.0");
  ASSERT_TRUE(reg.heartbeat("node-1", resources(1, 1)));
  clock.advance(std::chrono::milliseconds(300));
  EXPECT_EQ(*reg.get("node-1")->since_heartbeat, std::chrono::milliseconds(300));

  NodeRegistry restarted(store, clock, std::chrono::seconds(15));
  auto unheard = *restarted.get("node-1");
  EXPECT_FALSE(unheard.since_heartbeat.has_value()) << "not heard since this server started";
  EXPECT_EQ(unheard.version, "0.1.0") << "the version is kept in the store";
  ASSERT_TRUE(restarted.register_node({"node-1", "alpha", "10.0.0.1", resources(1, 1), "0.2.0"}));
  EXPECT_EQ(restarted.get("node-1")->version, "0.2.0");
}

// The drain deadline is kept in whole seconds, rounded up: a task is never killed before
// the deadline it was given (6.5 s from now is not cut to 6).
TEST(NodeRegistry, ADrainDeadlineIsNeverCutShort) {
  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry reg(store, clock, std::chrono::seconds(15));
  ASSERT_TRUE(reg.register_node({"", "alpha", "10.0.0.1", resources(1, 1)}));
  SystemTime asked = clock.now() + std::chrono::milliseconds(6500);
  ASSERT_TRUE(reg.set_drain("node-1", asked, true));
  auto node = *reg.get("node-1");
  ASSERT_TRUE(node.drain_deadline.has_value());
  EXPECT_GE(*node.drain_deadline, asked);
  EXPECT_LT(*node.drain_deadline, asked + std::chrono::seconds(1));
}

// A removed node's id is never given again, not even when it was the highest: the
// removed machine's certificate names that id, and must not act for a newcomer. Its
// /24 is given again.
TEST(NodeRegistry, ARemovedNodesIdIsNeverGivenAgain) {
  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry reg(store, clock, std::chrono::seconds(15));
  ASSERT_TRUE(reg.register_node({"", "alpha", "10.0.0.1", resources(1, 1)}));
  ASSERT_TRUE(reg.register_node({"", "beta", "10.0.0.2", resources(1, 1)}));
  ASSERT_TRUE(reg.remove("node-2"));
  auto next = reg.register_node({"", "gamma", "10.0.0.3", resources(1, 1)});
  ASSERT_TRUE(next);
  EXPECT_EQ(next->id, "node-3");
  auto old = reg.register_node({"node-2", "beta", "10.0.0.2", resources(1, 1)});
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, ErrorCode::kPermissionDenied);
  EXPECT_FALSE(reg.heartbeat("node-2", resources(1, 1))) << "a removed node heartbeats no more";
  // Its /24 goes back to the pool: node-3 gets node-2's, the next one a new one.
  EXPECT_EQ(reg.get("node-1")->subnet, 1);
  EXPECT_EQ(next->subnet, 2);
  auto fourth = reg.register_node({"", "delta", "10.0.0.4", resources(1, 1)});
  ASSERT_TRUE(fourth);
  EXPECT_EQ(fourth->id, "node-4");
  EXPECT_EQ(fourth->subnet, 3);
  // Re-registering keeps a node's /24.
  EXPECT_EQ(reg.register_node({"node-3", "gamma", "10.0.0.3", resources(1, 1)})->subnet, 2);
}

TEST(NodeRegistry, UnknownNodeHeartbeatIsNotFound) {
  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry reg(store, clock, std::chrono::seconds(15));
  auto hb = reg.heartbeat("node-7", resources(1, 1));
  ASSERT_FALSE(hb);
  EXPECT_EQ(hb.error().code, ErrorCode::kNotFound);
}

TEST(NodeRegistry, SurvivesARestartOfTheServer) {
  store::MemoryStore store;
  ManualClock clock;
  {
    NodeRegistry first(store, clock, std::chrono::seconds(15));
    ASSERT_TRUE(first.register_node({"", "alpha", "10.0.0.1", resources(1, 1)}));
  }
  NodeRegistry second(store, clock, std::chrono::seconds(15));
  auto list = *second.list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, "node-1");
  EXPECT_EQ(list[0].status, model::NodeStatus::kDown) << "no heartbeat since restart yet";
  ASSERT_TRUE(second.heartbeat("node-1", resources(1, 1)));
  EXPECT_EQ((*second.list())[0].status, model::NodeStatus::kReady);
}

TEST(NodeRegistry, ConcurrentRegistrationsGetDistinctIds) {
  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry reg(store, clock, std::chrono::seconds(15));
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      ASSERT_TRUE(reg.register_node({"", "n" + std::to_string(i), "10.0.0.1", resources(1, 1)}));
    });
  }
  for (auto& t : threads) t.join();
  auto list = *reg.list();
  ASSERT_EQ(list.size(), 8u);
  std::set<std::string> ids;
  for (const auto& n : list) ids.insert(n.id);
  EXPECT_EQ(ids.size(), 8u);
}

TEST(NodeRegistry, ListsInNumericOrder) {
  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry reg(store, clock, std::chrono::seconds(15));
  for (int i = 0; i < 11; ++i) {
    ASSERT_TRUE(reg.register_node({"", "n", "10.0.0.1", resources(1, 1)}));
  }
  auto list = *reg.list();
  ASSERT_EQ(list.size(), 11u);
  EXPECT_EQ(list[1].id, "node-2");
  EXPECT_EQ(list[10].id, "node-11");
}

TEST(NodeRegistry, RejectsBadRegistrations) {
  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry reg(store, clock, std::chrono::seconds(15));
  EXPECT_FALSE(reg.register_node({"", "", "10.0.0.1", resources(1, 1)}));
  EXPECT_FALSE(reg.register_node({"../x", "a", "10.0.0.1", resources(1, 1)}));
  EXPECT_EQ(*store.revision(), 0);
}

}  // namespace
}  // namespace mill::server
