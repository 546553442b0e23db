// The pure rollout, driven over random clusters: random replica counts, surges,
// allocations that become healthy late, never, or crash, placements that fail, stops
// that take a while. After every step its state goes through the deploy record's
// codec and the next step starts from the decoded copy, as a restarted server would.

#include "server/rollout.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "server/deploy_record.h"

namespace mill::server {
namespace {

using namespace std::chrono_literals;

// One allocation of the simulated cluster.
struct SimAlloc {
  bool target = false;    // runs the spec being rolled out
  bool original = false;  // was there when the rollout began
  bool healthy = false;
  bool up = false;
  bool ended = false;
  bool told_to_stop = false;
  int healthy_in = -1;  // steps until healthy; -1: never
  int fail_in = -1;     // steps until it crashes; -1: never
  int end_in = 0;       // after a stop: steps until it has ended
};

struct Sim {
  std::mt19937 rng;
  std::map<std::string, SimAlloc> allocs;
  int next_id = 0;
  double bad = 0;  // chance that a new allocation never becomes healthy or crashes

  explicit Sim(uint32_t seed) : rng(seed) {}
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

  std::string add(bool target, bool original) {
    std::string id = "a" + std::to_string(next_id++);
    SimAlloc a;
    a.target = target;
    a.original = original;
    if (original) {
      a.up = a.healthy = true;
    } else if (chance(bad)) {
      if (chance(0.5)) a.fail_in = pick(0, 3);  // else it never becomes healthy
    } else {
      a.healthy_in = pick(0, 4);
    }
    allocs[id] = a;
    return id;
  }

  void tick() {
    for (auto& [id, a] : allocs) {
      if (a.ended) continue;
      if (a.told_to_stop) {
        if (a.end_in-- <= 0) a.ended = true, a.healthy = a.up = false;
        continue;
      }
      a.up = true;
      if (a.fail_in == 0) a.ended = true, a.healthy = a.up = false;
      if (a.fail_in > 0) --a.fail_in;
      if (a.healthy_in == 0) a.healthy = true;
      if (a.healthy_in > 0) --a.healthy_in;
    }
  }

  AllocsSeen seen(const std::vector<std::string>& ids) const {
    AllocsSeen out;
    for (const auto& id : ids) {
      const auto& a = allocs.at(id);
      AllocSeen s;
      s.ended = a.ended;
      s.up = a.up;
      s.healthy = a.healthy;
      if (a.ended && !a.told_to_stop) s.failure = "container exited with code 1";
      s.waiting = "not healthy (still running)";
      out[id] = s;
    }
    return out;
  }

