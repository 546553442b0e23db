#include "server/deploy.h"

#include <algorithm>
#include <boost/json.hpp>
#include <set>

#include "common/log.h"
#include "config/config.h"
#include "crypto/crypto.h"

namespace mill::server {

namespace json = boost::json;

namespace {

constexpr std::string_view kDeployedKey = "/config/deployed";
constexpr std::string_view kRolledKey = "/config/rolled";  // DeployedServices
constexpr std::string_view kRecordPrefix = "/deploys/";

Result<std::string> new_deploy_id() {
  static constexpr char kBase36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  auto bytes = MILL_TRY(crypto::random_bytes(6));
  std::string id = "d-";
  for (unsigned char b : bytes) id += kBase36[b % 36];
  return id;
}

}  // namespace

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
  // What each service runs. A store from before this record: every service of the
  // deployed config (which was all a failed deploy's services could be shown as).
  std::optional<DeployedServices> rolled;
  if (auto stored = MILL_TRY(store_.get(kRolledKey))) {
    rolled = decode_deployed_services(stored->value);
    if (!rolled)
      log::warn(
          "deploy: the record of deployed services does not parse; using the "
          "deployed config's");
  }
  if (!rolled) {
    rolled.emplace();
    for (const auto& [name, s] : deployed_.services) {
      rolled->set(name, "deployed", {"deployed.toml", deployed_text_});
    }
  }
  std::map<std::string, model::Config> configs;
  for (const auto& [id, source] : rolled->sources) {
    auto parsed = config::parse_config(source.text, source.file);
    if (parsed.ok()) {
      configs[id] = std::move(*parsed.config);
    } else {
      log::warn("deploy: the config of deploy " + id + " does not parse any more");
    }
  }
  auto listed = MILL_TRY(store_.list(kRecordPrefix));
  std::lock_guard lock(mutex_);
  rolled_ = std::move(*rolled);
  rolled_configs_ = std::move(configs);
  for (const auto& kv : listed.kvs) {
    auto r = decode_record(kv.value);
    if (!r) continue;
    if (r->status == "running") running_ = r->id;
    records_[r->id] = std::move(*r);
  }
  return {};
}

void DeployManager::resume() {
  auto run = std::make_shared<Run>();
  {
    std::lock_guard lock(mutex_);
    if (running_.empty() || worker_.joinable()) return;
    run->record = records_.at(running_);
  }
  const auto& p = run->record.progress;
  std::string why;
  if (!p.text.empty()) {
    auto parsed = config::parse_config(p.text, p.file.empty() ? "mill.toml" : p.file);
    if (parsed.ok()) {
      run->config = std::move(*parsed.config);
      run->volumes = run->config->volumes;
    } else {
      why = "its config does not parse any more";
    }
  } else if (run->record.kind == "restart") {
    run->volumes = deployed().volumes;
  } else {
    why = "its record has no config";
  }
  log::info("deploy " + run->record.id + ": carrying on after a server restart (" + p.stage + ")");
  if (!why.empty()) {
    // Cannot happen with records this server wrote; one from elsewhere ends here.
    finish(*run, "failed",
           json::serialize(json::object{{"service", ""}, {"reason", "cannot resume: " + why}}));
    return;
  }
  launch(std::move(run));
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
  // Subscribers of a deploy cut off by the stop: their streams end (a client reads the
  // outcome later, from the next server).
  std::map<std::string, std::vector<Sink>> sinks;
  {
    std::lock_guard lock(mutex_);
    sinks.swap(sinks_);
  }
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
  // Missing secrets are errors at their references, reported with all the others.
  if (!parsed.secrets.empty()) {
    auto listed = MILL_TRY(secrets_.list());
    std::set<std::string> known;
    for (const auto& s : listed) known.insert(s.name);
    config::require_secrets(parsed, known);
  }
  if (!parsed.ok()) {
    std::vector<std::string> errors;
    for (const auto& e : parsed.errors) errors.push_back(e.to_string());
    return reject(std::move(errors));
  }
  auto run = std::make_unique<Run>();
  run->record.kind = "deploy";
  run->record.progress.text = text;
  run->record.progress.file = file_name;
  run->volumes = parsed.config->volumes;
  run->config = std::move(*parsed.config);
  return begin(std::move(run));
}

Result<std::string> DeployManager::restart(const std::string& service) {
  auto run = std::make_unique<Run>();
  {
    std::lock_guard lock(mutex_);
    model::Config deployed = view_locked();
    if (!deployed.services.contains(service)) {
      return make_error(ErrorCode::kNotFound, "no service '" + service + "' is deployed");
    }
    run->volumes = deployed.volumes;
  }
  run->record.kind = "restart";
  run->record.progress.restart = service;
  return begin(std::move(run));
}

Result<std::string> DeployManager::begin(std::unique_ptr<Run> run) {
  DeployRecord copy;
  {
    std::lock_guard lock(mutex_);
    if (!running_.empty()) {
      return make_error(ErrorCode::kConflict, "deploy " + running_ + " is running");
    }
    if (stopping()) return make_error(ErrorCode::kUnavailable, "the server is stopping");
    run->record.id = MILL_TRY(new_deploy_id());
    run->record.status = "running";
    run->record.started_at = clock_.now();
    run->record.progress.stage = "started";
    records_[run->record.id] = run->record;
    running_ = run->record.id;
    copy = run->record;
  }
  persist(copy);
  launch(std::shared_ptr<Run>(std::move(run)));
  return copy.id;
}

