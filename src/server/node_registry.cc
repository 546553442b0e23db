#include "server/node_registry.h"

#include <algorithm>
#include <set>

#include "model/json.h"
#include "model/names.h"

namespace mill::server {

namespace json = boost::json;

namespace {

// The durable part of a node: identity, address, capacity, drain flag.
std::string encode_record(const model::Node& n) {
  json::object o{
      {"id", n.id},
      {"name", n.name},
      {"address", n.address},
      {"cpu_total", n.resources.cpu_total},
      {"memory_total", n.resources.memory_total},
      {"version", n.version},
      {"subnet", n.subnet},
      {"draining", n.draining},
      {"drain_force", n.drain_force},
      // Whole seconds, rounded up: tasks get at least the deadline asked for.
      {"drain_deadline", n.drain_deadline ? json::value(std::chrono::ceil<std::chrono::seconds>(
                                                            n.drain_deadline->time_since_epoch())
                                                            .count())
                                          : json::value(nullptr)},
      {"registered_at",
       std::chrono::duration_cast<std::chrono::seconds>(n.registered_at.time_since_epoch())
           .count()}};
  return model::serialize(o);
}

Result<model::Node> decode_record(std::string_view text) {
  auto o = MILL_TRY(model::parse_object(
      text, {"id", "name", "address", "cpu_total", "memory_total", "draining", "drain_deadline",
             "registered_at", "version", "drain_force", "subnet"}));
  model::Node n;
  n.id = MILL_TRY(model::get_string(o, "id", true));
  n.name = MILL_TRY(model::get_string(o, "name", true));
  n.address = MILL_TRY(model::get_string(o, "address", true));
  n.resources.cpu_total = MILL_TRY(model::get_number(o, "cpu_total", true));
  n.resources.memory_total = MILL_TRY(model::get_int(o, "memory_total", true));
  if (auto* d = o.if_contains("draining"); d && d->is_bool()) n.draining = d->as_bool();
  if (auto* d = o.if_contains("drain_force"); d && d->is_bool()) n.drain_force = d->as_bool();
  if (auto* d = o.if_contains("drain_deadline"); d && d->is_int64()) {
    n.drain_deadline = SystemTime(std::chrono::seconds(d->as_int64()));
  }
  n.registered_at =
      SystemTime(std::chrono::seconds(MILL_TRY(model::get_int(o, "registered_at", true))));
  n.version = MILL_TRY(model::get_string(o, "version", false));  // absent before 0.1.0
  // Before subnets were pooled, a node's was the number in its id.
  if (const auto* s = o.if_contains("subnet"); s && s->is_int64()) {
    n.subnet = static_cast<int>(s->as_int64());
  } else {
    n.subnet = model::node_index(n.id).value_or(0);
  }
  return n;
}

}  // namespace

NodeRegistry::NodeRegistry(store::Store& store, const Clock& clock,
                           std::chrono::milliseconds down_after)
    : store_(store), clock_(clock), down_after_(down_after) {}

Result<std::string> NodeRegistry::allocate_id() {
  // Removed nodes' ids count too: an id is never given twice, so a removed machine's
  // certificate (CN = its id) can never act for a node that joined later.
  int highest = 0;
  for (std::string_view prefix : {kPrefix, kRemovedPrefix}) {
    auto listing = MILL_TRY(store_.list(std::string(prefix)));
    for (const auto& kv : listing.kvs) {
      std::string_view id = std::string_view(kv.key).substr(prefix.size());
      highest = std::max(highest, model::node_index(id).value_or(0));
    }
  }
  return "node-" + std::to_string(highest + 1);
}

Result<int> NodeRegistry::free_subnet() {
  auto listing = MILL_TRY(store_.list(std::string(kPrefix)));
  std::set<int> used;
  for (const auto& kv : listing.kvs) {
    if (auto n = decode_record(kv.value)) used.insert(n->subnet);
  }
  int index = 1;
  while (used.contains(index)) ++index;
  return index;
}

Result<model::Node> NodeRegistry::register_node(const model::RegisterRequest& reg) {
  // One registration at a time: two new nodes must not take the same free /24.
  std::lock_guard registering(register_mutex_);
  if (reg.name.empty() || reg.address.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "a node needs a name and an address");
  }
  if (!reg.id.empty() && !model::is_valid_name(reg.id)) {
    return make_error(ErrorCode::kInvalidArgument, "invalid node id");
  }
  if (!reg.id.empty() && MILL_TRY(store_.get(std::string(kRemovedPrefix) + reg.id))) {
    return make_error(ErrorCode::kPermissionDenied,
                      "node " + reg.id +
                          " was removed from the cluster: run `mill cleanup` on it and join "
                          "again with a fresh data dir");
  }
  // Create-or-update with compare-and-swap, retried when another registration races.
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string id = reg.id.empty() ? MILL_TRY(allocate_id()) : reg.id;
    std::string key = std::string(kPrefix) + id;
    auto existing = MILL_TRY(store_.get(key));
    model::Node node;
    int64_t expected = 0;
    // A new node's freshly allocated id must be unused: if another registration took
    // it meanwhile, allocate again rather than overwrite that node.
    if (existing && reg.id.empty()) continue;
    if (existing) {
      node = MILL_TRY(decode_record(existing->value));
      expected = existing->mod_revision;
    } else {
      node.id = id;
      node.registered_at = std::chrono::time_point_cast<std::chrono::seconds>(clock_.now());
      node.subnet = MILL_TRY(free_subnet());
    }
    node.name = reg.name;
    node.address = reg.address;
    node.resources = reg.resources;
    node.version = reg.version;
    auto put = store_.put_if(key, encode_record(node), expected);
    if (!put) {
      if (put.error().code == ErrorCode::kConflict) continue;
      return Unexpected(std::move(put).error());
    }
    {
      std::lock_guard lock(mutex_);
      live_[id] = Live{clock_.now(), reg.resources};
    }
    return with_live_state(std::move(node));
  }
  return make_error(ErrorCode::kConflict, "node registration kept conflicting; try again");
}

