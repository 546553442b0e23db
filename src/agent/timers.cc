#include "agent/timers.h"

namespace mill::agent {

Timers::Timers(const Clock& clock) : clock_(clock) {
  thread_ = std::thread([this] { loop(); });
}

Timers::~Timers() { stop(); }

uint64_t Timers::at(SystemTime when, std::function<void()> fn) {
  std::lock_guard lock(mutex_);
  if (stopping_) return 0;
  uint64_t id = next_id_++;
  timers_[id] = {when, std::move(fn)};
  order_.emplace(when, id);
  wake_.notify_all();
  return id;
}

bool Timers::cancel(uint64_t id) {
  std::unique_lock lock(mutex_);
  auto it = timers_.find(id);
  bool found = it != timers_.end();
  if (found) {
    auto range = order_.equal_range(it->second.first);
    for (auto o = range.first; o != range.second; ++o) {
      if (o->second == id) {
        order_.erase(o);
        break;
      }
    }
    timers_.erase(it);
  }
  // From another thread, wait for it if it is running now (not from inside it).
  if (std::this_thread::get_id() != thread_id_) {
    idle_.wait(lock, [&] { return running_ != id; });
  }
  return found;
}

size_t Timers::pending() const {
  std::lock_guard lock(mutex_);
  return timers_.size();
}

void Timers::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    timers_.clear();
    order_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) thread_.join();
}

void Timers::loop() {
  std::unique_lock lock(mutex_);
  thread_id_ = std::this_thread::get_id();
  while (!stopping_) {
    if (order_.empty()) {
      wake_.wait(lock, [&] { return stopping_ || !order_.empty(); });
      continue;
    }
    auto next = order_.begin()->first;
    if (clock_.now() < next) {
      // Woken early by a new (maybe earlier) timer or by stop(): look again.
      const size_t count = order_.size();
      const auto first = order_.begin()->second;
      clock_.wait_until(wake_, lock, next, [&] {
        return stopping_ || order_.size() != count ||
               (!order_.empty() && order_.begin()->second != first);
      });
      continue;
    }
    uint64_t id = order_.begin()->second;
    order_.erase(order_.begin());
    auto fn = std::move(timers_[id].second);
    timers_.erase(id);
    running_ = id;
    lock.unlock();
    fn();
    lock.lock();
    running_ = 0;
    idle_.notify_all();
  }
}

}  // namespace mill::agent
