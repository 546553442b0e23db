#include "health/checker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <vector>

#include "common/clock.h"
#include "support/temp_dir.h"
#include "unit/health/servers.h"

namespace mill::health {
namespace {

using namespace std::chrono_literals;
using testing::HttpServer;
using testing::RefusingPort;
using testing::SilentServer;
using testing::wait_for;

// What the callback saw.
struct Event {
  Health health;
  std::string error;
  int served = 0;      // requests the server had answered by then
  int served_500 = 0;  // of which with status 500
};

class Events {
 public:
  explicit Events(const HttpServer* server = nullptr) : server_(server) {}
  Callback callback() {
    return [this](Health health, const std::string& error) {
      std::lock_guard lock(mutex_);
      events_.push_back({health, error, server_ ? server_->served() : 0,
                         server_ ? server_->served_with(500) : 0});
    };
  }
  std::vector<Event> list() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  size_t size() const { return list().size(); }
  bool wait_for_count(size_t n, std::chrono::milliseconds limit = 10s) const {
    return wait_for([&] { return size() >= n; }, limit);
  }

 private:
  const HttpServer* server_;
  mutable std::mutex mutex_;
  std::vector<Event> events_;
};

// The machine's clock, for the tests that run on real time.
const Clock& real_clock() {
  static const SystemClock clock;
  return clock;
}

std::unique_ptr<Checker> make_checker(const Clock& clock = real_clock()) {
  auto checker = Checker::create(clock);
  EXPECT_TRUE(checker) << checker.error().to_string();
  return std::move(checker).value();
}

Probe http_probe(std::string address, int passes = 1) {
  return Probe{.address = std::move(address),
               .path = "/healthz",
               .timeout = 1s,
               .interval = 100ms,
               .passes = passes};
}

TEST(Checker, HealthyOnlyAfterTheConfiguredPassesInARow) {
  HttpServer server;
  Events events(&server);
  auto checker = make_checker();
  ASSERT_TRUE(checker->add("web-1", http_probe(server.address(), 3), events.callback()));
  EXPECT_EQ(checker->status("web-1")->health, Health::kStarting);

  ASSERT_TRUE(events.wait_for_count(1));
  auto seen = events.list();
  EXPECT_EQ(seen[0].health, Health::kHealthy);
  EXPECT_EQ(seen[0].error, "");
  EXPECT_GE(seen[0].served, 3);  // not after the first or second pass
  auto status = checker->status("web-1");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->health, Health::kHealthy);
  EXPECT_GE(status->passes_in_a_row, 3);
  EXPECT_EQ(status->last_error, "");

