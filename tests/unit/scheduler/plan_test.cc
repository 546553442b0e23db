#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "scheduler/scheduler.h"

namespace mill::scheduler {
namespace {

constexpr int64_t kMiB = 1024LL * 1024;
constexpr int64_t kGiB = 1024 * kMiB;

NodeView node(std::string id, double cpu, int64_t mem, double cpu_used = 0, int64_t mem_used = 0,
              int group = 0) {
  NodeView n;
  n.id = std::move(id);
  n.ready = true;
  n.cpu_total = cpu;
  n.memory_total = mem;
  n.cpu_reserved = cpu_used;
  n.memory_reserved = mem_used;
  n.group_allocations = group;
  return n;
}

GroupRequest group(int count, double cpu, int64_t mem, std::string volume_node = "") {
  GroupRequest r;
  r.group = "web";
  r.count = count;
  r.cpu = cpu;
  r.memory = mem;
  r.volume_node = std::move(volume_node);
  return r;
}

std::vector<std::string> nodes_of(const std::variant<Plan, Rejection>& r) {
  if (auto* p = std::get_if<Plan>(&r)) return p->nodes;
  ADD_FAILURE() << "rejected: " << std::get<Rejection>(r).message;
  return {};
}

Rejection rejection_of(const std::variant<Plan, Rejection>& r) {
  if (auto* rej = std::get_if<Rejection>(&r)) return *rej;
  ADD_FAILURE() << "planned " << std::get<Plan>(r).nodes.size() << " allocations";
  return {};
}

std::map<std::string, int> tally(const std::vector<std::string>& ids) {
  std::map<std::string, int> m;
  for (const auto& id : ids) ++m[id];
  return m;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// --- feasibility ---

TEST(Plan, ZeroAllocationsIsAnEmptyPlan) {
  EXPECT_TRUE(nodes_of(plan({}, group(0, 1, kGiB), 1)).empty());
}

TEST(Plan, NoReadyNodeIsNoNodes) {
  auto down = node("node-1", 8, 8 * kGiB);
  down.ready = false;
  auto draining = node("node-2", 8, 8 * kGiB);
  draining.draining = true;
  for (const auto& nodes : {std::vector<NodeView>{}, std::vector<NodeView>{down, draining}}) {
    auto r = rejection_of(plan(nodes, group(1, 0.1, kMiB), 1));
    EXPECT_EQ(r.reason, Rejection::Reason::kNoNodes);
    EXPECT_EQ(r.message, "no node is ready to take work");
    EXPECT_EQ(r.fits, 0);
  }
  EXPECT_EQ(nodes_of(plan({down, draining, node("node-3", 1, kGiB)}, group(2, 0.1, kMiB), 1)),
            (std::vector<std::string>{"node-3", "node-3"}));
}

TEST(Plan, CpuAndMemoryMustBothFit) {
  std::vector<NodeView> nodes{node("cpu-short", 4, 8 * kGiB, 3.5, 0),
                              node("mem-short", 4, 8 * kGiB, 0, 7 * kGiB + 1),
                              node("exact", 4, 8 * kGiB, 3, 7 * kGiB)};
  EXPECT_EQ(nodes_of(plan(nodes, group(1, 1, kGiB), 1)), (std::vector<std::string>{"exact"}));
}

TEST(Plan, CpuRoundingDoesNotRejectAnExactFit) {
  // 0.1 + 0.2 reserved of 0.6: 0.3 left, which must take 0.3.
  EXPECT_EQ(nodes_of(plan({node("n", 0.6, kGiB, 0.1 + 0.2)}, group(1, 0.3, 1), 1)).size(), 1u);
  // Three 0.1s on 0.3 cores.
  EXPECT_EQ(nodes_of(plan({node("n", 0.3, kGiB)}, group(3, 0.1, 1), 1)).size(), 3u);
}

TEST(Plan, EarlierPlacementsReserveRoom) {
  // Room for two of these on the one node: the third does not fit, so nothing is placed.
  auto r = rejection_of(plan({node("node-1", 2, 8 * kGiB)}, group(3, 1, kGiB), 1));
  EXPECT_EQ(r.reason, Rejection::Reason::kNoCapacity);
  EXPECT_EQ(r.fits, 2);
  EXPECT_EQ(r.message,
            "only 2 of the 3 allocations of group 'web' fit, each cpu 1 and memory 1024M (the "
            "most free on any ready node: cpu 2, memory 8192M)");
  // Memory is reserved the same way.
  EXPECT_EQ(rejection_of(plan({node("node-1", 64, 2 * kGiB)}, group(3, 0.1, kGiB), 1)).fits, 2);
}

TEST(Plan, NothingFitsSaysWhatWasAskedAndTheMostFree) {
  std::vector<NodeView> nodes{node("a", 4, 8 * kGiB, 3.5, 0), node("b", 2, 4 * kGiB, 0, 3 * kGiB)};
  auto r = rejection_of(plan(nodes, group(5, 1, 2 * kGiB), 1));
  EXPECT_EQ(r.reason, Rejection::Reason::kNoCapacity);
  EXPECT_EQ(r.fits, 0);
  EXPECT_EQ(r.message,
            "no node has room for cpu 1 and memory 2048M (the most free on any ready node: cpu 2, "
            "memory 8192M) (asked for 5)");
}

// Disk (each allocation's writable layer is a filesystem of its own) is reserved like
// memory on nodes that report it, and not counted on those that do not.
TEST(Plan, DiskIsReservedOnNodesThatReportIt) {
  NodeView a = node("a", 8, 16 * kGiB);
  a.disk_total = 3 * kGiB;
  a.disk_reserved = kGiB;
  NodeView unknown = node("b", 8, 16 * kGiB);  // disk_total stays unknown
  GroupRequest r = group(3, 0.1, 64 * kMiB);
  r.disk = kGiB;
  // Room on "a" for two disks of 1G; the third does not fit.
  auto rejected = rejection_of(plan({a}, r, 1));
  EXPECT_EQ(rejected.reason, Rejection::Reason::kNoCapacity);
  EXPECT_EQ(rejected.fits, 2);
  EXPECT_EQ(rejected.message,
            "only 2 of the 3 allocations of group 'web' fit, each cpu 0.1, memory 64M and disk "
            "1024M (the most free on any ready node: cpu 8, memory 16384M, disk 2048M)");
  // Where the disk is not known, placement goes by cpu and memory alone.
  EXPECT_EQ(tally(nodes_of(plan({a, unknown}, r, 1))).size(), 2u);
  EXPECT_EQ(nodes_of(plan({unknown}, r, 1)).size(), 3u);
  // A full disk turns away what cpu and memory would take.
  a.disk_reserved = 3 * kGiB;
  r.count = 1;
  auto full = rejection_of(plan({a}, r, 1));
  EXPECT_TRUE(contains(full.message, "disk 0M")) << full.message;
  auto single = place({a}, Request{0.1, 64 * kMiB, kGiB});
  ASSERT_TRUE(std::holds_alternative<Rejection>(single));
  EXPECT_TRUE(std::holds_alternative<Placement>(place({a}, Request{0.1, 64 * kMiB, 0})));
  r.disk = -1;
  EXPECT_EQ(rejection_of(plan({a}, r, 1)).reason, Rejection::Reason::kInvalidRequest);
}

TEST(Plan, OvercommittedNodeReportsNoNegativeRoom) {
  auto r = rejection_of(plan({node("a", 1, kGiB, 2, 2 * kGiB)}, group(1, 0.5, kMiB), 1));
  EXPECT_TRUE(contains(r.message, "cpu 0, memory 0M")) << r.message;
}

TEST(Plan, RejectsInvalidRequests) {
  std::vector<NodeView> nodes{node("a", 4, 8 * kGiB)};
  EXPECT_EQ(rejection_of(plan(nodes, group(-1, 1, kGiB), 1)).reason,
            Rejection::Reason::kInvalidRequest);
  // Zero-sized allocations fit any number of times: the count is bounded instead.
  auto huge = rejection_of(plan(nodes, group(kMaxCount + 1, 0, 0), 1));
  EXPECT_EQ(huge.reason, Rejection::Reason::kInvalidRequest);
  EXPECT_EQ(huge.message, "invalid placement request: count 1000001 (0 to 1000000)");
  EXPECT_EQ(rejection_of(plan(nodes, group(1, -1, kGiB), 1)).reason,
            Rejection::Reason::kInvalidRequest);
  EXPECT_EQ(rejection_of(plan(nodes, group(1, std::nan(""), kGiB), 1)).reason,
            Rejection::Reason::kInvalidRequest);
  EXPECT_EQ(rejection_of(plan(nodes, group(1, 1, -1), 1)).reason,
            Rejection::Reason::kInvalidRequest);
}

// --- scoring ---

TEST(Plan, SpreadsReplicasEvenly) {
  std::vector<NodeView> nodes{node("a", 16, 64 * kGiB), node("b", 16, 64 * kGiB),
                              node("c", 16, 64 * kGiB)};
  auto counts = tally(nodes_of(plan(nodes, group(7, 1, kGiB), 1)));
  EXPECT_EQ(counts.size(), 3u);
  for (const auto& [id, n] : counts) EXPECT_TRUE(n == 2 || n == 3) << id << ": " << n;
}

TEST(Plan, SpreadCountsReplicasAlreadyRunning) {
  std::vector<NodeView> nodes{node("a", 16, 64 * kGiB, 0, 0, 3), node("b", 16, 64 * kGiB, 0, 0, 1),
                              node("c", 16, 64 * kGiB)};
  // 1 to c (0 -> 1), then b and c up to 3 each: a gets nothing until then.
  auto counts = tally(nodes_of(plan(nodes, group(5, 1, kGiB), 1)));
  EXPECT_EQ(counts, (std::map<std::string, int>{{"b", 2}, {"c", 3}}));
}

TEST(Plan, BestFitAmongEquallySpreadNodes) {
  auto fuller = node("fuller", 4, 8 * kGiB, 3, 4 * kGiB);
  auto empty = node("empty", 4, 8 * kGiB);
  EXPECT_EQ(nodes_of(plan({empty, fuller}, group(1, 0.5, kGiB), 1)),
            (std::vector<std::string>{"fuller"}));
  // Spread comes before fit: the second replica goes to the emptier node.
  EXPECT_EQ(nodes_of(plan({empty, fuller}, group(2, 0.5, kGiB), 1)),
            (std::vector<std::string>{"fuller", "empty"}));
  // Best fit is relative to the node's size: 1 core left of 64 beats 1 of 2.
  auto big = node("big", 64, 64 * kGiB, 62, 62 * kGiB);
  auto small = node("small", 2, 2 * kGiB);
  EXPECT_EQ(nodes_of(plan({small, big}, group(1, 1, kGiB), 1)), (std::vector<std::string>{"big"}));
}

TEST(Plan, SameSeedSamePlanWhateverTheInputOrder) {
  std::vector<NodeView> nodes;
  for (int i = 0; i < 20; ++i) nodes.push_back(node("node-" + std::to_string(i), 4, 8 * kGiB));
  auto first = nodes_of(plan(nodes, group(30, 0.5, kGiB), 42));
  std::reverse(nodes.begin(), nodes.end());
  EXPECT_EQ(nodes_of(plan(nodes, group(30, 0.5, kGiB), 42)), first);
}

TEST(Plan, OtherSeedsMayPickOtherEqualNodes) {
  std::vector<NodeView> nodes;
  for (int i = 0; i < 10; ++i) nodes.push_back(node("node-" + std::to_string(i), 4, 8 * kGiB));
  std::set<std::string> firsts;
  for (uint64_t seed = 0; seed < 32; ++seed) {
    firsts.insert(nodes_of(plan(nodes, group(1, 1, kGiB), seed)).front());
  }
  EXPECT_GE(firsts.size(), 5u);
}

TEST(Plan, APlanOfOnePicksWhatALongerPlanPicksFirst) {
  std::vector<NodeView> nodes;
  for (int i = 0; i < 10; ++i) nodes.push_back(node("node-" + std::to_string(i), 4, 8 * kGiB));
  nodes.push_back(node("fuller", 4, 8 * kGiB, 1, 0));
  nodes.push_back(node("fuller-too", 4, 8 * kGiB, 1, 0));
  for (uint64_t seed = 0; seed < 32; ++seed) {
    auto first = nodes_of(plan(nodes, group(1, 1, kGiB), seed)).front();
    EXPECT_TRUE(first == "fuller" || first == "fuller-too") << first;
    EXPECT_EQ(first, nodes_of(plan(nodes, group(5, 1, kGiB), seed)).front()) << seed;
  }
}

// --- volume pin ---

TEST(Plan, VolumePinPlacesOnlyOnThatNode) {
  std::vector<NodeView> nodes{node("big", 64, 64 * kGiB), node("vol", 4, 8 * kGiB, 1, 0)};
  EXPECT_EQ(nodes_of(plan(nodes, group(3, 1, kGiB, "vol"), 1)),
            (std::vector<std::string>{"vol", "vol", "vol"}));
}

TEST(Plan, VolumePinRejectsWhenThePinnedNodeCannotTakeIt) {
  auto down = node("down", 4, 8 * kGiB);
  down.ready = false;
  auto draining = node("draining", 4, 8 * kGiB);
  draining.draining = true;
  std::vector<NodeView> nodes{node("big", 64, 64 * kGiB), down, draining,
                              node("small", 2, 8 * kGiB, 0.5, 0)};
  struct Case {
    std::string pin;
    std::string message;
    int fits;
  } cases[] = {
      {"gone", "the volume of group 'web' is on node gone, which is not in the cluster", 0},
      {"down", "the volume of group 'web' is on node down, which is down", 0},
      {"draining", "the volume of group 'web' is on node draining, which is draining", 0},
      {"small",
       "the volume of group 'web' is on node small, which has room for only 1 of the 2 "
       "allocations of cpu 1 and memory 1024M (free there: cpu 1.5, memory 8192M)",
       1},
  };
  for (const auto& c : cases) {
    auto r = rejection_of(plan(nodes, group(2, 1, kGiB, c.pin), 1));
    EXPECT_EQ(r.reason, Rejection::Reason::kVolumePinned) << c.pin;
    EXPECT_EQ(r.message, c.message);
    EXPECT_EQ(r.fits, c.fits) << c.pin;
  }
}

// --- properties over random clusters ---

struct Cluster {
  std::vector<NodeView> nodes;
  GroupRequest request;
};

Cluster random_cluster(std::mt19937_64& rng, bool ample) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  static const double kCpus[] = {1, 2, 4, 8, 16, 0.5};
  static const double kAsks[] = {0, 0.1, 0.25, 0.5, 1, 2, 3};
  Cluster c;
  int n = 1 + pick(40);
  for (int i = 0; i < n; ++i) {
    double cpu = kCpus[pick(6)];
    int64_t mem = (1 + pick(32)) * 512 * kMiB;
    auto v = node("node-" + std::to_string(pick(1000)) + "-" + std::to_string(i), cpu, mem);
    if (!ample) {
      v.ready = pick(10) != 0;
      v.draining = pick(10) == 0;
      v.cpu_reserved = cpu * pick(5) / 4.0;  // up to overcommitted
      v.memory_reserved = mem * pick(5) / 4;
      v.group_allocations = pick(4);
    }
    c.nodes.push_back(v);
  }
  c.request = group(pick(80), kAsks[pick(7)], pick(4) * 128 * kMiB);
  if (ample) {
    c.request.cpu = 0.001;
    c.request.memory = kMiB;
    c.request.count = pick(200);
  }
  if (!ample && pick(8) == 0) c.request.volume_node = c.nodes[pick(n)].id;
  return c;
}

double cpu_free(const NodeView& n, const GroupRequest& r, int placed) {
  return n.cpu_total - n.cpu_reserved - placed * r.cpu;
}
int64_t memory_free(const NodeView& n, const GroupRequest& r, int placed) {
  return n.memory_total - n.memory_reserved - placed * r.memory;
}
bool feasible(const NodeView& n, const GroupRequest& r, int placed) {
  if (!n.ready || n.draining) return false;
  if (!r.volume_node.empty() && n.id != r.volume_node) return false;
  return cpu_free(n, r, placed) + 1e-9 >= r.cpu && memory_free(n, r, placed) >= r.memory;
}
double leftover(const NodeView& n, const GroupRequest& r, int placed) {
  return (cpu_free(n, r, placed) - r.cpu) / n.cpu_total +
         static_cast<double>(memory_free(n, r, placed) - r.memory) /
             static_cast<double>(n.memory_total);
}

// How many of the request the whole cluster can hold, one node at a time.
int capacity(const Cluster& c) {
  int total = 0;
  for (const auto& n : c.nodes) {
    int k = 0;
    while (total + k < c.request.count && feasible(n, c.request, k)) ++k;
    total += k;
  }
  return total;
}

TEST(PlanProperty, NeverOvercommitsNeverOverplacesAndPicksTheBestKey) {
  std::mt19937_64 rng(20261128);
  int planned = 0, rejected = 0;
  for (int iteration = 0; iteration < 2000; ++iteration) {
    Cluster c = random_cluster(rng, false);
    const auto& r = c.request;
    uint64_t seed = rng();
    auto result = plan(c.nodes, r, seed);
    int cap = capacity(c);
    if (auto* rej = std::get_if<Rejection>(&result)) {
      ++rejected;
      EXPECT_LT(cap, r.count) << iteration << ": " << rej->message;
      EXPECT_EQ(rej->fits, cap) << iteration << ": " << rej->message;
      continue;
    }
    ++planned;
    const auto& ids = std::get<Plan>(result).nodes;
    ASSERT_EQ(static_cast<int>(ids.size()), r.count) << iteration;  // never more than asked
    std::map<std::string, int> placed;
    for (const auto& id : ids) {
      // Replay: the chosen node is feasible and has the least (group count, leftover).
      const NodeView* chosen = nullptr;
      int best_group = std::numeric_limits<int>::max();
      double best_left = 0;
      for (const auto& n : c.nodes) {
        if (!feasible(n, r, placed[n.id])) continue;
        int g = n.group_allocations + placed[n.id];
        double left = leftover(n, r, placed[n.id]);
        if (g < best_group || (g == best_group && left < best_left)) {
          best_group = g;
          best_left = left;
        }
        if (n.id == id) chosen = &n;
      }
      ASSERT_NE(chosen, nullptr) << iteration << ": " << id << " was not feasible";
      EXPECT_EQ(chosen->group_allocations + placed[id], best_group) << iteration;
      EXPECT_NEAR(leftover(*chosen, r, placed[id]), best_left, 1e-12) << iteration;
      ++placed[id];
    }
    for (const auto& n : c.nodes) {
      int k = placed[n.id];
      if (k == 0) continue;
      EXPECT_LE(n.cpu_reserved + k * r.cpu, n.cpu_total + 1e-6) << iteration << " " << n.id;
      EXPECT_LE(n.memory_reserved + k * r.memory, n.memory_total) << iteration << " " << n.id;
    }
    // Same seed, same plan (and the input order does not matter).
    EXPECT_EQ(nodes_of(plan(c.nodes, r, seed)), ids) << iteration;
    // A plan of one (a single pass, no heap) picks what a longer plan picks first.
    if (!ids.empty()) {
      GroupRequest one = r;
      one.count = 1;
      EXPECT_EQ(nodes_of(plan(c.nodes, one, seed)).front(), ids.front()) << iteration;
    }
    std::shuffle(c.nodes.begin(), c.nodes.end(), rng);
    EXPECT_EQ(nodes_of(plan(c.nodes, r, seed)), ids) << iteration;
  }
  // The generator must exercise both outcomes.
  EXPECT_GT(planned, 200);
  EXPECT_GT(rejected, 200);
}

TEST(PlanProperty, SpreadIsWithinOneOfEvenWhenCapacityAllows) {
  std::mt19937_64 rng(7);
  for (int iteration = 0; iteration < 500; ++iteration) {
    Cluster c = random_cluster(rng, true);
    auto ids = nodes_of(plan(c.nodes, c.request, rng()));
    ASSERT_EQ(static_cast<int>(ids.size()), c.request.count);
    auto counts = tally(ids);
    int most = 0, least = std::numeric_limits<int>::max();
    for (const auto& n : c.nodes) {
      most = std::max(most, counts[n.id]);
      least = std::min(least, counts[n.id]);
    }
    EXPECT_LE(most - least, 1) << iteration << ": " << c.nodes.size() << " nodes, "
                               << c.request.count << " allocations";
  }
}

}  // namespace
}  // namespace mill::scheduler
