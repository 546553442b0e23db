#include "server/tasks.h"

#include <algorithm>
#include <boost/json.hpp>
#include <set>

#include "common/log.h"
#include "crypto/crypto.h"
#include "model/json.h"
#include "model/names.h"
#include "scheduler/scheduler.h"

namespace mill::server {

namespace {

constexpr std::string_view kIpamPrefix = "/ipam/";

std::string ipam_key(const std::string& node, const std::string& ip) {
  return std::string(kIpamPrefix) + node + "/" + ip;
}

bool started_or_ended(const TaskView& v) {
  auto s = v.status();
  return model::is_up(s) || s == model::AllocStatus::kStopping || model::is_terminal(s);
}

bool ended(const TaskView& v) { return model::is_terminal(v.status()); }

std::string task_label(const model::Allocation& a) { return a.group.empty() ? "inline" : a.group; }

bool valid_env_key(std::string_view k) {
  if (k.empty() || k.size() > 256) return false;
  for (size_t i = 0; i < k.size(); ++i) {
    char c = k[i];
    bool ok = c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

Result<void> check_spec(const model::AllocSpec& s) {
  auto bad = [](std::string m) { return make_error(ErrorCode::kInvalidArgument, std::move(m)); };
  if (s.image.empty()) return bad("'image' is required");
  if (s.image.size() > 512 || s.image.find_first_of(" \t\r\n\"\\") != std::string::npos) {
    return bad("'image' is not an image reference");
  }
  if (!(s.cpu > 0) || s.cpu > 1024) return bad("'cpu' must be more than 0 cores");
  if (s.memory < model::kMinMemory) return bad("'memory' must be at least 4M");
  if (s.timeout && s.timeout->count() <= 0) return bad("'timeout' must be positive");
  if (s.port && (*s.port < 1 || *s.port > 65535)) return bad("'port' must be 1-65535");
  for (const auto& [k, v] : s.env) {
    if (!valid_env_key(k)) return bad("env name '" + k + "' is not a valid variable name");
    if (v.find('\0') != std::string::npos) return bad("env value of '" + k + "' has a NUL");
  }
  for (const auto& c : s.command) {
    if (c.find('\0') != std::string::npos) return bad("'command' has a NUL");
  }
  return {};
}

}  // namespace

namespace {
// Where each volume lives: the node it was created on, for good.
constexpr std::string_view kVolumesPrefix = "/volumes/";
// Bumped by every placement; each commits only if it is unchanged since its snapshot.
constexpr std::string_view kPlacementEpochKey = "/sched/epoch";
std::string volume_key(const std::string& name) { return std::string(kVolumesPrefix) + name; }
// A volume to destroy, one key per node and volume, until the node answers.
constexpr std::string_view kRemovalsPrefix = "/volume-removals/";
std::string removal_key(const std::string& node, const std::string& name) {
  return std::string(kRemovalsPrefix) + node + "/" + name;
}

std::string encode_binding(const VolumeBinding& b) {
  return model::serialize(boost::json::object{
      {"node", b.node},
      {"service", b.service},
      {"size", b.size},
      {"created_at_ms",
       std::chrono::duration_cast<std::chrono::milliseconds>(b.created_at.time_since_epoch())
           .count()}});
}

std::optional<VolumeBinding> decode_binding(const std::string& name, const std::string& text) {
  auto o = model::parse_object(text, {"node", "service", "size", "created_at_ms"});
  if (!o) return std::nullopt;
  auto node = model::get_string(*o, "node", true);
  auto service = model::get_string(*o, "service", false);
  auto size = model::get_int(*o, "size", false);
  auto at = model::get_int(*o, "created_at_ms", false);
  if (!node || !service || !size || !at) return std::nullopt;
  return VolumeBinding{name, *node, *service, *size, SystemTime(std::chrono::milliseconds(*at))};
}

// Image pulls asked of a node (the deploy's `pulling` phase), one key per node; what
// is in it lives in memory, the key is there to wake the node's blocking query.
constexpr std::string_view kPullsPrefix = "/pulls/";
}  // namespace

TaskManager::TaskManager(store::Store& store, NodeRegistry& nodes, const Clock& clock,
                         metrics::Registry& metrics, TaskOptions options)
    : store_(store),
      nodes_(nodes),
      clock_(clock),
      metrics_(metrics),
      options_(options),
      // The node protocol's blocking query wakes for allocations, image pulls, volume
      // removals and allocation states (a health change moves a proxy's routes).
      alloc_hub_(store,
                 std::vector<std::string>{std::string(model::kAllocPrefix),
                                          std::string(model::kAllocStatePrefix),
                                          std::string(kPullsPrefix), std::string(kRemovalsPrefix)}),
      state_hub_(store, std::string(model::kAllocStatePrefix)),
      volume_hub_(store, std::vector<std::string>{std::string(kVolumesPrefix),
                                                  std::string(kRemovalsPrefix)}) {
  declare_metrics();
}

TaskManager::~TaskManager() { stop(); }

Result<void> TaskManager::start() {
  // Pull requests belong to a deploy of a previous server process: drop them.
  for (const auto& kv : MILL_TRY(store_.list(kPullsPrefix)).kvs) MILL_TRY(store_.remove(kv.key));
  for (const auto& kv : MILL_TRY(store_.list(kVolumesPrefix)).kvs) {
    std::string name = kv.key.substr(kVolumesPrefix.size());
    if (auto b = decode_binding(name, kv.value)) volumes_[name] = std::move(*b);
  }
  auto allocs = MILL_TRY(store_.list(model::kAllocPrefix));
  auto states = MILL_TRY(store_.list(model::kAllocStatePrefix));
  {
    std::lock_guard lock(mutex_);
    for (const auto& kv : allocs.kvs) {
      auto a = model::decode_allocation(kv.value);
      if (!a) {
        log::warn("skipping unreadable allocation " + kv.key + ": " + a.error().message);
        continue;
      }
      alloc_revs_[a->id] = kv.mod_revision;
      tasks_[a->id].alloc = std::move(*a);
    }
    for (const auto& kv : states.kvs) {
      auto s = model::decode_alloc_state(kv.value);
      if (!s) continue;
      if (auto it = tasks_.find(s->id); it != tasks_.end()) it->second.state = std::move(*s);
    }
  }
  alloc_hub_.start();
  state_hub_.start();
  volume_hub_.start();
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
  alloc_hub_.stop();
  state_hub_.stop();
  volume_hub_.stop();
}

void TaskManager::sweep_loop() {
  auto every = std::clamp(options_.retention / 4, std::chrono::milliseconds(100),
                          std::chrono::milliseconds(30000));
  std::unique_lock lock(sweep_mutex_);
  while (!sweep_wake_.wait_for(lock, every, [this] { return stopping_; })) {
    lock.unlock();
    if (auto swept = sweep(); !swept) log::warn("task sweep failed: " + swept.error().message);
    lock.lock();
  }
}

void TaskManager::set_config(model::Config config) {
  std::lock_guard lock(mutex_);
  config_ = std::move(config);
}

model::Config TaskManager::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

Result<model::AllocSpec> TaskManager::resolve_spec(const SpawnRequest& request,
                                                   std::string& group) const {
  if (request.template_name.empty()) {
    group.clear();
    MILL_TRY(check_spec(request.spec));
    return request.spec;
  }
  std::lock_guard lock(mutex_);
  auto it = config_.tasks.find(request.template_name);
  if (it == config_.tasks.end()) {
    return make_error(ErrorCode::kNotFound,
                      "no task template '" + request.template_name + "' in the config");
  }
  const auto& t = it->second;
  model::AllocSpec spec;
  spec.image = t.image;
  spec.cpu = t.cpu;
  spec.memory = t.memory;
  spec.timeout = t.timeout;
  spec.port = t.port;
  spec.command = t.command;
  spec.env = t.env;
  spec.init = t.init;
  for (const auto& [k, v] : request.spec.env) spec.env[k] = v;
  MILL_TRY(check_spec(spec));
  group = t.name;
  return spec;
}

Result<std::string> TaskManager::new_id(const std::string& prefix) {
  static constexpr char kBase36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  auto bytes = MILL_TRY(crypto::random_bytes(4));
  std::string id = prefix + "-";
  for (unsigned char b : bytes) id += kBase36[b % 36];
  if (!model::is_valid_name(id)) {
    return make_error(ErrorCode::kInvalidArgument, "cannot make a valid id from '" + prefix + "'");
  }
  return id;
}

std::optional<std::string> TaskManager::free_address(const std::string& node) const {
  auto subnet = model::node_subnet(options_.cluster_network, node);
  if (!subnet) return std::nullopt;
  std::vector<bool> used(256, false);
  for (const auto& [id, v] : tasks_) {
    if (v.alloc.node != node || ended(v)) continue;
    if (auto ip = model::parse_ipv4(v.alloc.ip); ip && subnet->contains(*ip))
      used[*ip & 255] = true;
  }
  // .0 is the network, .1 the bridge, .255 broadcast.
  for (uint32_t host = 2; host < 255; ++host) {
    if (!used[host]) return model::format_ipv4(subnet->addr + host);
  }
  return std::nullopt;
}

Result<TaskView> TaskManager::spawn(const SpawnRequest& request) {
  std::string group;
  auto spec = MILL_TRY(resolve_spec(request, group));
  return create(std::string(model::kKindTask), group, group.empty() ? "task" : group, spec);
}

Result<TaskView> TaskManager::place_service(const std::string& service,
                                            const model::AllocSpec& spec) {
  return create(std::string(model::kKindService), service, service, spec);
}

std::vector<scheduler::NodeView> TaskManager::snapshot(
    std::string_view kind, const std::string& group, const std::vector<model::Node>& nodes) const {
  std::vector<scheduler::NodeView> out;
  std::lock_guard lock(mutex_);
  for (const auto& n : nodes) {
    scheduler::NodeView v;
    v.id = n.id;
    v.ready = n.status != model::NodeStatus::kDown;
    v.draining = n.draining;
    v.cpu_total = n.resources.cpu_total;
    v.memory_total = n.resources.memory_total;
    for (const auto& [id, t] : tasks_) {
      if (t.alloc.node != n.id || ended(t)) continue;
      v.cpu_reserved += t.alloc.spec.cpu;
      v.memory_reserved += t.alloc.spec.memory;
      if (!group.empty() && t.alloc.kind == kind && t.alloc.group == group) {
        ++v.group_allocations;
      }
    }
    out.push_back(std::move(v));
  }
  return out;
}

Result<std::string> TaskManager::volume_pin(const model::AllocSpec& spec,
                                            std::vector<std::string>* unbound) const {
  // A volume lives on the node where it was first used: allocations that mount it go
  // there (and one that mounts volumes of two nodes cannot run at all).
  std::string pin;
  std::lock_guard lock(mutex_);
  for (const auto& v : spec.volumes) {
    auto it = volumes_.find(v.name);
    if (it == volumes_.end()) {
      if (unbound) unbound->push_back(v.name);
    } else if (pin.empty()) {
      pin = it->second.node;
    } else if (pin != it->second.node) {
      return make_error(ErrorCode::kConflict, "volumes on two nodes (" + pin + ", " +
                                                  it->second.node + ") cannot be mounted together");
    }
  }
  return pin;
}

Result<std::vector<std::string>> TaskManager::plan(std::string_view kind, const std::string& group,
                                                   const model::AllocSpec& spec, int count,
                                                   std::vector<std::string>* unbound) {
  auto node_list = MILL_TRY(nodes_.list());
  std::string pin = MILL_TRY(volume_pin(spec, unbound));
  scheduler::GroupRequest request{group, count, spec.cpu, spec.memory, pin};
  auto planned = scheduler::plan(snapshot(kind, group, node_list), request, 0);
  if (auto* r = std::get_if<scheduler::Rejection>(&planned)) {
    return make_error(r->reason == scheduler::Rejection::Reason::kNoNodes ? ErrorCode::kUnavailable
                                                                          : ErrorCode::kConflict,
                      r->message);
  }
  return std::move(std::get<scheduler::Plan>(planned).nodes);
}

Result<void> TaskManager::check_fit(std::string_view kind, const std::string& group,
                                    const model::AllocSpec& spec, int count) {
  std::lock_guard placing(placement_);
  MILL_TRY(plan(kind, group, spec, count, nullptr));
  return {};
}

Result<void> TaskManager::make_durable(const std::string& id) {
  int64_t revision = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = alloc_revs_.find(id);
    if (it == alloc_revs_.end()) return {};  // forgotten: nothing left to keep
    revision = it->second;
  }
  return store_.sync(revision);
}

Result<TaskView> TaskManager::create(const std::string& kind, const std::string& group,
                                     const std::string& id_prefix, const model::AllocSpec& spec) {
  std::lock_guard placing(placement_);
  for (int attempt = 0; attempt < 8; ++attempt) {
    // The plan is applied with compare-and-swap on the placement epoch read before the
    // snapshot: if anything else placed meanwhile (another leader after a failover, a
    // stale snapshot), the commit fails and the placement is planned again.
    auto epoch = MILL_TRY(store_.get(kPlacementEpochKey));
    int64_t epoch_rev = epoch ? epoch->mod_revision : 0;
    std::vector<std::string> unbound;
    auto planned = MILL_TRY(plan(kind, group, spec, 1, &unbound));
    const std::string node = planned.at(0);

    std::lock_guard lock(mutex_);
    auto ip = free_address(node);
    if (!ip) return make_error(ErrorCode::kConflict, "no free address left on " + node);
    model::Allocation a;
    a.id = MILL_TRY(new_id(id_prefix));
    if (tasks_.contains(a.id)) continue;
    a.kind = kind;
    a.group = group;
    a.node = node;
    a.ip = *ip;
    a.spec = spec;
    a.created_at = clock_.now();
    store::Txn txn;
    txn.compares = {{std::string(kPlacementEpochKey), epoch_rev},
                    {model::alloc_key(a.id), 0},
                    {ipam_key(node, *ip), 0}};
    txn.ops = {{store::Operation::Type::kPut, std::string(kPlacementEpochKey), a.id},
               {store::Operation::Type::kPut, model::alloc_key(a.id), model::encode(a)},
               {store::Operation::Type::kPut, ipam_key(node, *ip), a.id}};
    std::vector<VolumeBinding> bindings;
    for (const auto& v : spec.volumes) {
      if (std::find(unbound.begin(), unbound.end(), v.name) == unbound.end()) continue;
      VolumeBinding b{v.name, node, group, v.size, clock_.now()};
      txn.compares.push_back({volume_key(v.name), 0});
      txn.ops.push_back({store::Operation::Type::kPut, volume_key(v.name), encode_binding(b)});
      bindings.push_back(std::move(b));
    }
    // A task is acknowledged only once it runs, tens of milliseconds from here: its
    // record is fsynced meanwhile, in the background (the spawn calls make_durable()
    // before it answers), and the agent can start on it now.
    if (kind == model::kKindTask && bindings.empty()) txn.durability = Durability::kProcessCrash;
    auto result = MILL_TRY(store_.txn(txn));
    if (!result.succeeded) continue;  // placed on a stale view, or id/address taken: again
    for (auto& b : bindings) volumes_[b.name] = std::move(b);
    alloc_revs_[a.id] = result.revision;
    TaskView view{a, std::nullopt};
    tasks_[a.id] = view;
    return view;
  }
  return make_error(ErrorCode::kConflict, "could not record the allocation; try again");
}

std::vector<TaskView> TaskManager::group(std::string_view kind, const std::string& group) const {
  std::vector<TaskView> out;
  std::lock_guard lock(mutex_);
  for (const auto& [id, v] : tasks_) {
    if (v.alloc.kind == kind && v.alloc.group == group) out.push_back(v);
  }
  std::sort(out.begin(), out.end(), [](const TaskView& a, const TaskView& b) {
    return a.alloc.created_at != b.alloc.created_at ? a.alloc.created_at < b.alloc.created_at
                                                    : a.alloc.id < b.alloc.id;
  });
  return out;
}

double TaskManager::cpu_usage(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = cpu_rate_.find(id);
  return it == cpu_rate_.end() ? 0.0 : it->second;
}

std::vector<std::string> TaskManager::live_groups(std::string_view kind) const {
  std::set<std::string> out;
  std::lock_guard lock(mutex_);
  for (const auto& [id, v] : tasks_) {
    if (v.alloc.kind == kind && !ended(v)) out.insert(v.alloc.group);
  }
  return {out.begin(), out.end()};
}

std::map<std::string, int> TaskManager::live_per_node() const {
  std::map<std::string, int> out;
  std::lock_guard lock(mutex_);
  for (const auto& [id, v] : tasks_) {
    if (!ended(v)) ++out[v.alloc.node];
  }
  return out;
}

void TaskManager::on_change(std::function<void()> listener) {
  std::lock_guard lock(listeners_mutex_);
  listeners_.push_back(std::move(listener));
}

void TaskManager::notify_listeners() {
  std::vector<std::function<void()>> copy;
  {
    std::lock_guard lock(listeners_mutex_);
    copy = listeners_;
  }
  for (const auto& l : copy) l();
}

void TaskManager::watch_state(const std::string& id, WatchHub::Deadline deadline,
                              ViewCallback callback, bool (*done)(const TaskView&)) {
  int64_t after = state_hub_.last_change();
  auto view = get(id);
  if (!view) return callback(Unexpected(view.error()));
  if (done(*view)) return callback(std::move(*view));
  state_hub_.wait(after, deadline, [this, id, deadline, callback, done](bool changed) {
    if (!changed) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return callback(make_error(ErrorCode::kTimeout, "timed out waiting for task " + id));
      }
      return callback(make_error(ErrorCode::kUnavailable, "the server is stopping"));
    }
    watch_state(id, deadline, callback, done);
  });
}

