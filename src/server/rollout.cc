#include "server/rollout.h"

#include <algorithm>
#include <array>
#include <cstdio>

namespace mill::server {

namespace {

constexpr std::array<std::pair<Rollout::Phase, std::string_view>, 7> kPhases{{
    {Rollout::Phase::kRolling, "rolling"},
    {Rollout::Phase::kFinishing, "finishing"},
    {Rollout::Phase::kFailing, "failing"},
    {Rollout::Phase::kRestoring, "restoring"},
    {Rollout::Phase::kUnwinding, "unwinding"},
    {Rollout::Phase::kDone, "done"},
    {Rollout::Phase::kFailed, "failed"},
}};

double seconds_between(SystemTime from, SystemTime to) {
  double s = std::chrono::duration<double>(to - from).count();
  return static_cast<double>(static_cast<int64_t>(s * 10 + 0.5)) / 10;  // one decimal
}

void wake(RolloutActions& out, SystemTime at) {
  if (!out.wake_at || at < *out.wake_at) out.wake_at = at;
}

}  // namespace

std::string_view to_string(Rollout::Phase phase) {
  for (const auto& [p, name] : kPhases) {
    if (p == phase) return name;
  }
  return "failed";
}

std::optional<Rollout::Phase> parse_rollout_phase(std::string_view text) {
  for (const auto& [p, name] : kPhases) {
    if (name == text) return p;
  }
  return std::nullopt;
}

std::string format_seconds(std::chrono::milliseconds d) {
  char buf[32];
  if (d.count() % 1000 == 0) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(d.count() / 1000));
  } else {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(d.count()) / 1000);
  }
  return buf;
}

Rollout::Rollout(RolloutLimits limits, const std::vector<std::pair<std::string, bool>>& current,
                 bool force) {
  s_.limits = limits;
  const bool same =
      std::all_of(current.begin(), current.end(), [](const auto& c) { return c.second; });
  if (same && !force) {
    const size_t keep =
        std::min<size_t>(static_cast<size_t>(std::max(0, limits.want)), current.size());
    for (size_t i = 0; i < current.size(); ++i) {
      (i < keep ? s_.kept : s_.old).push_back(current[i].first);  // fewer: the newest go
    }
    if (static_cast<int>(keep) == limits.want && s_.old.empty()) s_.phase = Phase::kDone;
  } else {
    for (const auto& c : current) s_.old.push_back(c.first);
  }
}

std::vector<std::string> Rollout::watched() const {
  std::vector<std::string> ids;
  for (const auto* list : {&s_.fresh, &s_.restored, &s_.stopping}) {
    for (const auto& t : *list) ids.push_back(t.id);
  }
  return ids;
}

bool Rollout::knows(const std::string& id) const {
  auto in = [&](const std::vector<std::string>& v) {
    return std::find(v.begin(), v.end(), id) != v.end();
  };
  auto tracked = [&](const std::vector<Tracked>& v) {
    return std::any_of(v.begin(), v.end(), [&](const Tracked& t) { return t.id == id; });
  };
  return in(s_.kept) || in(s_.old) || tracked(s_.fresh) || tracked(s_.restored) ||
         tracked(s_.stopping);
}

void Rollout::stop(const std::string& id, bool silent, SystemTime now, RolloutActions& out) {
  for (auto* list : {&s_.fresh, &s_.restored}) {
    for (auto& t : *list) {
      if (t.id == id) t.stopped = true;
    }
  }
  out.stop.push_back(id);
  issued_.push_back(id);
  s_.stopping.push_back(Tracked{id, now, false, false, true, silent});
}

void Rollout::unwind(SystemTime now, RolloutActions& out) {
  std::vector<std::string> serving;
  for (const auto& t : s_.fresh) {
    if (t.healthy && !t.stopped) serving.push_back(t.id);
  }
  for (const auto& id : serving) stop(id, false, now, out);
  s_.phase = Phase::kUnwinding;
}

void Rollout::fail(std::string reason) {
  s_.reason = std::move(reason);
  s_.phase = Phase::kFailing;
}

