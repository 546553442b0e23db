// No store I/O under a lock readers need (tasks.h, "Store I/O and locks"): while a
// status report's or a placement's store write hangs (an etcd round trip, say), the
// table still answers; once the write returns, memory has it before anyone is told,
// so a blocking query never holds an index newer than what it read.

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "server/tasks.h"
#include "support/forwarding_store.h"

namespace mill::server {
namespace {

using namespace std::chrono_literals;
constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kGiB = 1024 * kMiB;

// A MemoryStore whose next transaction writing under `prefix` waits until released.
class GateStore final : public mill::testing::ForwardingStore {
 public:
  Result<store::TxnResult> txn(const store::Txn& t) override {
    std::shared_future<void> gate;
    {
      std::lock_guard lock(mu);
      for (const auto& op : t.ops) {
        if (!held_prefix.empty() && op.key.starts_with(held_prefix)) {
          held_prefix.clear();
          entered.set_value();
          gate = release;
        }
      }
    }
    if (gate.valid()) gate.wait();
    return inner.txn(t);
  }

  // The next txn writing under `prefix` waits for open(); `entered` is set once it does.
  void hold(std::string prefix) {
    std::lock_guard lock(mu);
    held_prefix = std::move(prefix);
    entered = std::promise<void>();
    opener = std::promise<void>();
    release = opener.get_future().share();
  }
  std::future<void> held() {
    std::lock_guard lock(mu);
    return entered.get_future();
  }
  void open() { opener.set_value(); }

  std::mutex mu;
  std::string held_prefix;
  std::promise<void> entered;
  std::promise<void> opener;
  std::shared_future<void> release;
};

class TaskStoreIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One node of 2 cores and 1 GiB.
    auto node = nodes.register_node({"", "host-a", "192.0.2.1", {2, 2, kGiB, kGiB}});
    ASSERT_TRUE(node.has_value() && tasks.start().has_value());
  }
  void TearDown() override { tasks.stop(); }

  SpawnRequest inline_task() {
    SpawnRequest r;
    r.spec.image = "127.0.0.1:5000/probe:v1";
    r.spec.cpu = 0.25;
    r.spec.memory = 64 * kMiB;
    return r;
  }

  GateStore store;
  ManualClock clock;
  NodeRegistry nodes{store, clock, 15s};
  metrics::Registry metrics;
  TaskManager tasks{store, nodes, clock, metrics, TaskOptions{}};
};

TEST_F(TaskStoreIoTest, ReadsGoOnWhileAReportIsBeingWritten) {
  auto a = tasks.spawn(inline_task());
  ASSERT_TRUE(a.has_value());
  const std::string id = a->alloc->id;
  store.hold(std::string(model::kAllocStatePrefix));
  auto entered = store.held();
  model::AllocState running;
  running.id = id;
  running.status = model::AllocStatus::kRunning;
  auto reported = std::async(std::launch::async, [&] { return tasks.report("node-1", {running}); });
  ASSERT_EQ(entered.wait_for(5s), std::future_status::ready);

  // The write hangs; the table answers, with what the store has so far.
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(tasks.get(id)->status(), model::AllocStatus::kPending);
  EXPECT_EQ(tasks.list(false).size(), 1u);
  EXPECT_EQ(tasks.group(model::kKindTask, "").size(), 1u);
  EXPECT_EQ(tasks.allocations_for("node-1").allocations.size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);

  store.open();
  ASSERT_EQ(reported.wait_for(5s), std::future_status::ready);
  ASSERT_TRUE(reported.get().has_value());
  // Once the report returns, memory has what the store has.
  EXPECT_EQ(tasks.get(id)->status(), model::AllocStatus::kRunning);
}

TEST_F(TaskStoreIoTest, ABlockingQueryWakesOnlyOnceMemoryHasThePlacement) {
  auto before = tasks.allocations_for("node-1");
  store.hold(std::string(model::kAllocPrefix));
  auto entered = store.held();
  auto spawned = std::async(std::launch::async, [&] { return tasks.spawn(inline_task()); });
  ASSERT_EQ(entered.wait_for(5s), std::future_status::ready);

  // Committing: nothing to see yet, and nothing handed out claims otherwise.
  auto during = tasks.allocations_for("node-1");
  EXPECT_TRUE(during.allocations.empty());
  EXPECT_EQ(during.index, before.index);
  auto woke = std::make_shared<std::promise<bool>>();
  tasks.wait_allocations(during.index, std::chrono::steady_clock::now() + 10s,
                         [woke](bool changed) { woke->set_value(changed); });
  auto future = woke->get_future();
  EXPECT_EQ(future.wait_for(200ms), std::future_status::timeout);

  store.open();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(future.get());
  auto after = tasks.allocations_for("node-1");
  ASSERT_EQ(after.allocations.size(), 1u);
  EXPECT_GT(after.index, before.index);
  ASSERT_TRUE(spawned.get().has_value());
}

}  // namespace
}  // namespace mill::server
