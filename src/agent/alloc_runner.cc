#include "agent/alloc_runner.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <set>

#include "common/files.h"
#include "common/log.h"
#include "model/json.h"
#include "runtime/log_reader.h"

namespace mill::agent {

namespace json = boost::json;
using model::AllocStatus;

namespace {

// How often a supervising worker looks at its stop flag and timeout between waits.
constexpr std::chrono::milliseconds kSlice{200};
// A service without a health check that has run this long counts as healthy.
constexpr std::chrono::seconds kMinHealthy{1};
// A service that ran this long before it ended restarts after the shortest backoff.
constexpr std::chrono::minutes kStableRun{5};
// How long a pulling/starting state may wait to be replaced before it is reported.
constexpr std::chrono::milliseconds kTransientHold{150};

std::string record_path(const std::string& dir, const std::string& id) {
  return dir + "/" + id + ".json";
}

}  // namespace

AllocRunner::AllocRunner(RunnerOptions options, Containers& containers, NodeClient& client,
                         const Clock& clock)
    : options_(std::move(options)), containers_(containers), client_(client), clock_(clock) {}

AllocRunner::~AllocRunner() { stop(); }

Result<void> AllocRunner::start(const std::string& node_id) {
  node_ = node_id;
  checker_ = MILL_TRY(health::Checker::create());
  ::mkdir(options_.state_dir.c_str(), 0700);
  adopt();
  poller_ = std::thread([this] { poll_loop(); });
  reporter_ = std::thread([this] { report_loop(); });
  return {};
}

void AllocRunner::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  changed_.notify_all();
  {
    // Taken so the reporter cannot miss this wake between its check and its sleep.
    std::lock_guard lock(report_mutex_);
  }
  report_wake_.notify_all();
  if (poller_.joinable()) poller_.join();
  for (auto& p : pullers_) p.join();
  pullers_.clear();
  std::vector<std::pair<Ptr, std::thread>> workers;
  {
    std::lock_guard lock(mutex_);
    workers.swap(workers_);
  }
  for (auto& [e, w] : workers) w.join();
  checker_.reset();  // no health callbacks from here on
  if (reporter_.joinable()) reporter_.join();
}

std::optional<model::AllocState> AllocRunner::state(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second->state;
}

std::vector<std::string> AllocRunner::allocations_of(const std::string& service) const {
  std::vector<std::string> ids;
  std::lock_guard lock(mutex_);
  for (const auto& [id, e] : entries_) {
    if (e->alloc.kind == model::kKindService && e->alloc.group == service) ids.push_back(id);
  }
  return ids;
}

std::vector<std::string> AllocRunner::lookup(std::string_view name) const {
  if (!name.ends_with(".mill")) return {};
  std::string id(name.substr(0, name.size() - 5));
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it != entries_.end()) {
    if (!model::is_up(it->second->state.status)) return {};
    return {it->second->alloc.ip};
  }
  // A service's name: its healthy allocations on this node.
  std::vector<std::string> ips;
  for (const auto& [alloc_id, e] : entries_) {
    if (e->alloc.kind == model::kKindService && e->alloc.group == id &&
        e->state.status == AllocStatus::kHealthy) {
      ips.push_back(e->alloc.ip);
    }
  }
  return ips;
}

// --- persistence -----------------------------------------------------------------

void AllocRunner::persist(const Entry& e) {
  // Without env values: they may hold secrets, whose plaintext lives only in the
  // container's environment. The control plane sends them with every desired state
  // (reconcile() puts them back), before anything here could need them again.
  model::Allocation alloc = e.alloc;
  for (auto& [k, v] : alloc.spec.env) v.clear();
  json::object o{{"alloc", json::parse(model::encode(alloc))},
                 {"state", json::parse(model::encode(e.state))},
                 {"image_digest", e.image_digest},
                 {"stop_reason", e.stop_reason}};
  auto written =
      // No fsync: a reboot ends the container too, so the record only has to survive
      // the agent's own crash.
      write_file_atomic(record_path(options_.state_dir, e.alloc.id), model::serialize(o), 0600,
                        Durability::kProcessCrash);
  if (!written) log::warn("agent: cannot save " + e.alloc.id + ": " + written.error().message);
}

