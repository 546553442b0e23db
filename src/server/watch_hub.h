#pragma once

// One thread that watches a store prefix and wakes whoever waits for a change under
// it: the node protocol's blocking query for desired allocations, a spawn waiting for
// its task to run, a kill waiting for it to end. Waiting costs no thread, so hundreds
// of agents' long polls (or pending spawns) ride on this one.
//
// Thread-safety: every method may be called from any thread. Callbacks run on the
// hub's thread (or on the caller's, when the answer is already known) and must not
// block for long.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

namespace mill::server {

class WatchHub {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  // true: something under the prefix changed after `after`; false: the deadline passed.
  using Callback = std::function<void(bool changed)>;

  WatchHub(store::Store& store, std::string prefix);
  // Watches several prefixes as one: a change under any of them wakes waiters.
  WatchHub(store::Store& store, std::vector<std::string> prefixes);
  ~WatchHub();

  void start();
  // Wakes every waiter with false and joins the thread.
  void stop();

  // Revision of the newest change under the prefix seen so far. Read it *before*
  // reading the state it guards, then wait(after = that), and no change is missed.
  int64_t last_change() const;

  // Calls back at once (changed) unless `after` is the current last_change().
  void wait(int64_t after, Deadline deadline, Callback callback);

 private:
  struct Waiter {
    int64_t after;
    Deadline deadline;
    Callback callback;
  };
  void loop();

  store::Store& store_;
  const std::vector<std::string> prefixes_;
  const std::string watched_;  // their common prefix, what the store watch covers
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  int64_t last_change_ = 0;
  bool stopping_ = false;
  std::vector<Waiter> waiters_;
  std::thread thread_;
};

}  // namespace mill::server
