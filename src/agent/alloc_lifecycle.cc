// One allocation's life in the runner (alloc_runner.h): start, run, restart, stop,
// end. Driven by events: the runtime's exit callback, the checker's health callbacks,
// and timers; the blocking steps (start, stop) run on short-lived threads.

#include <algorithm>
#include <utility>

#include "agent/alloc_runner.h"
#include "common/log.h"
#include "model/units.h"
#include "runtime/log_reader.h"

namespace mill::agent {

using model::AllocStatus;

namespace {

// A service without a health check that has run this long counts as healthy.
constexpr std::chrono::seconds kMinHealthy{1};
// A service that ran this long before it ended restarts after the shortest backoff.
constexpr std::chrono::minutes kStableRun{5};
// An allocation's unchanged usage is reported again after this long (sample_usage).
constexpr std::chrono::seconds kUsageResend{5};

std::chrono::milliseconds restart_backoff(int streak) {
  auto d = std::chrono::milliseconds(1000);
  for (int i = 1; i < streak && d < std::chrono::minutes(5); ++i) d *= 2;
  return std::min<std::chrono::milliseconds>(d, std::chrono::minutes(5));
}

// How a container's end reads: "exited with code 1", "killed by signal 9", or for the
// OOM killer "out of memory (limit 64M)" (a plain SIGKILL says nothing of why).
std::string describe_exit(const Exit& exit, int64_t memory_limit) {
  if (exit.oom) return "out of memory (limit " + model::format_size(memory_limit) + ")";
  return exit.signal ? "killed by signal " + std::to_string(exit.signal)
                     : "exited with code " + std::to_string(exit.code);
}

}  // namespace

void AllocRunner::in_background(std::function<void()> fn) {
  std::vector<std::thread> finished;
  std::unique_lock lock(background_mutex_);
  if (background_closed_) {
    // The runner is stopping and joins no more threads: the few steps that still come
    // (a callback that passed its check just before) run here.
    lock.unlock();
    fn();
    return;
  }
  // Join the threads that are done, so they do not pile up.
  for (auto it = background_.begin(); it != background_.end();) {
    if (!*it->first) {
      ++it;
      continue;
    }
    finished.push_back(std::move(it->second));
    it = background_.erase(it);
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  background_.emplace_back(done, std::thread([fn = std::move(fn), done] {
                             fn();
                             *done = true;
                           }));
  for (auto& t : finished) t.join();
}

void AllocRunner::launch(const Ptr& entry, bool start_it) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    entry->worker_running = true;
    entry->phase = start_it ? Phase::kStarting : Phase::kRunning;
  }
  if (!start_it) return supervise(entry);  // re-adopted: it runs already
  in_background([this, entry] { start_and_supervise(entry); });
}

void AllocRunner::start_and_supervise(const Ptr& entry) {
  if (start_container(entry)) supervise(entry);
}

bool AllocRunner::start_container(const Ptr& entry) {
  // Saved before anything is made: after a crash of the agent mid-start, the next one
  // knows the container (if any) is this allocation's, and adopts or restarts it.
  update(
      entry, [](Entry& e) { e.state.status = AllocStatus::kPulling; }, true);
  model::Allocation alloc;
  {
    std::lock_guard lock(mutex_);
    alloc = entry->alloc;
  }
  auto started = containers_.start(alloc, [&] {
    update(
        entry, [](Entry& e) { e.state.status = AllocStatus::kStarting; }, false);
  });
  if (!started) {
    log::warn("agent: " + alloc.id + " failed to start: " + started.error().message);
    finish(entry, AllocStatus::kFailed, std::nullopt, started.error().message);
    return false;
  }
  // Read before the running report, which carries it: a spawn's answer shows what the
  // task uses from the start, not zeros until the first sample.
  std::optional<Usage> usage;
  if (auto u = containers_.usage(alloc)) usage = std::move(*u);
  update(
      entry,
      [&](Entry& e) {
        measure(e.state, usage, UsageAt::kStart);
        if (usage) e.usage_sent_at = clock_.now();
        e.image_digest = started->image_digest;
        e.state.status = AllocStatus::kRunning;
        e.state.message.clear();
        e.state.pid = started->pid;
        e.state.started_at = clock_.now();
        e.state.pull_duration = started->pull_duration;
        e.state.start_duration = started->start_duration;
      },
      true);
  return true;
}

