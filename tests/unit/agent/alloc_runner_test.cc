// The allocation runner against a stateful fake of the node's containers and of the
// control plane's node protocol: what it starts, stops, reports and re-adopts.

#include "agent/alloc_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "support/eventually.h"
#include "support/temp_dir.h"

namespace mill::agent {
namespace {

using namespace std::chrono_literals;
using model::AllocStatus;

// Containers that "run" until the test ends them or the runner stops them.
class FakeContainers final : public Containers {
 public:
  void set_registries(std::map<std::string, model::RegistryLogin> r) override {
    std::lock_guard lock(mu);
    registries = std::move(r);
  }
  Result<void> remove_volume(const std::string&) override { return {}; }
  Result<void> pull(const std::string& image) override {
    std::lock_guard lock(mu);
    pulled.push_back(image);
    if (image.find("missing") != std::string::npos) {
      return make_error(ErrorCode::kNotFound, "image not found: " + image);
    }
    return {};
  }
  Result<Started> start(const model::Allocation& a,
                        const std::function<void()>& starting) override {
    starting();
    std::lock_guard lock(mu);
    started.push_back(a.id);
    if (fail_start) return make_error(ErrorCode::kNotFound, "pull x: manifest unknown");
    running[a.id] = std::nullopt;
    return Started{4000 + static_cast<int>(started.size()), "sha256:abc", 7ms, 40ms};
  }
  Result<Exit> wait(const std::string& id, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu);
    if (!running.contains(id)) return make_error(ErrorCode::kNotFound, "no container " + id);
    if (!cv.wait_for(lock, timeout, [&] { return running[id].has_value(); })) {
      return make_error(ErrorCode::kTimeout, "still running");
    }
    return *running[id];
  }
  Result<void> on_exit(const std::string& id, ExitCallback on_end) override {
    std::unique_lock lock(mu);
    if (!running.contains(id)) return make_error(ErrorCode::kNotFound, "no container " + id);
    if (running[id]) {
      Exit e = *running[id];
      lock.unlock();
      on_end(e);
      return {};
    }
    watchers[id] = std::move(on_end);
    return {};
  }
  Result<Exit> stop(const std::string& id, std::chrono::milliseconds) override {
    {
      std::lock_guard lock(mu);
      stopped.push_back(id);
    }
    exit(id, 143);
    return Exit{143, 0};
  }
  Result<Usage> usage(const model::Allocation& a) override {
    std::lock_guard lock(mu);
    if (!running.contains(a.id)) return make_error(ErrorCode::kNotFound, "no container " + a.id);
    return Usage{cpu_seconds, memory_bytes, {}};
  }
  // A command check runs on this host: the fake's containers are not real.
  runtime::ExecCommand exec_command(const std::string&,
                                    const std::vector<std::string>& args) override {
    return {args, ""};
  }
  void release(const std::string& id, const std::string&) override {
    std::lock_guard lock(mu);
    released.insert(id);
    running.erase(id);
  }
  void forget(const std::string& id) override {
    std::lock_guard lock(mu);
    forgotten.insert(id);
  }
  std::vector<Adopted> adopt() override {
    std::lock_guard lock(mu);
    return adoptable;
  }
  std::string log_dir(const std::string& id) const override { return "/nonexistent/" + id; }

