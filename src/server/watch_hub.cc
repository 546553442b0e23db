#include "server/watch_hub.h"

#include <algorithm>

#include "common/log.h"

namespace mill::server {

namespace {

std::string common_prefix(const std::vector<std::string>& prefixes) {
  if (prefixes.empty()) return {};
  std::string out = prefixes.front();
  for (const auto& p : prefixes) {
    size_t n = 0;
    while (n < out.size() && n < p.size() && out[n] == p[n]) ++n;
    out.resize(n);
  }
  return out;
}

}  // namespace

WatchHub::WatchHub(store::Store& store, std::string prefix)
    : WatchHub(store, std::vector<std::string>{std::move(prefix)}) {}

WatchHub::WatchHub(store::Store& store, std::vector<std::string> prefixes)
    : store_(store), prefixes_(std::move(prefixes)), watched_(common_prefix(prefixes_)) {}

WatchHub::~WatchHub() { stop(); }

void WatchHub::start() {
  auto rev = store_.revision();
  {
    std::lock_guard lock(mutex_);
    // Whatever is stored now counts as changed at the current revision, so a waiter
    // that has seen nothing yet (after = 0) is answered at once.
    last_change_ = rev ? *rev : 0;
  }
  thread_ = std::thread([this] { loop(); });
}

void WatchHub::stop() {
  std::vector<Waiter> left;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    left.swap(waiters_);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& w : left) w.callback(false);
}

int64_t WatchHub::last_change() const {
  std::lock_guard lock(mutex_);
  return last_change_;
}

void WatchHub::wait(int64_t after, Deadline deadline, Callback callback) {
  bool changed = false;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      // Only the current revision waits. One from ahead of it was handed out before a
      // power cut took back the store's unsynced tail (store.h, kProcessCrash): what
      // it saw is gone, so the caller should read again now, as after a change.
      if (after == last_change_) {
        waiters_.push_back({after, deadline, std::move(callback)});
        return;
      }
      changed = true;
    }
  }
  callback(changed);
}

void WatchHub::loop() {
  int64_t cursor = last_change();
  while (true) {
    // Wake at least every 200 ms to expire waiters (their deadlines are long polls
    // and spawn limits: seconds to minutes, so this granularity is plenty).
    auto result = store_.watch(watched_, cursor, std::chrono::milliseconds(200));
    std::vector<Waiter> fire_changed;
    std::vector<Waiter> fire_expired;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      if (!result) {
        if (result.error().code != ErrorCode::kCompacted) {
          log::warn("watch on " + watched_ + " failed: " + result.error().message);
        }
        // History we needed is gone: resume from now and let every waiter re-read.
        auto rev = store_.revision();
        cursor = rev ? *rev : cursor;
        last_change_ = std::max(last_change_, cursor);
      } else {
        for (const auto& e : result->events) {
          bool ours = std::any_of(prefixes_.begin(), prefixes_.end(), [&](const std::string& p) {
            return e.kv.key.compare(0, p.size(), p) == 0;
          });
          if (ours) last_change_ = std::max(last_change_, e.kv.mod_revision);
        }
        cursor = std::max(cursor, result->revision);
      }
      auto now = std::chrono::steady_clock::now();
      std::vector<Waiter> keep;
      for (auto& w : waiters_) {
        if (w.after < last_change_) {
          fire_changed.push_back(std::move(w));
        } else if (w.deadline <= now) {
          fire_expired.push_back(std::move(w));
        } else {
          keep.push_back(std::move(w));
        }
      }
      waiters_.swap(keep);
    }
    for (auto& w : fire_changed) w.callback(true);
    for (auto& w : fire_expired) w.callback(false);
    if (!result && result.error().code != ErrorCode::kCompacted) {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; });
      if (stopping_) return;
    }
  }
}

}  // namespace mill::server