void AllocRunner::supervise(const Ptr& entry) {
  uint64_t generation;
  model::Allocation alloc;
  std::optional<SystemTime> started_at;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;  // leave it running: the next agent re-adopts it
    entry->phase = Phase::kRunning;
    generation = ++entry->generation;
    alloc = entry->alloc;
    started_at = entry->state.started_at;
  }
  auto watched =
      containers_.on_exit(alloc.id, [alive = alive_, entry, generation](Result<Exit> exit) {
        std::lock_guard lock(alive->mu);
        if (alive->runner) alive->runner->exited(entry, generation, std::move(exit));
      });
  if (!watched) {
    // No container to watch: it is gone.
    exited(entry, generation, Unexpected(watched.error()));
    return;
  }
  watch_health(entry);
  const SystemTime since = started_at.value_or(clock_.now());
  if (alloc.spec.timeout) {
    auto id =
        timers_.at(since + *alloc.spec.timeout, [this, entry] { request_stop(entry, "timeout"); });
    std::lock_guard lock(mutex_);
    entry->timeout_timer = id;
  }
  if (alloc.kind == model::kKindService && !alloc.spec.health) {
    auto id = timers_.at(since + kMinHealthy, [this, entry] { mark_healthy_if_due(entry); });
    std::lock_guard lock(mutex_);
    entry->healthy_timer = id;
  }
  bool stop_now;
  {
    std::lock_guard lock(mutex_);
    stop_now = entry->stop_requested;
  }
  if (stop_now) request_stop(entry, "killed");
}

void AllocRunner::cancel_timers(const Ptr& entry) {
  uint64_t ids[3];
  {
    std::lock_guard lock(mutex_);
    ids[0] = std::exchange(entry->timeout_timer, 0);
    ids[1] = std::exchange(entry->healthy_timer, 0);
    ids[2] = std::exchange(entry->restart_timer, 0);
  }
  for (uint64_t id : ids) {
    if (id) timers_.cancel(id);
  }
}

void AllocRunner::request_stop(const Ptr& entry, const std::string& reason) {
  Phase was;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    was = entry->phase;
    if (was == Phase::kRunning || was == Phase::kWaitingRestart) entry->phase = Phase::kStopping;
  }
  if (was == Phase::kRunning) {
    in_background([this, entry, reason] { stop_container(entry, reason); });
  } else if (was == Phase::kWaitingRestart) {
    cancel_timers(entry);
    in_background([this, entry] {
      finish(entry, AllocStatus::kKilled, std::nullopt, "stopped while waiting to restart");
    });
  }
  // Starting: supervise() stops it once it runs. Stopping, ending or done: nothing.
}

void AllocRunner::stop_container(const Ptr& entry, const std::string& reason) {
  const std::string id = entry->alloc.id;
  cancel_timers(entry);
  unwatch_health(id);  // out of DNS before SIGTERM
  update(
      entry,
      [&](Entry& e) {
        e.stop_reason = reason;
        e.state.status = AllocStatus::kStopping;
      },
      true);
  if (options_.drain && entry->alloc.spec.route) options_.drain(entry->alloc);
  auto exit = containers_.stop(id, options_.grace);
  std::optional<Exit> code;
  if (exit) code = *exit;
  finish(entry, reason == "timeout" ? AllocStatus::kTimeout : AllocStatus::kKilled, code,
         exit ? "" : exit.error().message);
}

void AllocRunner::exited(const Ptr& entry, uint64_t generation, Result<Exit> exit) {
  {
    std::lock_guard lock(mutex_);
    // A stop of ours is in charge of its end; an older container's exit is stale.
    if (stopping_ || entry->generation != generation || entry->phase != Phase::kRunning) return;
    entry->phase = Phase::kEnding;
  }
  // Not on the runtime's thread: releasing the container unmounts and tears down.
  in_background([this, entry, exit = std::move(exit)] { handle_exit(entry, exit); });
}

