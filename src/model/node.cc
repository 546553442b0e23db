#include "model/node.h"

#include <charconv>

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

}  // namespace mill::model
