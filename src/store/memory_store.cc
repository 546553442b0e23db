#include "store/memory_store.h"

#include <algorithm>

#include "store/watch_wait.h"

namespace mill::store {
namespace {

bool has_prefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

MemoryStore::MemoryStore(std::size_t history_limit) : history_limit_(history_limit) {}

Result<int64_t> MemoryStore::revision() {
  std::lock_guard lock(mu_);
  return revision_;
}

int64_t MemoryStore::compacted_revision() {
  std::lock_guard lock(mu_);
  return compacted_revision_;
}

Result<std::optional<KeyValue>> MemoryStore::get(std::string_view key) {
  std::lock_guard lock(mu_);
  auto it = kvs_.find(key);
  if (it == kvs_.end()) return std::optional<KeyValue>();
  return std::optional<KeyValue>(it->second);
}

Result<ListResult> MemoryStore::list(std::string_view prefix) {
  std::lock_guard lock(mu_);
  ListResult out;
  out.revision = revision_;
  for (auto it = kvs_.lower_bound(prefix); it != kvs_.end() && has_prefix(it->first, prefix);
       ++it) {
    out.kvs.push_back(it->second);
  }
  return out;
}

Result<TxnResult> MemoryStore::txn(const Txn& txn) {
  std::lock_guard lock(mu_);
  for (const Compare& c : txn.compares) {
    auto it = kvs_.find(c.key);
    int64_t actual = it == kvs_.end() ? 0 : it->second.mod_revision;
    if (actual != c.mod_revision) return TxnResult{false, revision_};
  }
  const int64_t next = revision_ + 1;
  const std::size_t history_before = history_.size();
  for (const Operation& op : txn.ops) {
    switch (op.type) {
      case Operation::Type::kPut:
        put_locked(op.key, op.value, next);
        break;
      case Operation::Type::kDelete:
        if (auto it = kvs_.find(op.key); it != kvs_.end()) erase_locked(it, next);
        break;
      case Operation::Type::kDeletePrefix:
        for (auto it = kvs_.lower_bound(op.key);
             it != kvs_.end() && has_prefix(it->first, op.key);) {
          erase_locked(it++, next);
        }
        break;
    }
  }
  // Only a txn that changed something takes a revision (store.h contract).
  if (history_.size() == history_before) return TxnResult{true, revision_};
  revision_ = next;
  compact_locked();
  committed_.notify_all();
  return TxnResult{true, revision_};
}

void MemoryStore::put_locked(const std::string& key, const std::string& value, int64_t revision) {
  auto [it, inserted] = kvs_.try_emplace(key);
  KeyValue& kv = it->second;
  if (inserted) {
    kv.key = key;
    kv.create_revision = revision;
  }
  kv.value = value;
  kv.mod_revision = revision;
  kv.version += 1;
  history_.push_back(Event{Event::Type::kPut, kv});
}

void MemoryStore::erase_locked(std::map<std::string, KeyValue, std::less<>>::iterator it,
                               int64_t revision) {
  Event event{Event::Type::kDelete, KeyValue{}};
  event.kv.key = it->first;
  event.kv.mod_revision = revision;
  history_.push_back(std::move(event));
  kvs_.erase(it);
}

// Keeps at most history_limit_ events, dropping whole revisions so that every
// revision above compacted_revision_ is complete.
void MemoryStore::compact_locked() {
  if (history_.size() <= history_limit_) return;
  while (history_.size() > history_limit_) {
    compacted_revision_ = history_.front().kv.mod_revision;
    history_.pop_front();
  }
  while (!history_.empty() && history_.front().kv.mod_revision == compacted_revision_) {
    history_.pop_front();
  }
}

std::vector<Event> MemoryStore::events_after_locked(std::string_view prefix,
                                                    int64_t after_revision) const {
  std::vector<Event> out;
  // History is sorted by revision: skip straight to the first event after the cursor.
  auto first = std::partition_point(history_.begin(), history_.end(), [&](const Event& e) {
    return e.kv.mod_revision <= after_revision;
  });
  for (auto it = first; it != history_.end(); ++it) {
    if (has_prefix(it->kv.key, prefix)) out.push_back(*it);
  }
  return out;
}

Result<WatchResult> MemoryStore::watch(std::string_view prefix, int64_t after_revision,
                                       std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return wait_for_events(
      lock, committed_, revision_, compacted_revision_, after_revision, timeout,
      [&]() -> Result<std::vector<Event>> { return events_after_locked(prefix, after_revision); });
}

}  // namespace mill::store
