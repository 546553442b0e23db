#pragma once

// The leader's allocations in memory, with their last reported states: the only
// writer's cache of /allocs/ and /alloc-state/, loaded from the store at start, so
// that placement, listing and the node protocol never scan the store.
//
// The table does no store I/O after load(). A writer commits to the store first and
// then applies the change here (apply_*), holding the allocation's write guard across
// both, so writes to one allocation go one at a time while readers never wait for a
// store round trip. Applying a change wakes the node protocol's blocking query
// (WatchHub::changed with the write's revision) and the allocation's waiters.
//
// Thread-safety: every method may be called from any thread. The table's mutex is a
// leaf: it is held only while memory is read or changed, never across store I/O or a
// notification, and for_each's function must take no other lock.

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "model/allocation.h"
#include "model/node.h"
#include "server/waiters.h"
#include "server/watch_hub.h"
#include "store/store.h"

namespace mill::server {

// One allocation as readers get it. The record is shared, not copied: the table never
// changes a record it handed out but replaces the pointer when a new one is applied, so
// a copy of a view (a listing, the node protocol's answer, a waiter's callback) costs a
// pointer however large the spec (env up to 256 KiB, command up to 128 KiB), and a
// reader's copy stays as it was read.
struct TaskView {
  std::shared_ptr<const model::Allocation> alloc;  // never null in a view from the table
  std::optional<model::AllocState> state;          // none until the agent first reports

  model::AllocStatus status() const { return state ? state->status : model::AllocStatus::kPending; }
};

// Whether it runs, or ran: what a spawn waits for.
bool started_or_ended(const TaskView& v);
// Whether it reached an end state: what a kill waits for.
bool ended(const TaskView& v);
// Whether it reached an end state at or before `cutoff` (then it may be forgotten).
bool ended_by(const TaskView& v, SystemTime cutoff);

class AllocTable {
 public:
  using ViewCallback = std::function<void(Result<TaskView>)>;

  // Changes wake `hub` (the node protocol's) and each allocation's waiters in
  // `waiters`, whose key is the allocation id.
  AllocTable(Waiters& waiters, WatchHub& hub);

  // Reads /allocs/ and /alloc-state/ (before anything else uses the table).
  Result<void> load(store::Store& store);

  // Held by whoever writes one allocation's records, from before it reads what it
  // changes until it has applied the change: writers of one allocation take turns.
  class WriteGuard {
   public:
    WriteGuard(AllocTable& table, std::string id);
    ~WriteGuard();
    WriteGuard(const WriteGuard&) = delete;
    WriteGuard& operator=(const WriteGuard&) = delete;

   private:
    AllocTable& table_;
    std::string id_;
  };
  WriteGuard guard(const std::string& id) { return WriteGuard(*this, id); }

  Result<TaskView> get(const std::string& id) const;
  bool contains(const std::string& id) const;
  // The mod revision of its /allocs/ record (nullopt once forgotten).
  std::optional<int64_t> revision(const std::string& id) const;
  // Tasks (kind "task"), not ended or all; newest first.
  std::vector<TaskView> tasks(bool include_ended) const;
  // The allocations of one task template or service, oldest first.
  std::vector<TaskView> group(std::string_view kind, const std::string& group) const;
  // The groups of `kind` with at least one allocation that has not ended.
  std::vector<std::string> live_groups(std::string_view kind) const;
  // The allocations on `node` that have not ended, in id order.
  std::vector<TaskView> live_on(const std::string& node) const;
  // Per node id: its allocations that have not ended, services' and tasks', and what
  // their specs reserve. The one sum of reservations: placement's snapshot and the
  // node listings (allocatable = capacity - reserved) both read it.
  std::map<std::string, model::NodeLoad> load_per_node() const;
  // Ended allocations whose end is `retention` or more before `now`.
  std::vector<std::string> expired(SystemTime now, std::chrono::milliseconds retention) const;
  // Runs `fn` over every allocation, by id, under the table's lock.
  void for_each(const std::function<void(const TaskView&)>& fn) const;

  // Calls back with the allocation once `done` holds for it, kNotFound once it is
  // forgotten, kTimeout at the deadline (on the waiters' thread).
  void wait(const std::string& id, bool (*done)(const TaskView&), Waiters::Deadline deadline,
            ViewCallback callback);

  // Writers: each applies a change already committed at store revision `revision`.
  // A new allocation; returns its view.
  TaskView apply_placed(model::Allocation alloc, int64_t revision);
  // The allocation's new record (its desired state changed), in place of the old one
  // (which readers that hold it keep); returns its view.
  TaskView apply_alloc(model::Allocation alloc, int64_t revision);
  // A reported state; revision 0 when only its usage changed (kept in memory only).
  void apply_state(const model::AllocState& state, int64_t revision);
  void apply_forgotten(const std::string& id, int64_t revision);

 private:
  // After a change: the hub (when the store changed) and the allocation's waiters.
  void changed(const std::string& id, int64_t revision);

  Waiters& waiters_;
  WatchHub& hub_;
  mutable std::mutex mutex_;
  std::condition_variable written_;           // a write guard was released
  std::map<std::string, TaskView> views_;     // by id
  std::map<std::string, int64_t> revisions_;  // mod revision of each /allocs/ key
  std::set<std::string> writing_;             // ids whose write guard is held
};

}  // namespace mill::server
