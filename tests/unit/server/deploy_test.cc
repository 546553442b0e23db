// The deploy controller over a real in-memory store and TaskManager, with the node
// played by the test: it answers pulls and reports allocations the way an agent
// does, so the rules of a rollout (what rolls, what stops, in which order, what a
// failure leaves behind) are checked without containers.

#include "server/deploy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <set>
#include <thread>

#include "server/node_monitor.h"
#include "store/memory_store.h"

namespace mill::server {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
constexpr int64_t kMiB = 1024 * 1024;

// Plays node-1's agent: pulls succeed unless the image names "missing"; a new
// allocation becomes healthy unless its image names "never-healthy"; a stop ends it.
// Event-driven like a real agent: it wakes on the node protocol's blocking query.
class FakeNode {
 public:
  explicit FakeNode(TaskManager& tasks) : tasks_(tasks) {
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeNode() {
    {
      std::lock_guard lock(wake_->mu);
      wake_->stop = true;
    }
    wake_->cv.notify_all();
    thread_.join();
  }
  // Blocks until the node has answered everything it was asked so far (or `real`
  // passes): then only time can move the deploy on.
  std::atomic<bool> held{true};
  // Lets "held" images become healthy.
  void release() {
    held = false;
    std::lock_guard lock(wake_->mu);
    wake_->woken = true;
    wake_->cv.notify_all();
  }

  bool await_idle(std::chrono::milliseconds real) {
    std::unique_lock lock(wake_->mu);
    if (!wake_->cv.wait_for(lock, real, [&] { return wake_->idle && !wake_->woken; })) {
      return false;
    }
    // Its wake-up may still be on its way: idle only if nothing changed since it looked.
    return tasks_.allocations_for("node-1").index == wake_->index;
  }

 private:
  // Shared with the blocking query's callback, which may come after this is gone.
  struct Wake {
    std::mutex mu;
    std::condition_variable cv;
    bool woken = false;
    bool idle = false;
    int64_t index = 0;  // of the blocking query it waits on
    bool stop = false;
  };

  void loop() {
    std::set<std::string> answered;
    while (true) {
      auto mine = tasks_.allocations_for("node-1");
      if (mine.pulls && !answered.contains(mine.pulls->deploy)) {
        answered.insert(mine.pulls->deploy);
        std::vector<model::PullReport> reports;
        for (const auto& i : mine.pulls->images) {
          bool missing = i.find("missing") != std::string::npos;
          reports.push_back({i, missing ? "image not found: " + i : ""});
        }
        tasks_.pulled("node-1", mine.pulls->deploy, reports);
      }
      std::vector<model::AllocState> states;
      for (const auto& v : mine.allocations) {
        model::AllocState s;
        s.id = v.alloc->id;
        auto now = v.status();
        if (v.alloc->desired == model::DesiredState::kStop) {
          if (model::is_terminal(now)) continue;
          s.status = model::AllocStatus::kKilled;
        } else if (now == model::AllocStatus::kPending) {
          s.status = model::AllocStatus::kRunning;
        } else if (now == model::AllocStatus::kRunning && may_become_healthy(*v.alloc)) {
          s.status = model::AllocStatus::kHealthy;
        } else {
          continue;
        }
        states.push_back(s);
      }
      if (!states.empty()) {
        (void)tasks_.report("node-1", states);
        continue;  // look again: the report may lead to the next step
      }
      std::unique_lock lock(wake_->mu);
      if (wake_->stop) return;
      wake_->woken = false;
      wake_->index = mine.index;
      lock.unlock();
      tasks_.wait_allocations(mine.index, std::chrono::steady_clock::now() + 1h,
                              [wake = wake_](bool) {
                                std::lock_guard lock(wake->mu);
                                wake->woken = true;
                                wake->cv.notify_all();
                              });
      lock.lock();
      wake_->idle = true;
      wake_->cv.notify_all();
      wake_->cv.wait(lock, [&] { return wake_->woken || wake_->stop; });
      wake_->idle = false;
      if (wake_->stop) return;
    }
  }

  // "never-healthy" images never do; of a "two-only" image, only the first two; "held"
  // ones once released.
  bool may_become_healthy(const model::Allocation& a) {
    const auto& image = a.spec.image;
    if (image.find("held") != std::string::npos && held) return false;
    if (image.find("never-healthy") != std::string::npos) return false;
    if (image.find("two-only") == std::string::npos) return true;
    healthy_.insert(a.id);
    if (healthy_.size() <= 2) return true;
    healthy_.erase(a.id);
    return false;
  }

  TaskManager& tasks_;
  std::set<std::string> healthy_;  // of "two-only" images
  std::shared_ptr<Wake> wake_ = std::make_shared<Wake>();
  std::thread thread_;
};

class DeployTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model::RegisterRequest reg{"", "host-a", "192.0.2.1", {2, 2, 1024 * kMiB, 1024 * kMiB}};
    ASSERT_TRUE(nodes.register_node(reg).has_value());
    ASSERT_TRUE(tasks.start().has_value());
    deploys = std::make_unique<DeployManager>(store, tasks, secrets, clock, options());
    ASSERT_TRUE(deploys->start().has_value());
  }
  // A new DeployManager (a server that starts again) on the same store.
  void restart_server() {
    deploys->stop();
    deploys.reset();
    deploys = std::make_unique<DeployManager>(store, tasks, secrets, clock, options());
    ASSERT_TRUE(deploys->start().has_value());
  }