void TaskManager::when_started(const std::string& id, WatchHub::Deadline deadline,
                               ViewCallback callback) {
  watch_state(id, deadline, std::move(callback), started_or_ended);
}

void TaskManager::when_ended(const std::string& id, WatchHub::Deadline deadline,
                             ViewCallback callback) {
  watch_state(id, deadline, std::move(callback), ended);
}

Result<TaskView> TaskManager::get(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return make_error(ErrorCode::kNotFound, "no task '" + id + "'");
  return it->second;
}

std::vector<TaskView> TaskManager::list(bool include_ended) const {
  std::vector<TaskView> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, v] : tasks_) {
      if (v.alloc.kind == model::kKindTask && (include_ended || !ended(v))) out.push_back(v);
    }
  }
  std::sort(out.begin(), out.end(), [](const TaskView& a, const TaskView& b) {
    return a.alloc.created_at != b.alloc.created_at ? a.alloc.created_at > b.alloc.created_at
                                                    : a.alloc.id < b.alloc.id;
  });
  return out;
}

Result<TaskView> TaskManager::kill(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return make_error(ErrorCode::kNotFound, "no task '" + id + "'");
  TaskView& v = it->second;
  if (ended(v) || v.alloc.desired == model::DesiredState::kStop) return v;
  model::Allocation a = v.alloc;
  a.desired = model::DesiredState::kStop;
  store::Txn txn;
  txn.compares = {{model::alloc_key(id), alloc_revs_[id]}};
  txn.ops = {{store::Operation::Type::kPut, model::alloc_key(id), model::encode(a)}};
  auto result = MILL_TRY(store_.txn(txn));
  if (!result.succeeded) {
    return make_error(ErrorCode::kConflict, "task " + id + " changed meanwhile; try again");
  }
  alloc_revs_[id] = result.revision;
  v.alloc = std::move(a);
  return v;
}