template <class F>
void AllocRunner::update(const Ptr& entry, F change, bool save) {
  model::AllocState copy;
  {
    std::lock_guard lock(mutex_);
    change(*entry);
    copy = entry->state;
    // Saved before it is reported: whatever the control plane hears is running, a
    // restarted agent knows about (and re-adopts rather than removes). No fsync, so
    // this costs well under a millisecond.
    if (save) persist(*entry);
  }
  queue_report(copy);
}

// After a restart: what we ran is in the state dir; what still runs, the runtime knows.
void AllocRunner::adopt() {
  std::map<std::string, Adopted> found;
  for (auto& a : containers_.adopt()) found[a.id] = a;

  std::vector<std::pair<Ptr, bool>> resume;  // entry, still running
  if (DIR* d = ::opendir(options_.state_dir.c_str())) {
    while (auto* ent = ::readdir(d)) {
      std::string file = ent->d_name;
      if (!file.ends_with(".json")) continue;
      auto text = read_file(options_.state_dir + "/" + file);
      if (!text) continue;
      auto o = model::parse_object(*text, {"alloc", "state", "image_digest", "stop_reason"});
      if (!o) continue;
      auto alloc = model::decode_allocation(model::serialize(o->at("alloc")));
      auto state = model::decode_alloc_state(model::serialize(o->at("state")));
      if (!alloc || !state) continue;
      auto e = std::make_shared<Entry>();
      e->alloc = std::move(*alloc);
      e->state = std::move(*state);
      e->image_digest = model::get_string(*o, "image_digest", false).value_or("");
      e->stop_reason = model::get_string(*o, "stop_reason", false).value_or("");
      entries_[e->alloc.id] = e;
      if (!model::is_terminal(e->state.status)) {
        auto it = found.find(e->alloc.id);
        resume.emplace_back(e, it != found.end() && it->second.running);
      }
      queue_report(e->state);
    }
    ::closedir(d);
  }
  // Containers nobody remembers (say, the state file never got written): remove.
  for (const auto& [id, a] : found) {
    if (!entries_.contains(id)) {
      log::warn("agent: removing unknown container " + id);
      if (a.running) (void)containers_.stop(id, std::chrono::milliseconds(0));
      containers_.release(id, "");
      containers_.forget(id);
    }
  }
  for (auto& [e, running] : resume) {
    if (!running && e->alloc.kind == model::kKindService &&
        e->alloc.desired == model::DesiredState::kRun) {
      // A service is kept running: start it again rather than report it ended, once
      // the control plane has sent its env (the record keeps no env values).
      containers_.release(e->alloc.id, "");
      e->restart_on_sync = true;
      continue;
    }
    if (running) {
      log::info("agent: re-adopted " + e->alloc.id + " (pid " + std::to_string(e->state.pid) + ")");
      spawn_worker(e, false);
    } else if (model::is_up(e->state.status) || e->state.status == AllocStatus::kStopping) {
      // It ended while we were away: its shim recorded how.
      std::optional<Exit> exit;
      if (auto it = found.find(e->alloc.id); it != found.end()) exit = it->second.exit;
      AllocStatus status = e->stop_reason == "killed"    ? AllocStatus::kKilled
                           : e->stop_reason == "timeout" ? AllocStatus::kTimeout
                           : exit                        ? AllocStatus::kExited
                                                         : AllocStatus::kLost;
      finish(e, status, exit, exit ? "" : "the container was gone after an agent restart");
    } else {
      finish(e, AllocStatus::kFailed, std::nullopt, "the agent restarted while it was starting");
    }
  }
}

// --- following the control plane -------------------------------------------------

