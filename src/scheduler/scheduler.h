#pragma once

// Placement (DESIGN.md "Allocations and the scheduler"): a pure function of a cluster
// snapshot and a request. No I/O, no clock, no randomness, so it is unit-tested and
// benchmarked on its own; the leader builds the snapshot and commits the result.

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace mill::scheduler {

struct NodeView {
  std::string id;
  bool ready = false;     // heartbeating
  bool draining = false;  // takes no new allocations
  double cpu_total = 0;
  int64_t memory_total = 0;
  double cpu_reserved = 0;      // sum over the node's live allocations
  int64_t memory_reserved = 0;  // sum over the node's live allocations
  int group_allocations = 0;    // live allocations of the request's group (spread)
};

struct Request {
  double cpu = 0;
  int64_t memory = 0;
};

struct Placement {
  std::string node;
};

// Why nothing fits. kNoNodes: no node could take work at all (none ready); kNoCapacity:
// nodes are there but none has room for this request.
struct Rejection {
  enum class Reason { kNoNodes, kNoCapacity } reason;
  std::string message;  // for people: what was asked and the most any node has free
};

// Feasible: ready, not draining, free cpu and memory >= the request. Among those,
// fewest allocations of the same group first (spread), then the least room left
// after placing (best fit), then the node id (deterministic).
std::variant<Placement, Rejection> place(const std::vector<NodeView>& nodes,
                                         const Request& request);

}  // namespace mill::scheduler