void DeployManager::launch(std::shared_ptr<Run> run) {
  std::thread previous;
  {
    std::lock_guard lock(mutex_);
    previous.swap(worker_);
  }
  // The previous worker has cleared running_, so it is at its very end.
  if (previous.joinable()) previous.join();
  std::lock_guard lock(mutex_);
  worker_ = std::thread([this, run] { execute(*run); });
}

uint64_t DeployManager::seq() const {
  std::lock_guard lock(signal_->mu);
  return signal_->seq;
}

bool DeployManager::stopping() const {
  std::lock_guard lock(signal_->mu);
  return signal_->stopping;
}

bool DeployManager::wait_news(uint64_t seen, SystemTime until) {
  std::unique_lock lock(signal_->mu);
  while (true) {
    if (signal_->stopping) return false;
    if (signal_->seq != seen || clock_.now() >= until) return true;
    auto ping_at = last_sent_ + options_.keep_alive;
    clock_.wait_until(signal_->cv, lock, std::min(until, ping_at),
                      [&] { return signal_->seq != seen || signal_->stopping; });
    if (signal_->seq == seen && !signal_->stopping && clock_.now() >= ping_at) {
      lock.unlock();
      keep_alive();
      lock.lock();
    }
  }
}

void DeployManager::keep_alive() {
  last_sent_ = clock_.now();
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

void DeployManager::publish(Run& run, std::vector<DeployEvent> events) {
  last_sent_ = clock_.now();
  const bool terminal = !events.empty() && events.back().event != "progress";
  std::vector<Sink> sinks;
  DeployRecord copy;
  {
    std::lock_guard lock(mutex_);
    auto& r = records_[run.record.id];
    for (const auto& e : events) run.record.events.push_back(e);
    if (terminal) {
      run.record.finished_at = clock_.now();
      run.record.progress = {};
      sinks.swap(sinks_[r.id]);
      sinks_.erase(r.id);
      running_.clear();
    } else {
      sinks = sinks_[r.id];
    }
    r = run.record;
    copy = r;
  }
  persist(copy);
  std::vector<size_t> gone;
  for (size_t i = 0; i < sinks.size(); ++i) {
    for (const auto& e : events) {
      if (!sinks[i](e)) {
        gone.push_back(i);
        break;
      }
    }
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
      copy.progress = {};
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
  return view_locked();
}

Result<void> DeployManager::commit_rolled(Run& run, const std::string& service) {
  if (!run.config) {  // a restart: the service's spec is what it was
    persist(run.record);
    return {};
  }
  DeployedServices next;
  {
    std::lock_guard lock(mutex_);
    next = rolled_;
  }
  next.set(service, run.record.id, {run.record.progress.file, run.record.progress.text});
  store::Txn txn;
  txn.ops.push_back({store::Operation::Type::kPut, std::string(kRolledKey), encode(next)});
  txn.ops.push_back({store::Operation::Type::kPut, std::string(kRecordPrefix) + run.record.id,
                     encode_record(run.record)});
  MILL_TRY(store_.txn(txn));
  std::lock_guard lock(mutex_);
  rolled_ = std::move(next);
  rolled_configs_[run.record.id] = *run.config;
  std::erase_if(rolled_configs_,
                [&](const auto& kv) { return !rolled_.sources.contains(kv.first); });
  return {};
}

Result<void> DeployManager::forget_service(const std::string& service) {
  DeployedServices next;
  {
    std::lock_guard lock(mutex_);
    if (!rolled_.services.contains(service)) return {};
    next = rolled_;
  }
  next.remove(service);
  MILL_TRY(store_.put(kRolledKey, encode(next)));
  std::lock_guard lock(mutex_);
  rolled_ = std::move(next);
  std::erase_if(rolled_configs_,
                [&](const auto& kv) { return !rolled_.sources.contains(kv.first); });
  return {};
}

Result<void> DeployManager::commit_deployed(Run& run) {
  const auto& p = run.record.progress;
  DeployedServices all;
  for (const auto& [name, s] : run.config->services) all.set(name, run.record.id, {p.file, p.text});
  store::Txn txn;
  txn.ops.push_back({store::Operation::Type::kPut, std::string(kDeployedKey), p.text});
  txn.ops.push_back({store::Operation::Type::kPut, std::string(kRolledKey), encode(all)});
  MILL_TRY(store_.txn(txn));
  std::lock_guard lock(mutex_);
  deployed_ = *run.config;
  deployed_text_ = p.text;
  rolled_ = std::move(all);
  rolled_configs_.clear();
  if (!rolled_.sources.empty()) rolled_configs_[run.record.id] = *run.config;
  return {};
}

std::string DeployManager::deployed_text() const {
  std::lock_guard lock(mutex_);
  return deployed_text_;
}

}  // namespace mill::server
