#pragma once

// Notices nodes that stop heartbeating and deals with what they ran (Nomad's heartbeat
// timers and lost allocations). A node silent for longer than `down_after` is down:
// every allocation on it ends as lost (a task is not started again: it is ephemeral),
// and each deployed service is topped up to its replica count on the nodes left
// (DeployManager::keep_replicas). Should the node come back, its agent sees those
// allocations' desired state is stop and stops them, so no duplicate keeps running.
//
// A node this server has not heard from since it started is given `down_after` from
// the start before it counts as down: a restarted server does not declare every node
// lost before their first heartbeat.
//
// It also carries drains through (POST /v1/nodes/:id/drain): a draining node takes no
// new allocations; at each look its services move off surge-first
// (DeployManager::move_off) and, once its drain deadline passes, its tasks are killed
// (a forced drain's services too: those that had no room elsewhere).
// The node is `drained` when nothing is left on it, and only then may it be removed.
//
// One thread, on the Clock: it looks every `check_every`. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/clock.h"
#include "server/deploy.h"
#include "server/node_registry.h"
#include "server/tasks.h"

namespace mill::server {

struct NodeMonitorOptions {
  std::chrono::milliseconds down_after{10000};
  std::chrono::milliseconds check_every{1000};
};

class NodeMonitor {
 public:
  NodeMonitor(NodeRegistry& nodes, TaskManager& tasks, DeployManager& deploys, const Clock& clock,
              NodeMonitorOptions options = {});
  ~NodeMonitor();
  void start();
  void stop();

  // One look (the thread's loop body; tests call it on simulated time).
  void check();

  // Starts draining `node`; its tasks may run until now + `deadline`. Refused
  // (kConflict, with the reason, the node left as it was) when its services'
  // replacements cannot all fit elsewhere, unless `force`: then what fits moves
  // surge-first and whatever is still on the node at the deadline is stopped, service
  // replicas too. Draining again moves the deadline (and may force it).
  Result<model::Node> drain(const std::string& node, std::chrono::milliseconds deadline,
                            bool force = false);
  // Makes a draining node eligible again (what moved off stays where it is now).
  Result<model::Node> undrain(const std::string& node);
  // Forgets a node that runs nothing: kConflict naming what still runs on it.
  Result<void> remove(const std::string& node);
  // Allocations not ended on the node (what keeps it from being drained).
  std::vector<TaskView> left_on(const std::string& node) const;

 private:
  void loop();

  NodeRegistry& nodes_;
  TaskManager& tasks_;
  DeployManager& deploys_;
  const Clock& clock_;
  const NodeMonitorOptions options_;
  const SystemTime started_;
  std::set<std::string> down_;  // nodes whose allocations were lost already (check()'s)
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mill::server
