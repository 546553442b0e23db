#include "agent/status_reporter.h"

#include "common/log.h"

namespace mill::agent {

namespace {

// How long a pulling/starting state may wait to be replaced before it is reported.
constexpr std::chrono::milliseconds kTransientHold{150};

}  // namespace

StatusReporter::StatusReporter(NodeClient& client, Current current)
    : client_(client), current_(std::move(current)) {}

StatusReporter::~StatusReporter() { stop(); }

void StatusReporter::start(const std::string& node) {
  node_ = node;
  thread_ = std::thread([this] { loop(); });
}

void StatusReporter::queue(const model::AllocState& state) {
  {
    std::lock_guard lock(mutex_);
    pending_[state.id] = state;
  }
  wake_.notify_all();
}

void StatusReporter::resend(const std::vector<std::string>& ids) {
  {
    std::lock_guard lock(mutex_);
    resend_.insert(ids.begin(), ids.end());
  }
  wake_.notify_all();
}

void StatusReporter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StatusReporter::loop() {
  bool failing = false;
  while (true) {
    std::map<std::string, model::AllocState> batch;
    std::set<std::string> again;
    bool stopping;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !pending_.empty() || !resend_.empty(); });
      // Pulling and starting are worth reporting when they last; a cached image goes
      // from pending to running in tens of milliseconds, and then only "running"
      // should travel (a report in flight would delay it).
      auto only_transient = [this] {
        if (!resend_.empty()) return false;
        for (const auto& [id, s] : pending_) {
          if (s.status != model::AllocStatus::kPulling &&
              s.status != model::AllocStatus::kStarting) {
            return false;
          }
        }
        return true;
      };
      if (only_transient()) {
        wake_.wait_for(lock, kTransientHold, [&] { return stopping_ || !only_transient(); });
      }
      batch.swap(pending_);
      again.swap(resend_);
      stopping = stopping_;
    }
    // Resent as they are now (never an older state than one already sent).
    for (const auto& id : again) {
      if (batch.contains(id)) continue;
      if (auto s = current_(id)) batch[id] = *s;
    }
    if (!batch.empty()) {
      std::vector<model::AllocState> states;
      for (auto& [id, s] : batch) states.push_back(std::move(s));
      auto sent = client_.report(node_, states);
      if (!sent) {
        if (!failing) log::warn("agent: status report failed: " + sent.error().message);
        failing = true;
        std::unique_lock lock(mutex_);
        // Keep them, unless a newer state for the same allocation was queued meanwhile.
        for (auto& s : states) pending_.try_emplace(s.id, std::move(s));
        if (!stopping) {
          wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
          continue;
        }
      } else {
        failing = false;
      }
    }
    if (stopping) return;
  }
}

}  // namespace mill::agent