  void TearDown() override {
    if (deploys) deploys->stop();
    node.reset();
    tasks.stop();
  }

  static DeployOptions options() {
    DeployOptions o;
    // Simulated time: the deadline passes only as the test moves the clock on, once the
    // node has answered everything (see finish()).
    o.default_deadline = 3s;
    o.keep_alive = 50ms;
    return o;
  }

  static std::string service(const std::string& name, int replicas,
                             const std::string& image = "r/app:v1") {
    return "[service." + name + "]\nimage = \"" + image +
           "\"\nreplicas = " + std::to_string(replicas) + "\nmemory = \"32M\"\n";
  }

  // Deploys and collects the stream: "phase service" per progress event, the
  // terminal event's name, and how many keep-alives came.
  struct Outcome {
    std::vector<std::string> steps;
    std::string end;
    std::string reason;
    int keep_alives = 0;
  };
  Outcome deploy(const std::string& config) {
    DeployRejection rejection;
    auto id = deploys->deploy(config, "t.toml", &rejection);
    EXPECT_TRUE(id.has_value()) << (id ? "" : id.error().message);
    if (!id) return {};
    // The callback runs on the deploy's thread and may outlive this call (a test that
    // gives up waiting): it shares its state, never throws, and unsubscribes once done.
    struct Shared {
      std::mutex mu;
      std::condition_variable cv;
      bool ended = false;
      bool gone = false;
      Outcome out;
    };
    auto shared = std::make_shared<Shared>();
    deploys->subscribe(*id, [shared](const DeployEvent& e) {
      std::lock_guard lock(shared->mu);
      if (shared->gone) return false;
      Outcome& out = shared->out;
      if (e.event.empty()) {
        ++out.keep_alives;
        return true;
      }
      boost::system::error_code ec;
      json::value v = json::parse(e.data, ec);
      const json::object* o = !ec && v.is_object() ? &v.as_object() : nullptr;
      const json::value* phase = o ? o->if_contains("phase") : nullptr;
      if (e.event == "progress") {
        std::string step = phase && phase->is_string() ? std::string(phase->as_string())
                                                       : "(bad event: " + e.data + ")";
        const json::value* s = o ? o->if_contains("service") : nullptr;
        if (s && s->is_string()) step += " " + std::string(s->as_string());
        out.steps.push_back(step);
        return true;
      }
      out.end = e.event;
      const json::value* r = o ? o->if_contains("reason") : nullptr;
      if (r && r->is_string()) out.reason = std::string(r->as_string());
      shared->ended = true;
      shared->cv.notify_all();
      return false;
    });
    finish([&] {
      std::lock_guard lock(shared->mu);
      return shared->ended;
    });
    std::lock_guard lock(shared->mu);
    EXPECT_TRUE(shared->ended) << "the deploy did not end";
    shared->gone = true;
    return shared->out;
  }