  int serving() const {
    int n = 0;
    for (const auto& [id, a] : allocs) n += a.healthy && !a.told_to_stop && !a.ended;
    return n;
  }
  int running() const {
    int n = 0;
    for (const auto& [id, a] : allocs) n += !a.told_to_stop && !a.ended;
    return n;
  }
  int alive() const {  // not ended yet, told to stop or not: what may hold a volume
    int n = 0;
    for (const auto& [id, a] : allocs) n += !a.ended;
    return n;
  }
};

AllocSeen ended() {
  AllocSeen s;
  s.ended = true;
  return s;
}
AllocSeen up() {
  AllocSeen s;
  s.up = true;
  return s;
}
AllocSeen healthy() {
  AllocSeen s = up();
  s.healthy = true;
  return s;
}
AllocSeen waiting(std::string why) {
  AllocSeen s = up();
  s.waiting = std::move(why);
  return s;
}

// The state as a resuming server reads it back from the record.
Rollout::State through_record(const Rollout::State& s) {
  DeployRecord r;
  r.id = "d-test";
  r.status = "running";
  r.progress.stage = "rolling";
  r.progress.rollout = s;
  auto back = decode_record(encode_record(r));
  EXPECT_TRUE(back && back->progress.rollout);
  return back && back->progress.rollout ? *back->progress.rollout : s;
}

// Start-first: never fewer serving than at the start, never more running than the
// surge allows. Stop-first: at most one short of that, and never more alive (stopped
// but not yet ended included) than at the start or than wanted: no two allocations on
// one volume beyond what was already there.
void expect_rollouts_hold(bool stop_first) {
  int done = 0, failed = 0, rolled_back = 0;
  for (uint32_t seed = 1; seed <= 3000; ++seed) {
    Sim sim(seed);
    sim.bad = std::array<double, 4>{0, 0.1, 0.3, 0.7}[seed % 4];
    RolloutLimits limits;
    limits.want = sim.pick(1, 5);
    limits.parallel = sim.pick(1, 3);
    limits.deadline = 6s;
    limits.stop_wait = 100s;
    limits.stop_first = stop_first;
    const int start = sim.pick(0, 6);
    const bool force = sim.chance(0.2);
    const bool same = !force && sim.chance(0.3);
    std::vector<std::pair<std::string, bool>> current;
    for (int i = 0; i < start; ++i) current.emplace_back(sim.add(same, true), same);
    const double place_fails = sim.chance(0.2) ? 0.2 : 0;

    Rollout rollout(limits, current, force);
    const int floor = std::max(0, std::min(start, limits.want) - (stop_first ? 1 : 0));
    const int ceiling = std::max(start, limits.want) + (stop_first ? 0 : limits.parallel);
    int fresh_healthy_seen = 0;
    std::set<std::string> counted;
    SystemTime now = SystemTime(std::chrono::seconds(1'700'000'000));
    int steps = 0;
    std::string where = "seed " + std::to_string(seed);
    while (!rollout.finished() && steps < 500) {
      ++steps;
      auto acts = rollout.step(sim.seen(rollout.watched()), now);
      for (const auto& id : acts.stop) {
        auto& a = sim.allocs.at(id);
        // A failed replacement never stops an old allocation: old ones stop only for
        // new ones that became healthy (or beyond the replica count).
        if (a.original && !a.told_to_stop) {
          int stopped_original = 1;
          for (const auto& [_, o] : sim.allocs) stopped_original += o.original && o.told_to_stop;
          ASSERT_LE(stopped_original,
                    fresh_healthy_seen + std::max(0, start - limits.want) + (stop_first ? 1 : 0))
              << where;
        }
        a.told_to_stop = true;
        a.end_in = sim.pick(0, 2);
      }
      for (int i = 0; i < acts.place; ++i) {
        if (sim.chance(place_fails)) {
          rollout.placement_failed("no node has room");
          break;
        }
        std::string id = sim.add(!acts.old_spec, false);
        rollout.placed(id, "node-1", now, acts.old_spec, acts);
      }
      ASSERT_GE(sim.serving(), floor) << where << " step " << steps;
      ASSERT_LE(stop_first ? sim.alive() : sim.running(), ceiling) << where << " step " << steps;
      rollout = Rollout(through_record(rollout.state()));
      sim.tick();
      for (const auto& [id, a] : sim.allocs) {
        if (a.target && !a.original && a.healthy && counted.insert(id).second) {
          ++fresh_healthy_seen;
        }
      }
      now += 1s;
    }
    ASSERT_TRUE(rollout.finished()) << where << ": still " << to_string(rollout.state().phase);
    ASSERT_GE(sim.serving(), floor) << where;
    if (!rollout.failed()) {
      ++done;
      // Done: exactly the replicas asked for, all of the new spec, all healthy.
      int target = 0;
      for (const auto& [id, a] : sim.allocs) {
        if (a.told_to_stop || a.ended) continue;
        EXPECT_TRUE(a.target) << where << ": " << id << " of the old spec still runs";
        target += a.healthy;
      }
      EXPECT_EQ(target, limits.want) << where;
    } else {
      ++failed;
      EXPECT_FALSE(rollout.reason().empty()) << where;
      if (rollout.reason().find("rolling back failed too") == std::string::npos) {
        ++rolled_back;
        // Rolled back: nothing of the new spec serves any more.
        for (const auto& [id, a] : sim.allocs) {
          if (a.told_to_stop || a.ended || a.original) continue;
          EXPECT_FALSE(a.target) << where << ": " << id << " of the new spec still runs";
        }
      }
    }
  }
  // The random cases cover both ends.
  EXPECT_GT(done, 500);
  EXPECT_GT(failed, 500);
  EXPECT_GT(rolled_back, 100);
}

TEST(RolloutProperty, NeverBelowTheStartNeverAboveTheSurgeAndAlwaysEnds) {
  expect_rollouts_hold(false);
}

TEST(RolloutProperty, StopFirstNeverHasMoreAliveThanBeforeOrWantedAndAlwaysEnds) {
  expect_rollouts_hold(true);
}

// Stop-first, one replica: the old one is stopped and must have ended before the new
// one is placed; a new one that fails is stopped before the old spec is put back.
TEST(Rollout, StopFirstStopsTheOldBeforePlacingAndRollsBackTheSameWay) {
  RolloutLimits limits{1, 1, 10s, 60s, /*stop_first=*/true};
  Rollout r(limits, {{"o1", false}}, false);
  SystemTime t0{};
  auto acts = r.step({}, t0);
  EXPECT_EQ(acts.place, 0);
  EXPECT_EQ(acts.stop, std::vector<std::string>{"o1"});
  acts = r.step({{"o1", up()}}, t0 + 1s);
  EXPECT_EQ(acts.place, 0) << "placed while the old one still runs";
  acts = r.step({{"o1", ended()}}, t0 + 2s);
  ASSERT_EQ(acts.place, 1);
  EXPECT_EQ(acts.events.front(), (RolloutEvent{"stopped", "", std::nullopt}));
  r.placed("n1", "node-1", t0 + 2s, false, acts);
  acts = r.step({{"n1", waiting("health check: 503")}}, t0 + 12s + 1ms);
  EXPECT_EQ(acts.stop, std::vector<std::string>{"n1"});
  EXPECT_EQ(acts.place, 0);
  acts = r.step({{"n1", up()}}, t0 + 13s);
  EXPECT_EQ(acts.place, 0) << "the old spec put back while the new one still runs";
  acts = r.step({{"n1", ended()}}, t0 + 14s);
  ASSERT_EQ(acts.place, 1);
  EXPECT_TRUE(acts.old_spec);
  r.placed("b1", "node-1", t0 + 14s, true, acts);
  acts = r.step({{"b1", healthy()}}, t0 + 15s);
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(r.reason(), "health check: 503 after 10s");
}

TEST(Rollout, AnUnchangedServiceHasNothingToDo) {
  Rollout r({2, 1}, {{"a", true}, {"b", true}}, false);
  EXPECT_FALSE(r.changes());
  EXPECT_FALSE(r.places());
  Rollout forced({2, 1}, {{"a", true}, {"b", true}}, true);
  EXPECT_TRUE(forced.changes());
  EXPECT_TRUE(forced.places());
}

TEST(Rollout, FewerReplicasStopTheNewestWithoutPlacingAny) {
  Rollout r({1, 1}, {{"old", true}, {"mid", true}, {"new", true}}, false);
  ASSERT_TRUE(r.changes());
  EXPECT_FALSE(r.places());
  auto acts = r.step({}, SystemTime{});
  EXPECT_EQ(acts.place, 0);
  EXPECT_EQ(acts.stop, (std::vector<std::string>{"mid", "new"}));
  AllocsSeen gone{{"mid", ended()}, {"new", ended()}};
  acts = r.step(gone, SystemTime{});
  EXPECT_EQ(acts.events.size(), 2u);
  EXPECT_TRUE(r.finished());
  EXPECT_FALSE(r.failed());
}

// One replacement at a time: a new one placed, an old one stopped only once it is
// healthy, `stopped` sent once that has ended; the deadline counts from placement.
TEST(Rollout, ReplacesOneAtATimeAndFailsAtTheDeadline) {
  RolloutLimits limits{2, 1, 10s, 60s};
  Rollout r(limits, {{"o1", false}, {"o2", false}}, false);
  SystemTime t0{};
  auto acts = r.step({}, t0);
  ASSERT_EQ(acts.place, 1);
  r.placed("n1", "node-1", t0, false, acts);
  EXPECT_EQ(acts.events.back(), (RolloutEvent{"scheduled", "node-1", std::nullopt}));
  acts = r.step({{"n1", up()}}, t0 + 1s);
  EXPECT_EQ(acts.place, 0) << "one at a time";
  EXPECT_TRUE(acts.stop.empty());
  EXPECT_EQ(acts.wake_at, t0 + 10s);
  acts = r.step({{"n1", healthy()}}, t0 + 2s);
  EXPECT_EQ(acts.stop, std::vector<std::string>{"o1"});
  EXPECT_EQ(acts.place, 1);
  ASSERT_GE(acts.events.size(), 1u);
  EXPECT_EQ(acts.events.back(), (RolloutEvent{"healthy", "", 2.0}));
  r.placed("n2", "node-1", t0 + 2s, false, acts);
  acts = r.step({{"n1", healthy()}, {"n2", waiting("health check: 503")}, {"o1", ended()}},
                t0 + 12s + 1ms);
  EXPECT_EQ(r.reason(), "health check: 503 after 10s");
  EXPECT_EQ(acts.stop, std::vector<std::string>{"n2"}) << "o2 keeps serving";
  // o1 has stopped; n2 never served, so there is no event for its stop.
  EXPECT_EQ(std::count_if(acts.events.begin(), acts.events.end(),
                          [](const RolloutEvent& e) { return e.phase == "stopped"; }),
            1);
  EXPECT_FALSE(r.finished());
  // n1 replaced o1, so it is rolled back: an allocation of the old spec first ...
  acts = r.step({{"n1", healthy()}, {"n2", ended()}}, t0 + 13s);
  ASSERT_EQ(acts.place, 1);
  EXPECT_TRUE(acts.old_spec);
  r.placed("b1", "node-1", t0 + 13s, true, acts);
  // ... and n1 stops once that one is healthy.
  acts = r.step({{"n1", healthy()}, {"b1", healthy()}}, t0 + 14s);
  EXPECT_EQ(acts.stop, std::vector<std::string>{"n1"});
  EXPECT_EQ(acts.place, 0);
  acts = r.step({{"n1", ended()}, {"b1", healthy()}}, t0 + 15s);
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(r.reason(), "health check: 503 after 10s");
}

}  // namespace
}  // namespace mill::server