NodeAllocations TaskManager::allocations_for(const std::string& node) const {
  NodeAllocations out;
  out.index = alloc_hub_.last_change();  // before reading: see WatchHub::last_change
  std::lock_guard lock(mutex_);
  if (auto it = pulls_.find(node); it != pulls_.end()) out.pulls = it->second;
  auto removals = store_.list(std::string(kRemovalsPrefix) + node + "/");
  if (removals) {
    for (const auto& kv : removals->kvs) out.remove_volumes.push_back(kv.value);
  }
  for (const auto& [id, v] : tasks_) {
    if (v.alloc.node == node) out.allocations.push_back(v);
    const auto& spec = v.alloc.spec;
    if (v.alloc.kind != model::kKindService || !spec.route || !spec.port ||
        v.alloc.desired != model::DesiredState::kRun || model::is_terminal(v.status())) {
      continue;
    }
    auto it = std::find_if(out.routes.begin(), out.routes.end(), [&](const auto& r) {
      return r.service == v.alloc.group && r.route == *spec.route;
    });
    if (it == out.routes.end()) {
      it = out.routes.insert(out.routes.end(), model::ServiceRoute{v.alloc.group, *spec.route, {}});
    }
    if (v.status() == model::AllocStatus::kHealthy && !v.alloc.ip.empty()) {
      it->upstreams.push_back(v.alloc.ip + ":" + std::to_string(*spec.port));
    }
  }
  return out;
}