  // Ends it: the runner hears of it through on_exit, as from the runtime.
  void exit(const std::string& id, int code) {
    ExitCallback watcher;
    {
      std::lock_guard lock(mu);
      running[id] = Exit{code, 0};
      if (auto it = watchers.find(id); it != watchers.end()) {
        watcher = std::move(it->second);
        watchers.erase(it);
      }
      cv.notify_all();
    }
    if (watcher) watcher(Exit{code, 0});
  }

  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::optional<Exit>> running;
  std::map<std::string, ExitCallback> watchers;
  std::vector<std::string> started, stopped, pulled;
  std::set<std::string> released, forgotten;
  std::vector<Adopted> adoptable;
  std::map<std::string, model::RegistryLogin> registries;
  bool fail_start = false;
  double cpu_seconds = 1.5;  // what usage() reads
  int64_t memory_bytes = 1 << 20;
};

// The control plane's side of the node protocol, held by the test.
class FakeControlPlane final : public NodeClient {
 public:
  Result<model::RegisterResponse> register_node(const model::RegisterRequest&) override {
    model::RegisterResponse r;
    r.id = "node-1";
    return r;
  }
  Result<void> heartbeat(const std::string&, const model::Resources&) override { return {}; }
  Result<model::DesiredAllocations> allocations(const std::string&, int64_t index,
                                                std::chrono::milliseconds wait) override {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::min<std::chrono::milliseconds>(wait, 100ms),
                [&] { return desired.index > index; });
    return desired;
  }
  Result<void> report_pulls(const std::string&, const std::string& deploy,
                            const std::vector<model::PullReport>& reports) override {
    std::lock_guard lock(mu);
    for (const auto& r : reports) pull_reports.push_back(deploy + " " + r.image + " " + r.error);
    cv.notify_all();
    return {};
  }
  Result<void> report_volumes(const std::string&,
                              const std::vector<model::VolumeReport>&) override {
    return {};
  }
  // The log channel is not what these tests are about (log_uplink_test.cc is).
  Result<model::NodeRequests> requests(const model::RequestsQuery&) override {
    return make_error(ErrorCode::kUnavailable, "no log channel here");
  }
  Result<model::LogChunkAnswer> send_log(const model::LogChunk&) override {
    return model::LogChunkAnswer{false};
  }
  Result<void> report(const std::string&, const std::vector<model::AllocState>& states) override {
    std::lock_guard lock(mu);
    for (const auto& s : states) {
      reports.push_back(s);
      last[s.id] = s;
    }
    cv.notify_all();
    return {};
  }

  void set(std::vector<model::DesiredAllocations::Item> items) {
    std::lock_guard lock(mu);
    desired.allocations = std::move(items);
    ++desired.index;
    cv.notify_all();
  }
  void ask_pulls(model::ImagePulls pulls) {
    std::lock_guard lock(mu);
    desired.pulls = std::move(pulls);
    ++desired.index;
    cv.notify_all();
  }
  bool wait_pull_reports(size_t n, std::chrono::milliseconds t = 5s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, t, [&] { return pull_reports.size() >= n; });
  }
  // Waits until `id` was last reported with `status`.
  bool wait_status(const std::string& id, AllocStatus status, std::chrono::milliseconds t = 5s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, t, [&] { return last.contains(id) && last[id].status == status; });
  }
  // Waits until a report of `id` carries the container's usage.
  bool wait_usage(const std::string& id, double cpu_seconds, int64_t memory_bytes,
                  std::chrono::milliseconds t = 5s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, t, [&] {
      return std::any_of(reports.begin(), reports.end(), [&](const model::AllocState& r) {
        return r.id == id && r.cpu_seconds == cpu_seconds && r.memory_bytes == memory_bytes;
      });
    });
  }
  model::AllocState last_of(const std::string& id) {
    std::lock_guard lock(mu);
    return last[id];
  }
  std::vector<AllocStatus> statuses_of(const std::string& id) {
    std::lock_guard lock(mu);
    std::vector<AllocStatus> out;
    for (const auto& r : reports) {
      if (r.id == id && (out.empty() || out.back() != r.status)) out.push_back(r.status);
    }
    return out;
  }

  std::mutex mu;
  std::condition_variable cv;
  model::DesiredAllocations desired;
  std::vector<model::AllocState> reports;
  std::map<std::string, model::AllocState> last;
  std::vector<std::string> pull_reports;  // "deploy image error"
};

