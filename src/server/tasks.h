#pragma once

// Ephemeral tasks and service allocations on the control plane (spec: Tasks), as one
// facade over the pieces that each do one job:
//
//   AllocTable      allocations and their states in memory (the only writer's cache)
//   PlanApplier     placement: snapshot -> scheduler plan -> one store transaction
//                   (address pool, volume bindings, CAS on the placement epoch)
//   AllocWriter     changes to placed allocations: kill, status reports, sweep
//   VolumeBindings  where volumes live, and their removal
//   DeployPulls     a deploy's image pulls, asked of nodes and answered
//   NodeProtocolView  what a node should run, for the node protocol's blocking query
//   SpawnTemplates  task templates and registries from the config
//   UsageMetrics    what allocations use and do, as metrics
//   Waiters         the one way to wait: for an allocation's state, a volume's
//                   removal, the blocking query (WatchHub), any news (on_change)
//
// Store I/O and locks: writers commit to the store, then apply to memory, then wake
// waiters; readers read memory only and never wait for the store. Locks, outermost
// first (one never taken while holding a later one):
//   1. PlanApplier's placement lock: held across a placement's store transaction.
//   2. An allocation's write guard (AllocTable::guard): held by its writer across that
//      allocation's store write (kill, report, sweep).
//   3. Leaf mutexes of AllocTable, VolumeBindings, DeployPulls, SpawnTemplates,
//      UsageMetrics: held only while memory is read or changed, one at a time, never
//      across store I/O or a callback. get/list/group/allocations_for take only these.
//   4. WatchHub's, then Waiters' mutex: taken to wake or register, briefly.
// Callbacks (when_*, wait_allocations) run on the waiters' thread with no lock held,
// and must not block for long; on_change listeners run on the writer's thread.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "metrics/registry.h"
#include "model/allocation.h"
#include "model/config.h"
#include "model/ipv4.h"
#include "model/node.h"
#include "model/node_protocol.h"
#include "server/alloc_table.h"
#include "server/alloc_writer.h"
#include "server/image_pulls.h"
#include "server/node_registry.h"
#include "server/node_view.h"
#include "server/plan_applier.h"
#include "server/spawn_templates.h"
#include "server/usage.h"
#include "server/volume_bindings.h"
#include "server/waiters.h"
#include "server/watch_hub.h"
#include "store/store.h"

namespace mill::server {

struct TaskOptions {
  model::Ipv4Net cluster_network{0x0a630000, 16};              // 10.99.0.0/16
  std::chrono::milliseconds retention{std::chrono::hours(1)};  // ended tasks stay visible
};

class TaskManager {
 public:
  TaskManager(store::Store& store, NodeRegistry& nodes, const Clock& clock,
              metrics::Registry& metrics, TaskOptions options);
  ~TaskManager();

  // Loads allocations, volumes and the address pool's users from the store and starts
  // the waiters' thread and the sweeper.
  Result<void> start();
  void stop();

  // Task templates ([task.NAME]) and registries from the config.
  void set_config(model::Config config) { templates_.set_config(std::move(config)); }
  model::Config config() const { return templates_.config(); }

  // Places and records a new task; kNotFound for an unknown template, kUnavailable
  // when no node is ready, kConflict when none has room. The agent starts it.
  Result<TaskView> spawn(const SpawnRequest& request);
  // Places and records one allocation of a service (kind "service", id
  // "<service>-xxxx"), spread over nodes away from the service's other allocations.
  // Errors as spawn(). Stopping one is kill().
  Result<TaskView> place_service(const std::string& service, const model::AllocSpec& spec);
  // Whether `count` more allocations of `spec` fit now, all of them (the scheduler's
  // whole plan): a deploy checks a batch before it places any of it.
  Result<void> check_fit(std::string_view kind, const std::string& group,
                         const model::AllocSpec& spec, int count) {
    return placer_.check_fit(kind, group, spec, count);
  }
  // The not yet forgotten allocations of one task template or service, oldest first.
  std::vector<TaskView> group(std::string_view kind, const std::string& group) const {
    return table_.group(kind, group);
  }
  // CPU cores the allocation used between its last two usage reports (nullopt until
  // there have been two).
  std::optional<double> cpu_usage(const std::string& id) const { return usage_.cpu_usage(id); }
  // The groups of `kind` with at least one allocation that has not ended.
  std::vector<std::string> live_groups(std::string_view kind) const {
    return table_.live_groups(kind);
  }
  // Fills in each node's load (Node::load): its live allocations, services' and tasks',
  // and what they reserve, from the sums placement uses.
  void add_load(std::vector<model::Node>& nodes) const;
  std::vector<TaskView> live_on(const std::string& node) const { return table_.live_on(node); }
  // `listener` runs after every change of an allocation and every pull answer (on the
  // thread that made it; must not block): a deploy waits on it.
  void on_change(std::function<void()> listener) { waiters_.subscribe(std::move(listener)); }

