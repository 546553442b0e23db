#include "health/checker.h"

#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <optional>
#include <system_error>

#include "health/attempt.h"
#include "model/units.h"

namespace mill::health {

using std::chrono::steady_clock;

namespace {

// Milliseconds for poll(2) until the clock reaches `until`, rounded up so a wake-up is
// never early, and 0 when it has.
int clock_timeout(SystemTime now, SystemTime until) {
  if (until <= now) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

}  // namespace

std::string_view health_name(Health health) {
  switch (health) {
    case Health::kStarting:
      return "starting";
    case Health::kHealthy:
      return "healthy";
    case Health::kUnhealthy:
      return "unhealthy";
  }
  return "unknown";
}

// Owned through shared_ptr: remove() drops the map's reference while the thread may
// still hold one (its poll set, a pending notice); `removed` tells it to let go.
// Every field is guarded by Checker::mutex_. The times are the Checker's clock's; the
// attempt's own deadline is real (steady) time.
struct Checker::Target {
  Probe probe;
  Endpoint endpoint;
  Callback callback;
  ErrorCallback on_error;
  SystemTime added;
  SystemTime next_start;
  SystemTime started;                // of the attempt in flight
  std::unique_ptr<Attempt> attempt;  // in flight
  Status status;
  bool removed = false;
};

struct Checker::Notice {
  std::shared_ptr<Target> target;
  Health health;
  std::string error;
  bool only_error = false;  // for on_error: a new error, the health unchanged
};

Result<std::unique_ptr<Checker>> Checker::create(const Clock& clock) {
  UniqueFd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake.valid()) {
    return make_error(ErrorCode::kInternal,
                      "health checker: eventfd: " + std::generic_category().message(errno));
  }
  std::unique_ptr<Checker> checker(new Checker(clock, std::move(wake)));
  try {
    checker->thread_ = std::thread([raw = checker.get()] { raw->run(); });
  } catch (const std::system_error& e) {
    return make_error(ErrorCode::kInternal, std::string("health checker: thread: ") + e.what());
  }
  return checker;
}

Checker::Checker(const Clock& clock, UniqueFd wake) : clock_(clock), wake_fd_(std::move(wake)) {}

Checker::~Checker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake();
  }
  if (thread_.joinable()) thread_.join();
}

Result<void> Checker::add(const std::string& id, Probe probe, Callback on_change,
                          ErrorCallback on_error) {
  MILL_TRY(validate(probe));
  auto target = std::make_shared<Target>();
  if (probe.command.empty()) target->endpoint = *parse_endpoint(probe.address);
  probe.interval = std::max(probe.interval, kMinInterval);
  probe.passes = std::max(probe.passes, 1);
  probe.failures = std::max(probe.failures, 1);
  target->probe = std::move(probe);
  target->callback = std::move(on_change);
  target->on_error = std::move(on_error);
  target->added = target->next_start = clock_.now();
  std::lock_guard lock(mutex_);
  if (!targets_.emplace(id, std::move(target)).second) {
    return make_error(ErrorCode::kAlreadyExists, "health target \"" + id + "\" exists");
  }
  wake();
  return {};
}

bool Checker::remove(const std::string& id) {
  std::unique_lock lock(mutex_);
  auto it = targets_.find(id);
  if (it == targets_.end()) return false;
  std::shared_ptr<Target> target = std::move(it->second);
  targets_.erase(it);
  target->removed = true;
  // From inside a callback (on our thread) the running callback is the caller itself.
  if (std::this_thread::get_id() != thread_.get_id()) {
    callback_done_.wait(lock, [&] { return running_ != target.get(); });
  }
  wake();  // let the thread drop its socket now rather than at its next wake-up
  return true;
}

Result<Status> Checker::status(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = targets_.find(id);
  if (it == targets_.end()) {
    return make_error(ErrorCode::kNotFound, "no health target \"" + id + "\"");
  }
  return it->second->status;
}

size_t Checker::size() const {
  std::lock_guard lock(mutex_);
  return targets_.size();
}

void Checker::wake() {
  // Both waits: the thread may rest on the clock (wake_cv_) or sit in poll(2) (the
  // eventfd). The flag also holds the wake-up for a thread not waiting yet, and as the
  // eventfd is written only with the lock held, the thread drains it with the flag.
  wake_pending_ = true;
  wake_cv_.notify_all();
  uint64_t one = 1;
  // A full counter (never in practice) still wakes the thread: nothing to handle.
  [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof(one));
}