model::DesiredAllocations::Item item(std::string id,
                                     std::optional<std::chrono::milliseconds> timeout = {},
                                     model::DesiredState desired = model::DesiredState::kRun,
                                     AllocStatus reported = AllocStatus::kPending) {
  model::DesiredAllocations::Item it;
  it.alloc.id = std::move(id);
  it.alloc.kind = "task";
  it.alloc.node = "node-1";
  it.alloc.ip = "10.99.1.2";
  it.alloc.spec.image = "127.0.0.1:5000/probe:v1";
  it.alloc.spec.cpu = 0.1;
  it.alloc.spec.memory = 64 << 20;
  it.alloc.spec.timeout = timeout;
  it.alloc.desired = desired;
  it.reported = reported;
  return it;
}

class AllocRunnerTest : public ::testing::Test {
 protected:
  std::unique_ptr<AllocRunner> make_runner() { return make_runner(clock); }
  std::unique_ptr<AllocRunner> make_runner(const Clock& time,
                                           std::chrono::milliseconds usage_interval = 50ms) {
    RunnerOptions o;
    o.state_dir = dir.file("allocs");
    o.grace = 100ms;
    o.poll_wait = 100ms;
    o.usage_interval = usage_interval;
    auto r = std::make_unique<AllocRunner>(o, containers, cp, time);
    EXPECT_TRUE(r->start("node-1").has_value());
    return r;
  }

  mill::testing::TempDir dir;
  SystemClock clock;
  FakeContainers containers;
  FakeControlPlane cp;
};

TEST_F(AllocRunnerTest, StartsReportsAndFinishesAnExitedTask) {
  auto runner = make_runner();
  cp.set({item("task-a1")});
  ASSERT_TRUE(cp.wait_status("task-a1", AllocStatus::kRunning));
  auto running = cp.last_of("task-a1");
  EXPECT_EQ(running.pid, 4001);
  EXPECT_EQ(running.pull_duration, 7ms);
  EXPECT_EQ(running.start_duration, 40ms);
  EXPECT_TRUE(running.started_at.has_value());
  EXPECT_EQ(runner->lookup("task-a1.mill"), std::vector<std::string>{"10.99.1.2"});
  EXPECT_TRUE(runner->lookup("task-zz.mill").empty());
  // Usage (what the containers say: 1.5 s of CPU, 1 MiB) arrives with later reports.
  EXPECT_TRUE(cp.wait_usage("task-a1", 1.5, 1 << 20));
  containers.exit("task-a1", 3);
  ASSERT_TRUE(cp.wait_status("task-a1", AllocStatus::kExited));
  auto ended = cp.last_of("task-a1");
  EXPECT_EQ(ended.exit_code, 3);
  EXPECT_TRUE(ended.finished_at.has_value());
  EXPECT_TRUE(containers.released.contains("task-a1"));
  // Reports coalesce (a newer state replaces one not yet sent), but never go back.
  auto seen = cp.statuses_of("task-a1");
  ASSERT_GE(seen.size(), 2u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen[seen.size() - 2], AllocStatus::kRunning);
  EXPECT_EQ(seen.back(), AllocStatus::kExited);
  EXPECT_TRUE(runner->lookup("task-a1.mill").empty());
}

// Usage is read as the container starts (the running report carries it: no zeros
// until the first periodic sample) and as it ends (the end report's cpu time has the
// work since the last sample; memory stays what it used running), not only every
// usage_interval (issue 15 item 15). An hour's interval here: no sample in between.
TEST_F(AllocRunnerTest, UsageIsReadAsTheContainerStartsAndAsItEnds) {
  auto runner = make_runner(clock, std::chrono::hours(1));
  cp.set({item("task-u1")});
  ASSERT_TRUE(cp.wait_status("task-u1", AllocStatus::kRunning));
  auto running = cp.last_of("task-u1");
  EXPECT_EQ(running.cpu_seconds, 1.5);
  EXPECT_EQ(running.memory_bytes, 1 << 20);
  {
    std::lock_guard lock(containers.mu);
    containers.cpu_seconds = 4.25;
    containers.memory_bytes = 4096;  // an ended container's cgroup holds little
  }
  containers.exit("task-u1", 0);
  ASSERT_TRUE(cp.wait_status("task-u1", AllocStatus::kExited));
  auto ended = cp.last_of("task-u1");
  EXPECT_EQ(ended.cpu_seconds, 4.25);
  EXPECT_EQ(ended.memory_bytes, 1 << 20);
}

