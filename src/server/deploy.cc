#include "server/deploy.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>

#include "common/log.h"
#include "config/config.h"
#include "crypto/crypto.h"
#include "model/json.h"

namespace mill::server {

namespace json = boost::json;
using model::AllocStatus;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kDeployedKey = "/config/deployed";
constexpr std::string_view kRecordPrefix = "/deploys/";

int64_t to_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

double seconds_since(SteadyClock::time_point t) {
  double s = std::chrono::duration<double>(SteadyClock::now() - t).count();
  return static_cast<double>(static_cast<int64_t>(s * 10 + 0.5)) / 10;  // one decimal
}

std::string format_seconds(std::chrono::milliseconds d) {
  char buf[32];
  if (d.count() % 1000 == 0) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(d.count() / 1000));
  } else {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(d.count()) / 1000);
  }
  return buf;
}

std::string progress(const json::object& fields) { return json::serialize(fields); }

std::string encode_record(const DeployRecord& r) {
  json::array events;
  for (const auto& e : r.events) {
    boost::system::error_code ec;
    events.push_back(json::object{{"event", e.event}, {"data", json::parse(e.data, ec)}});
  }
  json::object o{{"id", r.id},
                 {"kind", r.kind},
                 {"status", r.status},
                 {"service", r.service},
                 {"reason", r.reason},
                 {"events", std::move(events)},
                 {"started_at_ms", to_ms(r.started_at)}};
  if (r.finished_at) o["finished_at_ms"] = to_ms(*r.finished_at);
  return json::serialize(o);
}

std::optional<DeployRecord> decode_record(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  DeployRecord r;
  auto str = [&](std::string_view k) {
    auto* f = o.if_contains(k);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  r.id = str("id");
  r.kind = str("kind");
  r.status = str("status");
  r.service = str("service");
  r.reason = str("reason");
  if (auto* t = o.if_contains("started_at_ms"); t && t->is_int64()) {
    r.started_at = SystemTime(std::chrono::milliseconds(t->as_int64()));
  }
  if (auto* t = o.if_contains("finished_at_ms"); t && t->is_int64()) {
    r.finished_at = SystemTime(std::chrono::milliseconds(t->as_int64()));
  }
  if (auto* es = o.if_contains("events"); es && es->is_array()) {
    for (const auto& e : es->as_array()) {
      if (!e.is_object()) continue;
      const auto& eo = e.as_object();
      auto* name = eo.if_contains("event");
      auto* data = eo.if_contains("data");
      if (!name || !name->is_string() || !data) continue;
      r.events.push_back({std::string(name->as_string()), json::serialize(*data)});
    }
  }
  if (r.id.empty()) return std::nullopt;
  return r;
}

Result<std::string> new_deploy_id() {
  static constexpr char kBase36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  auto bytes = MILL_TRY(crypto::random_bytes(6));
  std::string id = "d-";
  for (unsigned char b : bytes) id += kBase36[b % 36];
  return id;
}

bool live(const TaskView& v) {
  return !model::is_terminal(v.status()) && v.alloc.desired == model::DesiredState::kRun;
}

// Why an allocation that should become healthy will not: nullopt while it still may.
std::optional<std::string> failure_of(const TaskView& v) {
  if (!v.state) return std::nullopt;
  const auto& s = *v.state;
  if (s.status == AllocStatus::kFailed) return s.message.empty() ? "it failed to start" : s.message;
  if (model::is_terminal(s.status) || s.restarts > 0) {
    // The agent words it "container exited with code N: <last line>; restarting in Ns".
    std::string m = s.message;
    if (auto cut = m.find("; restarting"); cut != std::string::npos) m.resize(cut);
    if (m.empty()) m = "the container ended (" + std::string(model::to_string(s.status)) + ")";
    return m;
  }
  return std::nullopt;
}

}  // namespace

model::AllocSpec alloc_spec(const model::ServiceSpec& s,
                            const std::map<std::string, model::VolumeSpec>& volumes) {
  model::AllocSpec a;
  a.image = s.image;
  a.cpu = s.cpu;
  a.memory = s.memory;
  a.port = s.port;
  a.command = s.command;
  a.env = s.env;
  a.init = s.init;
  a.health = s.health;
  a.route = s.route;
  for (const auto& m : s.volumes) {
    auto it = volumes.find(m.volume);
    a.volumes.push_back({m.volume, it == volumes.end() ? 0 : it->second.size, m.path, m.read_only});
  }
  return a;
}

