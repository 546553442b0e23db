#pragma once

// Runs this node's allocations (Nomad's alloc runner): follows the control plane's
// desired allocations through the node protocol's blocking query, starts what is
// new, stops what should stop or has run past its timeout, reports every status
// change, and after a restart re-adopts containers that kept running (their shims
// hold them) and reaps those that ended meanwhile.
//
// Event-driven: nothing wakes per allocation while it runs. Its container's exit
// arrives from the runtime (Containers::on_exit), health changes from the checker,
// and its deadlines (a task's timeout, a service's restart backoff, healthy after
// kMinHealthy without a check) are entries in one Timers thread, which also samples
// every allocation's usage at usage_interval. A start or a stop (blocking: pull,
// network, rootfs; SIGTERM, grace) runs on a short-lived thread of its own. One thread
// follows the blocking query, one sends reports (StatusReporter). What must survive a
// restart (the allocation, its state, why it was stopped) is kept in a small JSON file
// per allocation (alloc_lifecycle.cc has one allocation's life; this file the rest).
//
// Thread-safety: public methods may be called from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/containers.h"
#include "agent/node_client.h"
#include "agent/status_reporter.h"
#include "agent/timers.h"
#include "common/clock.h"
#include "health/checker.h"
#include "model/allocation.h"

namespace mill::agent {

struct RunnerOptions {
  std::string state_dir;                       // one <id>.json per allocation
  std::chrono::milliseconds grace{10000};      // SIGTERM to SIGKILL
  std::chrono::milliseconds poll_wait{30000};  // blocking query length
  // How often running allocations' usage is read (and reported when it changed). It
  // is also read as each one starts running and as it ends, so what the control plane
  // shows is at most this old.
  std::chrono::milliseconds usage_interval{1000};
  // Gets the routes of every answer from the control plane (on the poll thread),
  // before the allocations in it are acted on.
  std::function<void(const std::vector<model::ServiceRoute>&)> on_routes;
  // Runs before a routed service allocation is sent SIGTERM: takes it out of the
  // proxy and waits for its requests in flight (the drain period).
  std::function<void(const model::Allocation&)> drain;
};

class AllocRunner {
 public:
  AllocRunner(RunnerOptions options, Containers& containers, NodeClient& client,
              const Clock& clock);
  ~AllocRunner();

  // Re-adopts what the state dir and the runtime know, then follows the control plane.
  Result<void> start(const std::string& node_id);
  // Stops following; containers keep running (the next start re-adopts them).
  void stop();

  // The allocation's last state as this node knows it; nullopt if unknown here.
  std::optional<model::AllocState> state(const std::string& id) const;
  // The allocations of a service this node knows (running or ended, not forgotten).
  std::vector<std::string> allocations_of(const std::string& service) const;
  // Addresses of running allocations with this DNS name ("<id>.mill").
  std::vector<std::string> lookup(std::string_view name) const;

 private:
  // Where one allocation is in its life (the runner's view; its status is what it
  // reports).
  enum class Phase { kNew, kStarting, kRunning, kStopping, kEnding, kWaitingRestart, kDone };
  struct Entry {
    model::Allocation alloc;
    model::AllocState state;
    std::string image_digest;
    std::string stop_reason;  // "", "killed" or "timeout": why we stopped it
    bool stop_requested = false;
    bool worker_running = false;  // not ended yet: a start, a run, a stop or a restart
    Phase phase = Phase::kNew;
    uint64_t generation = 0;       // bumped per container start: an older exit is stale
    uint64_t timeout_timer = 0;    // tasks: stop at the timeout
    uint64_t healthy_timer = 0;    // services without a check: healthy after kMinHealthy
    uint64_t restart_timer = 0;    // services: the backoff before the next start
    int crash_streak = 0;          // services: ends in a row without a stable run between
    std::string last_exit;         // services: how the container last ended
    bool restart_on_sync = false;  // ended while the agent was away: start on first sync
    SystemTime usage_sent_at{};    // when a sample of its usage was last reported
  };
  using Ptr = std::shared_ptr<Entry>;
  // Runtime and checker callbacks hold this, not the runner: once the runner stops,
  // a late callback finds it null.
  struct Alive {
    std::mutex mu;
    AllocRunner* runner = nullptr;
  };

