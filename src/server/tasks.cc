#include "server/tasks.h"

#include <algorithm>

#include "common/log.h"
#include "common/memory.h"

namespace mill::server {

TaskManager::TaskManager(store::Store& store, NodeRegistry& nodes, const Clock& clock,
                         metrics::Registry& metrics, TaskOptions options)
    : store_(store),
      nodes_(nodes),
      options_(options),
      // The node protocol's blocking query wakes for allocations, their states (a
      // health change moves a proxy's routes), image pulls and volume removals.
      node_hub_(waiters_, "node-protocol/index"),
      table_(waiters_, node_hub_),
      volumes_(store, waiters_, node_hub_),
      pulls_(store, waiters_, node_hub_),
      usage_(metrics, clock),
      placer_(store, nodes, table_, volumes_, clock, options.cluster_network),
      writer_(store, table_, volumes_, usage_, clock),
      node_view_(table_, pulls_, volumes_, node_hub_) {}

TaskManager::~TaskManager() { stop(); }

Result<void> TaskManager::start() {
  MILL_TRY(pulls_.load());
  MILL_TRY(volumes_.load());
  MILL_TRY(table_.load(store_));
  return_free_memory();  // what reading every record from the store took and freed
  node_hub_.reset(MILL_TRY(store_.revision()));
  waiters_.start();
  sweeper_ = std::thread([this] { sweep_loop(); });
  return {};
}

void TaskManager::stop() {
  {
    std::lock_guard lock(sweep_mutex_);
    stopping_ = true;
  }
  sweep_wake_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  waiters_.stop();
}

void TaskManager::sweep_loop() {
  auto every = std::clamp(options_.retention / 4, std::chrono::milliseconds(100),
                          std::chrono::milliseconds(30000));
  constexpr std::size_t kReturnMemoryAfter = 4 << 20;
  std::size_t forgotten_bytes = 0;
  std::unique_lock lock(sweep_mutex_);
  while (!sweep_wake_.wait_for(lock, every, [this] { return stopping_; })) {
    lock.unlock();
    if (auto swept = sweep(); !swept) log::warn("task sweep failed: " + swept.error().message);
    // Forgotten records free their specs in many small blocks, which the allocator
    // would keep: once megabytes of them are gone, the memory goes back to the system.
    // Not after every sweep: a trim holds each arena's lock while it walks the heap,
    // and a spawn allocating meanwhile waits for it.
    forgotten_bytes += writer_.take_forgotten_bytes();
    if (forgotten_bytes >= kReturnMemoryAfter) {
      return_free_memory();
      forgotten_bytes = 0;
    }
    lock.lock();
  }
}

Result<TaskView> TaskManager::spawn(const SpawnRequest& request) {
  std::string group;
  auto spec = MILL_TRY(templates_.resolve(request, group));
  return placer_.place(std::string(model::kKindTask), group, group.empty() ? "task" : group, spec);
}

Result<TaskView> TaskManager::place_service(const std::string& service,
                                            const model::AllocSpec& spec) {
  return placer_.place(std::string(model::kKindService), service, service, spec);
}

Result<void> TaskManager::make_durable(const std::string& id) {
  auto revision = table_.revision(id);
  if (!revision) return {};  // forgotten: nothing left to keep
  return store_.sync(*revision);
}

std::vector<std::string> TaskManager::eligible_nodes() const {
  std::vector<std::string> out;
  auto list = nodes_.list();
  if (!list) return out;
  for (const auto& n : *list) {
    if (n.status == model::NodeStatus::kReady && !n.draining) out.push_back(n.id);
  }
  return out;
}

void TaskManager::add_load(std::vector<model::Node>& nodes) const {
  auto loads = table_.load_per_node();
  for (auto& n : nodes) {
    auto it = loads.find(n.id);
    n.load = it == loads.end() ? model::NodeLoad{} : it->second;
  }
}

}  // namespace mill::server