void AllocRunner::handle_exit(const Ptr& entry, Result<Exit> exit) {
  cancel_timers(entry);
  if (!exit) {
    finish(entry, AllocStatus::kLost, std::nullopt, exit.error().message);
    return;
  }
  if (entry->alloc.kind != model::kKindService) {
    finish(entry, AllocStatus::kExited, *exit, "");
    return;
  }
  {
    std::lock_guard lock(mutex_);
    entry->last_exit = "container " + describe_exit(*exit, entry->alloc.spec.memory);
  }
  restart_later(entry);
}

void AllocRunner::restart_later(const Ptr& entry) {
  const std::string id = entry->alloc.id;
  unwatch_health(id);
  std::string last_line;
  if (auto lines = runtime::tail_logs(containers_.log_dir(id), 1); lines && !lines->empty()) {
    last_line = lines->back().line;
    if (last_line.size() > 200) last_line = last_line.substr(0, 200) + "...";
  }
  std::string digest;
  int streak;
  {
    std::lock_guard lock(mutex_);
    digest = entry->image_digest;
    entry->image_digest.clear();
    // It ran long enough to count as stable: the backoff starts over.
    if (entry->state.started_at && clock_.now() - *entry->state.started_at >= kStableRun) {
      entry->crash_streak = 0;
    }
    streak = ++entry->crash_streak;
  }
  containers_.release(id, digest);  // keeps the log
  auto delay = restart_backoff(streak);
  const SystemTime due = clock_.now() + delay;  // from the end, not from the report
  update(
      entry,
      [&](Entry& e) {
        e.state.status = AllocStatus::kStarting;
        e.state.restarts += 1;
        e.state.pid = 0;
        e.state.message = e.last_exit + (last_line.empty() ? "" : ": " + last_line) +
                          "; restarting in " + std::to_string(delay.count() / 1000) + "s";
      },
      true);
  bool stop_now;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;  // the next agent picks it up from its record
    stop_now = entry->stop_requested;
    if (!stop_now) entry->phase = Phase::kWaitingRestart;
  }
  if (stop_now) {
    finish(entry, AllocStatus::kKilled, std::nullopt, "stopped while waiting to restart");
    return;
  }
  auto timer = timers_.at(due, [this, entry] {
    {
      std::lock_guard lock(mutex_);
      if (entry->phase != Phase::kWaitingRestart) return;
      entry->phase = Phase::kStarting;
      entry->restart_timer = 0;
    }
    in_background([this, entry] { start_and_supervise(entry); });
  });
  std::lock_guard lock(mutex_);
  if (entry->phase == Phase::kWaitingRestart) entry->restart_timer = timer;
}

// A service without a health check is healthy once it has run for kMinHealthy: one
// that exits at once must not count (Nomad's min_healthy_time, Swarm's update monitor).
void AllocRunner::mark_healthy_if_due(const Ptr& entry) {
  {
    std::lock_guard lock(mutex_);
    entry->healthy_timer = 0;
    if (entry->phase != Phase::kRunning || entry->state.status != AllocStatus::kRunning) return;
  }
  update(
      entry, [](Entry& e) { e.state.status = AllocStatus::kHealthy; }, true);
}

void AllocRunner::measure(model::AllocState& state, const std::optional<Usage>& usage,
                          UsageAt at) const {
  if (!usage) return;
  // Cumulative: an end read never goes below what was reported while it ran.
  state.cpu_seconds = std::max(at == UsageAt::kEnd ? state.cpu_seconds : 0.0, usage->cpu_seconds);
  if (at == UsageAt::kStart || state.memory_bytes == 0) state.memory_bytes = usage->memory_bytes;
  state.volume_used = usage->volume_used;
}

