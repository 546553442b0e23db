#pragma once

// What allocations use and do, as metrics, from the agents' status reports: each
// running allocation's cpu (cores over the last report interval) and memory, service
// restarts, tasks spawned and how long ended tasks ran. Usage is shown and exported,
// not stored.
//
// Thread-safety: every method may be called from any thread; the mutex is a leaf.

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "common/clock.h"
#include "metrics/registry.h"
#include "model/allocation.h"

namespace mill::server {

class UsageMetrics {
 public:
  // Declares the metrics in `metrics`.
  UsageMetrics(metrics::Registry& metrics, const Clock& clock);

  // An allocation on `node` reported `now`; `before` is its previous state.
  void record(const model::Allocation& alloc, const std::string& node,
              const std::optional<model::AllocState>& before, const model::AllocState& now);
  // CPU cores the allocation used between its last two usage reports; nullopt until
  // there have been two.
  std::optional<double> cpu_usage(const std::string& id) const;

 private:
  // The usage gauges of a running allocation, and its cpu rate.
  void sample(const std::string& id, const metrics::Labels& labels, const model::AllocState& now);

  metrics::Registry& metrics_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  // Previous usage sample per allocation, for cpu cores = d(cpu seconds)/dt.
  std::map<std::string, std::pair<double, SystemTime>> samples_;
  std::map<std::string, double> cpu_rate_;  // the last figure, cores
};

}  // namespace mill::server
