// The deploy controller's stages (deploy.h): it observes allocations, drives each
// service's pure Rollout, applies what it asks and records where it is after every
// step, so that execute() can start from any stage a record names.

#include <algorithm>
#include <boost/json.hpp>
#include <set>

#include "common/log.h"
#include "server/deploy.h"

namespace mill::server {

namespace json = boost::json;
using model::AllocStatus;

namespace {

std::string progress(const json::object& fields) { return json::serialize(fields); }

DeployEvent progress_event(const json::object& fields) { return {"progress", progress(fields)}; }

bool live(const TaskView& v) {
  return !model::is_terminal(v.status()) && v.alloc->desired == model::DesiredState::kRun;
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

AllocSeen seen_of(const TaskView& v) {
  const AllocStatus status = v.status();
  AllocSeen a;
  a.ended = model::is_terminal(status);
  a.up = status == AllocStatus::kStarting || model::is_up(status);
  a.healthy = status == AllocStatus::kHealthy;
  a.failure = failure_of(v);
  a.waiting = v.state && !v.state->message.empty()
                  ? v.state->message
                  : "not healthy (still " + std::string(model::to_string(status)) + ")";
  return a;
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
  a.disk = s.disk;
  a.health = s.health;
  a.route = s.route;
  for (const auto& m : s.volumes) {
    auto it = volumes.find(m.volume);
    a.volumes.push_back({m.volume, it == volumes.end() ? 0 : it->second.size, m.path, m.read_only});
  }
  return a;
}

std::optional<model::ServiceSpec> DeployManager::service_spec(const Run& run,
                                                              const std::string& name) const {
  const model::Config config = run.config ? *run.config : deployed();
  auto it = config.services.find(name);
  if (it == config.services.end()) return std::nullopt;
  return it->second;
}

Rollout DeployManager::begin_rollout(const Run& run, const model::ServiceSpec& service,
                                     std::optional<model::Allocation>* first) const {
  const model::AllocSpec spec = alloc_spec(service, run.volumes);
  std::vector<std::pair<std::string, bool>> current;
  for (const auto& v : tasks_.group(model::kKindService, service.name)) {
    if (!live(v)) continue;
    current.emplace_back(v.alloc->id, v.alloc->spec == spec);
    if (first && !*first) *first = *v.alloc;
  }
  RolloutLimits limits;
  limits.want = service.replicas;
  limits.parallel = std::max(1, service.update_parallel);
  limits.deadline = service.health ? service.health->deadline : options_.default_deadline;
  limits.stop_wait = options_.stop_wait;
  limits.stop_first = model::rolls_stop_first(service);
  return Rollout(limits, current, !run.config.has_value());
}

void DeployManager::execute(Run& run) {
  auto& p = run.record.progress;
  // Task templates and registries apply at once (a new image may need new registry
  // credentials); services roll below. A failed deploy puts the previous ones back.
  if (run.config) tasks_.set_config(*run.config);
  auto fail = [&](const std::string& service, const std::string& reason) {
    if (run.config) tasks_.set_config(deployed());
    finish(run, "failed", progress(json::object{{"service", service}, {"reason", reason}}));
  };
  if (p.stage == "started") {
    if (run.config) {
      for (const auto& [name, s] : run.config->services) p.services.push_back(name);
      // Services that run or are recorded as deployed (with no allocation left, say).
      std::set<std::string> present;
      for (const auto& name : tasks_.live_groups(model::kKindService)) present.insert(name);
      for (const auto& [name, s] : deployed().services) present.insert(name);
      for (const auto& name : present) {
        if (!run.config->services.contains(name)) p.removed.push_back(name);
      }
    } else {
      p.services.push_back(p.restart);
    }
    p.stage = "pulling";
    publish(run, {progress_event({{"phase", "started"}, {"deploy", run.record.id}}),
                  progress_event({{"phase", "pulling"}})});
  }
  if (p.stage == "pulling") {
    if (auto pulled = pull(run); !pulled) {
      if (stopping()) return;  // the record stays running: the next server carries on
      return fail(run.record.service, pulled.error().message);
    }
    p.stage = "rolling";
    persist(run.record);
  }
  while (p.stage == "rolling" && p.next < p.services.size()) {
    const std::string name = p.services[p.next];
    if (!service_spec(run, name)) return fail(name, "the service is no longer in the config");
    auto rolled = roll(run, name);
    if (stopping()) return;
    if (!rolled) return fail(name, rolled.error().message);
    p.rollout.reset();
    p.old_alloc.clear();
    ++p.next;
    // Crash-safe: the service is deployed at its new spec exactly when the record has
    // moved past it.
    if (auto saved = commit_rolled(run, name); !saved) {
      return fail(name, "cannot record the service as deployed: " + saved.error().message);
    }
  }
  if (p.stage == "rolling") {
    p.stage = "removing";
    persist(run.record);
  }
  if (p.stage == "removing") {
    remove_services(run);
    if (stopping()) return;
    p.stage = "recording";
  }
  if (run.config) {
    if (auto put = commit_deployed(run); !put) {
      return fail("", "cannot record the deployed config: " + put.error().message);
    }
  }
  double elapsed = std::chrono::duration<double>(clock_.now() - run.record.started_at).count();
  elapsed = static_cast<double>(static_cast<int64_t>(elapsed * 10 + 0.5)) / 10;
  finish(run, "done", progress(json::object{{"elapsed", elapsed}, {"success", true}}));
}

void DeployManager::finish(Run& run, const std::string& event, const std::string& data) {
  run.record.status = event == "done" ? "done" : "failed";
  if (event == "failed") {
    boost::system::error_code ec;
    auto v = json::parse(data, ec);
    if (!ec && v.is_object()) {
      if (auto* s = v.as_object().if_contains("service"); s && s->is_string())
        run.record.service = std::string(s->as_string());
      if (auto* s = v.as_object().if_contains("reason"); s && s->is_string())
        run.record.reason = std::string(s->as_string());
    }
  }
  publish(run, {DeployEvent{event, data}});
}

Result<void> DeployManager::pull(Run& run) {
  // Only images some service will start allocations of.
  std::vector<std::string> images;
  std::map<std::string, std::string> service_of_image;
  for (const auto& name : run.record.progress.services) {
    auto s = service_spec(run, name);
    if (!s) continue;
    const Rollout r = begin_rollout(run, *s, nullptr);
    if (r.places() && !service_of_image.contains(s->image)) {
      images.push_back(s->image);
      service_of_image[s->image] = name;
    }
  }
  if (images.empty()) return {};
  auto nodes = tasks_.eligible_nodes();
  if (nodes.empty()) return {};  // placement says why nothing can run
  MILL_TRY(tasks_.request_pulls(run.record.id, nodes, images));
  const SystemTime until = clock_.now() + options_.pull_wait;
  while (true) {
    const uint64_t seen = seq();
    auto reports = tasks_.pull_reports(run.record.id);
    bool all = true;
    for (const auto& node : nodes) {
      for (const auto& image : images) {
        auto n = reports.find(node);
        if (n == reports.end() || !n->second.contains(image)) {
          all = false;
          continue;
        }
        const std::string& error = n->second.at(image);
        if (!error.empty()) {
          tasks_.clear_pulls(nodes);
          std::string why = error;
          if (why.find(image) == std::string::npos) why = image + ": " + why;
          if (nodes.size() > 1) why += " (on " + node + ")";
          run.record.service = service_of_image[image];
          return make_error(ErrorCode::kUnavailable, why);
        }
      }
    }
    if (all) break;
    if (clock_.now() >= until) {
      tasks_.clear_pulls(nodes);
      return make_error(ErrorCode::kTimeout, "pulling the images took longer than " +
                                                 format_seconds(options_.pull_wait));
    }
    if (!wait_news(seen, until)) {
      return make_error(ErrorCode::kUnavailable, "the server is stopping");
    }
  }
  tasks_.clear_pulls(nodes);
  return {};
}

Result<void> DeployManager::roll(Run& run, const std::string& name) {
  auto& p = run.record.progress;
  const model::ServiceSpec service = *service_spec(run, name);
  const model::AllocSpec spec = alloc_spec(service, run.volumes);
  if (!p.rollout) {
    std::optional<model::Allocation> first;
    Rollout fresh = begin_rollout(run, service, &first);
    if (!fresh.changes()) return {};
    p.rollout = fresh.state();
    if (first) p.old_alloc = model::encode(*first);
    persist(run.record);
  }
  Rollout rollout(*p.rollout);
  // Allocations a previous server placed but was killed before it recorded.
  for (const auto& v : tasks_.group(model::kKindService, name)) {
    if (live(v) && v.alloc->created_at >= run.record.started_at) {
      rollout.adopt(v.alloc->id, v.alloc->created_at);
    }
  }
  std::optional<model::AllocSpec> old_spec;
  if (auto old = model::decode_allocation(p.old_alloc); old) old_spec = old->spec;
  // Places what the rollout asks for. A batch must fit whole before any of it is
  // placed: a deploy that cannot run fails at once, without starting (and then
  // stopping) the part that would fit. Old allocations still stopping hold their cpu
  // and memory: on a full node the next placement waits for them rather than failing.
  auto place = [&](RolloutActions& acts) {
    const model::AllocSpec* what = &spec;
    if (acts.old_spec) {
      if (!old_spec) {
        rollout.placement_failed("the spec to roll back to is not recorded");
        return false;
      }
      what = &*old_spec;
    }
    if (acts.place > 1 || rollout.stopping()) {
      if (auto fits = tasks_.check_fit(model::kKindService, name, *what, acts.place); !fits) {
        if (!rollout.stopping()) rollout.placement_failed(fits.error().message);
        return false;
      }
    }
    bool any = false;
    for (int i = 0; i < acts.place; ++i) {
      auto v = tasks_.place_service(name, *what);
      if (!v) {
        if (!rollout.stopping()) rollout.placement_failed(v.error().message);
        break;
      }
      rollout.placed(v->alloc->id, v->alloc->node, clock_.now(), acts.old_spec, acts);
      any = true;
    }
    return any;
  };
  while (!rollout.finished()) {
    const uint64_t seen = seq();
    AllocsSeen allocs;
    for (const auto& id : rollout.watched()) {
      if (auto v = tasks_.get(id)) allocs[id] = seen_of(*v);
    }
    const SystemTime now = clock_.now();
    RolloutActions acts = rollout.step(allocs, now);
    for (const auto& id : acts.stop) {
      if (auto k = tasks_.kill(id); !k)
        log::warn("deploy: stopping " + id + ": " + k.error().message);
    }
    const bool placed_any = acts.place > 0 && place(acts);
    const bool changed = !(rollout.state() == *p.rollout);
    p.rollout = rollout.state();
    std::vector<DeployEvent> events;
    for (const auto& e : acts.events) {
      json::object o{{"service", name}, {"phase", e.phase}};
      if (!e.node.empty()) o["node"] = e.node;
      // Why the old allocation stops before its replacement is even scheduled.
      if (rollout.state().limits.stop_first) o["order"] = "stop-first";
      if (e.elapsed) o["elapsed"] = *e.elapsed;
      events.push_back(progress_event(o));
    }
    if (!events.empty()) {
      publish(run, std::move(events));
    } else if (changed) {
      persist(run.record);
    }
    if (rollout.finished()) break;
    if (changed || placed_any || !acts.stop.empty()) continue;  // step again at once
    // Nothing moved: wait for a status report or the next deadline.
    SystemTime until = acts.wake_at.value_or(now + options_.stop_wait);
    if (!wait_news(seen, until))
      return make_error(ErrorCode::kUnavailable, "the server is stopping");
  }
  if (rollout.failed()) return make_error(ErrorCode::kUnavailable, rollout.reason());
  return {};
}

void DeployManager::remove_services(Run& run) {
  for (const auto& name : run.record.progress.removed) {
    std::vector<std::string> ids;
    for (const auto& v : tasks_.group(model::kKindService, name)) {
      if (live(v)) ids.push_back(v.alloc->id);
    }
    stop_allocations(ids);
    if (stopping()) return;  // the next server removes it again
    if (auto forgot = forget_service(name); !forgot) {
      log::warn("deploy: cannot record that " + name + " is removed: " + forgot.error().message);
    }
    std::vector<DeployEvent> events;
    for (size_t i = 0; i < ids.size(); ++i) {
      events.push_back(progress_event({{"service", name}, {"phase", "stopped"}}));
    }
    if (!events.empty()) publish(run, std::move(events));
  }
}

void DeployManager::stop_allocations(const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    if (auto k = tasks_.kill(id); !k)
      log::warn("deploy: stopping " + id + ": " + k.error().message);
  }
  const SystemTime until = clock_.now() + options_.stop_wait;
  while (clock_.now() < until) {
    const uint64_t seen = seq();
    bool all = std::all_of(ids.begin(), ids.end(), [&](const std::string& id) {
      auto v = tasks_.get(id);
      return !v || model::is_terminal(v->status());
    });
    if (all || !wait_news(seen, until)) return;
  }
}

}  // namespace mill::server