std::vector<VolumeBinding> TaskManager::volumes() const {
  std::lock_guard lock(mutex_);
  std::vector<VolumeBinding> out;
  for (const auto& [name, b] : volumes_) out.push_back(b);
  return out;
}

Result<void> TaskManager::remove_volume(const std::string& name) {
  std::string node;
  {
    std::lock_guard lock(mutex_);
    auto it = volumes_.find(name);
    if (it == volumes_.end()) {
      return make_error(ErrorCode::kNotFound, "volume '" + name + "' was never created");
    }
    node = it->second.node;
    removal_errors_.erase(name);
  }
  MILL_TRY(store_.put(removal_key(node, name), name));
  return {};
}

void TaskManager::volumes_removed(const std::string& node,
                                  const std::vector<model::VolumeReport>& reports) {
  for (const auto& r : reports) {
    // Under the lock, store and memory together: a DELETE woken by this store change
    // must find the record gone when it looks.
    std::lock_guard lock(mutex_);
    auto it = volumes_.find(r.name);
    store::Txn txn;
    txn.ops.push_back({store::Operation::Type::kDelete, removal_key(node, r.name), ""});
    bool removed = r.error.empty() && it != volumes_.end() && it->second.node == node;
    if (removed) txn.ops.push_back({store::Operation::Type::kDelete, volume_key(r.name), ""});
    if (!r.error.empty() && it != volumes_.end()) removal_errors_[r.name] = r.error;
    auto done = store_.txn(txn);
    if (!done) {
      log::warn("volume " + r.name + ": cannot record its removal: " + done.error().message);
      continue;
    }
    if (removed) volumes_.erase(it);
  }
}