struct DeployManager::Run {
  DeployRecord record;
  std::optional<model::Config> config;  // a deploy: the new config
  std::string text;
  std::string restart_service;                       // a restart: the service
  std::map<std::string, model::VolumeSpec> volumes;  // of the config being rolled
  SteadyClock::time_point t0 = SteadyClock::now();
};

DeployManager::DeployManager(store::Store& store, TaskManager& tasks, Secrets& secrets,
                             const Clock& clock, DeployOptions options)
    : store_(store), tasks_(tasks), secrets_(secrets), clock_(clock), options_(options) {
  // The listener may outlive this object (TaskManager keeps it): it holds only the
  // shared signal.
  tasks_.on_change([signal = signal_] {
    std::lock_guard lock(signal->mu);
    ++signal->seq;
    signal->cv.notify_all();
  });
}

DeployManager::~DeployManager() { stop(); }

Result<void> DeployManager::start() {
  auto deployed = MILL_TRY(store_.get(kDeployedKey));
  if (deployed) {
    auto parsed = config::parse_config(deployed->value, "deployed.toml");
    if (parsed.ok()) {
      deployed_ = std::move(*parsed.config);
      deployed_text_ = deployed->value;
    } else {
      log::warn("deploy: the stored config does not parse any more; starting from none");
    }
  }
  auto listed = MILL_TRY(store_.list(kRecordPrefix));
  std::vector<DeployRecord> interrupted;
  {
    std::lock_guard lock(mutex_);
    for (const auto& kv : listed.kvs) {
      auto r = decode_record(kv.value);
      if (!r) continue;
      if (r->status == "running") {
        r->status = "failed";
        r->reason = "the server stopped during the deploy";
        r->finished_at = clock_.now();
        r->events.push_back(
            {"failed", progress(json::object{{"service", r->service}, {"reason", r->reason}})});
        interrupted.push_back(*r);
      }
      records_[r->id] = std::move(*r);
    }
  }
  for (const auto& r : interrupted) persist(r);
  return {};
}

void DeployManager::stop() {
  {
    std::lock_guard lock(signal_->mu);
    signal_->stopping = true;
    signal_->cv.notify_all();
  }
  std::thread worker;
  {
    std::lock_guard lock(mutex_);
    worker.swap(worker_);
  }
  if (worker.joinable()) worker.join();
}

Result<std::string> DeployManager::deploy(const std::string& text, const std::string& file_name,
                                          DeployRejection* rejection) {
  auto reject = [&](std::vector<std::string> errors) -> Result<std::string> {
    if (rejection) {
      rejection->message = "the config has " + std::to_string(errors.size()) + " error" +
                           (errors.size() == 1 ? "" : "s");
      rejection->errors = std::move(errors);
    }
    return make_error(ErrorCode::kInvalidArgument, "invalid config");
  };
  auto parsed = config::parse_config(text, file_name);
  if (!parsed.ok()) {
    std::vector<std::string> errors;
    for (const auto& e : parsed.errors) errors.push_back(e.to_string());
    return reject(std::move(errors));
  }
  std::vector<std::string> missing;
  for (const auto& name : model::secret_references(*parsed.config)) {
    auto value = secrets_.get(name);
    if (!value && value.error().code == ErrorCode::kNotFound) {
      missing.push_back(file_name + ": secret '" + name +
                        "' is referenced but not set (mill secret set " + name + ")");
    } else if (!value) {
      return Unexpected(value.error());
    }
  }
  if (!missing.empty()) return reject(std::move(missing));
  auto run = std::make_unique<Run>();
  run->record.kind = "deploy";
  run->config = std::move(*parsed.config);
  run->text = text;
  return begin(std::move(run));
}

Result<std::string> DeployManager::restart(const std::string& service) {
  {
    std::lock_guard lock(mutex_);
    if (!deployed_.services.contains(service)) {
      return make_error(ErrorCode::kNotFound, "no service '" + service + "' is deployed");
    }
  }
  auto run = std::make_unique<Run>();
  run->record.kind = "restart";
  run->restart_service = service;
  return begin(std::move(run));
}