void AllocRunner::poll_loop() {
  int64_t index = 0;
  bool failing = false;
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    auto desired = client_.allocations(node_, index, options_.poll_wait);
    if (!desired) {
      if (!failing) log::warn("agent: fetching allocations failed: " + desired.error().message);
      failing = true;
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
      continue;
    }
    if (failing) log::info("agent: fetching allocations again");
    failing = false;
    index = desired->index;
    containers_.set_registries(desired->registries);
    if (desired->pulls) pull_images(*desired->pulls);
    if (!desired->remove_volumes.empty()) remove_volumes(desired->remove_volumes);
    if (options_.on_routes) options_.on_routes(desired->routes);
    reconcile(*desired);
  }
}

void AllocRunner::remove_volumes(const std::vector<std::string>& names) {
  std::vector<model::VolumeReport> reports;
  for (const auto& name : names) {
    auto removed = containers_.remove_volume(name);
    reports.push_back({name, removed ? "" : removed.error().message});
    if (removed) log::info("agent: volume " + name + " removed");
  }
  // Not sent: asked again with the next desired state, and removing is idempotent.
  if (auto sent = client_.report_volumes(node_, reports); !sent) {
    log::warn("agent: reporting volume removals: " + sent.error().message);
  }
}

void AllocRunner::pull_images(const model::ImagePulls& pulls) {
  if (pulls.deploy == pulled_for_) return;
  pulled_for_ = pulls.deploy;
  // Pulls of an earlier deploy have been waited for or abandoned by now.
  for (auto& p : pullers_) p.join();
  pullers_.clear();
  for (const auto& image : pulls.images) {
    pullers_.emplace_back([this, deploy = pulls.deploy, image] {
      auto pulled = containers_.pull(image);
      model::PullReport report{image, pulled ? "" : pulled.error().message};
      if (!pulled) log::warn("agent: pulling " + image + ": " + report.error);
      if (auto sent = client_.report_pulls(node_, deploy, {report}); !sent) {
        log::warn("agent: reporting the pull of " + image + ": " + sent.error().message);
      }
    });
  }
}

void AllocRunner::reconcile(const model::DesiredAllocations& desired) {
  std::vector<std::string> forget;
  std::vector<std::string> resend;
  std::vector<std::pair<Ptr, bool>> start;
  std::vector<Ptr> never_started;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    std::set<std::string> wanted;
    for (const auto& item : desired.allocations) {
      const auto& a = item.alloc;
      wanted.insert(a.id);
      auto it = entries_.find(a.id);
      if (it != entries_.end()) {
        Entry& e = *it->second;
        e.alloc.desired = a.desired;
        if (a.desired == model::DesiredState::kRun) e.alloc.spec.env = a.spec.env;
        if (e.restart_on_sync) {
          e.restart_on_sync = false;
          if (a.desired == model::DesiredState::kRun) {
            start.emplace_back(it->second, true);
          } else {
            e.stop_reason = "killed";
            never_started.push_back(it->second);
          }
          continue;
        }
        if (a.desired == model::DesiredState::kStop && !e.stop_requested &&
            !model::is_terminal(e.state.status)) {
          e.stop_requested = true;
          changed_.notify_all();
        }
        // The control plane shows another state than ours: a report still on its way,
        // or one it lost (a server's unsynced tail goes with a power cut). Send ours
        // again; not a pulling or starting one, which "running" soon replaces.
        if (item.reported != e.state.status && e.state.status != AllocStatus::kPulling &&
            e.state.status != AllocStatus::kStarting) {
          resend.push_back(a.id);
        }
        continue;
      }
      auto e = std::make_shared<Entry>();
      e->alloc = a;
      e->state.id = a.id;
      e->state.status = item.reported;
      entries_[a.id] = e;
      if (model::is_terminal(item.reported)) continue;  // it ran here before; nothing to do
      if (item.reported != AllocStatus::kPending) {
        // We reported it alive but have no record of it: it is gone.
        never_started.push_back(e);
        continue;
      }
      if (a.desired == model::DesiredState::kStop) {
        e->stop_reason = "killed";
        never_started.push_back(e);
        continue;
      }
      start.emplace_back(e, true);
    }
    for (const auto& [id, e] : entries_) {
      if (wanted.contains(id)) continue;
      if (model::is_terminal(e->state.status)) {
        if (!e->worker_running) forget.push_back(id);
        continue;
      }
      // Running, but the control plane has no record of it (it forgets only what has
      // ended; this one it lost, say to a power cut before its commit was synced).
      // Nothing wants it any more: stop it, as a desired stop would.
      if (e->worker_running && !e->stop_requested) {
        log::warn("agent: " + id + " is unknown to the control plane; stopping it");
        e->stop_requested = true;
        changed_.notify_all();
      }
    }
    for (const auto& id : forget) entries_.erase(id);
  }
  if (!resend.empty()) {
    {
      std::lock_guard lock(report_mutex_);
      resend_.insert(resend.begin(), resend.end());
    }
    report_wake_.notify_all();
  }
  for (const auto& id : forget) {
    containers_.forget(id);
    ::unlink(record_path(options_.state_dir, id).c_str());
  }
  for (auto& e : never_started) {
    bool killed = e->stop_reason == "killed";
    finish(e, killed ? AllocStatus::kKilled : AllocStatus::kLost, std::nullopt,
           killed ? "stopped before it started" : "this node has no record of it");
  }
  for (auto& [e, s] : start) spawn_worker(e, s);
}

