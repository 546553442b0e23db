#pragma once

// Things made ahead, on a thread of their own, so that a container's start takes one
// instead of making it: network namespaces (network/node_network.h) and disks
// (volume/scratch_disk.h). None is made while a start runs, since making one costs CPU
// and kernel locks the start would wait on: the pool refills once the starts are over
// (or kStartPause after the last one began, if one never says it ended), and at once
// when it is empty. A failed make is retried 5 s later.
//
// Thread-safety: every method may be called from any thread.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "common/log.h"
#include "common/result.h"

namespace mill {

template <class T>
class SparePool {
 public:
  using Make = std::function<Result<T>()>;
  using Drop = std::function<void(T&)>;

  // Keeps `count` ready once start()ed; `what` names them in warnings ("spare netns").
  // `drop` disposes of one no start took.
  SparePool(std::string what, int count, Make make, Drop drop)
      : what_(std::move(what)), count_(count), make_(std::move(make)), drop_(std::move(drop)) {}
  // Stops making them and drops those still ready.
  ~SparePool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (auto& spare : ready_) drop_(spare);
  }
  SparePool(const SparePool&) = delete;
  SparePool& operator=(const SparePool&) = delete;

  // Begins making them (nothing when count is 0). Idempotent.
  void start() {
    std::lock_guard lock(mu_);
    if (count_ > 0 && !thread_.joinable()) thread_ = std::thread([this] { run(); });
  }

  // Bracket a start: starting() as it begins, started() once it is over, however it went.
  void starting() {
    std::lock_guard lock(mu_);
    ++starting_;
    last_start_ = Clock::now();
  }
  void started() {
    {
      std::lock_guard lock(mu_);
      if (starting_ > 0) --starting_;
    }
    cv_.notify_all();
  }

  // The oldest ready one; nullopt when none is.
  std::optional<T> take() {
    std::optional<T> spare;
    {
      std::lock_guard lock(mu_);
      if (ready_.empty()) return std::nullopt;
      spare = std::move(ready_.front());
      ready_.pop_front();
    }
    cv_.notify_all();
    return spare;
  }
  // One taken and not used after all, first in line again.
  void put_back(T spare) {
    std::lock_guard lock(mu_);
    ready_.push_front(std::move(spare));
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kStartPause{2};

  void run() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || ready_.size() < static_cast<std::size_t>(count_); });
      if (stop_) return;
      if (!ready_.empty() && starting_ > 0) {
        auto fallback = last_start_ + kStartPause;
        if (Clock::now() < fallback) {
          cv_.wait_until(lock, fallback,
                         [this] { return stop_ || ready_.empty() || starting_ == 0; });
          continue;
        }
      }
      lock.unlock();
      auto made = make_();
      lock.lock();
      if (made) {
        ready_.push_back(std::move(*made));
      } else {
        log::warn("cannot make a " + what_ + ": " + made.error().message);
        cv_.wait_for(lock, std::chrono::seconds(5), [this] { return stop_; });
      }
    }
  }

  const std::string what_;
  const int count_;
  const Make make_;
  const Drop drop_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> ready_;  // oldest first
  int starting_ = 0;     // starts not yet followed by started()
  Clock::time_point last_start_{};
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace mill
