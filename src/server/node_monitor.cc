#include "server/node_monitor.h"

#include "common/log.h"
#include "model/units.h"

namespace mill::server {

NodeMonitor::NodeMonitor(NodeRegistry& nodes, TaskManager& tasks, DeployManager& deploys,
                         const Clock& clock, NodeMonitorOptions options)
    : nodes_(nodes),
      tasks_(tasks),
      deploys_(deploys),
      clock_(clock),
      options_(options),
      started_(clock.now()) {}

NodeMonitor::~NodeMonitor() { stop(); }

void NodeMonitor::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void NodeMonitor::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NodeMonitor::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    check();
    lock.lock();
    clock_.wait_until(wake_, lock, clock_.now() + options_.check_every,
                      [this] { return stopping_; });
  }
}

void NodeMonitor::check() {
  auto list = nodes_.list();
  if (!list) {
    log::warn("node monitor: " + list.error().message);
    return;
  }
  const SystemTime now = clock_.now();
  for (const auto& node : *list) {
    // Silent since its last heartbeat, or since this server started if it has not
    // heartbeated to this one yet.
    SystemTime heard = std::max(node.last_heartbeat.value_or(started_), started_);
    if (now - heard < options_.down_after) {
      if (down_.erase(node.id)) log::info("node " + node.id + " is back");
      continue;
    }
    const std::string reason =
        "node " + node.id + " (" + node.name + ") is down: no heartbeat for " +
        model::format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(now - heard));
    bool first = down_.insert(node.id).second;
    if (first) log::warn(reason);
    // Looked at every time, not only the first: a placement that raced the node's
    // end, or a store write that failed, is dealt with at the next look.
    for (const auto& v : tasks_.allocations_for(node.id).allocations) {
      if (ended(v)) continue;
      auto lost = tasks_.lose(v.alloc.id, reason);
      if (!lost) log::warn("node monitor: " + v.alloc.id + ": " + lost.error().message);
    }
  }
  // Every look, not only after a loss: a placement that found no room, or a replica
  // lost before this server started, is made good here too.
  deploys_.keep_replicas();
}

}  // namespace mill::server
