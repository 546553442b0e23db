// The leader's task table over a real in-memory store: placement, addresses,
// capacity, the agent's reports and the blocking queries that wait on them.

#include "server/tasks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <future>
#include <memory>

#include "store/memory_store.h"
#include "support/forwarding_store.h"

namespace mill::server {
namespace {

using namespace std::chrono_literals;
constexpr int64_t kMiB = 1024 * 1024;

class TasksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model::RegisterRequest reg{"", "host-a", "192.0.2.1", {2, 2, 1024 * kMiB, 1024 * kMiB}};
    ASSERT_TRUE(nodes.register_node(reg).has_value());
    model::Config config;
    model::TaskTemplate t;
    t.name = "agent";
    t.image = "127.0.0.1:5000/probe:v1";
    t.cpu = 0.5;
    t.memory = 256 * kMiB;
    t.port = 8080;
    t.env = {{"MODE", "template"}};
    config.tasks["agent"] = t;
    tasks.set_config(config);
    ASSERT_TRUE(tasks.start().has_value());
  }
  void TearDown() override { tasks.stop(); }

  SpawnRequest inline_task(double cpu = 0.25, int64_t memory = 64 * kMiB) {
    SpawnRequest r;
    r.spec.image = "127.0.0.1:5000/probe:v1";
    r.spec.cpu = cpu;
    r.spec.memory = memory;
    return r;
  }

  model::AllocState state(const std::string& id, model::AllocStatus s) {
    model::AllocState st;
    st.id = id;
    st.status = s;
    st.started_at = clock.now();
    if (model::is_terminal(s)) st.finished_at = clock.now();
    return st;
  }

  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry nodes{store, clock, 15s};
  metrics::Registry metrics;
  TaskManager tasks{store, nodes, clock, metrics, TaskOptions{}};
};

TEST_F(TasksTest, TemplateSpawnGetsIdAddressAndTemplateSettings) {
  SpawnRequest r;
  r.template_name = "agent";
  r.spec.env = {{"SESSION", "abc"}};
  auto v = tasks.spawn(r);
  ASSERT_TRUE(v.has_value()) << v.error().message;
  EXPECT_TRUE(v->alloc->id.starts_with("agent-")) << v->alloc->id;
  EXPECT_EQ(v->alloc->id.size(), std::string("agent-x7k2").size());
  EXPECT_EQ(v->alloc->node, "node-1");
  EXPECT_EQ(v->alloc->ip, "10.99.1.2");  // node-1's /24; .1 is the bridge
  EXPECT_EQ(v->alloc->spec.env.at("MODE"), "template");
  EXPECT_EQ(v->alloc->spec.env.at("SESSION"), "abc");
  EXPECT_EQ(v->alloc->spec.port, 8080);
  // Durable: the record is in the store, and so is the address.
  auto stored = store.get(model::alloc_key(v->alloc->id));
  ASSERT_TRUE(stored.has_value() && stored->has_value());
  auto ipam = store.list("/ipam/node-1/");
  ASSERT_TRUE(ipam.has_value());
  ASSERT_EQ(ipam->kvs.size(), 1u);
  EXPECT_EQ(ipam->kvs[0].value, v->alloc->id);
}

TEST_F(TasksTest, UnknownTemplateAndBadSpecsAreRejected) {
  SpawnRequest r;
  r.template_name = "nope";
  EXPECT_EQ(tasks.spawn(r).error().code, ErrorCode::kNotFound);
  auto bad = inline_task();
  bad.spec.memory = 1;
  EXPECT_EQ(tasks.spawn(bad).error().code, ErrorCode::kInvalidArgument);
  bad = inline_task();
  bad.spec.env = {{"1BAD", "x"}};
  EXPECT_EQ(tasks.spawn(bad).error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(tasks.list(true).empty());
}

TEST_F(TasksTest, NeverOvercommitsTheNode) {
  ASSERT_TRUE(tasks.spawn(inline_task(1.5)).has_value());
  auto over = tasks.spawn(inline_task(1.0));
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, ErrorCode::kConflict);
  EXPECT_NE(over.error().message.find("cpu 1"), std::string::npos) << over.error().message;
  auto mem = tasks.spawn(inline_task(0.1, 2048 * kMiB));
  ASSERT_FALSE(mem.has_value());
  EXPECT_EQ(mem.error().code, ErrorCode::kConflict);
}

TEST_F(TasksTest, EndedTasksReleaseCapacityAndAddress) {
  auto a = tasks.spawn(inline_task(1.5));
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(tasks.report("node-1", {state(a->alloc->id, model::AllocStatus::kRunning)}));
  ASSERT_FALSE(tasks.spawn(inline_task(1.0)).has_value());
  auto done = state(a->alloc->id, model::AllocStatus::kExited);
  done.exit_code = 0;
  ASSERT_TRUE(tasks.report("node-1", {done}));
  auto b = tasks.spawn(inline_task(1.0));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->alloc->ip, a->alloc->ip);  // the address came back to the pool
  EXPECT_EQ(tasks.list(false).size(), 1u);
  EXPECT_EQ(tasks.list(true).size(), 2u);
}

