#include "model/node.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace mill::model {

std::string_view to_string(NodeStatus status) {
  switch (status) {
    case NodeStatus::kReady:
      return "ready";
    case NodeStatus::kDraining:
      return "draining";
    case NodeStatus::kDrained:
      return "drained";
    case NodeStatus::kDown:
      return "down";
  }
  return "down";
}

std::optional<NodeStatus> parse_node_status(std::string_view text) {
  if (text == "ready") return NodeStatus::kReady;
  if (text == "draining") return NodeStatus::kDraining;
  if (text == "drained") return NodeStatus::kDrained;
  if (text == "down") return NodeStatus::kDown;
  return std::nullopt;
}

std::optional<int> node_index(std::string_view id) {
  constexpr std::string_view kPrefix = "node-";
  if (!id.starts_with(kPrefix)) return std::nullopt;
  std::string_view digits = id.substr(kPrefix.size());
  if (digits.empty() || digits[0] < '1' || digits[0] > '9') return std::nullopt;
  int n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return n;
}

bool takes_allocations(const Node& node) {
  return node.status != NodeStatus::kDown && !node.draining;
}

double allocatable_cpu(const Node& node) {
  return takes_allocations(node) ? node.resources.cpu_total - node.load.cpu : 0;
}

int64_t allocatable_memory(const Node& node) {
  return takes_allocations(node) ? node.resources.memory_total - node.load.memory : 0;
}

int64_t allocatable_disk(const Node& node) {
  if (node.resources.disk_total < 0) return -1;
  return takes_allocations(node) ? node.resources.disk_total - node.load.disk : 0;
}

double used_cpu(const Node& node) {
  if (node.status == NodeStatus::kDown) return 0;
  return std::max(0.0, node.resources.cpu_total - node.resources.cpu_available);
}

int64_t used_memory(const Node& node) {
  if (node.status == NodeStatus::kDown) return 0;
  return std::max<int64_t>(0, node.resources.memory_total - node.resources.memory_available);
}

double round_cores(double cores) { return std::round(cores * 1e6) / 1e6; }

}  // namespace mill::model
