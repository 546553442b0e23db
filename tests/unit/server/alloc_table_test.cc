// The allocation table on its own (alloc_table.h): waits for an allocation's state
// answer when the table records it, a write guard makes writers of one allocation take
// turns without making readers wait, only changes the store has wake the
// blocking query, and readers share one record instead of copying it.

#include "server/alloc_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

namespace mill::server {
namespace {

using namespace std::chrono_literals;

class AllocTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    waiters.start();
    hub.reset(1);
    model::Allocation a;
    a.id = "task-abcd";
    a.kind = std::string(model::kKindTask);
    a.node = "node-1";
    table.apply_placed(a, 2);
  }
  void TearDown() override { waiters.stop(); }

  static model::AllocState state(model::AllocStatus s) {
    model::AllocState st;
    st.id = "task-abcd";
    st.status = s;
    return st;
  }

  // The one answer of a wait, kept past the test's end.
  struct Answer {
    std::shared_ptr<std::promise<Result<TaskView>>> promise =
        std::make_shared<std::promise<Result<TaskView>>>();
    std::future<Result<TaskView>> future = promise->get_future();
    AllocTable::ViewCallback callback() {
      return [p = promise](Result<TaskView> v) { p->set_value(std::move(v)); };
    }
  };

  Waiters waiters;
  WatchHub hub{waiters, "hub"};
  AllocTable table{waiters, hub};
};

TEST_F(AllocTableTest, AWaitAnswersWhenTheStateIsRecorded) {
  Answer got;
  table.wait("task-abcd", started_or_ended, std::chrono::steady_clock::now() + 10s, got.callback());
  table.apply_state(state(model::AllocStatus::kPulling), 3);
  EXPECT_EQ(got.future.wait_for(200ms), std::future_status::timeout);
  table.apply_state(state(model::AllocStatus::kRunning), 4);
  ASSERT_EQ(got.future.wait_for(5s), std::future_status::ready);
  auto v = got.future.get();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->status(), model::AllocStatus::kRunning);
}

TEST_F(AllocTableTest, AWaitTimesOutAndAForgottenOneIsNotFound) {
  Answer late;
  table.wait("task-abcd", ended, std::chrono::steady_clock::now() + 200ms, late.callback());
  ASSERT_EQ(late.future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(late.future.get().error().code, ErrorCode::kTimeout);

  Answer gone;
  table.wait("task-abcd", ended, std::chrono::steady_clock::now() + 10s, gone.callback());
  table.apply_forgotten("task-abcd", 5);
  ASSERT_EQ(gone.future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(gone.future.get().error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(table.revision("task-abcd").has_value());
}

TEST_F(AllocTableTest, WritersOfOneAllocationTakeTurnsWhileReadersGoOn) {
  std::atomic<bool> second_in{false};
  std::thread second;
  {
    auto guard = table.guard("task-abcd");
    second = std::thread([&] {
      auto other = table.guard("task-abcd");
      second_in = true;
    });
    std::this_thread::sleep_for(200ms);
    EXPECT_FALSE(second_in) << "the second writer waits for the first";
    EXPECT_TRUE(table.get("task-abcd").has_value()) << "a reader does not";
    auto unrelated = table.guard("task-other");  // nor does a writer of another one
  }
  second.join();
  EXPECT_TRUE(second_in);
}

TEST_F(AllocTableTest, OnlyStoredChangesMoveTheBlockingQuery) {
  const int64_t before = hub.last_change();
  auto usage = state(model::AllocStatus::kRunning);
  table.apply_state(usage, 0);  // usage only: memory, not the store
  EXPECT_EQ(hub.last_change(), before);
  table.apply_state(state(model::AllocStatus::kHealthy), 7);
  EXPECT_EQ(hub.last_change(), 7);
  EXPECT_EQ(table.get("task-abcd")->status(), model::AllocStatus::kHealthy);
}

// What a node still runs (node listing, the node monitor, drain and removal): only that
// node's allocations, and only until they end.
TEST_F(AllocTableTest, LiveOnANodeIsWhatHasNotEndedThere) {
  model::Allocation other;
  other.id = "task-efgh";
  other.kind = std::string(model::kKindTask);
  other.node = "node-2";
  table.apply_placed(other, 3);
  table.apply_state(state(model::AllocStatus::kRunning), 4);
  auto live = table.live_on("node-1");
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].alloc->id, "task-abcd");
  EXPECT_TRUE(table.live_on("node-3").empty());
  auto exited = state(model::AllocStatus::kExited);
  table.apply_state(exited, 5);
  EXPECT_TRUE(table.live_on("node-1").empty());
  EXPECT_EQ(table.live_on("node-2").size(), 1u);
}

// Every reader (listings, the node protocol, waits) gets the one record the table
// holds, not a copy of its spec (env up to 256 KiB); a new record replaces it for later
// readers while one read before keeps what it read.
TEST_F(AllocTableTest, ReadersShareTheRecordAndANewRecordLeavesTheirsAlone) {
  auto first = table.get("task-abcd");
  auto second = table.get("task-abcd");
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(first->alloc.get(), second->alloc.get());
  EXPECT_EQ(table.tasks(true).at(0).alloc.get(), first->alloc.get());
  EXPECT_EQ(table.live_on("node-1").at(0).alloc.get(), first->alloc.get());
  EXPECT_EQ(table.group(model::kKindTask, "").at(0).alloc.get(), first->alloc.get());
  table.for_each([&](const TaskView& v) { EXPECT_EQ(v.alloc.get(), first->alloc.get()); });
  table.apply_state(state(model::AllocStatus::kRunning), 3);  // a state leaves the record
  EXPECT_EQ(table.get("task-abcd")->alloc.get(), first->alloc.get());

  model::Allocation stopped = *first->alloc;
  stopped.desired = model::DesiredState::kStop;
  auto applied = table.apply_alloc(stopped, 4);
  auto after = table.get("task-abcd");
  ASSERT_TRUE(after.has_value());
  EXPECT_NE(after->alloc.get(), first->alloc.get());
  EXPECT_EQ(after->alloc.get(), applied.alloc.get());
  EXPECT_EQ(after->alloc->desired, model::DesiredState::kStop);
  EXPECT_EQ(after->status(), model::AllocStatus::kRunning) << "the state stays";
  EXPECT_EQ(first->alloc->desired, model::DesiredState::kRun) << "an earlier read is unchanged";
  EXPECT_EQ(first->alloc.use_count(), 2) << "held by the two earlier reads only";
}

}  // namespace
}  // namespace mill::server
