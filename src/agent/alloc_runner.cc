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

std::string record_path(const std::string& dir, const std::string& id) {
  return dir + "/" + id + ".json";
}

}  // namespace

AllocRunner::AllocRunner(RunnerOptions options, Containers& containers, NodeClient& client,
                         const Clock& clock)
    : options_(std::move(options)),
      containers_(containers),
      client_(client),
      clock_(clock),
      reporter_(client, [this](const std::string& id) { return state(id); }),
      timers_(clock) {
  alive_->runner = this;
}

AllocRunner::~AllocRunner() { stop(); }

Result<void> AllocRunner::start(const std::string& node_id) {
  node_ = node_id;
  checker_ = MILL_TRY(health::Checker::create(clock_));
  ::mkdir(options_.state_dir.c_str(), 0700);
  reporter_.start(node_id);
  adopt();
  poller_ = std::thread([this] { poll_loop(); });
  timers_.at(clock_.now() + options_.usage_interval, [this] { sample_usage(); });
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
    // Exit and health callbacks from here on find no runner.
    std::lock_guard lock(alive_->mu);
    alive_->runner = nullptr;
  }
  timers_.stop();
  if (poller_.joinable()) poller_.join();
  for (auto& p : pullers_) p.join();
  pullers_.clear();
  std::vector<std::pair<std::shared_ptr<std::atomic<bool>>, std::thread>> background;
  {
    std::lock_guard lock(background_mutex_);
    background.swap(background_);
    background_closed_ = true;
  }
  for (auto& [done, t] : background) t.join();
  checker_.reset();  // no health callbacks from here on
  reporter_.stop();
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

void AllocRunner::update(const Ptr& entry, const std::function<void(Entry&)>& change, bool save) {
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
  reporter_.queue(copy);
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
      reporter_.queue(e->state);
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
      if (e->state.status == AllocStatus::kPulling || e->state.status == AllocStatus::kStarting) {
        // The previous agent died between starting it and recording that it runs.
        e->state.status = AllocStatus::kRunning;
        e->state.pid = found.at(e->alloc.id).pid;
        if (!e->state.started_at) e->state.started_at = clock_.now();
        persist(*e);
        reporter_.queue(e->state);
      }
      log::info("agent: re-adopted " + e->alloc.id + " (pid " + std::to_string(e->state.pid) + ")");
      launch(e, false);
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
  std::vector<Ptr> to_stop;
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
          to_stop.push_back(it->second);
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
        to_stop.push_back(e);
      }
    }
    for (const auto& id : forget) entries_.erase(id);
  }
  if (!resend.empty()) reporter_.resend(resend);
  for (const auto& id : forget) {
    containers_.forget(id);
    ::unlink(record_path(options_.state_dir, id).c_str());
  }
  for (auto& e : never_started) {
    bool killed = e->stop_reason == "killed";
    finish(e, killed ? AllocStatus::kKilled : AllocStatus::kLost, std::nullopt,
           killed ? "stopped before it started" : "this node has no record of it");
  }
  for (auto& [e, s] : start) launch(e, s);
  for (auto& e : to_stop) request_stop(e, "killed");
}

}  // namespace mill::agent
