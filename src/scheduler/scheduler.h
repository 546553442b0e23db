#pragma once

// Placement (DESIGN.md "Allocations and the scheduler"): a pure function of a cluster
// snapshot, a request and a seed. No I/O, no clock, no randomness it does not take as
// input, so it is unit-tested and benchmarked on its own; the leader builds the snapshot
// under its placement lock and commits the result.

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
  // Bytes the node has for its allocations' disks; negative: not known, not counted
  // (an agent that does not say).
  int64_t disk_total = -1;
  int64_t disk_reserved = 0;  // sum over the node's live allocations
  int group_allocations = 0;  // live allocations of the request's group (spread)
};

// One allocation of cpu cores, memory bytes and disk bytes (place()).
struct Request {
  double cpu = 0;
  int64_t memory = 0;
  int64_t disk = 0;
};

// The most allocations one plan places: a bound on its memory (a zero-sized request fits
// any number of times), far above any real deploy.
inline constexpr int kMaxCount = 1'000'000;

// `count` allocations of one group, each of `cpu` cores and `memory` bytes.
struct GroupRequest {
  std::string group;  // for messages; its live allocations are NodeView::group_allocations
  int count = 1;
  double cpu = 0;
  int64_t memory = 0;
  int64_t disk = 0;  // counted only on nodes whose disk_total is known
  // Non-empty: the group's volume lives on this node, so every allocation must land
  // there; no other node is considered.
  std::string volume_node;
};

struct Placement {
  std::string node;
};

// A plan for a GroupRequest: the node id of each allocation, in placement order
// (`nodes.size() == count`; a node appears once per allocation it takes).
struct Plan {
  std::vector<std::string> nodes;
};

// Why the request does not fit.
//   kNoNodes: no node can take work at all (none ready and not draining).
//   kNoCapacity: nodes are there, but they cannot hold all of the request.
//   kVolumePinned: the pinned volume node is unknown, down, draining or too full.
//   kInvalidRequest: count outside 0..kMaxCount, negative cpu, memory or disk, or a cpu that
//     is not a number.
struct Rejection {
  enum class Reason { kNoNodes, kNoCapacity, kVolumePinned, kInvalidRequest } reason;
  std::string message;  // for people: what was asked and the most any node has free
  int fits = 0;         // how many of the requested allocations would have fit
};

// Plans all of `request.count` allocations or none (a deploy wants all-or-nothing):
// if only some fit, the result is a Rejection whose `fits` says how many would have.
//
// Feasible: ready, not draining, free cpu, memory and (where known) disk (total minus
// reserved minus what this plan already put there) >= the request, and the volume node
// if one is pinned. Disk does not weigh in the choice among feasible nodes.
// Among feasible nodes, each allocation goes to the one with, in order:
//   1. the fewest allocations of the group (group_allocations plus this plan's), so
//      replicas spread and end within one of even while capacity allows;
//   2. the least room left after placing it (cpu share + memory share): best fit;
//   3. the lowest hash of (seed, node id): same seed, same plan; other seeds may pick
//      other nodes among equal ones. The input order of `nodes` does not matter.
// O(n + count * log n) for n nodes: the candidates live in a heap on that key, and a
// placement changes only the key of the node it lands on.
std::variant<Plan, Rejection> plan(const std::vector<NodeView>& nodes, const GroupRequest& request,
                                   uint64_t seed);

// One allocation: plan() with count 1 and no volume pin.
std::variant<Placement, Rejection> place(const std::vector<NodeView>& nodes, const Request& request,
                                         uint64_t seed = 0);

}  // namespace mill::scheduler
