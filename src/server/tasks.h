#pragma once

// Ephemeral tasks on the control plane (spec: Tasks). The leader places a task with
// the pure scheduler, takes an address from the node's pool and records the
// allocation in one store transaction; the node's agent learns of it through the node
// protocol (desired allocations, a blocking query) and reports back what runs.
//
// The leader is the only writer of allocations, so it keeps them in memory as well
// (loaded from the store at start): placement and listing never scan the store.
//
// Thread-safety: every method may be called from any thread. Callbacks passed to the
// when_*() methods run on a watch thread and must not block.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
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
#include "scheduler/scheduler.h"
#include "server/node_registry.h"
#include "server/watch_hub.h"
#include "store/store.h"

namespace mill::server {

struct TaskOptions {
  model::Ipv4Net cluster_network{0x0a630000, 16};              // 10.99.0.0/16
  std::chrono::milliseconds retention{std::chrono::hours(1)};  // ended tasks stay visible
};

// What POST /v1/tasks/spawn asks for, decoded: a template name (with env added), or
// an inline spec.
struct SpawnRequest {
  std::string template_name;  // empty: inline
  model::AllocSpec spec;      // inline: the whole spec; template: only env is used
};

// Where a volume lives: created on `node` when `service` first landed there.
struct VolumeBinding {
  std::string name;
  std::string node;
  std::string service;
  int64_t size = 0;  // bytes, as first created
  SystemTime created_at{};
  int64_t used = 0;  // bytes in use, as last reported by an allocation mounting it
};

struct TaskView {
  model::Allocation alloc;
  std::optional<model::AllocState> state;  // none until the agent first reports

  model::AllocStatus status() const { return state ? state->status : model::AllocStatus::kPending; }
};

// What a node should run: every allocation placed on it that is not yet forgotten.
struct NodeAllocations {
  int64_t index = 0;                  // pass back as `after` to wait for the next change
  std::vector<TaskView> allocations;  // with their last reported state
  std::optional<model::ImagePulls> pulls;
  std::vector<std::string> remove_volumes;  // volumes of this node to destroy
  // Every routed service's healthy allocations, cluster-wide, for the node's proxy
  // (TLS still as secret references). Read with the allocations, so a node learns of a
  // new healthy allocation no later than of the old one it replaces being stopped.
  std::vector<model::ServiceRoute> routes;
};

class TaskManager {
 public:
  TaskManager(store::Store& store, NodeRegistry& nodes, const Clock& clock,
              metrics::Registry& metrics, TaskOptions options);
  ~TaskManager();

  // Loads allocations and the address pool from the store and starts the watches.
  Result<void> start();
  void stop();

  // Task templates ([task.NAME]) and registries from the config.
  void set_config(model::Config config);
  model::Config config() const;

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
                         const model::AllocSpec& spec, int count);
  // The not yet forgotten allocations of one task template or service, oldest first.
  std::vector<TaskView> group(std::string_view kind, const std::string& group) const;
  // CPU cores the allocation used over its last report interval (0 until known).
  double cpu_usage(const std::string& id) const;
  // The groups of `kind` with at least one allocation that has not ended.
  std::vector<std::string> live_groups(std::string_view kind) const;
  // Allocations (services' and tasks') that have not ended, per node id.
  std::map<std::string, int> live_per_node() const;
  // `listener` runs after every status report (on the reporting thread; must not
  // block): a deploy waits on it.
  void on_change(std::function<void()> listener);

  // Returns once the allocation's record is safe from a power loss: a spawn commits
  // it without waiting for the fsync, and calls this before it answers.
  Result<void> make_durable(const std::string& id);

  using ViewCallback = std::function<void(Result<TaskView>)>;
  // Calls back once the task runs or has ended, or with kTimeout at the deadline.
  void when_started(const std::string& id, WatchHub::Deadline deadline, ViewCallback callback);
  // Calls back once the task has ended, or with kTimeout at the deadline.
  void when_ended(const std::string& id, WatchHub::Deadline deadline, ViewCallback callback);

  Result<TaskView> get(const std::string& id) const;
  // Running (not ended) tasks, or all retained ones; newest first.
  std::vector<TaskView> list(bool include_ended) const;
  // Asks the node to stop it (SIGTERM, grace, SIGKILL); kNotFound if unknown. An
  // ended task is returned as it is.
  Result<TaskView> kill(const std::string& id);

  // Node protocol.
  NodeAllocations allocations_for(const std::string& node) const;
  void wait_allocations(int64_t after, WatchHub::Deadline deadline, WatchHub::Callback cb);
  // Records what the agent reports; ignores allocations not placed on that node.
  Result<void> report(const std::string& node, const std::vector<model::AllocState>& states);

