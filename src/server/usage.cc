#include "server/usage.h"

#include <algorithm>

namespace mill::server {

namespace {

std::string task_label(const model::Allocation& a) { return a.group.empty() ? "inline" : a.group; }

}  // namespace

UsageMetrics::UsageMetrics(metrics::Registry& metrics, const Clock& clock)
    : metrics_(metrics), clock_(clock) {
  metrics_.declare("mill_tasks_spawned_total", metrics::Type::kCounter,
                   "Tasks that reached running, per task template (\"inline\" for inline).");
  metrics_.declare("mill_tasks_duration_seconds", metrics::Type::kHistogram,
                   "How long ended tasks ran, per task template.",
                   {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400});
  metrics_.declare("mill_alloc_cpu_usage", metrics::Type::kGauge,
                   "CPU cores an allocation used over its last report interval.");
  metrics_.declare("mill_alloc_memory_bytes", metrics::Type::kGauge,
                   "Memory an allocation's cgroup uses, in bytes.");
  metrics_.declare("mill_alloc_restarts_total", metrics::Type::kCounter,
                   "Times a service's containers were restarted after they ended, per node.");
}

void UsageMetrics::record(const model::Allocation& a, const std::string& node,
                          const std::optional<model::AllocState>& before,
                          const model::AllocState& now) {
  const bool is_task = a.kind == model::kKindTask;
  const bool now_running = is_task && now.status == model::AllocStatus::kRunning &&
                           (!before || before->status != model::AllocStatus::kRunning);
  const int new_restarts = now.restarts - (before ? before->restarts : 0);
  const bool now_ended =
      model::is_terminal(now.status) && (!before || !model::is_terminal(before->status));
  metrics::Labels task{{"task", task_label(a)}};
  const std::string service = is_task ? "" : a.group;
  metrics::Labels alloc{{"alloc", a.id},
                        {"node", node},
                        {"service", service},
                        {"task", is_task ? task_label(a) : ""}};
  // A running service's counter is there from its start, at 0 until a restart (as
  // Prometheus counters should be: a rate() needs the series before the first event).
  if (!is_task && (new_restarts > 0 || model::is_up(now.status))) {
    metrics_.add("mill_alloc_restarts_total", {{"service", service}, {"node", node}},
                 std::max(new_restarts, 0));
  }
  if (now_running) metrics_.add("mill_tasks_spawned_total", task, 1);
  if (now_ended) {
    if (is_task && now.started_at && now.finished_at) {
      metrics_.observe("mill_tasks_duration_seconds", task,
                       std::chrono::duration<double>(*now.finished_at - *now.started_at).count());
    }
    metrics_.remove("mill_alloc_cpu_usage", alloc);
    metrics_.remove("mill_alloc_memory_bytes", alloc);
    std::lock_guard lock(mutex_);
    samples_.erase(a.id);
    cpu_rate_.erase(a.id);
  } else if (model::is_up(now.status)) {
    sample(a.id, alloc, now);
  }
}

void UsageMetrics::sample(const std::string& id, const metrics::Labels& labels,
                          const model::AllocState& now) {
  const SystemTime at = clock_.now();
  std::optional<double> rate;
  {
    std::lock_guard lock(mutex_);
    auto& [prev_cpu, prev_at] = samples_[id];
    double secs = std::chrono::duration<double>(at - prev_at).count();
    if (prev_at != SystemTime{} && secs > 0 && now.cpu_seconds >= prev_cpu) {
      rate = (now.cpu_seconds - prev_cpu) / secs;
      cpu_rate_[id] = *rate;
    }
    prev_cpu = now.cpu_seconds;
    prev_at = at;
  }
  if (rate) metrics_.set("mill_alloc_cpu_usage", labels, *rate);
  metrics_.set("mill_alloc_memory_bytes", labels, static_cast<double>(now.memory_bytes));
}

std::optional<double> UsageMetrics::cpu_usage(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = cpu_rate_.find(id);
  if (it == cpu_rate_.end()) return std::nullopt;
  return it->second;
}

}  // namespace mill::server
