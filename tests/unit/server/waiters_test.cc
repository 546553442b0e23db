// The one wait mechanism of the control plane (waiters.h) and the blocking query's
// index over it (watch_hub.h): a wait answers on the state it waits for, at its
// deadline, or at stop, once and only once, and no notify is lost, even one that
// comes while its waiter is being looked at.

#include "server/waiters.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>

#include "server/watch_hub.h"

namespace mill::server {
namespace {

using namespace std::chrono_literals;
using Wake = Waiters::Wake;

std::chrono::steady_clock::time_point in(std::chrono::milliseconds d) {
  return std::chrono::steady_clock::now() + d;
}

// A wait for `state` to reach `want`, counting its polls and keeping its answer.
struct Watch {
  std::shared_ptr<std::atomic<int>> state = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> polls = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> answers = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::promise<Wake>> answer = std::make_shared<std::promise<Wake>>();
  std::future<Wake> future = answer->get_future();

  Waiters::Poll poll(int want) {
    return [s = state, polls = polls, answers = answers, p = answer, want](Wake wake) {
      ++*polls;
      if (wake == Wake::kChanged && *s != want) return false;
      if (++*answers == 1) p->set_value(*s == want ? Wake::kChanged : wake);
      return true;
    };
  }
};

class WaitersTest : public ::testing::Test {
 protected:
  void SetUp() override { waiters.start(); }
  void TearDown() override { waiters.stop(); }
  Waiters waiters;
};

TEST_F(WaitersTest, FiresOnTheStateItWaitsFor) {
  Watch w;
  waiters.wait("a", in(10s), w.poll(2));
  *w.state = 1;
  waiters.notify("a");
  EXPECT_EQ(w.future.wait_for(200ms), std::future_status::timeout);
  *w.state = 2;
  waiters.notify("a");
  ASSERT_EQ(w.future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(w.future.get(), Wake::kChanged);
}

TEST_F(WaitersTest, AnswersAtOnceWhenTheStateIsThereAlready) {
  Watch w;
  *w.state = 2;
  waiters.wait("a", in(10s), w.poll(2));
  ASSERT_EQ(w.future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(w.future.get(), Wake::kChanged);
}

TEST_F(WaitersTest, TimesOutAtTheDeadline) {
  Watch w;
  auto start = std::chrono::steady_clock::now();
  waiters.wait("a", start + 300ms, w.poll(2));
  ASSERT_EQ(w.future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(w.future.get(), Wake::kDeadline);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
}

TEST_F(WaitersTest, DoesNotFireTwice) {
  Watch w;
  waiters.wait("a", in(300ms), w.poll(1));
  *w.state = 1;
  waiters.notify("a");
  ASSERT_EQ(w.future.wait_for(5s), std::future_status::ready);
  const int polls = *w.polls;
  waiters.notify("a");
  waiters.notify("a");
  std::this_thread::sleep_for(500ms);  // past the deadline too
  EXPECT_EQ(*w.polls, polls) << "an answered wait is never polled again";
  EXPECT_EQ(*w.answers, 1);
}

TEST_F(WaitersTest, OnlyItsKeyWakesAWaiter) {
  Watch w;
  waiters.wait("a", in(10s), w.poll(1));
  for (int i = 0; i < 500 && *w.polls == 0; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(*w.polls, 1) << "polled once on registration";
  *w.state = 1;
  waiters.notify("b");
  EXPECT_EQ(w.future.wait_for(300ms), std::future_status::timeout);
  EXPECT_EQ(*w.polls, 1) << "not polled for another key";
  waiters.notify("a");
  ASSERT_EQ(w.future.wait_for(5s), std::future_status::ready);
}

TEST_F(WaitersTest, ANotifyWhileItsWaiterIsPolledIsNotLost) {
  auto state = std::make_shared<std::atomic<int>>(0);
  auto looked = std::make_shared<std::promise<void>>();
  auto go_on = std::make_shared<std::promise<void>>();
  auto done = std::make_shared<std::promise<void>>();
  auto first = std::make_shared<std::atomic<bool>>(true);
  std::shared_future<void> resume = go_on->get_future().share();
  waiters.wait("a", in(10s), [=](Wake wake) {
    int seen = *state;  // looks before the change ...
    if (first->exchange(false)) {
      looked->set_value();
      resume.wait();  // ... which comes (with its notify) before the poll returns
    }
    if (wake == Wake::kChanged && seen != 1) return false;
    done->set_value();
    return true;
  });
  ASSERT_EQ(looked->get_future().wait_for(5s), std::future_status::ready);
  *state = 1;
  waiters.notify("a");
  go_on->set_value();
  EXPECT_EQ(done->get_future().wait_for(5s), std::future_status::ready);
}

TEST_F(WaitersTest, StopEndsEveryWaitAndLaterWaitsAtOnce) {
  Watch w;
  waiters.wait("a", in(10s), w.poll(1));
  waiters.stop();
  ASSERT_EQ(w.future.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(w.future.get(), Wake::kStopping);
  Watch later;
  waiters.wait("a", in(10s), later.poll(1));
  ASSERT_EQ(later.future.wait_for(0s), std::future_status::ready) << "on the caller's thread";
  EXPECT_EQ(later.future.get(), Wake::kStopping);
}

TEST_F(WaitersTest, ListenersRunInEveryNotify) {
  int runs = 0;
  waiters.subscribe([&runs] { ++runs; });
  waiters.notify("x");
  EXPECT_EQ(runs, 1) << "before notify returns";
  waiters.notify("y");
  EXPECT_EQ(runs, 2);
}

// What a wait on the hub answers, kept past the test's end.
std::future<bool> hub_wait(WatchHub& hub, int64_t after, std::chrono::milliseconds within) {
  auto answer = std::make_shared<std::promise<bool>>();
  hub.wait(after, in(within), [answer](bool changed) { answer->set_value(changed); });
  return answer->get_future();
}

TEST_F(WaitersTest, HubWakesOnAChangeAfterTheIndex) {
  WatchHub hub(waiters, "hub");
  hub.reset(10);
  auto woke = hub_wait(hub, 10, 10s);
  EXPECT_EQ(woke.wait_for(200ms), std::future_status::timeout);
  hub.changed(12);
  ASSERT_EQ(woke.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(woke.get());
  EXPECT_EQ(hub.last_change(), 12);
}

TEST_F(WaitersTest, HubAnswersAnOtherIndexAtOnceAndTimesOutWithFalse) {
  WatchHub hub(waiters, "hub");
  hub.reset(10);
  auto stale = hub_wait(hub, 7, 10s);
  ASSERT_EQ(stale.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(stale.get());
  auto idle = hub_wait(hub, 10, 200ms);
  ASSERT_EQ(idle.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(idle.get());
}

TEST_F(WaitersTest, HubMovesOnForAChangeAppliedOutOfOrder) {
  // Two writers commit at 20 and 21; the second applies (and wakes) first. A reader of
  // index 21 that missed the first change must still be woken by it.
  WatchHub hub(waiters, "hub");
  hub.reset(10);
  hub.changed(21);
  auto woke = hub_wait(hub, 21, 10s);
  hub.changed(20);
  ASSERT_EQ(woke.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(woke.get());
  EXPECT_GT(hub.last_change(), 21);
}

}  // namespace
}  // namespace mill::server