Result<std::string> DeployManager::begin(std::unique_ptr<Run> run) {
  std::thread previous;
  DeployRecord copy;
  {
    std::lock_guard lock(mutex_);
    if (!running_.empty()) {
      return make_error(ErrorCode::kConflict, "deploy " + running_ + " is running");
    }
    {
      std::lock_guard s(signal_->mu);
      if (signal_->stopping) return make_error(ErrorCode::kUnavailable, "the server is stopping");
    }
    run->record.id = MILL_TRY(new_deploy_id());
    run->record.status = "running";
    run->record.started_at = clock_.now();
    records_[run->record.id] = run->record;
    running_ = run->record.id;
    previous.swap(worker_);
    copy = run->record;
  }
  // The previous worker has cleared running_, so it is at its very end.
  if (previous.joinable()) previous.join();
  persist(copy);
  std::string id = copy.id;
  std::lock_guard lock(mutex_);
  worker_ = std::thread([this, r = std::shared_ptr<Run>(std::move(run))] { execute(*r); });
  return id;
}

void DeployManager::execute(Run& run) {
  emit(run, "progress", progress(json::object{{"phase", "started"}, {"deploy", run.record.id}}));
  std::vector<model::ServiceSpec> roll_list;
  std::vector<std::string> removed;
  // Task templates and registries apply at once (a new image may need new registry
  // credentials); services roll below. A failed deploy puts the previous ones back.
  auto fail = [&](const std::string& service, const std::string& reason) {
    if (run.config) tasks_.set_config(deployed());
    emit(run, "failed", progress(json::object{{"service", service}, {"reason", reason}}));
  };
  if (run.config) {
    tasks_.set_config(*run.config);
    for (const auto& [name, s] : run.config->services) roll_list.push_back(s);
    for (const auto& name : tasks_.live_groups(model::kKindService)) {
      if (!run.config->services.contains(name)) removed.push_back(name);
    }
    run.volumes = run.config->volumes;
  } else {
    std::lock_guard lock(mutex_);
    roll_list.push_back(deployed_.services.at(run.restart_service));
    run.volumes = deployed_.volumes;
  }
  emit(run, "progress", progress(json::object{{"phase", "pulling"}}));
  const bool force = !run.config.has_value();
  std::vector<std::string> images;
  for (const auto& service : roll_list) {
    if (starts_allocations(run, service, force) &&
        std::find(images.begin(), images.end(), service.image) == images.end()) {
      images.push_back(service.image);
    }
  }
  std::string failed_image;
  if (auto pulled = pull_images(run, images, failed_image); !pulled) {
    // Name the (first) service whose image it is.
    std::string service;
    for (const auto& s : roll_list) {
      if (s.image == failed_image) {
        service = s.name;
        break;
      }
    }
    fail(service, pulled.error().message);
    return;
  }
  for (const auto& service : roll_list) {
    auto rolled = roll(run, service, force);
    if (!rolled) {
      fail(service.name, rolled.error().message);
      return;
    }
  }
  for (const auto& name : removed) {
    std::vector<std::string> ids;
    for (const auto& v : tasks_.group(model::kKindService, name)) {
      if (live(v)) ids.push_back(v.alloc.id);
    }
    stop_allocations(ids);
    for (size_t i = 0; i < ids.size(); ++i) {
      emit(run, "progress", progress(json::object{{"service", name}, {"phase", "stopped"}}));
    }
  }
  if (run.config) {
    auto put = store_.put(kDeployedKey, run.text);
    if (!put) {
      fail("", "cannot record the deployed config: " + put.error().message);
      return;
    }
    std::lock_guard lock(mutex_);
    deployed_ = *run.config;
    deployed_text_ = run.text;
  }
  emit(run, "done", progress(json::object{{"elapsed", seconds_since(run.t0)}, {"success", true}}));
}

bool DeployManager::starts_allocations(const Run& run, const model::ServiceSpec& service,
                                       bool force) const {
  if (force) return true;
  const model::AllocSpec spec = alloc_spec(service, run.volumes);
  int current = 0;
  for (const auto& v : tasks_.group(model::kKindService, service.name)) {
    if (!live(v)) continue;
    if (!(v.alloc.spec == spec)) return true;
    ++current;
  }
  return current < service.replicas;
}

