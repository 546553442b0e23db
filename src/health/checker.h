#pragma once

// Checker: health-checks many targets (allocations) on one background thread, each
// on its own interval, and tells the owner when a target's health changes.
//
// Rules: a target starts as kStarting and becomes kHealthy after probe.passes passing
// probes in a row. A healthy target becomes kUnhealthy after probe.failures (default 3)
// failing probes in a row; an unhealthy one is healthy again after probe.passes
// passes. A target still starting after probe.deadline (when set) becomes kUnhealthy.
// The first probe runs right after add(); each next one interval after the previous
// one started (or when it ended, if it took longer). Probes never overlap per target.
//
// Time: the schedule (when a target was added, when its next probe starts, the
// deadline) is read from, and waited for on, the Clock given to create(), so a test
// on a ManualClock runs it on simulated time. A probe's own timeout is not: it bounds
// a real socket's connect and read, so it is measured on the real steady clock (a
// hung server times out although a ManualClock stands still). With no probe in
// flight the thread waits on the clock until the next start. With probes in flight it
// waits in poll(2) on their sockets, up to the nearest of their real deadlines and
// the next start (as far off as the clock said when the wait began), and reads the
// clock again when poll returns: a ManualClock advanced meanwhile takes effect once
// a probe in flight answers or times out (or add/remove wakes the thread).
//
// Threading: every method may be called from any thread, including from inside a
// callback. Callbacks run on the checker's thread, one at a time, so they must be
// quick and must not block on anything that waits for this checker (they delay every
// other target's probes). After remove(id) returns, id's callback is not running and
// never runs again; likewise for every callback after the destructor returns. Do not
// destroy the Checker from inside one of its callbacks.
//
// Scale: one thread and one poll(2) for all targets; a socket only while a probe is in
// flight (with none in flight the thread rests on the clock). Hundreds of targets at
// 100 ms intervals are fine.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/fd.h"
#include "common/result.h"
#include "health/probe.h"

namespace mill::health {

enum class Health { kStarting, kHealthy, kUnhealthy };

// "starting", "healthy", "unhealthy".
std::string_view health_name(Health health);

struct Status {
  Health health = Health::kStarting;
  int passes_in_a_row = 0;
  int failures_in_a_row = 0;
  int probes = 0;          // completed probes since add()
  std::string last_error;  // of the latest probe; empty when it passed or none ran yet
};

// Called when a target's health changes: kHealthy (error empty) or kUnhealthy with
// the latest probe's error ("GET /healthz: 500"), or for a missed deadline
// "not healthy within 60s: GET /healthz: connection refused". Must not throw.
using Callback = std::function<void(Health health, const std::string& error)>;
// Called while a target is not healthy, each time its latest probe fails with another
// error than the one before ("GET /healthz: connection refused", then ": 500"): what
// the owner shows as the reason it is not healthy yet. Must not throw.
using ErrorCallback = std::function<void(const std::string& error)>;

class Checker {
 public:
  // Starts the checker's thread, which schedules probes on `clock` (kept by
  // reference: it must outlive the Checker). kInternal when the system refuses a
  // thread or an fd.
  static Result<std::unique_ptr<Checker>> create(const Clock& clock);
  // Stops and joins the thread; no callback runs once this returns.
  ~Checker();
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  // Starts checking `probe` under `id` (e.g. an allocation id). kInvalidArgument for a
  // bad probe (see validate()), kAlreadyExists when id is taken. Intervals below
  // kMinInterval are raised to it.
  Result<void> add(const std::string& id, Probe probe, Callback on_change,
                   ErrorCallback on_error = {});
  // Stops checking id; false when there was no such target. When called from another
  // thread while id's callback runs, waits for that callback to return.
  bool remove(const std::string& id);
  // kNotFound for an unknown id.
  Result<Status> status(const std::string& id) const;
  size_t size() const;

 private:
  struct Target;
  struct Notice;

  Checker(const Clock& clock, UniqueFd wake);
  void run();
  // Ends the thread's wait, on the clock or in poll(2). Called with mutex_ held.
  void wake();
  // Records the finished attempt's result; queues a notice when health changes. `now`
  // is clock time.
  void finish_probe(const std::shared_ptr<Target>& target, SystemTime now,
                    std::vector<Notice>& notices);
  void deliver(std::vector<Notice>& notices, std::unique_lock<std::mutex>& lock);

  const Clock& clock_;
  UniqueFd wake_fd_;  // eventfd: add/remove/stop interrupt the thread's poll
  mutable std::mutex mutex_;
  std::condition_variable wake_cv_;  // add/remove/stop end the thread's wait on the clock
  bool wake_pending_ = false;        // set by wake(); cleared by the thread as it looks
  std::condition_variable callback_done_;
  std::map<std::string, std::shared_ptr<Target>> targets_;
  const Target* running_ = nullptr;  // whose callback runs now, if any
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mill::health