// --- one allocation ----------------------------------------------------------------

void AllocRunner::spawn_worker(const Ptr& entry, bool start_it) {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    // Join workers that have finished, so their threads don't pile up.
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->first->worker_running) {
        ++it;
        continue;
      }
      done.push_back(std::move(it->second));
      it = workers_.erase(it);
    }
    entry->worker_running = true;
    workers_.emplace_back(entry, std::thread([this, entry, start_it] { run(entry, start_it); }));
  }
  for (auto& t : done) t.join();
}

void AllocRunner::run(const Ptr& entry, bool start_it) {
  if (!start_it) watch_health(entry);  // re-adopted: it runs already
  if (!start_it || start_container(entry)) {
    // A service's container that ends by itself is started again (supervise returns
    // true) until the control plane stops the allocation.
    while (supervise(entry) && restart_after_exit(entry)) {
    }
  }
  std::lock_guard lock(mutex_);
  entry->worker_running = false;
}

static std::chrono::milliseconds restart_backoff(int streak) {
  auto d = std::chrono::milliseconds(1000);
  for (int i = 1; i < streak && d < std::chrono::minutes(5); ++i) d *= 2;
  return std::min<std::chrono::milliseconds>(d, std::chrono::minutes(5));
}

bool AllocRunner::restart_after_exit(const Ptr& entry) {
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
  {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, delay, [&] { return stopping_ || entry->stop_requested; });
    if (stopping_) return false;  // the next agent picks it up from its record
    if (entry->stop_requested) {
      lock.unlock();
      finish(entry, AllocStatus::kKilled, std::nullopt, "stopped while waiting to restart");
      return false;
    }
  }
  return start_container(entry);
}

bool AllocRunner::start_container(const Ptr& entry) {
  update(
      entry, [](Entry& e) { e.state.status = AllocStatus::kPulling; }, false);
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
  update(
      entry,
      [&](Entry& e) {
        e.image_digest = started->image_digest;
        e.state.status = AllocStatus::kRunning;
        e.state.message.clear();
        e.state.pid = started->pid;
        e.state.started_at = clock_.now();
        e.state.pull_duration = started->pull_duration;
        e.state.start_duration = started->start_duration;
      },
      true);
  watch_health(entry);
  return true;
}

