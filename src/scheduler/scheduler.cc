#include "scheduler/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <tuple>

namespace mill::scheduler {

namespace {

std::string cores(double cpu) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", cpu);
  return buf;
}

std::string mib(int64_t bytes) { return std::to_string(bytes / (1024 * 1024)) + "M"; }

}  // namespace

std::variant<Placement, Rejection> place(const std::vector<NodeView>& nodes,
                                         const Request& request) {
  const NodeView* best = nullptr;
  // Lower is better: (same-group count, leftover share after placing, id).
  std::tuple<int, double, std::string_view> best_key;
  bool any_ready = false;
  double most_cpu = 0;
  int64_t most_memory = 0;
  for (const auto& n : nodes) {
    if (!n.ready || n.draining) continue;
    any_ready = true;
    double cpu_free = n.cpu_total - n.cpu_reserved;
    int64_t mem_free = n.memory_total - n.memory_reserved;
    most_cpu = std::max(most_cpu, cpu_free);
    most_memory = std::max(most_memory, mem_free);
    // A small epsilon so 0.1 + 0.2 cores still fits in 0.3.
    if (cpu_free + 1e-9 < request.cpu || mem_free < request.memory) continue;
    double cpu_left = n.cpu_total > 0 ? (cpu_free - request.cpu) / n.cpu_total : 0;
    double mem_left = n.memory_total > 0 ? static_cast<double>(mem_free - request.memory) /
                                               static_cast<double>(n.memory_total)
                                         : 0;
    std::tuple<int, double, std::string_view> key{n.group_allocations, cpu_left + mem_left, n.id};
    if (!best || key < best_key) {
      best = &n;
      best_key = key;
    }
  }
  if (best) return Placement{best->id};
  if (!any_ready) {
    return Rejection{Rejection::Reason::kNoNodes, "no node is ready to take work"};
  }
  return Rejection{Rejection::Reason::kNoCapacity,
                   "no node has room for cpu " + cores(request.cpu) + " and memory " +
                       mib(request.memory) + " (the most free on any ready node: cpu " +
                       cores(std::max(0.0, most_cpu)) + ", memory " +
                       mib(std::max<int64_t>(0, most_memory)) + ")"};
}

}  // namespace mill::scheduler