  // Moves simulated time on, 100 ms at a time, whenever the deploy waits for it and
  // the node has nothing left to answer, until `ended`. A deploy that needs no time
  // ends without any; one that waits out a deadline gets exactly what it waits for.
  template <class Ended>
  void finish(Ended ended) {
    auto give_up = std::chrono::steady_clock::now() + 60s;
    while (!ended() && std::chrono::steady_clock::now() < give_up) {
      if (clock.await_waiter(20ms) && node->await_idle(20ms) && !ended()) clock.advance(100ms);
    }
  }

  std::set<std::string> live(const std::string& service) {
    std::set<std::string> ids;
    for (const auto& v : tasks.group(model::kKindService, service)) {
      if (!model::is_terminal(v.status()) && v.alloc->desired == model::DesiredState::kRun) {
        ids.insert(v.alloc->id);
      }
    }
    return ids;
  }

  static int count(const std::vector<std::string>& steps, const std::string& step) {
    return static_cast<int>(std::count(steps.begin(), steps.end(), step));
  }

  store::MemoryStore store;
  ManualClock clock;
  NodeRegistry nodes{store, clock, 24h};  // the fake node does not heartbeat
  metrics::Registry metrics;
  TaskManager tasks{store, nodes, clock, metrics, TaskOptions{}};
  Secrets secrets{store, *crypto::Aead::create(std::string(32, 'k')), clock};
  std::unique_ptr<FakeNode> node = std::make_unique<FakeNode>(tasks);
  std::unique_ptr<DeployManager> deploys;
};

TEST_F(DeployTest, OnlyTheReplicaCountChangedStartsOrStopsOnlyTheDifference) {
  ASSERT_EQ(deploy(service("web", 2)).end, "done");
  auto two = live("web");
  ASSERT_EQ(two.size(), 2u);
  clock.advance(1s);  // the next allocation is younger

  auto up = deploy(service("web", 3));
  EXPECT_EQ(up.end, "done");
  EXPECT_EQ(count(up.steps, "scheduled web"), 1);
  EXPECT_EQ(count(up.steps, "stopped web"), 0);
  auto three = live("web");
  EXPECT_EQ(three.size(), 3u);
  for (const auto& id : two) EXPECT_TRUE(three.contains(id)) << id;

  auto down = deploy(service("web", 1));
  EXPECT_EQ(down.end, "done");
  EXPECT_EQ(count(down.steps, "scheduled web"), 0);
  EXPECT_EQ(count(down.steps, "stopped web"), 2);
  auto one = live("web");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_TRUE(two.contains(*one.begin())) << "the oldest stays";
}

TEST_F(DeployTest, ServicesRemovedFromTheConfigStopAfterTheOthersRolled) {
  ASSERT_EQ(deploy(service("old", 1) + service("web", 1)).end, "done");
  auto out = deploy(service("web", 1, "r/app:v2"));
  ASSERT_EQ(out.end, "done");
  ASSERT_FALSE(out.steps.empty());
  EXPECT_EQ(out.steps.back(), "stopped old");
  EXPECT_EQ(count(out.steps, "healthy web"), 1);
  EXPECT_TRUE(live("old").empty());
  EXPECT_EQ(deploys->deployed().services.count("old"), 0u);
}

TEST_F(DeployTest, AnImageNoNodeCanPullFailsBeforeAnythingIsPlaced) {
  ASSERT_EQ(deploy(service("web", 1)).end, "done");
  auto before = live("web");
  // With a new task template, which applies while the deploy runs ...
  auto out = deploy(service("web", 1, "r/missing:v2") + "[task.job]\nimage = \"r/job:v1\"\n");
  EXPECT_EQ(out.end, "failed");
  EXPECT_EQ(out.reason, "image not found: r/missing:v2");
  // ... and is taken back when it fails: the deployed config is still the previous one.
  EXPECT_EQ(tasks.config().tasks.count("job"), 0u);
  EXPECT_EQ(count(out.steps, "scheduled web"), 0);
  EXPECT_EQ(live("web"), before);
  EXPECT_EQ(deploys->deployed().services.at("web").image, "r/app:v1");
}

