#pragma once

// One service's rolling update as a pure state machine (Nomad's reconciler is the
// model): given what it has seen of the allocations it tracks and the time, step()
// says what to place, what to stop and which progress events to send. It does no I/O
// and reads no clock, so property tests drive it over random clusters, and its state
// is plain data the deploy record keeps: a server that restarts carries on from it.
//
// The rules (DESIGN.md "Deploy"):
// - replacing: at most `parallel` new allocations on their way to healthy at once, and
//   one old allocation stopped for each new one that becomes healthy, so the service
//   never has fewer healthy allocations than when the rollout began (nor than it asks
//   for, when that is less);
// - replacing stop-first (limits.stop_first): one old allocation stopped, and ended,
//   before each new one is placed, the next only once that one is healthy; a rollback
//   likewise stops a new allocation before it places one of the old spec;
// - nothing to replace (a new service, more replicas of an unchanged one): all at once;
// - fewer replicas of an unchanged one: the newest go;
// - a new allocation that fails or is not healthy within `deadline` of its placement
//   fails the rollout. Old allocations are never stopped for a failed one. New ones
//   not yet healthy stop; healthy new ones that already replaced old ones are rolled
//   back one at a time, an allocation of the old spec started (and healthy) before each
//   is stopped.
//
// `stopped` is reported once a stopped allocation has ended; a stop that takes longer
// than `stop_wait` is no longer waited for.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"

namespace mill::server {

// What the controller saw of one allocation. An id missing from the observations
// has vanished.
struct AllocSeen {
  bool ended = false;    // in an end state: its resources are released
  bool up = false;       // starting or running
  bool healthy = false;  // its health check passes
  // Set when it will not become healthy (it failed, ended or crashed): why.
  std::optional<std::string> failure;
  std::string waiting;  // why it is not healthy yet, for the timeout's message
};
using AllocsSeen = std::map<std::string, AllocSeen>;

struct RolloutEvent {
  std::string phase;              // "scheduled", "starting", "healthy" or "stopped"
  std::string node;               // scheduled
  std::optional<double> elapsed;  // healthy: seconds since placement, one decimal
  bool operator==(const RolloutEvent&) const = default;
};

struct RolloutActions {
  int place = 0;          // allocations to place now (each then reported with placed())
  bool old_spec = false;  // of the spec being replaced: a rollback
  std::vector<std::string> stop;
  std::vector<RolloutEvent> events;   // in order
  std::optional<SystemTime> wake_at;  // step again by then, even with no news
};

struct RolloutLimits {
  int want = 1;      // replicas
  int parallel = 1;  // new allocations on their way to healthy at once
  std::chrono::milliseconds deadline{std::chrono::seconds(60)};
  std::chrono::milliseconds stop_wait{std::chrono::minutes(2)};
  // Stop-first (a service on a writable volume): an old allocation stops, and has
  // ended, before its replacement is placed, one at a time; never more allocations
  // alive than before or than wanted. The service serves one short meanwhile.
  bool stop_first = false;
  bool operator==(const RolloutLimits&) const = default;
};

class Rollout {
 public:
  enum class Phase {
    kRolling,    // placing and replacing
    kFinishing,  // all healthy; the last old allocations are stopping
    kFailing,    // failed; waiting for stops before rolling back
    kRestoring,  // failed; putting allocations of the old spec back
    kUnwinding,  // failed; the last new allocations are stopping
    kDone,
    kFailed,
  };
  // An allocation the rollout placed or stopped.
  struct Tracked {
    std::string id;
    SystemTime since{};     // placed, or told to stop
    bool starting = false;  // `starting` sent
    bool healthy = false;   // `healthy` sent
    bool stopped = false;   // told to stop
    bool silent = false;    // a stop that sends no `stopped` (a new one that never served)
    bool operator==(const Tracked&) const = default;
  };
  struct State {
    Phase phase = Phase::kRolling;
    RolloutLimits limits;
    std::vector<std::string> kept;  // allocations that stay as they are
    std::vector<std::string> old;   // still to replace, in the order they stop
    std::vector<Tracked> fresh;     // new allocations of the target spec, as placed
    std::vector<Tracked> restored;  // a rollback's allocations of the old spec
    std::vector<Tracked> stopping;  // told to stop, not yet ended
    int replaced = 0;               // old allocations stopped for healthy new ones
    std::string reason;             // failed: why
    bool operator==(const State&) const = default;
  };

  // The current (running, not told to stop) allocations of the service, oldest first,
  // each with whether it runs the target spec. `force` replaces all of them (a restart).
  Rollout(RolloutLimits limits, const std::vector<std::pair<std::string, bool>>& current,
          bool force);
  explicit Rollout(State state) : s_(std::move(state)) {}

  // Whether there is anything to do at all, and whether it starts allocations.
  bool changes() const { return s_.phase != Phase::kDone; }
  bool places() const { return static_cast<int>(s_.kept.size()) < s_.limits.want; }

  RolloutActions step(const AllocsSeen& seen, SystemTime now);
  // A placement step() asked for was made...
  void placed(const std::string& id, const std::string& node, SystemTime now, bool old_spec,
              RolloutActions& out);
  // ... or could not be: the rollout fails with `reason`.
  void placement_failed(const std::string& reason);
  // An allocation of the target spec (or, restoring, of the old one) that a previous
  // server placed but did not get to record: tracked as if placed at `since`.
  void adopt(const std::string& id, SystemTime since);

  bool finished() const { return s_.phase == Phase::kDone || s_.phase == Phase::kFailed; }
  bool failed() const { return s_.phase == Phase::kFailed; }
  const std::string& reason() const { return s_.reason; }
  bool stopping() const { return !s_.stopping.empty(); }
  // Every allocation whose state step() needs.
  std::vector<std::string> watched() const;
  // Every id the rollout knows (kept, old, placed, restored).
  bool knows(const std::string& id) const;
  const State& state() const { return s_; }

 private:
  void fail(std::string reason);
  // Stops the new allocations that serve (with `stopped`); the rollout then ends failed.
  void unwind(SystemTime now, RolloutActions& out);
  void stop(const std::string& id, bool silent, SystemTime now, RolloutActions& out);
  // Sends `starting` / `healthy` for a new allocation; why it will not become healthy
  // (failed, vanished, or past its deadline) when it will not.
  std::optional<std::string> follow(Tracked& t, const AllocsSeen& seen, SystemTime now,
                                    RolloutActions& out);
  void roll(const AllocsSeen& seen, SystemTime now, RolloutActions& out);
  void roll_stop_first(SystemTime now, RolloutActions& out);
  void restore(const AllocsSeen& seen, SystemTime now, RolloutActions& out);
  void restore_stop_first(SystemTime now, RolloutActions& out);

  State s_;
  // Stops issued in the current step: not yet in what the controller observed.
  std::vector<std::string> issued_;
};

std::string_view to_string(Rollout::Phase phase);
std::optional<Rollout::Phase> parse_rollout_phase(std::string_view text);
// "3s", "1.5s".
std::string format_seconds(std::chrono::milliseconds d);

}  // namespace mill::server