Result<void> DeployManager::roll(Run& run, const model::ServiceSpec& service, bool force) {
  const model::AllocSpec spec = alloc_spec(service, run.volumes);
  std::vector<TaskView> current;
  for (auto& v : tasks_.group(model::kKindService, service.name)) {
    if (live(v)) current.push_back(std::move(v));
  }
  const bool same = std::all_of(current.begin(), current.end(),
                                [&](const TaskView& v) { return v.alloc.spec == spec; });
  const int want = service.replicas;
  std::vector<std::string> old;  // to replace, oldest first
  int keep = 0;                  // current allocations that stay
  if (same && !force) {
    keep = std::min<int>(want, static_cast<int>(current.size()));
    // Scaling down: the newest go first.
    for (size_t i = static_cast<size_t>(keep); i < current.size(); ++i) {
      old.push_back(current[i].alloc.id);
    }
    if (keep == want && old.empty()) return {};  // unchanged
  } else {
    for (const auto& v : current) old.push_back(v.alloc.id);
  }
  const auto deadline = service.health ? service.health->deadline : options_.default_deadline;
  const int parallel = std::max(1, service.update_parallel);
  std::vector<std::string> stopping;     // old allocations told to stop, not yet ended
  std::vector<std::string> started;      // new allocations, in placement order
  std::vector<std::string> healthy_new;  // those that became healthy
  int replaced = 0;                      // old allocations stopped for healthy new ones
  int healthy = keep;
  std::vector<Pending> pending;
  auto fail = [&](const Error& e) -> Result<void> {
    finish_stops(run, service.name, stopping);
    // New allocations not yet healthy just stop. Healthy ones that already replaced
    // old ones are rolled back the same careful way: an allocation of the old spec
    // first, the new one stopped once that is healthy.
    std::vector<std::string> unhealthy;
    for (const auto& id : started) {
      if (std::find(healthy_new.begin(), healthy_new.end(), id) == healthy_new.end()) {
        unhealthy.push_back(id);
      }
    }
    stop_allocations(unhealthy);
    std::string rollback_error;
    if (replaced > 0 && !current.empty()) {
      auto back =
          restore(run, service.name, current.front().alloc.spec, healthy_new, replaced, deadline);
      if (!back) rollback_error = "; rolling back failed too: " + back.error().message;
    } else {
      stop_allocations(healthy_new);
      for (size_t i = 0; i < healthy_new.size(); ++i) {
        emit(run, "progress",
             progress(json::object{{"service", service.name}, {"phase", "stopped"}}));
      }
    }
    return make_error(e.code, e.message + rollback_error);
  };
  // Replacing: at most `parallel` new allocations in flight, and an old one stopped for
  // each that becomes healthy, so the service never has fewer healthy allocations than
  // it asks for. Nothing to replace (a new service, or more replicas of an unchanged
  // one): all at once, since nothing that serves is at stake.
  int placed = keep;
  while (healthy < want) {
    int room = old.empty() ? want - placed
                           : std::min(parallel - static_cast<int>(pending.size()), want - placed);
    // The whole batch must fit before any of it is placed: a deploy that cannot run
    // fails at once, without starting (and then stopping) the part that would fit.
    if (room > 1) {
      if (auto fits = tasks_.check_fit(model::kKindService, service.name, spec, room); !fits) {
        return fail(fits.error());
      }
    }
    // Old allocations still stopping hold their cpu and memory: on a full node, the
    // next replacement waits for them rather than failing.
    if (room > 0 && !stopping.empty() &&
        !tasks_.check_fit(model::kKindService, service.name, spec, room)) {
      finish_stops(run, service.name, stopping);
    }
    for (int i = 0; i < room; ++i) {
      auto v = tasks_.place_service(service.name, spec);
      if (!v) return fail(v.error());
      started.push_back(v->alloc.id);
      pending.push_back({v->alloc.id, SteadyClock::now()});
      ++placed;
      emit(run, "progress",
           progress(json::object{
               {"service", service.name}, {"phase", "scheduled"}, {"node", v->alloc.node}}));
    }
    auto now_healthy = wait_progress(run, service.name, pending, deadline, &healthy_new);
    report_stopped(run, service.name, stopping);
    if (!now_healthy) return fail(now_healthy.error());
    for (int i = 0; i < *now_healthy; ++i) {
      ++healthy;
      if (!old.empty() && healthy + static_cast<int>(old.size()) > want) {
        // Out of service now (it leaves DNS at once); the rollout goes on while it
        // stops, and `stopped` is sent when it has.
        if (auto k = tasks_.kill(old.front()); !k) {
          log::warn("deploy: stopping " + old.front() + ": " + k.error().message);
        }
        stopping.push_back(old.front());
        old.erase(old.begin());
        ++replaced;
      }
    }
  }
  for (const auto& id : old) {
    if (auto k = tasks_.kill(id); !k)
      log::warn("deploy: stopping " + id + ": " + k.error().message);
    stopping.push_back(id);
  }
  finish_stops(run, service.name, stopping);
  return {};
}

