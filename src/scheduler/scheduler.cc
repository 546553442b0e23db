#include "scheduler/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

namespace mill::scheduler {

namespace {

// Cores are doubles: allow this much rounding so 0.1 + 0.2 cores still fits in 0.3.
constexpr double kCpuEpsilon = 1e-9;

std::string cores(double cpu) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", cpu);
  return buf;
}

std::string mib(int64_t bytes) { return std::to_string(bytes / (1024 * 1024)) + "M"; }

// splitmix64's finalizer.
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A hash of the seed and the id, eight bytes at a time: the tie-break depends on the
// node's id, not its place in the snapshot. `seeded` is mix(seed + constant), once per plan.
uint64_t tie_break(uint64_t seeded, std::string_view id) {
  uint64_t h = seeded ^ id.size();
  size_t i = 0;
  for (; i + 8 <= id.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, id.data() + i, 8);
    h = mix(h ^ word);
  }
  uint64_t tail = 0;
  for (; i < id.size(); ++i) tail = (tail << 8) | static_cast<unsigned char>(id[i]);
  return mix(h ^ tail);
}

// A node that may take more of the request, and what this plan has put on it so far.
struct Candidate {
  const NodeView* node;
  int placed = 0;
};

// Lower is better; a placement only ever raises a node's key (its group count grows).
struct Key {
  int group_count;
  double leftover;  // cpu share + memory share left after one more placement
  uint64_t tie;
  uint32_t candidate;
};

// Without the tie-break: what spread and best fit say.
bool score_less(const Key& a, const Key& b) {
  if (a.group_count != b.group_count) return a.group_count < b.group_count;
  return a.leftover < b.leftover;
}
bool score_equal(const Key& a, const Key& b) {
  return a.group_count == b.group_count && a.leftover == b.leftover;
}

bool operator<(const Key& a, const Key& b) {
  if (!score_equal(a, b)) return score_less(a, b);
  if (a.tie != b.tie) return a.tie < b.tie;
  return a.candidate < b.candidate;
}

// std::*_heap keep the greatest on top; we want the least key. A type, not a function,
// so the heap's comparisons inline.
struct Worse {
  bool operator()(const Key& a, const Key& b) const { return b < a; }
};

class Planner {
 public:
  Planner(const GroupRequest& request, uint64_t seed)
      : request_(request), seeded_(mix(seed + 0x9e3779b97f4a7c15ULL)) {}

  double cpu_free(const Candidate& c) const {
    // Not accumulated: the rounding error stays that of one multiplication.
    return c.node->cpu_total - c.node->cpu_reserved - c.placed * request_.cpu;
  }
  int64_t memory_free(const Candidate& c) const {
    return c.node->memory_total - c.node->memory_reserved - c.placed * request_.memory;
  }
  // Meaningful where the node's disk_total is known (>= 0).
  int64_t disk_free(const Candidate& c) const {
    return c.node->disk_total - c.node->disk_reserved - c.placed * request_.disk;
  }
  bool fits(const Candidate& c) const {
    return cpu_free(c) + kCpuEpsilon >= request_.cpu && memory_free(c) >= request_.memory &&
           (c.node->disk_total < 0 || disk_free(c) >= request_.disk);
  }
  uint64_t tie(const Candidate& c) const { return tie_break(seeded_, c.node->id); }
  Key key(const Candidate& c, uint32_t index, uint64_t tie) const {
    const NodeView& n = *c.node;
    double cpu_left = n.cpu_total > 0 ? (cpu_free(c) - request_.cpu) / n.cpu_total : 0;
    double mem_left = n.memory_total > 0 ? static_cast<double>(memory_free(c) - request_.memory) /
                                               static_cast<double>(n.memory_total)
                                         : 0;
    return Key{n.group_allocations + c.placed, cpu_left + mem_left, tie, index};
  }

  // Fills `out` with up to count node ids; returns how many were placed.
  int run(std::vector<Candidate>& candidates, std::vector<std::string>& out) const {
    if (request_.count == 1) return run_one(candidates, out);
    std::vector<Key> heap;
    heap.reserve(candidates.size());
    for (uint32_t i = 0; i < candidates.size(); ++i) {
      heap.push_back(key(candidates[i], i, tie(candidates[i])));
    }
    std::make_heap(heap.begin(), heap.end(), Worse());
    int placed = 0;
    while (placed < request_.count && !heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), Worse());
      Key& top = heap.back();
      Candidate& c = candidates[top.candidate];
      out.push_back(c.node->id);
      ++placed;
      ++c.placed;
      if (fits(c)) {
        top = key(c, top.candidate, top.tie);
        std::push_heap(heap.begin(), heap.end(), Worse());
      } else {
        heap.pop_back();
      }
    }
    return placed;
  }

 private:
  // The same choice without a heap, in one pass (place(): single spawns). The hash is
  // only worked out for nodes that tie with the best so far on spread and fit.
  int run_one(const std::vector<Candidate>& candidates, std::vector<std::string>& out) const {
    if (candidates.empty()) return 0;
    Key best = key(candidates[0], 0, 0);
    bool best_tie_known = false;
    for (uint32_t i = 1; i < candidates.size(); ++i) {
      Key k = key(candidates[i], i, 0);
      if (score_less(best, k)) continue;
      if (score_equal(best, k)) {
        if (!best_tie_known) best.tie = tie(candidates[best.candidate]);
        best_tie_known = true;
        k.tie = tie(candidates[i]);
        if (!(k < best)) continue;
      } else {
        best_tie_known = false;
      }
      best = k;
    }
    out.push_back(candidates[best.candidate].node->id);
    return 1;
  }

  const GroupRequest& request_;
  uint64_t seeded_;
};

