#include "server/watch_hub.h"

#include <algorithm>

namespace mill::server {

WatchHub::WatchHub(Waiters& waiters, std::string key) : waiters_(waiters), key_(std::move(key)) {}

void WatchHub::reset(int64_t revision) {
  std::lock_guard lock(mutex_);
  last_change_ = revision;
}

int64_t WatchHub::last_change() const {
  std::lock_guard lock(mutex_);
  return last_change_;
}

void WatchHub::changed(int64_t revision) {
  {
    std::lock_guard lock(mutex_);
    // Always forward: a change applied after a newer one must still wake whoever read
    // the newer index without it.
    last_change_ = std::max(last_change_ + 1, revision);
  }
  waiters_.notify(key_);
}

void WatchHub::wait(int64_t after, Deadline deadline, Callback callback) {
  waiters_.wait(key_, deadline, [this, after, callback](Waiters::Wake wake) {
    // Only the current index waits. One from ahead of it was handed out before a
    // power cut took back the store's unsynced tail (store.h, kProcessCrash), or by a
    // previous server: what it saw may be gone, so the caller should read again now.
    const bool changed = last_change() != after;
    if (wake == Waiters::Wake::kChanged && !changed) return false;
    callback(changed && wake != Waiters::Wake::kStopping);
    return true;
  });
}

}  // namespace mill::server
