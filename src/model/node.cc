#include "model/node.h"

namespace mill::model {

std::string_view to_string(NodeStatus status) {
  switch (status) {
    case NodeStatus::kReady:
      return "ready";
    case NodeStatus::kDraining:
      return "draining";
    case NodeStatus::kDown:
      return "down";
  }
  return "down";
}

std::optional<NodeStatus> parse_node_status(std::string_view text) {
  if (text == "ready") return NodeStatus::kReady;
  if (text == "draining") return NodeStatus::kDraining;
  if (text == "down") return NodeStatus::kDown;
  return std::nullopt;
}

}  // namespace mill::model
