#include "server/node_monitor.h"

#include <map>

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
    for (const auto& v : tasks_.live_on(node.id)) {
      auto lost = tasks_.lose(v.alloc->id, reason);
      if (!lost) log::warn("node monitor: " + v.alloc->id + ": " + lost.error().message);
    }
  }
  // Every look, not only after a loss: a placement that found no room, or a replica
  // lost before this server started, is made good here too.
  deploys_.keep_replicas();

  std::set<std::string> draining;
  for (const auto& node : *list) {
    if (!node.draining) continue;
    draining.insert(node.id);
    if (!node.drain_deadline || now < *node.drain_deadline) continue;
    for (const auto& v : left_on(node.id)) {
      if (v.alloc->desired != model::DesiredState::kRun) continue;
      if (v.alloc->kind != model::kKindTask && !node.drain_force) continue;
      log::info("drain: " + node.id + ": the deadline passed; stopping " + v.alloc->kind + " " +
                v.alloc->id);
      if (auto killed = tasks_.kill(v.alloc->id); !killed) {
        log::warn("drain: stopping " + v.alloc->id + ": " + killed.error().message);
      }
    }
  }
  if (!draining.empty()) deploys_.move_off(draining);
}

std::vector<TaskView> NodeMonitor::left_on(const std::string& node) const {
  return tasks_.live_on(node);
}

Result<model::Node> NodeMonitor::drain(const std::string& id, std::chrono::milliseconds deadline,
                                       bool force) {
  auto before = MILL_TRY(nodes_.get(id));
  auto node = MILL_TRY(nodes_.set_drain(id, clock_.now() + deadline, true, force));
  if (before.draining || force) {
    wake_.notify_all();
    return node;
  }
  // Every service replacement must fit on the other nodes, all of them, before
  // anything moves: a drain that cannot finish stops nothing.
  std::map<std::string, int> per_service;
  for (const auto& v : left_on(id)) {
    if (v.alloc->kind == model::kKindService) ++per_service[v.alloc->group];
  }
  auto config = deploys_.deployed();
  for (const auto& [name, count] : per_service) {
    auto it = config.services.find(name);
    if (it == config.services.end()) continue;
    auto fits =
        tasks_.check_fit(model::kKindService, name, alloc_spec(it->second, config.volumes), count);
    if (!fits) {
      (void)nodes_.set_drain(id, std::nullopt, false);
      return make_error(ErrorCode::kConflict,
                        "cannot drain " + id + ": service " + name + "'s " + std::to_string(count) +
                            " replacement(s) do not fit on the other "
                            "nodes: " +
                            fits.error().message + " (a forced drain stops them at the deadline)");
    }
  }
  log::info("drain: " + id + " is draining; its tasks may run until " +
            format_rfc3339(clock_.now() + deadline));
  wake_.notify_all();
  return node;
}

Result<model::Node> NodeMonitor::undrain(const std::string& id) {
  MILL_TRY(nodes_.get(id));
  return nodes_.set_drain(id, std::nullopt, false);
}

Result<void> NodeMonitor::remove(const std::string& id) {
  MILL_TRY(nodes_.get(id));
  auto left = left_on(id);
  if (!left.empty()) {
    std::string ids;
    for (const auto& v : left) ids += (ids.empty() ? "" : ", ") + v.alloc->id;
    return make_error(ErrorCode::kConflict, "node " + id + " still runs " +
                                                std::to_string(left.size()) +
                                                " allocation(s): " + ids + "; drain it first");
  }
  return nodes_.remove(id);
}

}  // namespace mill::server