  // Still healthy a few probes later, and no more callbacks: nothing changed.
  int served = server.served();
  ASSERT_TRUE(wait_for([&] { return server.served() >= served + 3; }));
  EXPECT_EQ(events.size(), 1u);
}

TEST(Checker, UnhealthyAfterThreeFailuresThenHealthyAgain) {
  HttpServer server;
  Events events(&server);
  auto checker = make_checker();
  ASSERT_TRUE(checker->add("web-1", http_probe(server.address()), events.callback()));
  ASSERT_TRUE(events.wait_for_count(1));
  ASSERT_EQ(events.list()[0].health, Health::kHealthy);

  server.set_status(500);
  ASSERT_TRUE(wait_for([&] { return checker->status("web-1")->failures_in_a_row >= 1; }));
  auto failing = checker->status("web-1");
  EXPECT_EQ(failing->last_error, "GET /healthz: 500");
  // One or two failures are not enough: the unhealthy event below counts three.

  ASSERT_TRUE(events.wait_for_count(2));
  Event down = events.list()[1];
  EXPECT_EQ(down.health, Health::kUnhealthy);
  EXPECT_EQ(down.error, "GET /healthz: 500");
  EXPECT_GE(down.served_500, 3);
  EXPECT_EQ(checker->status("web-1")->health, Health::kUnhealthy);

  server.set_status(200);
  ASSERT_TRUE(events.wait_for_count(3));
  EXPECT_EQ(events.list()[2].health, Health::kHealthy);
  EXPECT_EQ(events.size(), 3u);
}

TEST(Checker, RefusedTargetStaysStartingWithTheReason) {
  RefusingPort port;
  Events events;
  auto checker = make_checker();
  ASSERT_TRUE(checker->add("web-1", http_probe(port.address()), events.callback()));
  ASSERT_TRUE(wait_for([&] { return checker->status("web-1")->probes >= 3; }));
  auto status = checker->status("web-1");
  EXPECT_EQ(status->health, Health::kStarting);  // a starting app may refuse for a while
  EXPECT_EQ(status->last_error, "GET /healthz: connection refused");
  EXPECT_GE(status->failures_in_a_row, 3);
  EXPECT_EQ(events.size(), 0u);
}

// While a target is not healthy, each new error is told once (what the agent shows as
// the reason a service is not healthy yet); the same error again, or a pass, is not.
TEST(Checker, EachNewErrorOfATargetNotYetHealthyIsToldOnce) {
  HttpServer server;
  server.set_status(503);
  std::mutex mu;
  std::vector<std::string> errors;
  auto checker = make_checker();
  ASSERT_TRUE(
      checker->add("web-1", http_probe(server.address(), 2), Callback{}, [&](const std::string& e) {
        std::lock_guard lock(mu);
        errors.push_back(e);
      }));
  ASSERT_TRUE(wait_for([&] { return checker->status("web-1")->probes >= 3; }));
  server.set_status(500);
  ASSERT_TRUE(wait_for([&] {
    std::lock_guard lock(mu);
    return errors.size() >= 2;
  }));
  int probes = checker->status("web-1")->probes;
  ASSERT_TRUE(wait_for([&] { return checker->status("web-1")->probes >= probes + 3; }));
  std::lock_guard lock(mu);
  EXPECT_EQ(errors, (std::vector<std::string>{"GET /healthz: 503", "GET /healthz: 500"}));
}

TEST(Checker, MissedDeadlineMakesAStartingTargetUnhealthy) {
  RefusingPort port;
  Events events;
  auto checker = make_checker();
  Probe probe = http_probe(port.address());
  probe.deadline = 300ms;
  ASSERT_TRUE(checker->add("web-1", probe, events.callback()));
  ASSERT_TRUE(events.wait_for_count(1));
  EXPECT_EQ(events.list()[0].health, Health::kUnhealthy);
  EXPECT_EQ(events.list()[0].error, "not healthy within 300ms: GET /healthz: connection refused");
}

TEST(Checker, SilentTargetTimesOutWithoutHoldingUpOthers) {
  SilentServer silent;
  HttpServer server;
  Events fast_events;
  Events silent_events;
  auto checker = make_checker();
  Probe hung = http_probe(silent.address());
  hung.timeout = 2s;
  ASSERT_TRUE(checker->add("hung", hung, silent_events.callback()));
  ASSERT_TRUE(checker->add("fast", http_probe(server.address(), 5), fast_events.callback()));

  // Five probes 100 ms apart finish while the hung one is still waiting out its 2s.
  ASSERT_TRUE(fast_events.wait_for_count(1));
  EXPECT_EQ(fast_events.list()[0].health, Health::kHealthy);
  EXPECT_EQ(checker->status("hung")->probes, 0);

  ASSERT_TRUE(wait_for([&] { return checker->status("hung")->probes >= 1; }, 4s));
  EXPECT_EQ(checker->status("hung")->last_error, "GET /healthz: timed out after 2s");
}

TEST(Checker, TcpTargetGoesDownWhenItsListenerCloses) {
  HttpServer server;  // only its listening socket matters here
  Events events;
  auto checker = make_checker();
  std::string address = server.address();
  ASSERT_TRUE(checker->add("db-1",
                           Probe{.address = address, .path = "", .timeout = 1s, .interval = 100ms},
                           events.callback()));
  ASSERT_TRUE(events.wait_for_count(1));
  EXPECT_EQ(events.list()[0].health, Health::kHealthy);

  server.stop();
  ASSERT_TRUE(events.wait_for_count(2));
  EXPECT_EQ(events.list()[1].health, Health::kUnhealthy);
  EXPECT_EQ(events.list()[1].error, "tcp " + address + ": connection refused");
  EXPECT_GE(checker->status("db-1")->failures_in_a_row, 3);
}

TEST(Checker, RemoveWaitsForARunningCallbackAndStopsProbing) {
  HttpServer server;
  auto checker = make_checker();
  std::atomic<bool> entered = false;
  std::atomic<bool> returned = false;
  std::atomic<int> calls = 0;
  ASSERT_TRUE(checker->add("web-1", http_probe(server.address()), [&](Health, const std::string&) {
    ++calls;
    entered = true;
    std::this_thread::sleep_for(300ms);  // the owner is busy when remove() comes
    returned = true;
  }));
  ASSERT_TRUE(wait_for([&] { return entered.load(); }));
  EXPECT_TRUE(checker->remove("web-1"));
  EXPECT_TRUE(returned);  // remove() did not return while the callback ran

  // No more probes (one already in flight may still land), no more callbacks, even
  // though the target would now change state.
  server.set_status(500);
  int served = server.served();
  std::this_thread::sleep_for(600ms);  // six intervals in which nothing may happen
  EXPECT_LE(server.served(), served + 1);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(checker->status("web-1"));
  EXPECT_EQ(checker->size(), 0u);
}

// A command target beside an HTTP one on the same thread: not healthy (with the
// command's words) until what it checks holds, and removing one whose command hangs
// kills it at once instead of waiting for its timeout.
TEST(Checker, CommandTargetRunsBesideSocketTargetsAndIsKilledOnRemove) {
  mill::testing::TempDir dir;  // removed however the test ends
  const std::string ready = dir.file("ready");
  HttpServer server;
  Events web(&server);
  Events db;
  std::vector<std::string> errors;
  std::mutex errors_mutex;
  auto checker = make_checker();
  ASSERT_TRUE(checker->add("web-1", http_probe(server.address()), web.callback()));
  ASSERT_TRUE(checker->add(
      "db-1",
      Probe{.command = {"sh", "-c", "test -f " + ready + " || { echo not ready; exit 3; }"},
            .label = "pg_isready -q",
            .timeout = 2s,
            .interval = 100ms},
      db.callback(), [&](const std::string& error) {
        std::lock_guard lock(errors_mutex);
        errors.push_back(error);
      }));
  ASSERT_TRUE(web.wait_for_count(1));
  // The command's first run may end after the HTTP target's (a busy machine starts sh
  // slowly); its error is told once, however often it fails the same way.
  ASSERT_TRUE(wait_for([&] {
    std::lock_guard lock(errors_mutex);
    return !errors.empty();
  }));
  std::this_thread::sleep_for(300ms);  // three more failing runs
  EXPECT_EQ(db.size(), 0u) << "not healthy while the command fails";
  {
    std::lock_guard lock(errors_mutex);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "command pg_isready -q: exit 3: not ready");
  }
  std::ofstream(ready) << "";
  ASSERT_TRUE(db.wait_for_count(1));
  EXPECT_EQ(db.list()[0].health, Health::kHealthy);