TEST_F(DeployTest, AWaitWithNoNewsKeepsTheStreamAliveUntilTheDeadlineFailsIt) {
  ASSERT_EQ(deploy(service("web", 2)).end, "done");
  auto before = live("web");
  auto out = deploy(service("web", 2, "r/never-healthy:v2"));
  EXPECT_EQ(out.end, "failed");
  EXPECT_EQ(out.reason, "not healthy (still running) after 3s");
  // 3 s of waiting at one keep-alive per 50 ms of silence.
  EXPECT_GE(out.keep_alives, 5);
  EXPECT_EQ(live("web"), before) << "the new allocation stopped, the old ones untouched";
  // Keep-alives are not part of the record.
  auto records = deploys->records();
  ASSERT_FALSE(records.empty());
  auto record = deploys->record(records.front().id);
  ASSERT_TRUE(record.has_value());
  for (const auto& e : record->events) EXPECT_FALSE(e.event.empty());
}

// The third of three replacements fails: the two new allocations already healthy
// (whose old ones were stopped) are rolled back one at a time, an allocation of the
// old spec started before each is stopped, so the service ends as it began: three
// allocations of v1.
TEST_F(DeployTest, AFailureAfterSomeReplacementsRollsThoseBackToo) {
  ASSERT_EQ(deploy(service("web", 3)).end, "done");
  auto out = deploy(service("web", 3, "r/two-only:v2"));
  EXPECT_EQ(out.end, "failed");
  EXPECT_EQ(out.reason, "not healthy (still running) after 3s");
  EXPECT_EQ(count(out.steps, "healthy web"), 2 + 2) << "two new, then two old ones again";
  EXPECT_EQ(count(out.steps, "stopped web"), 2 + 2);
  auto now = live("web");
  ASSERT_EQ(now.size(), 3u);
  for (const auto& v : tasks.group(model::kKindService, "web")) {
    if (now.contains(v.alloc->id)) {
      EXPECT_EQ(v.alloc->spec.image, "r/app:v1") << v.alloc->id;
    }
  }
}

// 3 more replicas of 600M on a node with 1 GiB: not all fit, so none is placed.
TEST_F(DeployTest, ABatchThatDoesNotAllFitPlacesNothing) {
  auto out = deploy("[service.big]\nimage = \"r/app:v1\"\nreplicas = 3\nmemory = \"400M\"\n");
  EXPECT_EQ(out.end, "failed");
  EXPECT_NE(out.reason.find("only 2 of the 3 allocations"), std::string::npos) << out.reason;
  EXPECT_EQ(count(out.steps, "scheduled big"), 0);
  EXPECT_TRUE(tasks.group(model::kKindService, "big").empty());
}

// A server that stops (or dies) in the middle of a rolling update leaves the deploy
// "running" in its record; the next one carries it on from there and finishes it,
// without starting over: the allocations already placed are the ones that finish.
TEST_F(DeployTest, ADeployCutOffByItsServerIsCarriedOnByTheNextOne) {
  ASSERT_EQ(deploy(service("web", 3)).end, "done");
  auto before = live("web");
  DeployRejection rejection;
  auto id = deploys->deploy(service("web", 3, "r/held:v2"), "t.toml", &rejection);
  ASSERT_TRUE(id.has_value());
  // Cut off while the first new allocation runs and waits for its health check.
  auto scheduled = [&] {
    auto r = deploys->record(*id);
    return r && std::any_of(r->events.begin(), r->events.end(), [](const DeployEvent& e) {
             return e.data.find("\"starting\"") != std::string::npos;
           });
  };
  finish(scheduled);
  ASSERT_TRUE(scheduled());
  deploys->stop();
  deploys.reset();
  auto placed = tasks.group(model::kKindService, "web").size();
  EXPECT_EQ(placed, before.size() + 1);

  DeployOptions o;
  o.default_deadline = 3s;
  deploys = std::make_unique<DeployManager>(store, tasks, secrets, clock, o);
  ASSERT_TRUE(deploys->start().has_value());
  auto r = deploys->record(*id);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, "running");
  deploys->resume();
  node->release();
  finish([&] {
    auto r = deploys->record(*id);
    return r && r->status != "running";
  });
  r = deploys->record(*id);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, "done") << r->reason;
  int scheduled_events = 0, healthy_events = 0, stopped_events = 0;
  for (const auto& e : r->events) {
    scheduled_events += e.data.find("\"scheduled\"") != std::string::npos;
    healthy_events += e.data.find("\"healthy\"") != std::string::npos;
    stopped_events += e.data.find("\"stopped\"") != std::string::npos;
  }
  EXPECT_EQ(scheduled_events, 3) << "the allocation placed before the cut is not placed again";
  EXPECT_EQ(healthy_events, 3);
  EXPECT_EQ(stopped_events, 3);
  auto now = live("web");
  ASSERT_EQ(now.size(), 3u);
  for (const auto& v : tasks.group(model::kKindService, "web")) {
    if (now.contains(v.alloc->id)) {
      EXPECT_EQ(v.alloc->spec.image, "r/held:v2");
    }
  }
  EXPECT_EQ(deploys->deployed().services.at("web").image, "r/held:v2");
  EXPECT_EQ(tasks.group(model::kKindService, "web").size(), before.size() + 3);
}