// Sampled every usage_interval, but reported only when it changed (or, unchanged,
// every few seconds): an idle allocation costs no report per interval.
TEST_F(AllocRunnerTest, UnchangedUsageIsNotReportedEveryInterval) {
  auto runner = make_runner(clock, 20ms);
  cp.set({item("task-u2")});
  ASSERT_TRUE(cp.wait_status("task-u2", AllocStatus::kRunning));
  // The control plane has it (else the runner sends its state again, as it should).
  cp.set({item("task-u2", {}, model::DesiredState::kRun, AllocStatus::kRunning)});
  std::this_thread::sleep_for(200ms);
  auto count = [&] {
    std::lock_guard lock(cp.mu);
    return std::count_if(cp.reports.begin(), cp.reports.end(),
                         [](const model::AllocState& r) { return r.id == "task-u2"; });
  };
  auto before = count();
  std::this_thread::sleep_for(500ms);  // ~25 samples, all the same
  EXPECT_EQ(count(), before);
  {
    std::lock_guard lock(containers.mu);
    containers.cpu_seconds = 2;
  }
  EXPECT_TRUE(cp.wait_usage("task-u2", 2, 1 << 20));
}

// A deploy's `pulling` phase: each image pulled once per deploy, the outcome reported
// (with the reason when an image cannot be pulled), nothing started.
TEST_F(AllocRunnerTest, PullsWhatADeployAsksForOnceAndReportsEachImage) {
  auto runner = make_runner();
  cp.ask_pulls({"d-1", {"r/web:v2", "r/missing:v1"}});
  ASSERT_TRUE(cp.wait_pull_reports(2));
  {
    std::lock_guard lock(cp.mu);
    std::sort(cp.pull_reports.begin(), cp.pull_reports.end());
    EXPECT_EQ(cp.pull_reports,
              (std::vector<std::string>{"d-1 r/missing:v1 image not found: r/missing:v1",
                                        "d-1 r/web:v2 "}));
  }
  // Asked again (the same desired state after another change): not pulled again.
  cp.set({});
  std::this_thread::sleep_for(300ms);
  {
    std::lock_guard lock(containers.mu);
    EXPECT_EQ(containers.pulled.size(), 2u);
    EXPECT_TRUE(containers.started.empty());
  }
  // A new deploy pulls again.
  cp.ask_pulls({"d-2", {"r/web:v2"}});
  ASSERT_TRUE(cp.wait_pull_reports(3));
  std::lock_guard lock(containers.mu);
  EXPECT_EQ(containers.pulled.size(), 3u);
}

TEST_F(AllocRunnerTest, TimeoutStopsTheTask) {
  auto runner = make_runner();
  cp.set({item("task-t1", 300ms)});
  ASSERT_TRUE(cp.wait_status("task-t1", AllocStatus::kRunning));
  auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(cp.wait_status("task-t1", AllocStatus::kTimeout));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms);
  EXPECT_EQ(containers.stopped, std::vector<std::string>{"task-t1"});
  EXPECT_EQ(cp.last_of("task-t1").exit_code, 143);
}

TEST_F(AllocRunnerTest, DesiredStopKillsIt) {
  auto runner = make_runner();
  cp.set({item("task-k1")});
  ASSERT_TRUE(cp.wait_status("task-k1", AllocStatus::kRunning));
  cp.set({item("task-k1", {}, model::DesiredState::kStop)});
  ASSERT_TRUE(cp.wait_status("task-k1", AllocStatus::kKilled));
  EXPECT_EQ(containers.stopped, std::vector<std::string>{"task-k1"});
}