  ASSERT_TRUE(checker->add("hung-1",
                           Probe{.command = {"sleep", "29.71"}, .timeout = 30s, .interval = 100ms},
                           [](Health, const std::string&) {}));
  ASSERT_TRUE(wait_for([&] { return system("pgrep -x -f 'sleep 29.71' >/dev/null") == 0; }));
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(checker->remove("hung-1"));
  EXPECT_TRUE(wait_for([&] { return system("pgrep -x -f 'sleep 29.71' >/dev/null") != 0; }, 2s))
      << "the hung command outlived its target";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(Checker, CallbackMayRemoveItsOwnTarget) {
  HttpServer server;
  auto checker = make_checker();
  std::atomic<bool> removed = false;
  ASSERT_TRUE(checker->add("web-1", http_probe(server.address()), [&](Health, const std::string&) {
    removed = checker->remove("web-1");
  }));
  ASSERT_TRUE(wait_for([&] { return removed.load(); }));
  EXPECT_EQ(checker->size(), 0u);
}

TEST(Checker, AddAndStatusReportMistakes) {
  auto checker = make_checker();
  auto bad = checker->add("web-1", Probe{.address = "web:80", .path = ""}, {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);

  RefusingPort port;
  ASSERT_TRUE(checker->add("web-1", http_probe(port.address()), {}));
  auto twice = checker->add("web-1", http_probe(port.address()), {});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, ErrorCode::kAlreadyExists);

  auto unknown = checker->status("nope");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(checker->remove("nope"));
  EXPECT_TRUE(checker->remove("web-1"));
}

TEST(Checker, DestroyingDoesNotWaitForHungProbes) {
  SilentServer silent;
  auto checker = make_checker();
  Probe hung = http_probe(silent.address());
  hung.timeout = 10s;
  ASSERT_TRUE(checker->add("hung", hung, {}));
  ASSERT_TRUE(silent.wait_pending(10s)) << "the probe never connected";
  auto start = std::chrono::steady_clock::now();
  checker.reset();
  // Well inside the probe's own 10 s timeout, which it would otherwise wait out.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(Checker, TwoHundredTargetsOnOneThread) {
  constexpr int kTargets = 200;
  HttpServer server;
  int threads_before = testing::thread_count();
  auto checker = make_checker();
  std::atomic<int> healthy = 0;
  for (int i = 0; i < kTargets; ++i) {
    Probe probe = http_probe(server.address(), 2);
    probe.interval = 200ms;
    ASSERT_TRUE(
        checker->add("web-" + std::to_string(i), probe, [&](Health health, const std::string&) {
          if (health == Health::kHealthy) ++healthy;
        }));
  }
  ASSERT_TRUE(wait_for([&] { return healthy == kTargets; }, 20s)) << healthy << " healthy";
  EXPECT_EQ(testing::thread_count(), threads_before + 1);

  for (int i = 0; i < kTargets; i += 2) EXPECT_TRUE(checker->remove("web-" + std::to_string(i)));
  EXPECT_EQ(checker->size(), static_cast<size_t>(kTargets / 2));
  EXPECT_EQ(checker->status("web-1")->health, Health::kHealthy);
}

// On simulated time (a ManualClock): the schedule moves only when the test advances
// the clock. Once a test has seen probe n land, `await_waiter` tells when the checker
// has come to rest on the clock after it (the thread left its previous wait before it
// started probe n), so the next advance() is the only thing that can start probe n+1.

TEST(CheckerOnManualClock, ProbesAgainOnlyOnceTheClockPassesTheInterval) {
  ManualClock clock;
  HttpServer server;
  Events events(&server);
  auto checker = make_checker(clock);
  Probe probe = http_probe(server.address());
  probe.interval = 1h;
  ASSERT_TRUE(checker->add("web-1", probe, events.callback()));

  // The first probe runs at once: add() wakes a checker resting on the clock.
  ASSERT_TRUE(wait_for([&] { return checker->status("web-1")->probes == 1; }));
  ASSERT_TRUE(clock.await_waiter(10s)) << "the checker never came to rest";
  ASSERT_TRUE(events.wait_for_count(1));
  EXPECT_EQ(events.list()[0].health, Health::kHealthy);

  // A second short of the interval: the checker is not even woken.
  clock.advance(1h - 1s);
  EXPECT_EQ(clock.waiters(), 1u);
  EXPECT_EQ(checker->status("web-1")->probes, 1);
  EXPECT_EQ(server.served(), 1);

  // The interval has passed: one more probe, then rest until the next hour.
  clock.advance(1s);
  ASSERT_TRUE(wait_for([&] { return checker->status("web-1")->probes == 2; }));
  ASSERT_TRUE(clock.await_waiter(10s)) << "the checker never came to rest";
  EXPECT_EQ(checker->status("web-1")->probes, 2);
  EXPECT_EQ(server.served(), 2);
  EXPECT_EQ(checker->status("web-1")->health, Health::kHealthy);
  EXPECT_EQ(events.size(), 1u);
}

TEST(CheckerOnManualClock, MissedDeadlineIsMeasuredOnTheClock) {
  ManualClock clock;
  RefusingPort port;
  Events events;
  auto checker = make_checker(clock);
  Probe probe = http_probe(port.address());
  probe.interval = 10s;
  probe.deadline = 60s;
  ASSERT_TRUE(checker->add("web-1", probe, events.callback()));

  // Probes at 0 s, 10 s, ... 50 s all fail, and the target is still only starting.
  for (int probes = 1; probes <= 6; ++probes) {
    ASSERT_TRUE(wait_for([&] { return checker->status("web-1")->probes == probes; }));
    ASSERT_TRUE(clock.await_waiter(10s)) << "the checker never came to rest";
    auto status = checker->status("web-1");
    EXPECT_EQ(status->health, Health::kStarting) << "after probe " << probes;
    EXPECT_EQ(status->last_error, "GET /healthz: connection refused");
    EXPECT_EQ(events.size(), 0u) << "after probe " << probes;
    clock.advance(10s);
  }

  // The probe at 60 s finds it not healthy yet: past its deadline.
  ASSERT_TRUE(events.wait_for_count(1));
  EXPECT_EQ(events.list()[0].health, Health::kUnhealthy);
  EXPECT_EQ(events.list()[0].error, "not healthy within 1m: GET /healthz: connection refused");
  EXPECT_EQ(checker->status("web-1")->probes, 7);
  EXPECT_EQ(checker->status("web-1")->health, Health::kUnhealthy);
}

// A probe's own timeout bounds a real socket: it passes in real time although the
// clock stands still.
TEST(CheckerOnManualClock, ProbeTimeoutIsRealTime) {
  ManualClock clock;
  SilentServer silent;
  auto checker = make_checker(clock);
  Probe hung = http_probe(silent.address());
  hung.timeout = 200ms;
  hung.interval = 1h;
  ASSERT_TRUE(checker->add("hung", hung, {}));
  ASSERT_TRUE(wait_for([&] { return checker->status("hung")->probes == 1; }, 5s));
  EXPECT_EQ(checker->status("hung")->last_error, "GET /healthz: timed out after 200ms");
  ASSERT_TRUE(clock.await_waiter(10s)) << "the checker never came to rest";
  EXPECT_EQ(checker->status("hung")->probes, 1);  // the next one is an hour away
}

}  // namespace
}  // namespace mill::health
