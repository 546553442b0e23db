#pragma once

// Time as an input (Envoy's TimeSource is the model): code that depends on time reads
// it, and waits for it, through a Clock, so a test can run it on simulated time that
// moves only when the test says.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace mill {

using SystemTime = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime now() const = 0;
  // Blocks on `cv` (with `lock` held, as condition_variable::wait does) until `ready()`
  // or until the clock reaches `until`; returns ready(). `ready` is checked with the
  // lock held, whenever `cv` is notified and when the clock passes `until`.
  virtual bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          SystemTime until, const std::function<bool()>& ready) const = 0;
};

// The machine's clock. Waits are measured on the steady clock, so a wall-clock step
// does not stretch or cut them short.
class SystemClock final : public Clock {
 public:
  SystemTime now() const override { return std::chrono::system_clock::now(); }
  bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, SystemTime until,
                  const std::function<bool()>& ready) const override;
};

// Simulated time for tests: stands still until advanced. advance() wakes every wait
// whose deadline it reaches, so code under test runs its timers without a real sleep.
// A waiting object's mutex must outlive its waits (it does for members).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(SystemTime start = SystemTime(std::chrono::seconds(1'700'000'000)))
      : now_(start) {}
  SystemTime now() const override;
  bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, SystemTime until,
                  const std::function<bool()>& ready) const override;
  void advance(std::chrono::milliseconds d);
  // How many waits are blocked on this clock now.
  size_t waiters() const;
  // Blocks until some wait is blocked on this clock (true), or `real` passes (false):
  // a test moves time on once the code under test has come to rest.
  bool await_waiter(std::chrono::milliseconds real) const;

 private:
  struct Waiter {
    std::condition_variable* cv;
    std::mutex* mutex;
    SystemTime until;
  };
  mutable std::mutex mutex_;
  mutable std::condition_variable waiting_;  // a wait began
  SystemTime now_;
  mutable std::vector<Waiter*> waiters_;
};

// RFC 3339 in UTC: "2026-02-14T10:00:00Z" (with ".123" milliseconds when asked).
std::string format_rfc3339(SystemTime t, bool millis = false);

}  // namespace mill