// The control plane lost a report it had accepted (a power cut took the server's
// unsynced tail): its desired state shows the old status, and the agent sends the
// current one again.
TEST_F(AllocRunnerTest, AStateTheControlPlaneLostIsSentAgain) {
  auto runner = make_runner();
  cp.set({item("task-s1")});
  ASSERT_TRUE(cp.wait_status("task-s1", AllocStatus::kRunning));
  containers.exit("task-s1", 4);
  ASSERT_TRUE(cp.wait_status("task-s1", AllocStatus::kExited));
  {
    std::lock_guard lock(cp.mu);
    cp.last.clear();  // forget what arrived, as the server did
  }
  cp.set({item("task-s1", {}, model::DesiredState::kRun, AllocStatus::kRunning)});
  ASSERT_TRUE(cp.wait_status("task-s1", AllocStatus::kExited));
  EXPECT_EQ(cp.last_of("task-s1").exit_code, 4);
  EXPECT_EQ(containers.started.size(), 1u) << "reported again, not run again";
}

// A running allocation the control plane has no record of (it only forgets ended
// ones; this one it lost) is stopped: nothing wants it.
TEST_F(AllocRunnerTest, WhatTheControlPlaneHasNoRecordOfIsStopped) {
  auto runner = make_runner();
  cp.set({item("task-o1"), item("task-o2")});
  ASSERT_TRUE(cp.wait_status("task-o1", AllocStatus::kRunning));
  ASSERT_TRUE(cp.wait_status("task-o2", AllocStatus::kRunning));
  cp.set({item("task-o2", {}, model::DesiredState::kRun, AllocStatus::kRunning)});
  ASSERT_TRUE(cp.wait_status("task-o1", AllocStatus::kKilled));
  EXPECT_EQ(containers.stopped, std::vector<std::string>{"task-o1"});
  EXPECT_EQ(cp.last_of("task-o2").status, AllocStatus::kRunning);
}

TEST_F(AllocRunnerTest, FailedStartIsReportedWithTheReason) {
  containers.fail_start = true;
  auto runner = make_runner();
  cp.set({item("task-f1")});
  ASSERT_TRUE(cp.wait_status("task-f1", AllocStatus::kFailed));
  EXPECT_NE(cp.last_of("task-f1").message.find("manifest unknown"), std::string::npos);
}

TEST_F(AllocRunnerTest, ReadoptsRunningContainersAfterARestart) {
  {
    auto runner = make_runner();
    cp.set({item("task-r1")});
    ASSERT_TRUE(cp.wait_status("task-r1", AllocStatus::kRunning));
    runner->stop();  // the agent goes away; the container does not
  }
  EXPECT_TRUE(containers.stopped.empty());
  containers.adoptable = {{"task-r1", 4001, true, std::nullopt}};
  auto again = make_runner();
  // Not started a second time, still supervised: its exit is noticed.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(containers.started.size(), 1u);
  containers.exit("task-r1", 0);
  ASSERT_TRUE(cp.wait_status("task-r1", AllocStatus::kExited));
  EXPECT_EQ(cp.last_of("task-r1").pid, 4001);
}

TEST_F(AllocRunnerTest, ReapsContainersThatEndedWhileAway) {
  {
    auto runner = make_runner();
    cp.set({item("task-w1")});
    ASSERT_TRUE(cp.wait_status("task-w1", AllocStatus::kRunning));
    runner->stop();
  }
  containers.adoptable = {{"task-w1", 0, false, Exit{7, 0}}};
  auto again = make_runner();
  ASSERT_TRUE(cp.wait_status("task-w1", AllocStatus::kExited));
  EXPECT_EQ(cp.last_of("task-w1").exit_code, 7);
  EXPECT_EQ(containers.started.size(), 1u);
}