std::optional<std::string> Rollout::follow(Tracked& t, const AllocsSeen& seen, SystemTime now,
                                           RolloutActions& out) {
  auto f = seen.find(t.id);
  if (f == seen.end()) return "allocation " + t.id + " vanished";
  const AllocSeen& a = f->second;
  if (a.failure) return *a.failure;
  if ((a.up || a.healthy) && !t.starting) {
    t.starting = true;
    out.events.push_back({"starting", "", std::nullopt});
  }
  if (a.healthy) {
    t.healthy = true;
    out.events.push_back({"healthy", "", seconds_between(t.since, now)});
  } else if (now >= t.since + s_.limits.deadline) {
    std::string why = a.waiting.empty() ? "not healthy" : a.waiting;
    return why + " after " + format_seconds(s_.limits.deadline);
  } else {
    wake(out, t.since + s_.limits.deadline);
  }
  return std::nullopt;
}

void Rollout::roll(const AllocsSeen& seen, SystemTime now, RolloutActions& out) {
  const int want = s_.limits.want;
  auto healthy_now = [&] {
    int n = static_cast<int>(s_.kept.size());
    for (const auto& t : s_.fresh) n += t.healthy ? 1 : 0;
    return n;
  };
  // Oldest placement first: its deadline is the first to pass.
  for (auto& t : s_.fresh) {
    if (t.healthy || t.stopped) continue;
    if (auto why = follow(t, seen, now, out)) return fail(*why);
    if (!t.healthy || s_.old.empty() || s_.limits.stop_first) continue;
    if (healthy_now() + static_cast<int>(s_.old.size()) > want) {
      // Out of service now; `stopped` follows once it has ended.
      stop(s_.old.front(), false, now, out);
      s_.old.erase(s_.old.begin());
      ++s_.replaced;
    }
  }
  int healthy = healthy_now();
  if (healthy >= want) {
    for (const auto& id : s_.old) stop(id, false, now, out);
    s_.old.clear();
    s_.phase = Phase::kFinishing;
    return;
  }
  if (s_.limits.stop_first) return roll_stop_first(now, out);
  int placed = static_cast<int>(s_.kept.size() + s_.fresh.size());
  int pending = placed - healthy;
  int room = s_.old.empty() ? want - placed : std::min(s_.limits.parallel - pending, want - placed);
  out.place = std::max(0, room);
  out.old_spec = false;
}

void Rollout::roll_stop_first(SystemTime now, RolloutActions& out) {
  if (!s_.stopping.empty()) return;  // what was stopped must have ended: its volume is free
  const int want = s_.limits.want;
  int healthy = static_cast<int>(s_.kept.size());
  for (const auto& t : s_.fresh) healthy += t.healthy ? 1 : 0;
  const int placed = static_cast<int>(s_.kept.size() + s_.fresh.size());
  if (placed > healthy) return;  // one at a time: the last one placed is not healthy yet
  const int alive = placed + static_cast<int>(s_.old.size());
  if (alive < want) {
    out.place = s_.old.empty() ? want - alive : 1;  // nothing to replace: all at once
    out.old_spec = false;
    return;
  }
  // Room first: an old allocation goes, and its replacement is placed once it has ended.
  stop(s_.old.front(), false, now, out);
  s_.old.erase(s_.old.begin());
  ++s_.replaced;
}

void Rollout::restore_stop_first(SystemTime now, RolloutActions& out) {
  if (!s_.stopping.empty()) return;
  int back = 0;
  int alive = static_cast<int>(s_.kept.size() + s_.old.size());
  for (const auto& t : s_.restored) {
    back += t.healthy ? 1 : 0;
    alive += t.stopped ? 0 : 1;
  }
  for (const auto& t : s_.fresh) alive += t.healthy && !t.stopped ? 1 : 0;
  if (back >= s_.replaced) return unwind(now, out);
  if (alive < s_.limits.want) {
    out.place = 1;
    out.old_spec = true;
    return;
  }
  // Room first: a new allocation goes before one of the old spec takes its place.
  for (const auto& f : s_.fresh) {
    if (f.healthy && !f.stopped) return stop(f.id, false, now, out);
  }
  out.place = 1;
  out.old_spec = true;
}

