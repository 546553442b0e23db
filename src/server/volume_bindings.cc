#include "server/volume_bindings.h"

#include <boost/json.hpp>

#include "common/log.h"
#include "model/json.h"

namespace mill::server {

namespace {

constexpr std::string_view kVolumesPrefix = "/volumes/";
std::string volume_key(const std::string& name) { return std::string(kVolumesPrefix) + name; }
// A volume to destroy, one key per node and volume, until the node answers.
constexpr std::string_view kRemovalsPrefix = "/volume-removals/";
std::string removal_key(const std::string& node, const std::string& name) {
  return std::string(kRemovalsPrefix) + node + "/" + name;
}
// The key its waiters wait under (Waiters keys are shared with allocation ids).
std::string wait_key(const std::string& name) { return "volume/" + name; }

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

}  // namespace

VolumeBindings::VolumeBindings(store::Store& store, Waiters& waiters, WatchHub& hub)
    : store_(store), waiters_(waiters), hub_(hub) {}

Result<void> VolumeBindings::load() {
  auto volumes = MILL_TRY(store_.list(kVolumesPrefix));
  auto removals = MILL_TRY(store_.list(kRemovalsPrefix));
  std::lock_guard lock(mutex_);
  for (const auto& kv : volumes.kvs) {
    std::string name = kv.key.substr(kVolumesPrefix.size());
    if (auto b = decode_binding(name, kv.value)) bindings_[name] = std::move(*b);
  }
  for (const auto& kv : removals.kvs) {
    std::string rest = kv.key.substr(kRemovalsPrefix.size());
    removals_.emplace(rest.substr(0, rest.find('/')), kv.value);
  }
  return {};
}

Result<std::string> VolumeBindings::pin(const model::AllocSpec& spec,
                                        std::vector<std::string>* unbound) const {
  // A volume lives on the node where it was first used: allocations that mount it go
  // there (and one that mounts volumes of two nodes cannot run at all).
  std::string pin;
  std::lock_guard lock(mutex_);
  for (const auto& v : spec.volumes) {
    auto it = bindings_.find(v.name);
    if (it == bindings_.end()) {
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

void VolumeBindings::add_to(store::Txn& txn, const VolumeBinding& b) {
  txn.compares.push_back({volume_key(b.name), 0});
  txn.ops.push_back({store::Operation::Type::kPut, volume_key(b.name), encode_binding(b)});
}

void VolumeBindings::bound(std::vector<VolumeBinding> bindings) {
  std::lock_guard lock(mutex_);
  for (auto& b : bindings) bindings_[b.name] = std::move(b);
}

void VolumeBindings::set_used(const std::map<std::string, int64_t>& used) {
  std::lock_guard lock(mutex_);
  for (const auto& [name, bytes] : used) {
    if (auto it = bindings_.find(name); it != bindings_.end()) it->second.used = bytes;
  }
}

std::vector<VolumeBinding> VolumeBindings::list() const {
  std::lock_guard lock(mutex_);
  std::vector<VolumeBinding> out;
  for (const auto& [name, b] : bindings_) out.push_back(b);
  return out;
}

std::vector<std::string> VolumeBindings::removals_for(const std::string& node) const {
  std::vector<std::string> out;
  std::lock_guard lock(mutex_);
  for (auto it = removals_.lower_bound({node, ""}); it != removals_.end() && it->first == node;
       ++it) {
    out.push_back(it->second);
  }
  return out;
}

Result<void> VolumeBindings::remove(const std::string& name) {
  std::string node;
  {
    std::lock_guard lock(mutex_);
    auto it = bindings_.find(name);
    if (it == bindings_.end()) {
      return make_error(ErrorCode::kNotFound, "volume '" + name + "' was never created");
    }
    node = it->second.node;
    errors_.erase(name);
  }
  auto revision = MILL_TRY(store_.put(removal_key(node, name), name));
  {
    std::lock_guard lock(mutex_);
    removals_.emplace(node, name);
  }
  hub_.changed(revision);
  return {};
}

void VolumeBindings::removed(const std::string& node,
                             const std::vector<model::VolumeReport>& reports) {
  for (const auto& r : reports) {
    bool removed = false;
    {
      std::lock_guard lock(mutex_);
      auto it = bindings_.find(r.name);
      removed = r.error.empty() && it != bindings_.end() && it->second.node == node;
      if (!r.error.empty() && it != bindings_.end()) errors_[r.name] = r.error;
    }
    store::Txn txn;
    txn.ops.push_back({store::Operation::Type::kDelete, removal_key(node, r.name), ""});
    if (removed) txn.ops.push_back({store::Operation::Type::kDelete, volume_key(r.name), ""});
    auto done = store_.txn(txn);
    if (!done) {
      log::warn("volume " + r.name + ": cannot record its removal: " + done.error().message);
      continue;
    }
    // The store first, then memory: a DELETE woken by this finds the record gone.
    {
      std::lock_guard lock(mutex_);
      removals_.erase({node, r.name});
      if (auto it = bindings_.find(r.name); removed && it != bindings_.end()) bindings_.erase(it);
    }
    hub_.changed(done->revision);
    waiters_.notify(wait_key(r.name));
  }
}

void VolumeBindings::when_removed(const std::string& name, Waiters::Deadline deadline,
                                  std::function<void(Result<void>)> callback) {
  waiters_.wait(wait_key(name), deadline, [this, name, callback](Waiters::Wake wake) {
    std::optional<Result<void>> answer;
    {
      std::lock_guard lock(mutex_);
      if (!bindings_.contains(name)) {
        answer = Result<void>{};
      } else if (auto e = errors_.find(name); e != errors_.end()) {
        answer = make_error(ErrorCode::kIo, e->second);
      }
    }
    if (!answer && wake == Waiters::Wake::kDeadline) {
      answer =
          make_error(ErrorCode::kTimeout, "the node of volume " + name + " did not answer in time");
    } else if (!answer && wake == Waiters::Wake::kStopping) {
      answer = make_error(ErrorCode::kUnavailable, "the server is stopping");
    }
    if (!answer) return false;
    callback(std::move(*answer));
    return true;
  });
}

}  // namespace mill::server