void TaskManager::when_volume_removed(const std::string& name, WatchHub::Deadline deadline,
                                      std::function<void(Result<void>)> callback) {
  int64_t after = volume_hub_.last_change();
  {
    std::lock_guard lock(mutex_);
    if (!volumes_.contains(name)) return callback(Result<void>{});
    if (auto e = removal_errors_.find(name); e != removal_errors_.end()) {
      return callback(make_error(ErrorCode::kIo, e->second));
    }
  }
  volume_hub_.wait(after, deadline, [this, name, deadline, callback](bool changed) {
    if (!changed) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return callback(make_error(ErrorCode::kTimeout,
                                   "the node of volume " + name + " did not answer in time"));
      }
      return callback(make_error(ErrorCode::kUnavailable, "the server is stopping"));
    }
    when_volume_removed(name, deadline, callback);
  });
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

Result<void> TaskManager::request_pulls(const std::string& deploy,
                                        const std::vector<std::string>& nodes,
                                        const std::vector<std::string>& images) {
  {
    std::lock_guard lock(mutex_);
    pull_reports_.clear();  // one deploy at a time: older answers are of no use
    for (const auto& n : nodes) pulls_[n] = model::ImagePulls{deploy, images};
  }
  for (const auto& n : nodes) MILL_TRY(store_.put(std::string(kPullsPrefix) + n, deploy));
  return {};
}