// "cpu 0.5 and memory 512M", "cpu 0.5, memory 512M and disk 1024M"
std::string asked(const GroupRequest& r) {
  if (r.disk == 0) return "cpu " + cores(r.cpu) + " and memory " + mib(r.memory);
  return "cpu " + cores(r.cpu) + ", memory " + mib(r.memory) + " and disk " + mib(r.disk);
}

// What is free on the node with the most of each; disk when the request asks for it and
// a node said what it has.
struct MostFree {
  double cpu = 0;
  int64_t memory = 0;
  std::optional<int64_t> disk;
};

std::string free_text(const MostFree& f) {
  std::string out =
      "cpu " + cores(std::max(0.0, f.cpu)) + ", memory " + mib(std::max<int64_t>(0, f.memory));
  if (f.disk) out += ", disk " + mib(std::max<int64_t>(0, *f.disk));
  return out;
}

std::string of_group(const GroupRequest& r) {
  return r.group.empty() ? std::string() : " of group '" + r.group + "'";
}

// Scans the snapshot once: the feasible candidates, and what a rejection would report.
struct Survey {
  std::vector<Candidate> candidates;
  bool any_ready = false;            // ready and not draining, among the nodes considered
  MostFree most;                     // the most free on any of those
  const NodeView* pinned = nullptr;  // the volume node, if pinned and present
};

Survey survey(const std::vector<NodeView>& nodes, const GroupRequest& request,
              const Planner& planner) {
  Survey s;
  s.candidates.reserve(request.volume_node.empty() ? nodes.size() : 1);
  for (const auto& n : nodes) {
    if (!request.volume_node.empty()) {
      if (n.id != request.volume_node) continue;
      s.pinned = &n;
    }
    if (!n.ready || n.draining) continue;
    Candidate c{&n, 0};
    double cpu_free = planner.cpu_free(c);
    int64_t memory_free = planner.memory_free(c);
    if (!s.any_ready || cpu_free > s.most.cpu) s.most.cpu = cpu_free;
    if (!s.any_ready || memory_free > s.most.memory) s.most.memory = memory_free;
    if (request.disk > 0 && n.disk_total >= 0) {
      int64_t disk_free = planner.disk_free(c);
      if (!s.most.disk || disk_free > *s.most.disk) s.most.disk = disk_free;
    }
    s.any_ready = true;
    if (planner.fits(c)) s.candidates.push_back(c);
  }
  return s;
}

Rejection reject_pinned(const Survey& s, const GroupRequest& r, int placed) {
  std::string head = (r.group.empty() ? std::string("the request's volume")
                                      : "the volume of group '" + r.group + "'") +
                     " is on node " + r.volume_node;
  auto reason = Rejection::Reason::kVolumePinned;
  if (!s.pinned) return {reason, head + ", which is not in the cluster", 0};
  if (!s.pinned->ready) return {reason, head + ", which is down", 0};
  if (s.pinned->draining) return {reason, head + ", which is draining", 0};
  return {reason,
          head + ", which has room for only " + std::to_string(placed) + " of the " +
              std::to_string(r.count) + " allocations of " + asked(r) +
              " (free there: " + free_text(s.most) + ")",
          placed};
}

Rejection reject(const Survey& s, const GroupRequest& r, int placed) {
  if (!r.volume_node.empty()) return reject_pinned(s, r, placed);
  if (!s.any_ready) return {Rejection::Reason::kNoNodes, "no node is ready to take work", 0};
  std::string most = " (the most free on any ready node: " + free_text(s.most) + ")";
  if (placed == 0) {
    std::string many = r.count > 1 ? " (asked for " + std::to_string(r.count) + ")" : "";
    return {Rejection::Reason::kNoCapacity, "no node has room for " + asked(r) + most + many, 0};
  }
  return {Rejection::Reason::kNoCapacity,
          "only " + std::to_string(placed) + " of the " + std::to_string(r.count) + " allocations" +
              of_group(r) + " fit, each " + asked(r) + most,
          placed};
}

std::variant<Plan, Rejection> invalid(std::string what) {
  return Rejection{Rejection::Reason::kInvalidRequest, "invalid placement request: " + what, 0};
}

}  // namespace

std::variant<Plan, Rejection> plan(const std::vector<NodeView>& nodes, const GroupRequest& request,
                                   uint64_t seed) {
  if (request.count < 0 || request.count > kMaxCount) {
    return invalid("count " + std::to_string(request.count) + " (0 to " +
                   std::to_string(kMaxCount) + ")");
  }
  if (!std::isfinite(request.cpu) || request.cpu < 0) return invalid("cpu " + cores(request.cpu));
  if (request.memory < 0) return invalid("memory " + std::to_string(request.memory));
  if (request.disk < 0) return invalid("disk " + std::to_string(request.disk));

  Planner planner(request, seed);
  Survey s = survey(nodes, request, planner);
  Plan result;
  // Not all of count up front: a request that will not fit should not allocate for it.
  result.nodes.reserve(std::min<size_t>(request.count, s.candidates.size()));
  int placed = planner.run(s.candidates, result.nodes);
  if (placed < request.count) return reject(s, request, placed);
  return result;
}

std::variant<Placement, Rejection> place(const std::vector<NodeView>& nodes, const Request& request,
                                         uint64_t seed) {
  GroupRequest one;
  one.count = 1;
  one.cpu = request.cpu;
  one.memory = request.memory;
  one.disk = request.disk;
  auto planned = plan(nodes, one, seed);
  if (auto* r = std::get_if<Rejection>(&planned)) return std::move(*r);
  return Placement{std::move(std::get<Plan>(planned).nodes.front())};
}

}  // namespace mill::scheduler