// A deploy that fails partway: the services rolled before the failure run their new
// spec, and that is what is deployed for them, for the API, for keeping replicas, and
// for the next server; the failed one is at what it was before.
TEST_F(DeployTest, AFirstDeployThatFailsPartwayLeavesTheFinishedServiceDeployed) {
  auto out = deploy(service("api", 2) + service("web", 1, "r/never-healthy:v1"));
  ASSERT_EQ(out.end, "failed");
  EXPECT_EQ(live("api").size(), 2u);
  EXPECT_TRUE(live("web").empty());
  auto check = [&](const char* when) {
    auto deployed = deploys->deployed();
    ASSERT_EQ(deployed.services.count("api"), 1u) << when;
    EXPECT_EQ(deployed.services.at("api").replicas, 2) << when;
    EXPECT_EQ(deployed.services.at("api").image, "r/app:v1") << when;
    EXPECT_EQ(deployed.services.count("web"), 0u) << when;
    EXPECT_EQ(deploys->deployed_text(), "") << when << ": nothing was deployed in full";
  };
  check("after the deploy");
  // Kept at its replica count between deploys, like any deployed service.
  auto lost = *live("api").begin();
  ASSERT_TRUE(tasks.lose(lost, "gone").value_or(false));
  EXPECT_EQ(deploys->keep_replicas().size(), 1u);
  EXPECT_EQ(live("api").size(), 2u);
  // web was never deployed: nothing to restart.
  auto restart = deploys->restart("web");
  ASSERT_FALSE(restart.has_value());
  EXPECT_EQ(restart.error().code, ErrorCode::kNotFound);
  // The next server knows the same.
  ASSERT_NO_FATAL_FAILURE(restart_server());
  check("after a server restart");
}

TEST_F(DeployTest, ASecondDeployThatFailsPartwayLeavesEachServiceAtWhatRuns) {
  ASSERT_EQ(deploy(service("api", 2) + service("web", 1)).end, "done");
  auto out = deploy(service("api", 1, "r/app:v2") + service("web", 1, "r/never-healthy:v2"));
  ASSERT_EQ(out.end, "failed");
  auto images = [&](const std::string& name) {
    std::multiset<std::string> out;
    for (const auto& v : tasks.group(model::kKindService, name)) {
      if (live(name).contains(v.alloc->id)) out.insert(v.alloc->spec.image);
    }
    return out;
  };
  EXPECT_EQ(images("api"), (std::multiset<std::string>{"r/app:v2"}));
  EXPECT_EQ(images("web"), (std::multiset<std::string>{"r/app:v1"}));
  auto check = [&](const char* when) {
    auto deployed = deploys->deployed();
    EXPECT_EQ(deployed.services.at("api").image, "r/app:v2") << when;
    EXPECT_EQ(deployed.services.at("api").replicas, 1) << when;
    EXPECT_EQ(deployed.services.at("web").image, "r/app:v1") << when;
    EXPECT_EQ(deployed.services.at("web").replicas, 1) << when;
  };
  check("after the deploy");
  ASSERT_NO_FATAL_FAILURE(restart_server());
  check("after a server restart");
  // A later deploy that succeeds records every service at it; api, dropped, stops and
  // is forgotten.
  ASSERT_EQ(deploy(service("web", 2, "r/app:v3")).end, "done");
  EXPECT_TRUE(live("api").empty());
  auto deployed = deploys->deployed();
  EXPECT_EQ(deployed.services.count("api"), 0u);
  EXPECT_EQ(deployed.services.at("web").image, "r/app:v3");
}

