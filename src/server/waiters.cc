#include "server/waiters.h"

#include <algorithm>

namespace mill::server {

Waiters::~Waiters() { stop(); }

void Waiters::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { loop(); });
}

void Waiters::stop() {
  std::unique_lock lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
  std::thread thread = std::move(thread_);
  lock.unlock();
  if (thread.joinable()) thread.join();
  // The thread is gone (or never ran): what still waits ends here.
  lock.lock();
  auto left = std::move(waiters_);
  waiters_.clear();
  lock.unlock();
  for (auto& [key, w] : left) w.poll(Wake::kStopping);
}

void Waiters::wait(const std::string& key, Deadline deadline, Poll poll) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      waiters_.emplace(key, Waiter{key, deadline, std::move(poll)});
      wake_.notify_all();
      return;
    }
  }
  poll(Wake::kStopping);
}

void Waiters::notify(const std::string& key) {
  std::vector<std::function<void()>> listeners;
  {
    std::lock_guard lock(mutex_);
    auto [it, end] = waiters_.equal_range(key);
    for (; it != end; ++it) it->second.due = true;
    // Waiters of this key being polled right now may have looked before the change.
    if (polling_) notified_while_polling_.push_back(key);
    listeners = listeners_;
  }
  wake_.notify_all();
  for (const auto& l : listeners) l();
}

void Waiters::subscribe(std::function<void()> listener) {
  std::lock_guard lock(mutex_);
  listeners_.push_back(std::move(listener));
}

void Waiters::take_ready(Deadline now, std::vector<Waiter>& changed, std::vector<Waiter>& expired) {
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->second.due) {
      changed.push_back(std::move(it->second));
    } else if (it->second.deadline <= now) {
      expired.push_back(std::move(it->second));
    } else {
      ++it;
      continue;
    }
    it = waiters_.erase(it);
  }
}

void Waiters::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    std::vector<Waiter> changed;
    std::vector<Waiter> expired;
    take_ready(std::chrono::steady_clock::now(), changed, expired);
    if (changed.empty() && expired.empty()) {
      if (waiters_.empty()) {
        wake_.wait(lock);
      } else {
        auto next = std::min_element(waiters_.begin(), waiters_.end(), [](auto& a, auto& b) {
                      return a.second.deadline < b.second.deadline;
                    })->second.deadline;
        wake_.wait_until(lock, next);
      }
      continue;
    }
    polling_ = true;
    lock.unlock();
    std::vector<Waiter> still;
    for (auto& w : changed) {
      if (!w.poll(Wake::kChanged)) still.push_back(std::move(w));
    }
    for (auto& w : expired) w.poll(Wake::kDeadline);
    lock.lock();
    polling_ = false;
    for (auto& w : still) {
      const auto& seen = notified_while_polling_;
      w.due = std::find(seen.begin(), seen.end(), w.key) != seen.end();
      std::string key = w.key;
      waiters_.emplace(std::move(key), std::move(w));
    }
    notified_while_polling_.clear();
  }
}

}  // namespace mill::server
