#pragma once

// The index of a blocking query (the node protocol's desired allocations, as Nomad's
// clients long-poll): a reader takes last_change() *before* it reads the state, hands
// it out, and is later asked to wait(after = it) for the next change. The writers of
// that state call changed() once their change is in the store and in memory, so a
// reader never holds an index newer than what it read. Waits ride on Waiters.
//
// The index is the store revision of the newest change (or one past the last index
// when writers applied theirs out of revision order, so that no change goes unseen).
// Across a restart it starts from the store's revision, so an agent's index from the
// previous server is not mistaken for a future one.
//
// Thread-safety: every method may be called from any thread; callbacks run on the
// waiters' thread and must not block for long.

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "server/waiters.h"

namespace mill::server {

class WatchHub {
 public:
  using Deadline = Waiters::Deadline;
  // true: something changed after `after`; false: the deadline passed or the hub stops.
  using Callback = std::function<void(bool changed)>;

  // Waits are `key`'s waiters in `waiters`.
  WatchHub(Waiters& waiters, std::string key);

  // What the store holds at `revision` counts as changed at it, so a waiter that has
  // seen nothing yet (after = 0) is answered at once.
  void reset(int64_t revision);
  int64_t last_change() const;
  // A writer's change, at store revision `revision`, is now visible to readers.
  void changed(int64_t revision);

  // Calls back (changed) at once unless `after` is the current last_change(), else on
  // the next change, or (false) at the deadline.
  void wait(int64_t after, Deadline deadline, Callback callback);

 private:
  Waiters& waiters_;
  const std::string key_;
  mutable std::mutex mutex_;
  int64_t last_change_ = 0;
};

}  // namespace mill::server