void AllocRunner::sample_usage() {
  std::vector<Ptr> running;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    for (const auto& [id, e] : entries_) {
      if (e->phase == Phase::kRunning) running.push_back(e);
    }
  }
  const SystemTime now = clock_.now();
  for (const auto& entry : running) {
    auto u = containers_.usage(entry->alloc);
    if (!u) continue;
    bool send;
    {
      std::lock_guard lock(mutex_);
      // Only a running container's: one that ended meanwhile has its end report.
      send = entry->phase == Phase::kRunning && (entry->state.cpu_seconds != u->cpu_seconds ||
                                                 entry->state.memory_bytes != u->memory_bytes ||
                                                 entry->state.volume_used != u->volume_used ||
                                                 now - entry->usage_sent_at >= kUsageResend);
      if (send) entry->usage_sent_at = now;
    }
    if (!send) continue;
    update(
        entry,
        [&](Entry& e) {
          e.state.cpu_seconds = u->cpu_seconds;
          e.state.memory_bytes = u->memory_bytes;
          e.state.volume_used = u->volume_used;
        },
        false);
  }
  timers_.at(now + options_.usage_interval, [this] { sample_usage(); });
}

void AllocRunner::watch_health(const Ptr& entry) {
  model::Allocation alloc;
  {
    std::lock_guard lock(mutex_);
    alloc = entry->alloc;
  }
  if (alloc.kind != model::kKindService || !alloc.spec.health || !checker_) return;
  const model::HealthCheck& check = *alloc.spec.health;
  if (check.command.empty() && !alloc.spec.port) return;
  auto probe = health::probe_for(
      check, check.command.empty() ? alloc.ip + ":" + std::to_string(*alloc.spec.port) : "");
  if (!check.command.empty()) {
    auto exec = containers_.exec_command(alloc.id, check.command);
    probe.command = std::move(exec.argv);
    probe.pid_file = std::move(exec.pid_file);
  }
  probe.deadline = std::chrono::milliseconds(0);  // the deploy keeps the deadline
  auto on_change = [this, entry](health::Health h, const std::string& error) {
    update(
        entry,
        [&](Entry& e) {
          // Only a running container changes with its health (not one being stopped).
          if (e.state.status != AllocStatus::kRunning && e.state.status != AllocStatus::kHealthy) {
            return;
          }
          e.state.status =
              h == health::Health::kHealthy ? AllocStatus::kHealthy : AllocStatus::kRunning;
          e.state.message = h == health::Health::kHealthy ? "" : "health check " + error;
        },
        true);
  };
  auto on_error = [this, entry](const std::string& error) {
    std::string message = "health check " + error;
    {
      std::lock_guard lock(mutex_);
      if (entry->state.status != AllocStatus::kRunning || entry->state.message == message) return;
    }
    update(
        entry, [&](Entry& e) { e.state.message = message; }, false);
  };
  auto added = checker_->add(alloc.id, probe, on_change, on_error);
  if (!added && added.error().code != ErrorCode::kAlreadyExists) {
    log::warn("agent: cannot health-check " + alloc.id + ": " + added.error().message);
  }
}

void AllocRunner::unwatch_health(const std::string& id) {
  if (checker_) checker_->remove(id);
}

void AllocRunner::finish(const Ptr& entry, AllocStatus status, std::optional<Exit> exit,
                         std::string message) {
  unwatch_health(entry->alloc.id);
  cancel_timers(entry);
  std::string digest;
  {
    std::lock_guard lock(mutex_);
    digest = entry->image_digest;
  }
  // Its last usage, read before the release removes its cgroup: the end report's cpu
  // time includes the work since the last sample. (No container: nothing to read.)
  std::optional<Usage> usage;
  if (auto u = containers_.usage(entry->alloc)) usage = std::move(*u);
  // Release first: the end state tells the control plane the address is free.
  containers_.release(entry->alloc.id, digest);
  update(
      entry,
      [&](Entry& e) {
        measure(e.state, usage, UsageAt::kEnd);
        e.phase = Phase::kDone;
        e.worker_running = false;
        e.state.status = status;
        e.state.finished_at = clock_.now();
        if (exit) e.state.exit_code = exit->code;
        if (!message.empty()) {
          e.state.message = std::move(message);
        } else if (exit) {
          e.state.message = describe_exit(*exit, e.alloc.spec.memory);
        }
      },
      true);
}

}  // namespace mill::agent
