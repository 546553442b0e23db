// The steady state between deploys: every deployed service keeps its replica count.
// Nomad's reconciler does the same for allocations lost with their node; here the
// node monitor calls it once it has marked a dead node's allocations lost.

#include "common/log.h"
#include "server/deploy.h"

namespace mill::server {

std::vector<std::string> DeployManager::keep_replicas() {
  std::vector<std::string> placed;
  // Held across the placements so that no deploy begins meanwhile.
  std::lock_guard lock(mutex_);
  if (!running_.empty() || stopping()) return placed;
  const SystemTime now = clock_.now();
  const model::Config deployed = view_locked();
  for (const auto& [name, service] : deployed.services) {
    int live = 0;
    int healthy = 0;
    for (const auto& v : tasks_.group(model::kKindService, name)) {
      if (ended(v) || v.alloc->desired != model::DesiredState::kRun) continue;
      ++live;
      if (v.status() == model::AllocStatus::kHealthy) ++healthy;
    }
    TopUp& backoff = top_ups_[name];
    if (healthy >= service.replicas) backoff = TopUp{};
    if (live >= service.replicas || now < backoff.not_before) continue;
    backoff.not_before = now + backoff.delay;
    backoff.delay = std::min<std::chrono::milliseconds>(backoff.delay * 2, std::chrono::minutes(5));
    for (int i = live; i < service.replicas; ++i) {
      auto one = tasks_.place_service(name, alloc_spec(service, deployed.volumes));
      if (!one) {
        log::warn("service " + name + ": " + std::to_string(service.replicas - i) +
                  " replica(s) short, and no room for one: " + one.error().message);
        break;
      }
      log::info("service " + name + ": replacing a lost replica with " + one->alloc->id + " on " +
                one->alloc->node);
      placed.push_back(one->alloc->id);
    }
  }
  return placed;
}

int DeployManager::move_off(const std::set<std::string>& draining) {
  int left = 0;
  std::lock_guard lock(mutex_);
  const bool busy = !running_.empty() || stopping();
  const model::Config deployed = view_locked();
  for (const auto& [name, service] : deployed.services) {
    std::vector<std::string> on_draining;
    int elsewhere = 0;
    int healthy_elsewhere = 0;
    for (const auto& v : tasks_.group(model::kKindService, name)) {
      if (ended(v) || v.alloc->desired != model::DesiredState::kRun) continue;
      if (draining.contains(v.alloc->node)) {
        on_draining.push_back(v.alloc->id);
      } else {
        ++elsewhere;
        if (v.status() == model::AllocStatus::kHealthy) ++healthy_elsewhere;
      }
    }
    left += static_cast<int>(on_draining.size());
    if (on_draining.empty() || busy) continue;
    for (int i = elsewhere; i < service.replicas; ++i) {
      auto one = tasks_.place_service(name, alloc_spec(service, deployed.volumes));
      if (!one) {
        log::warn("drain: service " + name + ": no room for a replacement: " + one.error().message);
        break;
      }
      log::info("drain: service " + name + ": " + one->alloc->id + " on " + one->alloc->node +
                " replaces one on a draining node");
    }
    if (healthy_elsewhere < service.replicas) continue;
    for (const auto& id : on_draining) {
      if (auto killed = tasks_.kill(id); !killed) {
        log::warn("drain: stopping " + id + ": " + killed.error().message);
      }
    }
  }
  return left;
}

}  // namespace mill::server