void TaskManager::clear_pulls(const std::vector<std::string>& nodes) {
  {
    std::lock_guard lock(mutex_);
    for (const auto& n : nodes) pulls_.erase(n);
  }
  for (const auto& n : nodes) (void)store_.remove(std::string(kPullsPrefix) + n);
}

void TaskManager::pulled(const std::string& node, const std::string& deploy,
                         const std::vector<model::PullReport>& reports) {
  {
    std::lock_guard lock(mutex_);
    auto it = pulls_.find(node);
    if (it == pulls_.end() || it->second.deploy != deploy) return;  // not asked (any more)
    for (const auto& r : reports) pull_reports_[deploy][node][r.image] = r.error;
  }
  notify_listeners();
}

std::map<std::string, std::map<std::string, std::string>> TaskManager::pull_reports(
    const std::string& deploy) const {
  std::lock_guard lock(mutex_);
  auto it = pull_reports_.find(deploy);
  if (it == pull_reports_.end()) return {};
  return it->second;
}

void TaskManager::wait_allocations(int64_t after, WatchHub::Deadline deadline,
                                   WatchHub::Callback cb) {
  alloc_hub_.wait(after, deadline, std::move(cb));
}

Result<void> TaskManager::report(const std::string& node,
                                 const std::vector<model::AllocState>& states) {
  auto result = report_locked(node, states);
  notify_listeners();
  return result;
}