TEST_F(AllocRunnerTest, NeverRestartsWhatRanBeforeAndForgetsRemovedOnes) {
  auto runner = make_runner();
  cp.set({item("task-old", {}, model::DesiredState::kRun, AllocStatus::kExited),
          item("task-gone", {}, model::DesiredState::kRun, AllocStatus::kRunning),
          item("task-new")});
  ASSERT_TRUE(cp.wait_status("task-new", AllocStatus::kRunning));
  ASSERT_TRUE(cp.wait_status("task-gone", AllocStatus::kLost));
  EXPECT_EQ(containers.started, std::vector<std::string>{"task-new"});
  containers.exit("task-new", 0);
  ASSERT_TRUE(cp.wait_status("task-new", AllocStatus::kExited));
  cp.set({});  // the control plane forgot them all (retention)
  for (int i = 0; i < 100 && containers.forgotten.size() < 3; ++i)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(containers.forgotten, (std::set<std::string>{"task-old", "task-gone", "task-new"}));
}

// A service whose check is a command (no port needed): running, with the command's
// words as the reason, until the command passes; then healthy.
TEST_F(AllocRunnerTest, CommandHealthCheckGatesHealthyAndNeedsNoPort) {
  auto runner = make_runner();
  const std::string ready = dir.file("ready");
  auto db = item("db-1");
  db.alloc.kind = "service";
  db.alloc.group = "db";
  db.alloc.spec.health = model::HealthCheck{
      .path = "",
      .interval = 100ms,
      .command = {"sh", "-c", "test -f " + ready + " || { echo starting up; exit 2; }"}};
  cp.set({db});
  ASSERT_TRUE(mill::testing::eventually([&] {
    auto s = cp.last_of("db-1");
    return s.status == AllocStatus::kRunning && !s.message.empty();
  }));
  EXPECT_EQ(cp.last_of("db-1").message,
            "health check command sh -c test -f " + ready +
                " || { echo starting up; exit 2; }: exit 2: starting up");
  std::this_thread::sleep_for(1200ms);  // past the 1 s after which an unchecked one is healthy
  EXPECT_EQ(cp.last_of("db-1").status, AllocStatus::kRunning);
  std::ofstream(ready) << "";
  ASSERT_TRUE(cp.wait_status("db-1", AllocStatus::kHealthy));
  EXPECT_EQ(cp.last_of("db-1").message, "");
}

// On simulated time: a task's timeout and a crashed service's restart backoff are
// timers on the clock. Nothing happens until the clock reaches them, and then at once.
TEST_F(AllocRunnerTest, TimeoutsAndRestartBackoffsRunOnTheClock) {
  ManualClock time;
  auto runner = make_runner(time);
  auto web = item("web-1");
  web.alloc.kind = "service";
  web.alloc.group = "web";
  cp.set({item("task-h1", std::chrono::hours(1)), web});
  ASSERT_TRUE(cp.wait_status("task-h1", AllocStatus::kRunning));
  ASSERT_TRUE(cp.wait_status("web-1", AllocStatus::kRunning));
  // A service without a health check is healthy after it ran 1 s.
  time.advance(1s);
  ASSERT_TRUE(cp.wait_status("web-1", AllocStatus::kHealthy));
  // It crashes: started again after 1 s of backoff, not before.
  containers.exit("web-1", 1);
  ASSERT_TRUE(cp.wait_status("web-1", AllocStatus::kStarting));
  EXPECT_NE(cp.last_of("web-1").message.find("container exited with code 1; restarting in 1s"),
            std::string::npos)
      << cp.last_of("web-1").message;
  time.advance(999ms);
  EXPECT_FALSE(cp.wait_status("web-1", AllocStatus::kRunning, 200ms)) << "restarted early";
  time.advance(1ms);
  ASSERT_TRUE(cp.wait_status("web-1", AllocStatus::kRunning));
  EXPECT_EQ(cp.last_of("web-1").restarts, 1);
  // An hour-long timeout passes in no time, and only when the hour has.
  time.advance(std::chrono::minutes(59));
  EXPECT_FALSE(cp.wait_status("task-h1", AllocStatus::kTimeout, 200ms));
  time.advance(std::chrono::minutes(1));
  ASSERT_TRUE(cp.wait_status("task-h1", AllocStatus::kTimeout));
  std::lock_guard lock(containers.mu);
  EXPECT_EQ(containers.started.size(), 3u) << "the task, the service, its restart";
}

}  // namespace
}  // namespace mill::agent