void DeployManager::report_stopped(Run& run, const std::string& service,
                                   std::vector<std::string>& stopping) {
  for (auto it = stopping.begin(); it != stopping.end();) {
    auto v = tasks_.get(*it);
    if (v && !model::is_terminal(v->status())) {
      ++it;
      continue;
    }
    emit(run, "progress", progress(json::object{{"service", service}, {"phase", "stopped"}}));
    it = stopping.erase(it);
  }
}

void DeployManager::finish_stops(Run& run, const std::string& service,
                                 std::vector<std::string>& stopping) {
  await(SteadyClock::now() + options_.stop_wait, [&] {
    report_stopped(run, service, stopping);
    return stopping.empty();
  });
}

template <class Check>
bool DeployManager::await(SteadyClock::time_point until, Check check) {
  std::unique_lock lock(signal_->mu);
  while (true) {
    uint64_t seen = signal_->seq;
    lock.unlock();
    if (check()) return true;
    lock.lock();
    if (signal_->stopping || SteadyClock::now() >= until) return false;
    auto ping_at = last_sent_ + options_.keep_alive;
    bool woke = signal_->cv.wait_until(lock, std::min(until, ping_at),
                                       [&] { return signal_->seq != seen || signal_->stopping; });
    if (!woke && SteadyClock::now() >= ping_at) {
      lock.unlock();
      keep_alive();
      lock.lock();
    }
  }
}

void DeployManager::keep_alive() {
  last_sent_ = SteadyClock::now();
  std::vector<Sink> sinks;
  {
    std::lock_guard lock(mutex_);
    if (running_.empty()) return;
    sinks = sinks_[running_];
  }
  // An empty event: the stream sends a comment line, so clients and proxies see the
  // connection alive through a long pull or health deadline. Not recorded.
  for (auto& sink : sinks) (void)sink(DeployEvent{});
}

bool DeployManager::stopping() const {
  std::lock_guard lock(signal_->mu);
  return signal_->stopping;
}

Result<void> DeployManager::restore(Run& run, const std::string& service,
                                    const model::AllocSpec& old_spec,
                                    const std::vector<std::string>& new_ids, int count,
                                    std::chrono::milliseconds deadline) {
  std::vector<std::string> to_stop = new_ids;
  for (int i = 0; i < count; ++i) {
    auto v = tasks_.place_service(service, old_spec);
    if (!v) return Unexpected(v.error());
    emit(run, "progress",
         progress(
             json::object{{"service", service}, {"phase", "scheduled"}, {"node", v->alloc.node}}));
    std::vector<Pending> pending{{v->alloc.id, SteadyClock::now()}};
    while (!pending.empty()) {
      auto ok = wait_progress(run, service, pending, deadline, nullptr);
      if (!ok) {
        stop_allocations({v->alloc.id});
        return Unexpected(ok.error());
      }
    }
    if (!to_stop.empty()) {
      stop_allocations({to_stop.front()});
      to_stop.erase(to_stop.begin());
      emit(run, "progress", progress(json::object{{"service", service}, {"phase", "stopped"}}));
    }
  }
  // New allocations beyond those that replaced old ones (more replicas than before) stop.
  stop_allocations(to_stop);
  for (size_t i = 0; i < to_stop.size(); ++i) {
    emit(run, "progress", progress(json::object{{"service", service}, {"phase", "stopped"}}));
  }
  return {};
}

