#include "common/clock.h"

#include <cstdio>
#include <ctime>

namespace mill {

bool SystemClock::wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                             SystemTime until, const std::function<bool()>& ready) const {
  auto left = until - now();
  if (left <= SystemTime::duration::zero()) return ready();
  // Capped so that a far deadline (a "never") cannot overflow the steady clock.
  auto cap = std::chrono::hours(24 * 365);
  auto wait = left > cap ? std::chrono::duration_cast<SystemTime::duration>(cap) : left;
  return cv.wait_until(lock, std::chrono::steady_clock::now() + wait, ready);
}

SystemTime ManualClock::now() const {
  std::lock_guard lock(mutex_);
  return now_;
}

bool ManualClock::wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                             SystemTime until, const std::function<bool()>& ready) const {
  Waiter me{&cv, lock.mutex(), until};
  {
    std::lock_guard guard(mutex_);
    waiters_.push_back(&me);
  }
  waiting_.notify_all();
  cv.wait(lock, [&] { return ready() || now() >= until; });
  {
    std::lock_guard guard(mutex_);
    std::erase(waiters_, &me);
  }
  return ready();
}

void ManualClock::advance(std::chrono::milliseconds d) {
  std::vector<Waiter> due;
  {
    std::lock_guard lock(mutex_);
    now_ += d;
    // The woken leave the list at once: until they block again, nothing waits on time.
    std::erase_if(waiters_, [&](const Waiter* w) {
      if (w->until > now_) return false;
      due.push_back(*w);
      return true;
    });
  }
  // The waiter's own mutex is taken before the notify, so a wait that has checked the
  // time but not yet blocked cannot miss it. A waiter that left in between is
  // harmless: its (member) mutex and condition variable still exist.
  for (const auto& w : due) {
    std::lock_guard lock(*w.mutex);
    w.cv->notify_all();
  }
}

bool ManualClock::await_waiter(std::chrono::milliseconds real) const {
  std::unique_lock lock(mutex_);
  return waiting_.wait_for(lock, real, [&] { return !waiters_.empty(); });
}

size_t ManualClock::waiters() const {
  std::lock_guard lock(mutex_);
  return waiters_.size();
}

std::string format_rfc3339(SystemTime t, bool millis) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  std::time_t tt = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf, n);
  if (millis) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms));
    out += frac;
  }
  return out + "Z";
}

}  // namespace mill
