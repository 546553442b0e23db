#pragma once

// Runs this node's allocations (Nomad's alloc runner): follows the control plane's
// desired allocations through the node protocol's blocking query, starts what is
// new, stops what should stop or has run past its timeout, reports every status
// change, and after a restart re-adopts containers that kept running (their shims
// hold them) and reaps those that ended meanwhile.
//
// One worker thread per live allocation (start, then supervise), one thread for the
// blocking query, one for reports. What must survive a restart (the allocation, its
// state, why it was stopped) is kept in a small JSON file per allocation.
//
// Thread-safety: public methods may be called from any thread.

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
#include "common/clock.h"
#include "health/checker.h"
#include "model/allocation.h"

namespace mill::agent {

struct RunnerOptions {
  std::string state_dir;                           // one <id>.json per allocation
  std::chrono::milliseconds grace{10000};          // SIGTERM to SIGKILL
  std::chrono::milliseconds poll_wait{30000};      // blocking query length
  std::chrono::milliseconds usage_interval{5000};  // usage reports of running allocations
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
  struct Entry {
    model::Allocation alloc;
    model::AllocState state;
    std::string image_digest;
    std::string stop_reason;  // "", "killed" or "timeout": why we stopped it
    bool stop_requested = false;
    bool worker_running = false;
    int crash_streak = 0;          // services: ends in a row without a stable run between
    std::string last_exit;         // services: how the container last ended
    bool restart_on_sync = false;  // ended while the agent was away: start on first sync
  };
  using Ptr = std::shared_ptr<Entry>;

  void poll_loop();
  // A deploy's `pulling` phase: pulls each image of a deploy not seen before, all in
  // parallel, and reports each outcome.
  void pull_images(const model::ImagePulls& pulls);
  // Destroys volumes the control plane asked to remove, and says how it went.
  void remove_volumes(const std::vector<std::string>& names);
  void report_loop();
  void reconcile(const model::DesiredAllocations& desired);
  void spawn_worker(const Ptr& entry, bool start_it);
  void run(const Ptr& entry, bool start_it);
  bool start_container(const Ptr& entry);
  // Watches it until it ends. True when a service's container ended by itself (to be
  // restarted); false when the allocation is finished (or the agent is stopping).
  bool supervise(const Ptr& entry);
  // Services: waits out the backoff (1 s doubling to 5 min) and starts it again.
  bool restart_after_exit(const Ptr& entry);
  void mark_healthy_if_due(const Ptr& entry, SystemTime now);
  // Services with a health check: probes the running container (HTTP GET of the
  // check's path, else a TCP connect to its port); healthy after the check's passes in
  // a row, back to running with the reason after 3 failures. Not under mutex_.
  void watch_health(const Ptr& entry);
  void unwatch_health(const std::string& id);
  // While it is not healthy, the checker's last error is the allocation's message, so
  // a deploy that gives up says why ("health check GET /healthz: 500").
  void note_health_error(const Ptr& entry);
  void finish(const Ptr& entry, model::AllocStatus status, std::optional<Exit> exit,
              std::string message);
  // Sets the status (and more via `change`), persists when it matters, reports.
  template <class F>
  void update(const Ptr& entry, F change, bool persist);
  void persist(const Entry& entry);
  void queue_report(const model::AllocState& state);
  void adopt();

  RunnerOptions options_;
  Containers& containers_;
  NodeClient& client_;
  const Clock& clock_;
  std::string node_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;  // entries' flags, stopping_
  std::map<std::string, Ptr> entries_;
  std::vector<std::pair<Ptr, std::thread>> workers_;  // joined once finished
  bool stopping_ = false;

  std::mutex report_mutex_;
  std::condition_variable report_wake_;
  std::map<std::string, model::AllocState> pending_reports_;
  // Allocations whose current state the control plane does not show: sent again, as
  // they are when the reporter gets to them.
  std::set<std::string> resend_;

  std::string pulled_for_;  // the deploy whose images were last pulled (poll thread)
  std::vector<std::thread> pullers_;

  std::thread poller_;
  std::thread reporter_;
  // Last: destroyed first, so no health callback runs on a half-destroyed runner.
  std::unique_ptr<health::Checker> checker_;
};

}  // namespace mill::agent
