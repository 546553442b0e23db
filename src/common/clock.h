#pragma once

// Time as an interface (like Envoy's TimeSource), so code that depends on time can be
// tested with a clock the test moves by hand.

#include <chrono>
#include <string>

namespace mill {

using SystemTime = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime now() const = 0;
};

class SystemClock final : public Clock {
 public:
  SystemTime now() const override { return std::chrono::system_clock::now(); }
};

// A clock for tests: stands still until advanced.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(SystemTime start = SystemTime(std::chrono::seconds(1'700'000'000)))
      : now_(start) {}
  SystemTime now() const override { return now_; }
  void advance(std::chrono::milliseconds d) { now_ += d; }

 private:
  SystemTime now_;
};

// RFC 3339 in UTC: "2026-02-14T10:00:00Z" (with ".123" milliseconds when asked).
std::string format_rfc3339(SystemTime t, bool millis = false);

}  // namespace mill