Result<int> DeployManager::wait_progress(Run& run, const std::string& service,
                                         std::vector<Pending>& pending,
                                         std::chrono::milliseconds deadline,
                                         std::vector<std::string>* healthy_ids) {
  auto earliest = pending.front().placed_at;
  for (const auto& p : pending) earliest = std::min(earliest, p.placed_at);
  std::optional<Error> failed;
  std::vector<std::string> starting, healthy;
  std::string last;  // why the oldest one is not healthy yet
  await(earliest + deadline, [&] {
    for (auto& p : pending) {
      auto v = tasks_.get(p.id);
      if (!v) {
        failed = Error{ErrorCode::kInternal, "allocation " + p.id + " vanished"};
        return true;
      }
      auto status = v->status();
      if (auto why = failure_of(*v)) {
        failed = Error{ErrorCode::kUnavailable, *why};
        return true;
      }
      bool up = status == AllocStatus::kStarting || model::is_up(status);
      if (up && !p.starting) starting.push_back(p.id);
      if (status == AllocStatus::kHealthy) healthy.push_back(p.id);
      if (p.placed_at == earliest) {
        last = v->state && !v->state->message.empty()
                   ? v->state->message
                   : "not healthy (still " + std::string(model::to_string(status)) + ")";
      }
    }
    return !starting.empty() || !healthy.empty();
  });
  if (failed) return Unexpected(*failed);
  for (auto& p : pending) {
    if (std::find(starting.begin(), starting.end(), p.id) != starting.end() && !p.starting) {
      p.starting = true;
      emit(run, "progress", progress(json::object{{"service", service}, {"phase", "starting"}}));
    }
  }
  int done = 0;
  for (auto it = pending.begin(); it != pending.end();) {
    if (std::find(healthy.begin(), healthy.end(), it->id) == healthy.end()) {
      ++it;
      continue;
    }
    if (!it->starting) {
      emit(run, "progress", progress(json::object{{"service", service}, {"phase", "starting"}}));
    }
    emit(run, "progress",
         progress(json::object{{"service", service},
                               {"phase", "healthy"},
                               {"elapsed", seconds_since(it->placed_at)}}));
    if (healthy_ids) healthy_ids->push_back(it->id);
    it = pending.erase(it);
    ++done;
  }
  if (starting.empty() && done == 0) {
    if (stopping()) return make_error(ErrorCode::kUnavailable, "the server is stopping");
    if (SteadyClock::now() >= earliest + deadline) {
      return make_error(ErrorCode::kTimeout, last + " after " + format_seconds(deadline));
    }
  }
  return done;
}

Result<void> DeployManager::pull_images(Run& run, const std::vector<std::string>& images,
                                        std::string& failed_image) {
  if (images.empty()) return {};
  auto nodes = tasks_.eligible_nodes();
  if (nodes.empty()) return {};  // placement says why nothing can run
  MILL_TRY(tasks_.request_pulls(run.record.id, nodes, images));
  std::optional<Error> failed;
  bool all = await(SteadyClock::now() + options_.pull_wait, [&] {
    auto reports = tasks_.pull_reports(run.record.id);
    for (const auto& node : nodes) {
      for (const auto& image : images) {
        auto n = reports.find(node);
        if (n == reports.end()) return false;
        auto i = n->second.find(image);
        if (i == n->second.end()) return false;
        if (!i->second.empty()) {
          failed_image = image;
          std::string why = i->second;
          if (why.find(image) == std::string::npos) why = image + ": " + why;
          if (nodes.size() > 1) why += " (on " + node + ")";
          failed = Error{ErrorCode::kUnavailable, why};
          return true;
        }
      }
    }
    return true;
  });
  tasks_.clear_pulls(nodes);
  if (failed) return Unexpected(*failed);
  if (all) return {};
  if (stopping()) return make_error(ErrorCode::kUnavailable, "the server is stopping");
  return make_error(ErrorCode::kTimeout,
                    "pulling the images took longer than " + format_seconds(options_.pull_wait));
}