Result<void> TaskManager::report_locked(const std::string& node,
                                        const std::vector<model::AllocState>& states) {
  std::lock_guard lock(mutex_);
  for (const auto& reported : states) {
    auto it = tasks_.find(reported.id);
    if (it == tasks_.end() || it->second.alloc.node != node) continue;
    TaskView& v = it->second;
    if (v.state == reported) continue;
    // An end state is final: a late report cannot bring a task back.
    if (v.state && model::is_terminal(v.state->status) && v.state->status != reported.status) {
      continue;
    }
    // Usage changes with every report; it is shown and exported, not kept: only a
    // change of anything else is worth a durable write.
    model::AllocState without_usage = reported;
    if (v.state) {
      without_usage.cpu_seconds = v.state->cpu_seconds;
      without_usage.memory_bytes = v.state->memory_bytes;
    }
    const bool durable = !v.state || without_usage != *v.state;
    const bool is_task = v.alloc.kind == model::kKindTask;
    bool now_running = is_task && reported.status == model::AllocStatus::kRunning &&
                       (!v.state || v.state->status != model::AllocStatus::kRunning);
    int new_restarts = reported.restarts - (v.state ? v.state->restarts : 0);
    bool now_ended =
        model::is_terminal(reported.status) && (!v.state || !model::is_terminal(v.state->status));
    store::Txn txn;
    // Committed without waiting for its fsync (the store's flusher does it at once), so
    // the spawn that waits for "running" does not wait for one. Should a power cut take
    // it back, the agent sees the old state in its next desired state and sends this
    // one again (AllocRunner::reconcile).
    txn.durability = Durability::kProcessCrash;
    txn.ops.push_back({store::Operation::Type::kPut, model::alloc_state_key(reported.id),
                       model::encode(reported)});
    if (now_ended && !v.alloc.ip.empty()) {
      // The container and its network are gone: its address may be reused.
      txn.ops.push_back({store::Operation::Type::kDelete, ipam_key(node, v.alloc.ip), ""});
    }
    if (durable) MILL_TRY(store_.txn(txn));
    v.state = reported;
    for (const auto& [name, bytes] : reported.volume_used) {
      if (auto it = volumes_.find(name); it != volumes_.end()) it->second.used = bytes;
    }

    metrics::Labels task{{"task", task_label(v.alloc)}};
    const std::string service = is_task ? "" : v.alloc.group;
    metrics::Labels alloc{{"alloc", v.alloc.id},
                          {"node", node},
                          {"service", service},
                          {"task", is_task ? task_label(v.alloc) : ""}};
    // A running service's counter is there from its start, at 0 until a restart (as
    // Prometheus counters should be: a rate() needs the series before the first event).
    if (!is_task && (new_restarts > 0 || model::is_up(reported.status))) {
      metrics_.add("mill_alloc_restarts_total", {{"service", service}, {"node", node}},
                   std::max(new_restarts, 0));
    }
    if (now_running) metrics_.add("mill_tasks_spawned_total", task, 1);
    if (now_ended) {
      if (is_task && reported.started_at && reported.finished_at) {
        metrics_.observe(
            "mill_tasks_duration_seconds", task,
            std::chrono::duration<double>(*reported.finished_at - *reported.started_at).count());
      }
      metrics_.remove("mill_alloc_cpu_usage", alloc);
      metrics_.remove("mill_alloc_memory_bytes", alloc);
      usage_.erase(v.alloc.id);
      cpu_rate_.erase(v.alloc.id);
    } else if (model::is_up(reported.status)) {
      auto now = clock_.now();
      auto& [prev_cpu, prev_at] = usage_[v.alloc.id];
      double secs = std::chrono::duration<double>(now - prev_at).count();
      if (prev_at != SystemTime{} && secs > 0 && reported.cpu_seconds >= prev_cpu) {
        double rate = (reported.cpu_seconds - prev_cpu) / secs;
        metrics_.set("mill_alloc_cpu_usage", alloc, rate);
        cpu_rate_[v.alloc.id] = rate;
      }
      prev_cpu = reported.cpu_seconds;
      prev_at = now;
      metrics_.set("mill_alloc_memory_bytes", alloc, static_cast<double>(reported.memory_bytes));
    }
  }
  return {};
}

