#include "server/alloc_table.h"

#include <algorithm>

#include "common/log.h"

namespace mill::server {

bool started_or_ended(const TaskView& v) {
  auto s = v.status();
  return model::is_up(s) || s == model::AllocStatus::kStopping || model::is_terminal(s);
}

bool ended(const TaskView& v) { return model::is_terminal(v.status()); }

bool ended_by(const TaskView& v, SystemTime cutoff) {
  return v.state && model::is_terminal(v.state->status) && v.state->finished_at &&
         *v.state->finished_at <= cutoff;
}

AllocTable::AllocTable(Waiters& waiters, WatchHub& hub) : waiters_(waiters), hub_(hub) {}

Result<void> AllocTable::load(store::Store& store) {
  auto allocs = MILL_TRY(store.list(model::kAllocPrefix));
  auto states = MILL_TRY(store.list(model::kAllocStatePrefix));
  std::lock_guard lock(mutex_);
  for (const auto& kv : allocs.kvs) {
    auto a = model::decode_allocation(kv.value);
    if (!a) {
      log::warn("skipping unreadable allocation " + kv.key + ": " + a.error().message);
      continue;
    }
    const std::string id = a->id;
    revisions_[id] = kv.mod_revision;
    views_[id].alloc = std::make_shared<const model::Allocation>(std::move(*a));
  }
  for (const auto& kv : states.kvs) {
    auto s = model::decode_alloc_state(kv.value);
    if (!s) continue;
    if (auto it = views_.find(s->id); it != views_.end()) it->second.state = std::move(*s);
  }
  return {};
}

AllocTable::WriteGuard::WriteGuard(AllocTable& table, std::string id)
    : table_(table), id_(std::move(id)) {
  std::unique_lock lock(table_.mutex_);
  table_.written_.wait(lock, [&] { return !table_.writing_.contains(id_); });
  table_.writing_.insert(id_);
}

AllocTable::WriteGuard::~WriteGuard() {
  {
    std::lock_guard lock(table_.mutex_);
    table_.writing_.erase(id_);
  }
  table_.written_.notify_all();
}

Result<TaskView> AllocTable::get(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = views_.find(id);
  if (it == views_.end()) return make_error(ErrorCode::kNotFound, "no task '" + id + "'");
  return it->second;
}

bool AllocTable::contains(const std::string& id) const {
  std::lock_guard lock(mutex_);
  return views_.contains(id);
}

std::optional<int64_t> AllocTable::revision(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = revisions_.find(id);
  if (it == revisions_.end()) return std::nullopt;
  return it->second;
}

std::vector<TaskView> AllocTable::tasks(bool include_ended) const {
  std::vector<TaskView> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, v] : views_) {
      if (v.alloc->kind == model::kKindTask && (include_ended || !ended(v))) out.push_back(v);
    }
  }
  std::sort(out.begin(), out.end(), [](const TaskView& a, const TaskView& b) {
    return a.alloc->created_at != b.alloc->created_at ? a.alloc->created_at > b.alloc->created_at
                                                      : a.alloc->id < b.alloc->id;
  });
  return out;
}

std::vector<TaskView> AllocTable::group(std::string_view kind, const std::string& group) const {
  std::vector<TaskView> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, v] : views_) {
      if (v.alloc->kind == kind && v.alloc->group == group) out.push_back(v);
    }
  }
  std::sort(out.begin(), out.end(), [](const TaskView& a, const TaskView& b) {
    return a.alloc->created_at != b.alloc->created_at ? a.alloc->created_at < b.alloc->created_at
                                                      : a.alloc->id < b.alloc->id;
  });
  return out;
}

std::vector<std::string> AllocTable::live_groups(std::string_view kind) const {
  std::set<std::string> out;
  std::lock_guard lock(mutex_);
  for (const auto& [id, v] : views_) {
    if (v.alloc->kind == kind && !ended(v)) out.insert(v.alloc->group);
  }
  return {out.begin(), out.end()};
}

std::vector<TaskView> AllocTable::live_on(const std::string& node) const {
  std::vector<TaskView> out;
  std::lock_guard lock(mutex_);
  for (const auto& [id, v] : views_) {
    if (v.alloc->node == node && !ended(v)) out.push_back(v);
  }
  return out;
}

std::map<std::string, model::NodeLoad> AllocTable::load_per_node() const {
  std::map<std::string, model::NodeLoad> out;
  std::lock_guard lock(mutex_);
  for (const auto& [id, v] : views_) {
    if (ended(v)) continue;
    model::NodeLoad& load = out[v.alloc->node];
    ++load.allocations;
    load.cpu += v.alloc->spec.cpu;
    load.memory += v.alloc->spec.memory;
    load.disk += v.alloc->spec.disk;
  }
  return out;
}

std::vector<std::string> AllocTable::expired(SystemTime now,
                                             std::chrono::milliseconds retention) const {
  std::vector<std::string> out;
  std::lock_guard lock(mutex_);
  for (const auto& [id, v] : views_) {
    if (ended_by(v, now - retention)) out.push_back(id);
  }
  return out;
}

void AllocTable::for_each(const std::function<void(const TaskView&)>& fn) const {
  std::lock_guard lock(mutex_);
  for (const auto& [id, v] : views_) fn(v);
}

void AllocTable::wait(const std::string& id, bool (*done)(const TaskView&),
                      Waiters::Deadline deadline, ViewCallback callback) {
  // Registered before its first look, and looked at again after every change of the
  // allocation: a change between the two is not missed.
  waiters_.wait(id, deadline, [this, id, done, callback](Waiters::Wake wake) {
    auto view = get(id);
    if (!view) {
      callback(Unexpected(view.error()));
    } else if (done(*view)) {
      callback(std::move(*view));
    } else if (wake == Waiters::Wake::kDeadline) {
      callback(make_error(ErrorCode::kTimeout, "timed out waiting for task " + id));
    } else if (wake == Waiters::Wake::kStopping) {
      callback(make_error(ErrorCode::kUnavailable, "the server is stopping"));
    } else {
      return false;
    }
    return true;
  });
}

TaskView AllocTable::apply_placed(model::Allocation alloc, int64_t revision) {
  const std::string id = alloc.id;
  TaskView out{std::make_shared<const model::Allocation>(std::move(alloc)), std::nullopt};
  {
    std::lock_guard lock(mutex_);
    revisions_[id] = revision;
    views_[id] = out;
  }
  changed(id, revision);
  return out;
}

TaskView AllocTable::apply_alloc(model::Allocation alloc, int64_t revision) {
  const std::string id = alloc.id;
  // Made before the lock is taken; the old record is left to whoever still holds it.
  auto record = std::make_shared<const model::Allocation>(std::move(alloc));
  TaskView out;
  {
    std::lock_guard lock(mutex_);
    revisions_[id] = revision;
    TaskView& v = views_[id];
    v.alloc = std::move(record);
    out = v;
  }
  changed(id, revision);
  return out;
}

void AllocTable::apply_state(const model::AllocState& state, int64_t revision) {
  {
    std::lock_guard lock(mutex_);
    auto it = views_.find(state.id);
    if (it == views_.end()) return;
    it->second.state = state;
  }
  changed(state.id, revision);
}

void AllocTable::apply_forgotten(const std::string& id, int64_t revision) {
  {
    std::lock_guard lock(mutex_);
    views_.erase(id);
    revisions_.erase(id);
  }
  changed(id, revision);
}

void AllocTable::changed(const std::string& id, int64_t revision) {
  if (revision > 0) hub_.changed(revision);
  waiters_.notify(id);
}

}  // namespace mill::server