void Rollout::restore(const AllocsSeen& seen, SystemTime now, RolloutActions& out) {
  if (!s_.restored.empty() && !s_.restored.back().healthy && !s_.restored.back().stopped) {
    Tracked& t = s_.restored.back();
    if (auto why = follow(t, seen, now, out)) {
      // The service keeps what it has: the new allocations that serve stay.
      s_.reason += "; rolling back failed too: " + *why;
      stop(t.id, true, now, out);
      s_.phase = Phase::kUnwinding;
      return;
    }
    if (!t.healthy) return;
    if (s_.limits.stop_first) return restore_stop_first(now, out);
    // One back: one new allocation goes.
    for (const auto& f : s_.fresh) {
      if (f.healthy && !f.stopped) {
        stop(f.id, false, now, out);
        break;
      }
    }
  }
  if (s_.limits.stop_first) return restore_stop_first(now, out);
  if (!s_.stopping.empty()) return;  // the one retired must have ended first
  int back = 0;
  for (const auto& t : s_.restored) back += t.healthy ? 1 : 0;
  if (back >= s_.replaced) {
    // New allocations beyond those that replaced old ones (more replicas than before).
    return unwind(now, out);
  }
  out.place = 1;
  out.old_spec = true;
}

RolloutActions Rollout::step(const AllocsSeen& seen, SystemTime now) {
  RolloutActions out;
  issued_.clear();
  // A phase change is acted on in the same step (bounded: phases only move forward).
  for (int round = 0; round < 8 && !finished(); ++round) {
    for (auto it = s_.stopping.begin(); it != s_.stopping.end();) {
      auto f = seen.find(it->id);
      if (std::find(issued_.begin(), issued_.end(), it->id) != issued_.end()) {
        ++it;  // told to stop in this step: what was seen is from before
      } else if (f == seen.end() || f->second.ended) {
        if (!it->silent) out.events.push_back({"stopped", "", std::nullopt});
        it = s_.stopping.erase(it);
      } else if (now >= it->since + s_.limits.stop_wait) {
        it = s_.stopping.erase(it);  // no longer waited for
      } else {
        wake(out, it->since + s_.limits.stop_wait);
        ++it;
      }
    }
    // New allocations not yet healthy when the rollout is not going forward any more
    // (failed, or adopted after a restart in such a phase) never served: they stop.
    if (s_.phase != Phase::kRolling) {
      for (auto& t : s_.fresh) {
        if (!t.healthy && !t.stopped) stop(t.id, true, now, out);
      }
    }
    const Phase before = s_.phase;
    const size_t stopping = s_.stopping.size();
    switch (s_.phase) {
      case Phase::kRolling:
        roll(seen, now, out);
        break;
      case Phase::kFinishing:
        if (s_.stopping.empty()) s_.phase = Phase::kDone;
        break;
      case Phase::kFailing:
        if (!s_.stopping.empty()) break;
        if (s_.replaced > 0) {
          s_.phase = Phase::kRestoring;
        } else {
          unwind(now, out);
        }
        break;
      case Phase::kRestoring:
        restore(seen, now, out);
        break;
      case Phase::kUnwinding:
        if (s_.stopping.empty()) s_.phase = Phase::kFailed;
        break;
      case Phase::kDone:
      case Phase::kFailed:
        break;
    }
    if (s_.phase == before && s_.stopping.size() == stopping) break;
    if (out.place > 0 && s_.phase == before) break;
  }
  if (finished()) out.wake_at.reset();
  if (s_.phase != Phase::kRolling && s_.phase != Phase::kRestoring) out.place = 0;
  return out;
}

void Rollout::placed(const std::string& id, const std::string& node, SystemTime now, bool old_spec,
                     RolloutActions& out) {
  (old_spec ? s_.restored : s_.fresh).push_back(Tracked{id, now});
  out.events.push_back({"scheduled", node, std::nullopt});
}

void Rollout::placement_failed(const std::string& reason) {
  if (s_.phase == Phase::kRestoring) {
    s_.reason += "; rolling back failed too: " + reason;
    s_.phase = Phase::kUnwinding;
    return;
  }
  if (s_.phase == Phase::kRolling) fail(reason);
}

void Rollout::adopt(const std::string& id, SystemTime since) {
  if (knows(id)) return;
  (s_.phase == Phase::kRestoring ? s_.restored : s_.fresh).push_back(Tracked{id, since});
}

}  // namespace mill::server