void AllocRunner::watch_health(const Ptr& entry) {
  model::Allocation alloc;
  {
    std::lock_guard lock(mutex_);
    alloc = entry->alloc;
  }
  if (alloc.kind != model::kKindService || !alloc.spec.health || !alloc.spec.port || !checker_) {
    return;
  }
  auto probe =
      health::probe_for(*alloc.spec.health, alloc.ip + ":" + std::to_string(*alloc.spec.port));
  probe.deadline = std::chrono::milliseconds(0);  // the deploy keeps the deadline
  auto added =
      checker_->add(alloc.id, probe, [this, entry](health::Health h, const std::string& error) {
        update(
            entry,
            [&](Entry& e) {
              // Only a running container changes with its health (not one being stopped).
              if (e.state.status != AllocStatus::kRunning &&
                  e.state.status != AllocStatus::kHealthy) {
                return;
              }
              e.state.status =
                  h == health::Health::kHealthy ? AllocStatus::kHealthy : AllocStatus::kRunning;
              e.state.message = h == health::Health::kHealthy ? "" : "health check " + error;
            },
            true);
      });
  if (!added && added.error().code != ErrorCode::kAlreadyExists) {
    log::warn("agent: cannot health-check " + alloc.id + ": " + added.error().message);
  }
}

void AllocRunner::unwatch_health(const std::string& id) {
  if (checker_) checker_->remove(id);
}

void AllocRunner::note_health_error(const Ptr& entry) {
  if (!checker_) return;
  auto status = checker_->status(entry->alloc.id);
  if (!status || status->health == health::Health::kHealthy || status->last_error.empty()) return;
  std::string message = "health check " + status->last_error;
  {
    std::lock_guard lock(mutex_);
    if (entry->state.status != AllocStatus::kRunning || entry->state.message == message) return;
  }
  update(
      entry, [&](Entry& e) { e.state.message = message; }, false);
}

// A service without a health check is healthy once it has run for kMinHealthy: one
// that exits at once must not count (Nomad's min_healthy_time, Swarm's update monitor).
void AllocRunner::mark_healthy_if_due(const Ptr& entry, SystemTime now) {
  {
    std::lock_guard lock(mutex_);
    const auto& e = *entry;
    if (e.alloc.kind != model::kKindService || e.alloc.spec.health ||
        e.state.status != AllocStatus::kRunning || !e.state.started_at ||
        now - *e.state.started_at < kMinHealthy) {
      return;
    }
  }
  update(
      entry, [](Entry& e) { e.state.status = AllocStatus::kHealthy; }, true);
}

bool AllocRunner::supervise(const Ptr& entry) {
  const std::string id = entry->alloc.id;
  auto last_usage = std::chrono::steady_clock::now();
  while (true) {
    bool stop_requested;
    std::optional<SystemTime> timeout_at;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return false;  // leave it running: the next agent re-adopts it
      stop_requested = entry->stop_requested;
      if (entry->alloc.spec.timeout && entry->state.started_at) {
        timeout_at = *entry->state.started_at + *entry->alloc.spec.timeout;
      }
    }
    auto now = clock_.now();
    mark_healthy_if_due(entry, now);
    note_health_error(entry);
    bool timed_out = timeout_at && now >= *timeout_at;
    if (stop_requested || timed_out) {
      std::string reason = stop_requested ? "killed" : "timeout";
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
      finish(entry, stop_requested ? AllocStatus::kKilled : AllocStatus::kTimeout, code,
             exit ? "" : exit.error().message);
      return false;
    }
    auto slice = kSlice;
    if (timeout_at) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*timeout_at - now);
      slice = std::clamp(left, std::chrono::milliseconds(1), kSlice);
    }
    auto exit = containers_.wait(id, slice);
    if (exit) {
      if (entry->alloc.kind == model::kKindService) {
        std::lock_guard lock(mutex_);
        entry->last_exit = exit->signal
                               ? "container killed by signal " + std::to_string(exit->signal)
                               : "container exited with code " + std::to_string(exit->code);
        return true;
      }
      finish(entry, AllocStatus::kExited, *exit, "");
      return false;
    }
    if (exit.error().code != ErrorCode::kTimeout) {
      finish(entry, AllocStatus::kLost, std::nullopt, exit.error().message);
      return false;
    }
    if (std::chrono::steady_clock::now() - last_usage >= options_.usage_interval) {
      last_usage = std::chrono::steady_clock::now();
      if (auto u = containers_.usage(entry->alloc)) {
        update(
            entry,
            [&](Entry& e) {
              e.state.cpu_seconds = u->cpu_seconds;
              e.state.memory_bytes = u->memory_bytes;
              e.state.volume_used = u->volume_used;
            },
            false);
      }
    }
  }
}

