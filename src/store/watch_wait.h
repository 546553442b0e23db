#pragma once

// The blocking half of Store::watch shared by the in-process backends: check the
// compaction bound, fetch events after the cursor, and if there are none sleep until a
// commit moves the revision (it may have touched only other prefixes), then look again.
// The caller holds `lock` on the mutex guarding revision and compacted; commits notify
// `committed` after bumping the revision.

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "store/store.h"

namespace mill::store {

// fetch(): Result<std::vector<Event>> of the events after the cursor, called locked.
template <class Fetch>
Result<WatchResult> wait_for_events(std::unique_lock<std::mutex>& lock,
                                    std::condition_variable& committed, const int64_t& revision,
                                    const int64_t& compacted, int64_t after_revision,
                                    std::chrono::milliseconds timeout, Fetch fetch) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (after_revision < compacted) return compacted_error(after_revision, compacted);
    WatchResult out;
    out.revision = revision;
    if (after_revision < revision) {
      out.events = MILL_TRY(fetch());
      if (!out.events.empty()) return out;
    }
    const int64_t seen = revision;
    if (!committed.wait_until(lock, deadline, [&] { return revision != seen; })) return out;
  }
}

}  // namespace mill::store