Result<int> TaskManager::sweep() {
  std::lock_guard lock(mutex_);
  auto now = clock_.now();
  int forgotten = 0;
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    const TaskView& v = it->second;
    bool expired = v.state && model::is_terminal(v.state->status) && v.state->finished_at &&
                   *v.state->finished_at + options_.retention <= now;
    if (!expired) {
      ++it;
      continue;
    }
    store::Txn txn;
    txn.ops = {{store::Operation::Type::kDelete, model::alloc_key(v.alloc.id), ""},
               {store::Operation::Type::kDelete, model::alloc_state_key(v.alloc.id), ""}};
    MILL_TRY(store_.txn(txn));
    alloc_revs_.erase(v.alloc.id);
    it = tasks_.erase(it);
    ++forgotten;
  }
  return forgotten;
}

void TaskManager::declare_metrics() {
  metrics_.declare("mill_tasks_spawned_total", metrics::Type::kCounter,
                   "Tasks that reached running, per task template (\"inline\" for inline).");
  metrics_.declare("mill_tasks_duration_seconds", metrics::Type::kHistogram,
                   "How long ended tasks ran, per task template.",
                   {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400});
  metrics_.declare("mill_alloc_cpu_usage", metrics::Type::kGauge,
                   "CPU cores an allocation used over its last report interval.");
  metrics_.declare("mill_alloc_memory_bytes", metrics::Type::kGauge,
                   "Memory an allocation's cgroup uses, in bytes.");
  metrics_.declare("mill_alloc_restarts_total", metrics::Type::kCounter,
                   "Times a service's containers were restarted after they ended, per node.");
}

}  // namespace mill::server
