#pragma once

// MemoryStore: a Store kept entirely in memory, for unit tests of the components
// that sit on top of a Store. Nothing is durable; everything else (revisions,
// compare-and-swap, history, watch, compaction) behaves as the durable backends do,
// which the conformance suite in tests/unit/store checks.
//
// Thread-safety: every method may be called from any thread at once; one mutex
// serialises them, and watch() waits on a condition variable without holding it.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <limits>
#include <map>
#include <mutex>

#include "store/store.h"

namespace mill::store {

class MemoryStore final : public Store {
 public:
  static constexpr std::size_t kUnlimitedHistory = std::numeric_limits<std::size_t>::max();

  // history_limit: how many events to keep for watch(). Older history is dropped
  // whole revisions at a time, and a watch that needs it fails with kCompacted.
  explicit MemoryStore(std::size_t history_limit = kUnlimitedHistory);

  Result<int64_t> revision() override;
  Result<std::optional<KeyValue>> get(std::string_view key) override;
  Result<ListResult> list(std::string_view prefix) override;
  Result<TxnResult> txn(const Txn& txn) override;
  Result<WatchResult> watch(std::string_view prefix, int64_t after_revision,
                            std::chrono::milliseconds timeout) override;
  // Memory is as durable as it gets here.
  Result<void> sync(int64_t) override { return {}; }

  // Highest revision whose events were dropped (0 = full history kept).
  int64_t compacted_revision();

 private:
  void put_locked(const std::string& key, const std::string& value, int64_t revision);
  void erase_locked(std::map<std::string, KeyValue, std::less<>>::iterator it, int64_t revision);
  void compact_locked();
  std::vector<Event> events_after_locked(std::string_view prefix, int64_t after_revision) const;

  const std::size_t history_limit_;
  std::mutex mu_;
  std::condition_variable committed_;  // notified after every revision bump
  std::map<std::string, KeyValue, std::less<>> kvs_;
  std::deque<Event> history_;  // ascending revision
  int64_t revision_ = 0;
  int64_t compacted_revision_ = 0;
};

}  // namespace mill::store