void AllocRunner::finish(const Ptr& entry, AllocStatus status, std::optional<Exit> exit,
                         std::string message) {
  unwatch_health(entry->alloc.id);
  std::string digest;
  {
    std::lock_guard lock(mutex_);
    digest = entry->image_digest;
  }
  // Release first: the end state tells the control plane the address is free.
  containers_.release(entry->alloc.id, digest);
  update(
      entry,
      [&](Entry& e) {
        e.state.status = status;
        e.state.finished_at = clock_.now();
        if (exit) e.state.exit_code = exit->code;
        if (!message.empty()) {
          e.state.message = std::move(message);
        } else if (exit) {
          e.state.message = exit->signal ? "killed by signal " + std::to_string(exit->signal)
                                         : "exited with code " + std::to_string(exit->code);
        }
      },
      true);
}

// --- reports -------------------------------------------------------------------------

void AllocRunner::queue_report(const model::AllocState& state) {
  {
    std::lock_guard lock(report_mutex_);
    pending_reports_[state.id] = state;
  }
  report_wake_.notify_all();
}

void AllocRunner::report_loop() {
  bool failing = false;
  while (true) {
    std::map<std::string, model::AllocState> batch;
    std::set<std::string> again;
    {
      std::unique_lock lock(report_mutex_);
      auto stopping_now = [this] {
        std::lock_guard inner(mutex_);
        return stopping_;
      };
      report_wake_.wait(
          lock, [&] { return stopping_now() || !pending_reports_.empty() || !resend_.empty(); });
      // Pulling and starting are worth reporting when they last; a cached image goes
      // from pending to running in tens of milliseconds, and then only "running"
      // should travel (a report in flight would delay it).
      auto only_transient = [this] {
        if (!resend_.empty()) return false;
        for (const auto& [id, s] : pending_reports_) {
          if (s.status != model::AllocStatus::kPulling &&
              s.status != model::AllocStatus::kStarting) {
            return false;
          }
        }
        return true;
      };
      if (only_transient()) {
        report_wake_.wait_for(lock, kTransientHold,
                              [&] { return stopping_now() || !only_transient(); });
      }
      batch.swap(pending_reports_);
      again.swap(resend_);
    }
    bool stopping;
    {
      std::lock_guard lock(mutex_);
      stopping = stopping_;
      // Resent as they are now (never an older state than one already sent).
      for (const auto& id : again) {
        auto it = entries_.find(id);
        if (it != entries_.end() && !batch.contains(id)) batch[id] = it->second->state;
      }
    }
    if (!batch.empty()) {
      std::vector<model::AllocState> states;
      for (auto& [id, s] : batch) states.push_back(std::move(s));
      auto sent = client_.report(node_, states);
      if (!sent) {
        if (!failing) log::warn("agent: status report failed: " + sent.error().message);
        failing = true;
        std::unique_lock lock(report_mutex_);
        // Keep them, unless a newer state for the same allocation was queued meanwhile.
        for (auto& s : states) pending_reports_.try_emplace(s.id, std::move(s));
        if (!stopping) {
          report_wake_.wait_for(lock, std::chrono::seconds(1));
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