void DeployManager::stop_allocations(const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    if (auto k = tasks_.kill(id); !k)
      log::warn("deploy: stopping " + id + ": " + k.error().message);
  }
  await(SteadyClock::now() + options_.stop_wait, [&] {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) {
      auto v = tasks_.get(id);
      return !v || model::is_terminal(v->status());
    });
  });
}

void DeployManager::emit(Run& run, std::string event, std::string data) {
  last_sent_ = SteadyClock::now();
  DeployEvent e{std::move(event), std::move(data)};
  const bool terminal = e.event != "progress";
  std::vector<Sink> sinks;
  DeployRecord copy;
  {
    std::lock_guard lock(mutex_);
    auto& r = records_[run.record.id];
    r.events.push_back(e);
    if (terminal) {
      r.status = e.event == "done" ? "done" : "failed";
      r.finished_at = clock_.now();
      if (!r.events.empty() && e.event == "failed") {
        boost::system::error_code ec;
        auto v = json::parse(e.data, ec);
        if (!ec && v.is_object()) {
          if (auto* s = v.as_object().if_contains("service"); s && s->is_string())
            r.service = std::string(s->as_string());
          if (auto* s = v.as_object().if_contains("reason"); s && s->is_string())
            r.reason = std::string(s->as_string());
        }
      }
      sinks.swap(sinks_[r.id]);
      sinks_.erase(r.id);
      running_.clear();
    } else {
      sinks = sinks_[r.id];
    }
    run.record = r;
    copy = r;
  }
  persist(copy);
  std::vector<size_t> gone;
  for (size_t i = 0; i < sinks.size(); ++i) {
    if (!sinks[i](e)) gone.push_back(i);
  }
  if (!gone.empty() && !terminal) {
    // Drop the sinks whose client went away (the deploy goes on without them).
    std::lock_guard lock(mutex_);
    auto& list = sinks_[run.record.id];
    for (auto it = gone.rbegin(); it != gone.rend(); ++it) {
      if (*it < list.size()) list.erase(list.begin() + static_cast<std::ptrdiff_t>(*it));
    }
  }
  if (terminal) {
    log::info("deploy " + copy.id + ": " + copy.status +
              (copy.reason.empty() ? "" : " (" + copy.service + ": " + copy.reason + ")"));
  }
}

void DeployManager::persist(const DeployRecord& record) {
  if (auto put = store_.put(std::string(kRecordPrefix) + record.id, encode_record(record)); !put) {
    log::warn("deploy: cannot record " + record.id + ": " + put.error().message);
  }
  std::vector<std::string> drop;
  {
    std::lock_guard lock(mutex_);
    if (records_.size() <= options_.keep_records) return;
    std::vector<std::pair<SystemTime, std::string>> order;
    for (const auto& [id, r] : records_) {
      if (r.status != "running") order.emplace_back(r.started_at, id);
    }
    std::sort(order.begin(), order.end());
    size_t excess = records_.size() - options_.keep_records;
    for (size_t i = 0; i < excess && i < order.size(); ++i) {
      drop.push_back(order[i].second);
      records_.erase(order[i].second);
    }
  }
  for (const auto& id : drop) (void)store_.remove(std::string(kRecordPrefix) + id);
}

bool DeployManager::subscribe(const std::string& id, Sink sink) {
  std::lock_guard lock(mutex_);
  auto it = records_.find(id);
  if (it == records_.end()) return false;
  for (const auto& e : it->second.events) {
    if (!sink(e)) return true;
  }
  if (it->second.status == "running") sinks_[id].push_back(std::move(sink));
  return true;
}

std::optional<DeployRecord> DeployManager::record(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = records_.find(id);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

std::vector<DeployRecord> DeployManager::records() const {
  std::vector<DeployRecord> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, r] : records_) {
      DeployRecord copy = r;
      copy.events.clear();
      out.push_back(std::move(copy));
    }
  }
  std::sort(out.begin(), out.end(), [](const DeployRecord& a, const DeployRecord& b) {
    return a.started_at > b.started_at;
  });
  return out;
}

model::Config DeployManager::deployed() const {
  std::lock_guard lock(mutex_);
  return deployed_;
}

std::string DeployManager::deployed_text() const {
  std::lock_guard lock(mutex_);
  return deployed_text_;
}

}  // namespace mill::server
