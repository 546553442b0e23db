#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace mill::model {

// kDrained: draining, and nothing is left on it (it may be removed).
enum class NodeStatus { kReady, kDraining, kDrained, kDown };

std::string_view to_string(NodeStatus status);
std::optional<NodeStatus> parse_node_status(std::string_view text);

// "node-3" -> 3: the number in a node id as the server assigns them, which picks the
// node's /24 of the cluster network (ipv4.h). nullopt for any other id ("node-03",
// "node-x", "web"), so two ids never share a number.
std::optional<int> node_index(std::string_view id);

// A machine's capacity and what is free on it right now, as its agent measured it.
struct Resources {
  double cpu_total = 0;          // cores
  double cpu_available = 0;      // cores idle over the last sample
  int64_t memory_total = 0;      // bytes
  int64_t memory_available = 0;  // bytes (the kernel's MemAvailable)

  bool operator==(const Resources&) const = default;
};

struct Node {
  std::string id;       // "node-1", assigned by the server at first registration
  std::string name;     // the machine's host name
  std::string address;  // the address other nodes and clients reach it on
  NodeStatus status = NodeStatus::kDown;
  bool draining = false;  // persisted; status shows kDraining while set
  // A drain's deadline for the node's tasks (then they are killed); persisted.
  std::optional<SystemTime> drain_deadline;
  // A forced drain (persisted): what cannot move is stopped at the deadline too.
  bool drain_force = false;
  // While draining: what is left on it (filled in by who lists nodes).
  int drain_services = 0;
  int drain_tasks = 0;
  Resources resources;
  int allocations = 0;
  SystemTime registered_at{};
  std::optional<SystemTime> last_heartbeat;
  // How long ago that was, as the server's clock saw it when it listed the node.
  std::optional<std::chrono::milliseconds> since_heartbeat = {};
  std::string version = {};  // the Mill version its agent last registered with
  // Which /24 of the cluster network is its (model::node_subnet): the lowest one free
  // when it first registered; a removed node's goes back to the pool.
  int subnet = 0;
};

}  // namespace mill::model