  // Returns once the allocation's record is safe from a power loss: a spawn commits
  // it without waiting for the fsync, and calls this before it answers.
  Result<void> make_durable(const std::string& id);

  using ViewCallback = AllocTable::ViewCallback;
  // Calls back once the task runs or has ended, or with kTimeout at the deadline.
  void when_started(const std::string& id, WatchHub::Deadline deadline, ViewCallback callback) {
    table_.wait(id, started_or_ended, deadline, std::move(callback));
  }
  // Calls back once the task has ended, or with kTimeout at the deadline.
  void when_ended(const std::string& id, WatchHub::Deadline deadline, ViewCallback callback) {
    table_.wait(id, ended, deadline, std::move(callback));
  }

  Result<TaskView> get(const std::string& id) const { return table_.get(id); }
  // Running (not ended) tasks, or all retained ones; newest first.
  std::vector<TaskView> list(bool include_ended) const { return table_.tasks(include_ended); }
  // Asks the node to stop it (SIGTERM, grace, SIGKILL); kNotFound if unknown. An
  // ended task is returned as it is.
  Result<TaskView> kill(const std::string& id) { return writer_.kill(id); }
  // The allocation's node is down: it ends as lost (AllocWriter::lose).
  Result<bool> lose(const std::string& id, const std::string& reason) {
    return writer_.lose(id, reason);
  }

  // Node protocol.
  NodeAllocations allocations_for(const std::string& node) const {
    return node_view_.allocations_for(node);
  }
  void wait_allocations(int64_t after, WatchHub::Deadline deadline, WatchHub::Callback cb) {
    node_view_.wait(after, deadline, std::move(cb));
  }
  // Records what the agent reports; ignores allocations not placed on that node.
  Result<void> report(const std::string& node, const std::vector<model::AllocState>& states) {
    return writer_.report(node, states);
  }

  // Volumes that have a home node, by name.
  std::vector<VolumeBinding> volumes() const { return volumes_.list(); }
  // Asks the volume's node to destroy it (node protocol); kNotFound when it has no
  // home. The caller checks that nothing uses it.
  Result<void> remove_volume(const std::string& name) { return volumes_.remove(name); }
  // The node's answer; a removed volume's record goes.
  void volumes_removed(const std::string& node, const std::vector<model::VolumeReport>& reports) {
    volumes_.removed(node, reports);
  }
  // Calls back once the volume is gone (ok), its node failed to remove it (the error),
  // or at the deadline (kTimeout).
  void when_volume_removed(const std::string& name, WatchHub::Deadline deadline,
                           std::function<void(Result<void>)> callback) {
    volumes_.when_removed(name, deadline, std::move(callback));
  }
  // Nodes that can take new allocations now (ready, not draining).
  std::vector<std::string> eligible_nodes() const;
  // A deploy's `pulling` phase: asks each of `nodes` to have `images` (delivered with
  // its desired allocations) and forgets earlier answers for this deploy.
  Result<void> request_pulls(const std::string& deploy, const std::vector<std::string>& nodes,
                             const std::vector<std::string>& images) {
    return pulls_.request(deploy, nodes, images);
  }
  // Ends it: nodes stop being asked.
  void clear_pulls(const std::vector<std::string>& nodes) { pulls_.clear(nodes); }
  // A node's answer (node protocol); wakes on_change listeners.
  void pulled(const std::string& node, const std::string& deploy,
              const std::vector<model::PullReport>& reports) {
    pulls_.answered(node, deploy, reports);
  }
  // The answers so far for `deploy`, by node then image; error empty when present.
  std::map<std::string, std::map<std::string, std::string>> pull_reports(
      const std::string& deploy) const {
    return pulls_.reports(deploy);
  }

  // Forgets tasks that ended more than `retention` ago (store records and addresses).
  // start() runs it periodically.
  Result<int> sweep() { return writer_.sweep(options_.retention); }

 private:
  void sweep_loop();

  store::Store& store_;
  NodeRegistry& nodes_;
  TaskOptions options_;
  // Declared first: the pieces below register polls with it, which it may run until
  // it stops.
  Waiters waiters_;
  WatchHub node_hub_;  // the node protocol's blocking query
  AllocTable table_;
  VolumeBindings volumes_;
  DeployPulls pulls_;
  UsageMetrics usage_;
  SpawnTemplates templates_;
  PlanApplier placer_;
  AllocWriter writer_;
  NodeProtocolView node_view_;

  std::mutex sweep_mutex_;
  std::condition_variable sweep_wake_;
  bool stopping_ = false;
  std::thread sweeper_;
};

}  // namespace mill::server