  // Volumes that have a home node, by name.
  std::vector<VolumeBinding> volumes() const;
  // Asks the volume's node to destroy it (node protocol); kNotFound when it has no
  // home. The caller checks that nothing uses it.
  Result<void> remove_volume(const std::string& name);
  // The node's answer; a removed volume's record goes.
  void volumes_removed(const std::string& node, const std::vector<model::VolumeReport>& reports);
  // Calls back once the volume is gone (ok), its node failed to remove it (the error),
  // or at the deadline (kTimeout).
  void when_volume_removed(const std::string& name, WatchHub::Deadline deadline,
                           std::function<void(Result<void>)> callback);
  // Nodes that can take new allocations now (ready, not draining).
  std::vector<std::string> eligible_nodes() const;
  // A deploy's `pulling` phase: asks each of `nodes` to have `images` (delivered with
  // its desired allocations) and forgets earlier answers for this deploy.
  Result<void> request_pulls(const std::string& deploy, const std::vector<std::string>& nodes,
                             const std::vector<std::string>& images);
  // Ends it: nodes stop being asked.
  void clear_pulls(const std::vector<std::string>& nodes);
  // A node's answer (node protocol); wakes on_change listeners.
  void pulled(const std::string& node, const std::string& deploy,
              const std::vector<model::PullReport>& reports);
  // The answers so far for `deploy`, by node then image; error empty when present.
  std::map<std::string, std::map<std::string, std::string>> pull_reports(
      const std::string& deploy) const;

  // Forgets tasks that ended more than `retention` ago (store records and addresses).
  // start() runs it periodically.
  Result<int> sweep();

 private:
  void sweep_loop();
  void watch_state(const std::string& id, WatchHub::Deadline deadline, ViewCallback callback,
                   bool (*done)(const TaskView&));
  Result<std::string> new_id(const std::string& prefix);
  std::optional<std::string> free_address(const std::string& node) const;
  Result<model::AllocSpec> resolve_spec(const SpawnRequest& request, std::string& group) const;
  // The scheduler's view of the nodes for a group (mutex_ taken inside).
  std::vector<scheduler::NodeView> snapshot(std::string_view kind, const std::string& group,
                                            const std::vector<model::Node>& nodes) const;
  // The node the spec's volumes pin it to ("" when none is made yet); volumes without
  // a home yet go to `unbound`.
  Result<std::string> volume_pin(const model::AllocSpec& spec,
                                 std::vector<std::string>* unbound) const;
  // Nodes for `count` allocations, or the scheduler's reason. Caller holds placement_.
  Result<std::vector<std::string>> plan(std::string_view kind, const std::string& group,
                                        const model::AllocSpec& spec, int count,
                                        std::vector<std::string>* unbound);
  Result<TaskView> create(const std::string& kind, const std::string& group,
                          const std::string& id_prefix, const model::AllocSpec& spec);
  Result<void> report_locked(const std::string& node, const std::vector<model::AllocState>& states);
  void notify_listeners();
  void declare_metrics();

  store::Store& store_;
  NodeRegistry& nodes_;
  const Clock& clock_;
  metrics::Registry& metrics_;
  TaskOptions options_;
  WatchHub alloc_hub_;
  WatchHub state_hub_;

  mutable std::mutex mutex_;
  model::Config config_;
  std::map<std::string, TaskView> tasks_;      // by id
  std::map<std::string, int64_t> alloc_revs_;  // mod revision of each /allocs/ key
  // Previous usage sample per allocation, for cpu cores = d(cpu seconds)/dt.
  std::map<std::string, std::pair<double, SystemTime>> usage_;
  std::map<std::string, double> cpu_rate_;             // the last figure, cores
  std::map<std::string, model::ImagePulls> pulls_;     // by node
  std::map<std::string, VolumeBinding> volumes_;       // by name
  std::map<std::string, std::string> removal_errors_;  // volume -> its node's error
  WatchHub volume_hub_;                                // volume records and removal requests
  // deploy -> node -> image -> error ("" when pulled)
  std::map<std::string, std::map<std::string, std::map<std::string, std::string>>> pull_reports_;
  // Serialises placement: snapshot, choose, commit. The leader is the only writer.
  std::mutex placement_;

  std::mutex listeners_mutex_;
  std::vector<std::function<void()>> listeners_;

  std::mutex sweep_mutex_;
  std::condition_variable sweep_wake_;
  bool stopping_ = false;
  std::thread sweeper_;
};

}  // namespace mill::server