// "Free" has two meanings, named apart (issue 15 item 7): allocatable is the node's
// capacity minus what its live allocations reserve, which is exactly what placement
// counts; used is what the agent measured. A busy machine (nothing idle) still has
// its reservations' room, and a node whose reservations fill it takes nothing more
// however idle it is.
TEST_F(TasksTest, AllocatableIsWhatPlacementCountsAndUsedIsMeasured) {
  auto listed = [&] {
    auto list = nodes.list();
    EXPECT_TRUE(list.has_value());
    tasks.add_load(*list);
    return list->at(0);
  };
  model::Node idle = listed();
  EXPECT_EQ(idle.load, model::NodeLoad{});
  EXPECT_DOUBLE_EQ(model::allocatable_cpu(idle), 2);
  EXPECT_EQ(model::allocatable_memory(idle), 1024 * kMiB);

  auto a = tasks.spawn(inline_task(0.5, 256 * kMiB));
  auto b = tasks.spawn(inline_task(0.25, 64 * kMiB));
  auto ended = tasks.spawn(inline_task(0.5, 64 * kMiB));
  ASSERT_TRUE(a && b && ended);
  ASSERT_TRUE(tasks.report("node-1", {state(a->alloc->id, model::AllocStatus::kRunning)}));
  auto done = state(ended->alloc->id, model::AllocStatus::kExited);
  done.exit_code = 0;
  ASSERT_TRUE(tasks.report("node-1", {done}));
  // The machine is busy with something else: nothing idle, little memory free.
  ASSERT_TRUE(nodes.heartbeat("node-1", {2, 0, 1024 * kMiB, 100 * kMiB}));

  model::Node n = listed();
  EXPECT_EQ(n.load.allocations, 2) << "the ended task counts no more";
  EXPECT_DOUBLE_EQ(n.load.cpu, 0.75);
  EXPECT_EQ(n.load.memory, 320 * kMiB);
  EXPECT_DOUBLE_EQ(model::allocatable_cpu(n), 1.25);
  EXPECT_EQ(model::allocatable_memory(n), 704 * kMiB);
  EXPECT_DOUBLE_EQ(model::used_cpu(n), 2);
  EXPECT_EQ(model::used_memory(n), 924 * kMiB);

  // Placement agrees to the last core and byte: just over is refused, saying so, and
  // exactly the allocatable fits however busy the machine is.
  auto over = tasks.spawn(inline_task(1.26, 64 * kMiB));
  ASSERT_FALSE(over.has_value());
  EXPECT_NE(over.error().message.find("cpu 1.25"), std::string::npos) << over.error().message;
  ASSERT_FALSE(tasks.spawn(inline_task(0.1, 704 * kMiB + 1)).has_value());
  ASSERT_TRUE(tasks.spawn(inline_task(1.25, 704 * kMiB)).has_value());
  n = listed();
  EXPECT_DOUBLE_EQ(model::allocatable_cpu(n), 0);
  EXPECT_EQ(model::allocatable_memory(n), 0);
  EXPECT_FALSE(tasks.spawn(inline_task(0.01, 16 * kMiB)).has_value());

  // A draining node takes nothing: it offers nothing, whatever its reservations.
  ASSERT_TRUE(tasks.kill(a->alloc->id).has_value());
  ASSERT_TRUE(nodes.set_drain("node-1", std::nullopt, true).has_value());
  n = listed();
  EXPECT_DOUBLE_EQ(model::allocatable_cpu(n), 0);
  EXPECT_EQ(model::allocatable_memory(n), 0);
  EXPECT_DOUBLE_EQ(model::used_cpu(n), 2) << "still measured while draining";
}

TEST_F(TasksTest, ReportsFromAnotherNodeOrAfterTheEndAreIgnored) {
  auto a = tasks.spawn(inline_task());
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(tasks.report("node-9", {state(a->alloc->id, model::AllocStatus::kRunning)}));
  EXPECT_EQ(tasks.get(a->alloc->id)->status(), model::AllocStatus::kPending);
  ASSERT_TRUE(tasks.report("node-1", {state(a->alloc->id, model::AllocStatus::kKilled)}));
  ASSERT_TRUE(tasks.report("node-1", {state(a->alloc->id, model::AllocStatus::kRunning)}));
  EXPECT_EQ(tasks.get(a->alloc->id)->status(), model::AllocStatus::kKilled);
}

