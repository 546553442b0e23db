// The agent's timers on simulated time: each runs once the clock reaches it, in
// order, never before; a cancelled one never runs.

#include "agent/timers.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <vector>

namespace mill::agent {
namespace {

using namespace std::chrono_literals;

struct Fired {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> order;

  std::function<void()> note(int n) {
    return [this, n] {
      std::lock_guard lock(mu);
      order.push_back(n);
      cv.notify_all();
    };
  }
  bool wait_for_count(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 5s, [&] { return order.size() >= n; });
  }
  std::vector<int> seen() {
    std::lock_guard lock(mu);
    return order;
  }
};

TEST(Timers, RunInDeadlineOrderWhenTheClockGetsThereAndNotBefore) {
  ManualClock clock;
  Timers timers(clock);
  Fired fired;
  const auto t0 = clock.now();
  timers.at(t0 + 3s, fired.note(3));
  timers.at(t0 + 1s, fired.note(1));
  auto cancelled = timers.at(t0 + 2s, fired.note(2));
  timers.at(t0 - 1s, fired.note(0));  // already due: at once
  ASSERT_TRUE(fired.wait_for_count(1));
  EXPECT_TRUE(timers.cancel(cancelled));
  EXPECT_FALSE(timers.cancel(cancelled)) << "a second cancel finds nothing";
  ASSERT_TRUE(clock.await_waiter(5s));
  clock.advance(999ms);
  ASSERT_TRUE(clock.await_waiter(5s));
  EXPECT_EQ(fired.seen(), std::vector<int>{0}) << "nothing is due before 1 s";
  clock.advance(1ms);
  ASSERT_TRUE(fired.wait_for_count(2));
  ASSERT_TRUE(clock.await_waiter(5s));
  clock.advance(5s);
  ASSERT_TRUE(fired.wait_for_count(3));
  EXPECT_EQ(fired.seen(), (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(timers.pending(), 0u);
}

TEST(Timers, ACallbackMayScheduleAndCancelAndStopEndsThemAll) {
  ManualClock clock;
  Timers timers(clock);
  Fired fired;
  const auto t0 = clock.now();
  // A periodic job, as the agent's usage sampling: each run schedules the next.
  std::function<void()> tick = [&] {
    fired.note(7)();
    timers.at(clock.now() + 1s, tick);
  };
  timers.at(t0 + 1s, tick);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(clock.await_waiter(5s));
    clock.advance(1s);
    ASSERT_TRUE(fired.wait_for_count(static_cast<size_t>(i)));
  }
  timers.stop();
  EXPECT_EQ(timers.at(t0, fired.note(9)), 0u) << "nothing is taken after stop()";
  EXPECT_EQ(fired.seen(), (std::vector<int>{7, 7, 7}));
}

}  // namespace
}  // namespace mill::agent
