#pragma once

// The one way the control plane waits for its own state to change: a spawn for its
// task to run, a kill for it to end, a volume's removal, the node protocol's blocking
// query (WatchHub), a deploy for any allocation's news (a listener). Writers change
// their in-memory state first (after the store has it), then notify() its key; every
// waiter of that key then looks again. Waiting costs no thread: one thread runs every
// wait's poll, so hundreds of pending spawns and agents' long polls ride on it.
//
// A wait is a poll: called once at once (kChanged), again after each notify() of its
// key, and last at its deadline (kDeadline) or when the waiters stop (kStopping). It
// returns true once it has answered its caller; the wait then ends and it is never
// called again. Given kDeadline or kStopping it must answer (its result is ignored).
//
// Thread-safety: every method may be called from any thread. Polls run on the
// waiters' thread, one at a time, with no lock of this class held; they must not block
// for long and must not call stop(). A wait registered after stop() is polled at once,
// on the caller's thread, with kStopping. Listeners run on the notifying thread.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mill::server {

class Waiters {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  enum class Wake { kChanged, kDeadline, kStopping };
  using Poll = std::function<bool(Wake)>;

  Waiters() = default;
  ~Waiters();
  Waiters(const Waiters&) = delete;
  Waiters& operator=(const Waiters&) = delete;

  void start();
  // Ends every wait (kStopping) and joins the thread.
  void stop();

  // Keys: an allocation's id, or "<kind>/<name>" for anything else (ids have no '/').
  void wait(const std::string& key, Deadline deadline, Poll poll);
  // The state behind `key` changed: its waiters look again (on the waiters' thread),
  // and every listener runs (here, on the caller's thread, before notify returns).
  void notify(const std::string& key);
  // `listener` runs in every notify(); it must be quick and take no lock a notifier
  // may hold (a condition variable's is fine).
  void subscribe(std::function<void()> listener);

 private:
  struct Waiter {
    std::string key;
    Deadline deadline;
    Poll poll;
    bool due = true;  // to be polled with kChanged
  };
  void loop();
  // Takes the waiters to poll now (under mutex_); the rest stay.
  void take_ready(Deadline now, std::vector<Waiter>& changed, std::vector<Waiter>& expired);

  std::mutex mutex_;
  std::condition_variable wake_;
  std::multimap<std::string, Waiter> waiters_;  // by key
  std::vector<std::function<void()>> listeners_;
  bool polling_ = false;  // the thread polls waiters it took out of waiters_
  std::vector<std::string> notified_while_polling_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mill::server
