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

// A machine's capacity and what is free on it right now, as its agent measured it
// (what its processes use, whoever started them; not what placement counts: that is
// allocatable_cpu() and allocatable_memory() below).
struct Resources {
  double cpu_total = 0;          // cores
  double cpu_available = 0;      // cores idle over the last sample
  int64_t memory_total = 0;      // bytes
  int64_t memory_available = 0;  // bytes (the kernel's MemAvailable)
  // Room for its allocations' disks: what is free on the filesystem of its data dir,
  // plus what the disks there already hold, less a reserve (agent/machine.h). -1: not
  // reported (then placement does not count disk on the node).
  int64_t disk_total = -1;
  int64_t disk_available = 0;  // bytes free on that filesystem

  bool operator==(const Resources&) const = default;
};

// What a node's live allocations reserve (their specs' cpu and memory, summed), and
// how many there are: the figures placement counts against the node's capacity.
struct NodeLoad {
  int allocations = 0;
  double cpu = 0;      // cores
  int64_t memory = 0;  // bytes
  int64_t disk = 0;    // bytes

  bool operator==(const NodeLoad&) const = default;
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
  // Its live allocations and their reservations (filled in by who lists nodes, from
  // the same sums placement uses: server::AllocTable::load_per_node).
  NodeLoad load;
  SystemTime registered_at{};
  std::optional<SystemTime> last_heartbeat;
  // How long ago that was, as the server's clock saw it when it listed the node.
  std::optional<std::chrono::milliseconds> since_heartbeat = {};
  std::string version = {};  // the Mill version its agent last registered with
  // Which /24 of the cluster network is its (model::node_subnet): the lowest one free
  // when it first registered; a removed node's goes back to the pool.
  int subnet = 0;
};

// Whether placement may put new allocations on it: heard from, and not draining.
bool takes_allocations(const Node& node);

// Allocatable: what placement can still give out on the node, its capacity minus the
// reservations of its live allocations (negative when they exceed it); 0 on a node that
// takes no new allocations (down or draining). The scheduler's free figure for a node
// before a plan's own placements, and what the API, the CLI and the metrics
// (mill_node_cpu_available, mill_node_memory_available_bytes) call allocatable.
double allocatable_cpu(const Node& node);
int64_t allocatable_memory(const Node& node);
// The same for disk; -1 when the node does not report its disk (not counted).
int64_t allocatable_disk(const Node& node);

// Used: what the machine's processes use, as its agent last measured it (busy cores
// over its last heartbeat interval; MemTotal minus MemAvailable), whoever started them;
// 0 for a down node (nothing measured lately).
double used_cpu(const Node& node);
int64_t used_memory(const Node& node);

// Cores to a millionth, for showing: sums and differences of decimal figures (0.1 + 0.2)
// print as 0.3, not 0.30000000000000004.
double round_cores(double cores);

}  // namespace mill::model