// A callback's one result, safe to deliver after the test has moved on or given up
// (the callback owns a share of the promise) and delivered at most once.
template <typename T>
struct Caught {
  std::shared_ptr<std::promise<T>> promise = std::make_shared<std::promise<T>>();
  std::future<T> future = promise->get_future();
  std::function<void(T)> callback() {
    auto once = std::make_shared<std::atomic<bool>>(false);
    return [p = promise, once](T v) {
      if (!once->exchange(true)) p->set_value(std::move(v));
    };
  }
};

TEST_F(TasksTest, WhenStartedFiresOnTheRunningReport) {
  auto a = tasks.spawn(inline_task());
  ASSERT_TRUE(a.has_value());
  Caught<Result<TaskView>> got;
  tasks.when_started(a->alloc->id, std::chrono::steady_clock::now() + 10s, got.callback());
  auto& future = got.future;
  EXPECT_EQ(future.wait_for(100ms), std::future_status::timeout);
  ASSERT_TRUE(tasks.report("node-1", {state(a->alloc->id, model::AllocStatus::kPulling)}));
  EXPECT_EQ(future.wait_for(300ms), std::future_status::timeout);
  ASSERT_TRUE(tasks.report("node-1", {state(a->alloc->id, model::AllocStatus::kRunning)}));
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  auto v = future.get();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->status(), model::AllocStatus::kRunning);
}

TEST_F(TasksTest, WhenStartedTimesOut) {
  auto a = tasks.spawn(inline_task());
  ASSERT_TRUE(a.has_value());
  Caught<Result<TaskView>> got;
  tasks.when_started(a->alloc->id, std::chrono::steady_clock::now() + 300ms, got.callback());
  auto& future = got.future;
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  auto v = future.get();
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code, ErrorCode::kTimeout);
}

TEST_F(TasksTest, BlockingQueryWakesOnANewAllocation) {
  auto before = tasks.allocations_for("node-1");
  EXPECT_TRUE(before.allocations.empty());
  Caught<bool> woke;
  tasks.wait_allocations(before.index, std::chrono::steady_clock::now() + 10s, woke.callback());
  auto& future = woke.future;
  EXPECT_EQ(future.wait_for(100ms), std::future_status::timeout);
  auto a = tasks.spawn(inline_task());
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(future.get());
  auto after = tasks.allocations_for("node-1");
  ASSERT_EQ(after.allocations.size(), 1u);
  EXPECT_GT(after.index, before.index);
  EXPECT_TRUE(tasks.allocations_for("node-2").allocations.empty());
}

TEST_F(TasksTest, KillAsksTheNodeToStop) {
  auto a = tasks.spawn(inline_task());
  ASSERT_TRUE(a.has_value());
  auto k = tasks.kill(a->alloc->id);
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->alloc->desired, model::DesiredState::kStop);
  EXPECT_EQ(tasks.allocations_for("node-1").allocations[0].alloc->desired,
            model::DesiredState::kStop);
  EXPECT_EQ(tasks.kill("task-none").error().code, ErrorCode::kNotFound);
}

TEST_F(TasksTest, SweepForgetsTasksAfterRetentionAndSurvivesRestart) {
  auto a = tasks.spawn(inline_task());
  auto b = tasks.spawn(inline_task());
  ASSERT_TRUE(a.has_value() && b.has_value());
  ASSERT_TRUE(tasks.report("node-1", {state(a->alloc->id, model::AllocStatus::kExited)}));
  clock.advance(std::chrono::minutes(59));
  EXPECT_EQ(*tasks.sweep(), 0);
  clock.advance(std::chrono::minutes(2));
  EXPECT_EQ(*tasks.sweep(), 1);
  EXPECT_EQ(tasks.get(a->alloc->id).error().code, ErrorCode::kNotFound);

  // A new leader over the same store sees what is left.
  TaskManager again{store, nodes, clock, metrics, TaskOptions{}};
  ASSERT_TRUE(again.start().has_value());
  EXPECT_EQ(again.list(true).size(), 1u);
  EXPECT_TRUE(again.get(b->alloc->id).has_value());
  again.stop();
}

TEST_F(TasksTest, UsageReportsFeedTheGaugesWithoutStoreWrites) {
  auto a = tasks.spawn(inline_task());
  ASSERT_TRUE(a.has_value());
  auto running = state(a->alloc->id, model::AllocStatus::kRunning);
  ASSERT_TRUE(tasks.report("node-1", {running}));
  auto rev = store.revision();
  ASSERT_TRUE(rev.has_value());
  running.cpu_seconds = 2.5;
  running.memory_bytes = 7 << 20;
  clock.advance(5s);
  ASSERT_TRUE(tasks.report("node-1", {running}));
  EXPECT_EQ(*store.revision(), *rev);  // usage alone is not written
  EXPECT_EQ(tasks.get(a->alloc->id)->state->memory_bytes, 7 << 20);
  auto text = metrics.render();
  std::string labels =
      "{alloc=\"" + a->alloc->id + "\",node=\"node-1\",service=\"\",task=\"inline\"}";
  EXPECT_NE(text.find("mill_alloc_memory_bytes" + labels + " 7340032"), std::string::npos) << text;
  EXPECT_NE(text.find("mill_alloc_cpu_usage" + labels + " 0.5"), std::string::npos) << text;
}