// The thread: start due probes, then wait (see checker.h) until the nearest real
// deadline of a probe in flight or the next start on the clock, feed the results
// back, then run callbacks without the lock. Every wait also ends on wake().
void Checker::run() {
  std::unique_lock lock(mutex_);
  std::vector<pollfd> fds;
  std::vector<std::shared_ptr<Target>> polled;
  std::vector<Notice> notices;
  while (!stopping_) {
    if (wake_pending_) {  // what add/remove did is in targets_, which this pass reads
      wake_pending_ = false;
      uint64_t count;  // the eventfd is written only with the lock held, as is the flag
      [[maybe_unused]] ssize_t r = ::read(wake_fd_.get(), &count, sizeof(count));
    }
    SystemTime now = clock_.now();
    SteadyTime real_now = steady_clock::now();
    fds.assign(1, pollfd{.fd = wake_fd_.get(), .events = POLLIN, .revents = 0});
    polled.clear();
    std::optional<SystemTime> next_start;  // the nearest, of targets with none in flight
    SteadyTime real_deadline = SteadyTime::max();
    for (auto& [id, target] : targets_) {
      if (!target->attempt && target->next_start <= now) {
        target->started = now;
        target->attempt = start_attempt(target->probe, target->endpoint, real_now);
      }
      if (target->attempt && target->attempt->done()) {  // e.g. refused at once
        finish_probe(target, now, notices);
      }
      if (target->attempt) {
        fds.push_back(
            {.fd = target->attempt->fd(), .events = target->attempt->events(), .revents = 0});
        polled.push_back(target);
        real_deadline = std::min(real_deadline, target->attempt->deadline());
      } else if (!next_start || target->next_start < *next_start) {
        next_start = target->next_start;
      }
    }
    // With notices to deliver, the callbacks come first and the next pass waits.
    if (notices.empty() && polled.empty()) {
      // Nothing in flight: rest on the clock (simulated time in a test).
      clock_.wait_until(wake_cv_, lock, next_start.value_or(SystemTime::max()),
                        [&] { return wake_pending_ || stopping_; });
    } else if (notices.empty()) {
      // Every attempt has a real deadline, so this returns even on a clock that stands
      // still; a wake-up (fds[0]) is handled at the top of the next pass.
      int timeout = poll_timeout(real_now, real_deadline);
      if (next_start) timeout = std::min(timeout, clock_timeout(now, *next_start));
      lock.unlock();
      int n = ::poll(fds.data(), fds.size(), timeout);
      int poll_errno = errno;
      lock.lock();
      now = clock_.now();
      real_now = steady_clock::now();
      for (size_t i = 0; i < polled.size(); ++i) {
        Target& target = *polled[i];
        if (target.removed || !target.attempt) continue;
        if (n < 0 && poll_errno != EINTR) target.attempt->abort(poll_errno);
        if (n > 0) target.attempt->on_ready(fds[i + 1].revents);
        target.attempt->on_time(real_now);
        if (target.attempt->done()) finish_probe(polled[i], now, notices);
      }
      polled.clear();  // removed targets' sockets close here, with the lock held
    }
    deliver(notices, lock);
  }
}

void Checker::finish_probe(const std::shared_ptr<Target>& owner, SystemTime now,
                           std::vector<Notice>& notices) {
  Target& target = *owner;
  ProbeResult result = target.attempt->result();
  target.attempt.reset();
  target.next_start = std::max(target.started + target.probe.interval, now);
  Status& s = target.status;
  ++s.probes;
  const bool new_error = !result.error.empty() && result.error != s.last_error;
  s.last_error = result.error;
  if (result.ok) {
    ++s.passes_in_a_row;
    s.failures_in_a_row = 0;
  } else {
    ++s.failures_in_a_row;
    s.passes_in_a_row = 0;
  }
  const Health before = s.health;
  std::string why;
  if (s.health != Health::kHealthy && s.passes_in_a_row >= target.probe.passes) {
    s.health = Health::kHealthy;
  } else if (s.health == Health::kHealthy && s.failures_in_a_row >= target.probe.failures) {
    s.health = Health::kUnhealthy;
    why = result.error;
  } else if (s.health == Health::kStarting && target.probe.deadline.count() > 0 &&
             now - target.added >= target.probe.deadline) {
    s.health = Health::kUnhealthy;
    why = "not healthy within " + model::format_duration(target.probe.deadline) +
          (result.error.empty() ? "" : ": " + result.error);
  }
  if (s.health != before && target.callback) {
    notices.push_back(Notice{.target = owner, .health = s.health, .error = std::move(why)});
  }
  if (new_error && s.health != Health::kHealthy && target.on_error) {
    notices.push_back(
        Notice{.target = owner, .health = s.health, .error = result.error, .only_error = true});
  }
}

void Checker::deliver(std::vector<Notice>& notices, std::unique_lock<std::mutex>& lock) {
  for (Notice& notice : notices) {
    if (notice.target->removed) continue;
    running_ = notice.target.get();
    lock.unlock();
    if (notice.only_error) {
      notice.target->on_error(notice.error);
    } else {
      notice.target->callback(notice.health, notice.error);
    }
    lock.lock();
    running_ = nullptr;
    callback_done_.notify_all();
  }
  notices.clear();
}

}  // namespace mill::health