// A missing secret is an error at its reference, reported with the config's other
// errors, sorted by position; nothing starts.
TEST_F(DeployTest, AMissingSecretIsRejectedWithTheOtherErrorsAtItsPosition) {
  ASSERT_TRUE(secrets.put("db_url", "postgres://").has_value());
  DeployRejection rejection;
  auto id = deploys->deploy(
      "[service.web]\nimage = \"r/app:v1\"\nenv = { A = \"${secret:db_uri}\", B = "
      "\"${secret:db_url}\" }\nreplicas = -1\n",
      "t.toml", &rejection);
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error().code, ErrorCode::kInvalidArgument);
  ASSERT_EQ(rejection.errors.size(), 2u) << ::testing::PrintToString(rejection.errors);
  EXPECT_EQ(rejection.errors[0],
            "t.toml:3:13: service.web: env.A: secret \"db_uri\" is not set (mill secret set "
            "db_uri); did you mean \"db_url\"?");
  EXPECT_EQ(rejection.errors[1].rfind("t.toml:4:12: ", 0), 0u) << rejection.errors[1];
  EXPECT_EQ(rejection.message, "the config has 2 errors");
  EXPECT_TRUE(deploys->records().empty());
}

// Between deploys a service keeps its replicas: one lost (its node went down) is
// replaced at once; a replacement that is lost again waits out a backoff (1 s, then 2 s,
// ...) on the clock, so a service whose replicas keep ending cannot churn.
TEST_F(DeployTest, ALostReplicaIsReplacedAndRepeatedLossesBackOffOnTheClock) {
  auto first = deploy(service("web", 2));
  ASSERT_EQ(first.end, "done");
  auto before = live("web");
  ASSERT_EQ(before.size(), 2u);
  ASSERT_TRUE(tasks.lose(*before.begin(), "node node-1 (host-a) is down").value_or(false));
  EXPECT_EQ(live("web").size(), 1u);
  auto placed = deploys->keep_replicas();
  ASSERT_EQ(placed.size(), 1u);
  EXPECT_EQ(live("web").size(), 2u);
  EXPECT_FALSE(before.contains(placed[0]));
  // Lost again before it was ever healthy: the next top-up waits 1 s of clock time.
  ASSERT_TRUE(tasks.lose(placed[0], "node node-1 (host-a) is down").value_or(false));
  EXPECT_TRUE(deploys->keep_replicas().empty()) << "topped up again within the backoff";
  clock.advance(999ms);
  EXPECT_TRUE(deploys->keep_replicas().empty());
  clock.advance(1ms);
  auto again = deploys->keep_replicas();
  ASSERT_EQ(again.size(), 1u);
  ASSERT_TRUE(tasks.lose(again[0], "gone").value_or(false));
  clock.advance(1s);
  EXPECT_TRUE(deploys->keep_replicas().empty()) << "the backoff doubles: 2 s now";
  clock.advance(1s);
  EXPECT_EQ(deploys->keep_replicas().size(), 1u);
  EXPECT_EQ(tasks.get(*before.begin())->status(), model::AllocStatus::kLost);
  EXPECT_EQ(tasks.get(*before.begin())->state->message, "node node-1 (host-a) is down");
}

// The node monitor on simulated time: a node silent for less than the TTL keeps what
// it runs; past it, everything on it is lost with the reason.
TEST_F(DeployTest, ANodeSilentPastItsTtlHasItsAllocationsLost) {
  ASSERT_EQ(deploy(service("web", 1)).end, "done");
  auto id = *live("web").begin();
  NodeMonitor monitor(nodes, tasks, *deploys, clock, {.down_after = 10s});
  clock.advance(9999ms);
  monitor.check();
  EXPECT_EQ(tasks.get(id)->status(), model::AllocStatus::kHealthy) << "lost before the TTL";
  clock.advance(1ms);
  monitor.check();
  EXPECT_EQ(tasks.get(id)->status(), model::AllocStatus::kLost);
  EXPECT_NE(tasks.get(id)->state->message.find("is down: no heartbeat for 10s"), std::string::npos)
      << tasks.get(id)->state->message;
}

}  // namespace
}  // namespace mill::server
