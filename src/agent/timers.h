#pragma once

// Timers: many deadlines, one thread. The agent's timeouts, restart backoffs and
// periodic usage samples are entries here instead of threads that wake to look, so an
// idle node with many allocations sleeps until the next deadline. Time comes from the
// Clock, so tests run timers on simulated time.
//
// Thread-safety: every method may be called from any thread, also from inside a
// callback. Callbacks run on the timers' thread, one at a time, and must be quick
// (hand slow work to another thread). After cancel(id) returns, id's callback is not
// running and will not run; after stop() returns, no callback runs again.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "common/clock.h"

namespace mill::agent {

class Timers {
 public:
  explicit Timers(const Clock& clock);
  ~Timers();
  Timers(const Timers&) = delete;
  Timers& operator=(const Timers&) = delete;

  // Runs `fn` once the clock reaches `at` (at once if it has). Returns an id for
  // cancel(); 0 once stopped.
  uint64_t at(SystemTime at, std::function<void()> fn);
  // False when it has run or was cancelled already.
  bool cancel(uint64_t id);
  void stop();
  size_t pending() const;

 private:
  void loop();

  const Clock& clock_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;  // the running callback returned
  std::multimap<SystemTime, uint64_t> order_;
  std::map<uint64_t, std::pair<SystemTime, std::function<void()>>> timers_;
  uint64_t next_id_ = 1;
  uint64_t running_ = 0;  // id of the callback running now
  std::thread::id thread_id_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mill::agent