// The cpu rate is known once two reports give one, and falls to 0 when an idle
// allocation's unchanged usage is reported again (its agent resends it every few
// seconds): never a stale rate from when it was busy, never a 0 meaning "not yet".
TEST_F(TasksTest, CpuRateNeedsTwoReportsAndFallsToZeroWhenUnchanged) {
  auto a = tasks.spawn(inline_task());
  ASSERT_TRUE(a.has_value());
  const std::string id = a->alloc->id;
  auto running = state(id, model::AllocStatus::kRunning);
  running.cpu_seconds = 1;
  running.memory_bytes = 1 << 20;
  ASSERT_TRUE(tasks.report("node-1", {running}));
  EXPECT_EQ(tasks.cpu_usage(id), std::nullopt);
  clock.advance(1s);
  running.cpu_seconds = 1.75;
  ASSERT_TRUE(tasks.report("node-1", {running}));
  EXPECT_EQ(tasks.cpu_usage(id), 0.75);
  clock.advance(5s);
  ASSERT_TRUE(tasks.report("node-1", {running}));  // the same state again
  EXPECT_EQ(tasks.cpu_usage(id), 0.0);
  auto text = metrics.render();
  EXPECT_NE(text.find("mill_alloc_cpu_usage{alloc=\"" + id +
                      "\",node=\"node-1\",service=\"\",task=\"inline\"} 0\n"),
            std::string::npos)
      << text;
}

TEST_F(TasksTest, MetricsCountSpawnsAndDurations) {
  SpawnRequest r;
  r.template_name = "agent";
  auto a = tasks.spawn(r);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(tasks.report("node-1", {state(a->alloc->id, model::AllocStatus::kRunning)}));
  auto done = state(a->alloc->id, model::AllocStatus::kExited);
  done.started_at = clock.now() - 3s;
  ASSERT_TRUE(tasks.report("node-1", {done}));
  auto text = metrics.render();
  EXPECT_NE(text.find("mill_tasks_spawned_total{task=\"agent\"} 1"), std::string::npos) << text;
  // Ended: its usage series are gone.
  EXPECT_EQ(text.find("mill_alloc_memory_bytes{alloc=\"" + a->alloc->id), std::string::npos)
      << text;
  EXPECT_NE(text.find("mill_tasks_duration_seconds_count{task=\"agent\"} 1"), std::string::npos)
      << text;
}

// Another placer (a second leader after a failover, say) commits between this one's
// snapshot and its commit: the compare on the placement epoch fails, and the
// placement is planned again on a fresh view instead of being written on a stale one.
class RacingStore final : public mill::testing::ForwardingStore {
 public:
  Result<store::TxnResult> txn(const store::Txn& t) override {
    bool placing = false;
    for (const auto& c : t.compares) placing |= c.key == "/sched/epoch";
    if (placing && races_left > 0) {
      --races_left;
      (void)inner.put("/sched/epoch", "someone-else");
    }
    if (placing) ++commits;
    return inner.txn(t);
  }
  int races_left = 1;
  int commits = 0;
};

TEST(TaskPlacement, AConflictingCommitIsPlannedAgain) {
  RacingStore store;
  ManualClock clock;
  NodeRegistry nodes{store, clock, 15s};
  metrics::Registry metrics;
  TaskManager tasks{store, nodes, clock, metrics, TaskOptions{}};
  model::RegisterRequest reg{"", "host-a", "192.0.2.1", {2, 2, 1024 * kMiB, 1024 * kMiB}};
  ASSERT_TRUE(nodes.register_node(reg).has_value());
  ASSERT_TRUE(tasks.start().has_value());
  SpawnRequest r;
  r.spec.image = "127.0.0.1:5000/probe:v1";
  r.spec.cpu = 0.5;
  r.spec.memory = 64 * kMiB;
  auto v = tasks.spawn(r);
  ASSERT_TRUE(v.has_value()) << v.error().message;
  EXPECT_EQ(store.commits, 2) << "the first commit lost the race and was planned again";
  auto all = store.inner.list(model::kAllocPrefix);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->kvs.size(), 1u) << "recorded once";
  auto epoch = store.inner.get("/sched/epoch");
  ASSERT_TRUE(epoch.has_value() && epoch->has_value());
  EXPECT_EQ((*epoch)->value, v->alloc->id);
  tasks.stop();
}

}  // namespace
}  // namespace mill::server