Result<void> NodeRegistry::heartbeat(const std::string& id, const model::Resources& resources) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = live_.find(id); it != live_.end()) {
      it->second = Live{clock_.now(), resources};
      return {};
    }
  }
  // Not seen since this server started: it must exist in the store to be accepted.
  auto existing = MILL_TRY(store_.get(std::string(kPrefix) + id));
  if (!existing) return make_error(ErrorCode::kNotFound, "unknown node '" + id + "'");
  std::lock_guard lock(mutex_);
  live_[id] = Live{clock_.now(), resources};
  return {};
}

model::Node NodeRegistry::with_live_state(model::Node node) {
  std::lock_guard lock(mutex_);
  auto it = live_.find(node.id);
  bool alive = it != live_.end() && clock_.now() - it->second.last_heartbeat <= down_after_;
  if (it != live_.end()) {
    node.last_heartbeat = it->second.last_heartbeat;
    node.since_heartbeat = std::max(std::chrono::milliseconds::zero(),
                                    std::chrono::duration_cast<std::chrono::milliseconds>(
                                        clock_.now() - it->second.last_heartbeat));
    double cpu_total = node.resources.cpu_total;
    int64_t mem_total = node.resources.memory_total;
    node.resources = it->second.resources;
    // Capacity comes from registration; a heartbeat only says what is free now.
    node.resources.cpu_total = cpu_total;
    node.resources.memory_total = mem_total;
  }
  if (!alive) {
    node.status = model::NodeStatus::kDown;
    node.resources.cpu_available = 0;
    node.resources.memory_available = 0;
  } else {
    node.status = node.draining ? model::NodeStatus::kDraining : model::NodeStatus::kReady;
  }
  return node;
}

Result<model::Node> NodeRegistry::get(const std::string& id) {
  auto kv = MILL_TRY(store_.get(std::string(kPrefix) + id));
  if (!kv) return make_error(ErrorCode::kNotFound, "no node '" + id + "'");
  return with_live_state(MILL_TRY(decode_record(kv->value)));
}

Result<model::Node> NodeRegistry::set_drain(const std::string& id,
                                            std::optional<SystemTime> deadline, bool draining,
                                            bool force) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string key = std::string(kPrefix) + id;
    auto kv = MILL_TRY(store_.get(key));
    if (!kv) return make_error(ErrorCode::kNotFound, "no node '" + id + "'");
    auto node = MILL_TRY(decode_record(kv->value));
    node.draining = draining;
    node.drain_deadline = draining ? deadline : std::nullopt;
    node.drain_force = draining && force;
    auto put = store_.put_if(key, encode_record(node), kv->mod_revision);
    if (!put) {
      if (put.error().code == ErrorCode::kConflict) continue;
      return Unexpected(std::move(put).error());
    }
    return with_live_state(std::move(node));
  }
  return make_error(ErrorCode::kConflict, "node " + id + " kept changing; try again");
}

Result<void> NodeRegistry::remove(const std::string& id) {
  std::string key = std::string(kPrefix) + id;
  auto kv = MILL_TRY(store_.get(key));
  if (!kv) return make_error(ErrorCode::kNotFound, "no node '" + id + "'");
  store::Txn txn;
  txn.compares = {{key, kv->mod_revision}};
  txn.ops = {{store::Operation::Type::kDelete, key, ""},
             {store::Operation::Type::kPut, std::string(kRemovedPrefix) + id,
              format_rfc3339(clock_.now())}};
  auto result = MILL_TRY(store_.txn(txn));
  if (!result.succeeded)
    return make_error(ErrorCode::kConflict, "node " + id + " changed; try again");
  std::lock_guard lock(mutex_);
  live_.erase(id);
  return {};
}

Result<std::vector<model::Node>> NodeRegistry::list() {
  auto listing = MILL_TRY(store_.list(kPrefix));
  std::vector<model::Node> out;
  out.reserve(listing.kvs.size());
  for (const auto& kv : listing.kvs) {
    auto node = decode_record(kv.value);
    if (!node) {
      return make_error(ErrorCode::kInternal,
                        "stored node " + kv.key + " is corrupt: " + node.error().message);
    }
    out.push_back(with_live_state(std::move(*node)));
  }
  // Keys sort as text ("node-10" < "node-2"); people expect node-2 before node-10.
  std::stable_sort(out.begin(), out.end(), [](const model::Node& a, const model::Node& b) {
    return a.id.size() != b.id.size() ? a.id.size() < b.id.size() : a.id < b.id;
  });
  return out;
}

}  // namespace mill::server