  // alloc_runner.cc: following the control plane.
  void poll_loop();
  // A deploy's `pulling` phase: pulls each image of a deploy not seen before, all in
  // parallel, and reports each outcome.
  void pull_images(const model::ImagePulls& pulls);
  // Destroys volumes the control plane asked to remove, and says how it went.
  void remove_volumes(const std::vector<std::string>& names);
  void reconcile(const model::DesiredAllocations& desired);
  void adopt();
  void persist(const Entry& entry);
  // Sets the status (and more via `change`), persists when it matters, reports.
  void update(const Ptr& entry, const std::function<void(Entry&)>& change, bool persist);

  // alloc_lifecycle.cc: one allocation.
  // Starts it (on a thread of its own) or, re-adopted, supervises what runs.
  void launch(const Ptr& entry, bool start_it);
  // Runs `fn` on a short-lived thread (joined by stop() or the next call).
  void in_background(std::function<void()> fn);
  void start_and_supervise(const Ptr& entry);
  bool start_container(const Ptr& entry);
  // It runs: watch its exit and health, set its timers; stop it if that was asked.
  void supervise(const Ptr& entry);
  // Stops it (SIGTERM, grace, SIGKILL) on a thread of its own, unless it is not
  // running yet (supervise() then does) or already stopping.
  void request_stop(const Ptr& entry, const std::string& reason);
  void stop_container(const Ptr& entry, const std::string& reason);
  // From the runtime: the container of `generation` ended.
  void exited(const Ptr& entry, uint64_t generation, Result<Exit> exit);
  void handle_exit(const Ptr& entry, Result<Exit> exit);
  // Services: releases the ended container and starts it again after the backoff (1 s
  // doubling to 5 min).
  void restart_later(const Ptr& entry);
  void cancel_timers(const Ptr& entry);
  void mark_healthy_if_due(const Ptr& entry);
  // Every usage_interval: each running allocation's cpu, memory and volume use,
  // reported when it changed, and at least every kUsageResend when it did not (so the
  // control plane's cpu rate falls to 0 for an allocation gone idle): an idle
  // allocation costs a report every few seconds, not every interval.
  void sample_usage();
  // Its container's usage now, into its state (start_container, finish): as it starts
  // running all of it; as it ends the cpu time (memory stays what it used running).
  enum class UsageAt { kStart, kEnd };
  void measure(model::AllocState& state, const std::optional<Usage>& usage, UsageAt at) const;
  // Services with a health check: probes the running container (HTTP GET of the
  // check's path, else a TCP connect to its port); healthy after the check's passes in
  // a row, back to running with the reason after 3 failures. While it is not healthy,
  // the checker's latest error is the allocation's message, so a deploy that gives up
  // says why ("health check GET /healthz: 500").
  void watch_health(const Ptr& entry);
  void unwatch_health(const std::string& id);
  void finish(const Ptr& entry, model::AllocStatus status, std::optional<Exit> exit,
              std::string message);

  RunnerOptions options_;
  Containers& containers_;
  NodeClient& client_;
  const Clock& clock_;
  std::string node_;
  std::shared_ptr<Alive> alive_ = std::make_shared<Alive>();

  mutable std::mutex mutex_;
  std::condition_variable changed_;  // stopping_
  std::map<std::string, Ptr> entries_;
  bool stopping_ = false;

  std::mutex background_mutex_;
  std::vector<std::pair<std::shared_ptr<std::atomic<bool>>, std::thread>> background_;
  bool background_closed_ = false;  // stop() has taken the list

  std::string pulled_for_;  // the deploy whose images were last pulled (poll thread)
  std::vector<std::thread> pullers_;

  std::thread poller_;
  StatusReporter reporter_;
  Timers timers_;
  // Last: destroyed first, so no health callback runs on a half-destroyed runner.
  std::unique_ptr<health::Checker> checker_;
};

}  // namespace mill::agent
