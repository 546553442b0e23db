#pragma once

// The few cgroup operations the runtime does itself (runc creates and configures the
// container's cgroups): read usage, find a controller's file, remove what runc left.
// Works on v1, v2 and the hybrid layout (v1 controllers with a v2 tree beside them).

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "runtime/runtime.h"

namespace mill::runtime {

struct CgroupMount {
  std::string path;                      // where the hierarchy is mounted
  bool v2 = false;                       // cgroup2
  std::vector<std::string> controllers;  // v1: from the mount options (cpu, cpuacct, ...)
};

// PURE: the cgroup mounts listed in /proc/self/mountinfo text.
std::vector<CgroupMount> parse_cgroup_mounts(std::string_view mountinfo);
// The host's cgroup mounts (read once, then cached).
const std::vector<CgroupMount>& cgroup_mounts();

// True when the host has one unified cgroup2 hierarchy at /sys/fs/cgroup.
bool cgroup_v2_only();

// The file `name` of `controller` for cgroupsPath `path` ("/mill/x"), as the host sees
// it: the v1 hierarchy carrying the controller, else the v2 tree. "" if none.
std::string cgroup_file(std::string_view path, std::string_view controller, std::string_view name);

// PURE: cpu.stat "usage_usec N" -> N microseconds, or -1.
int64_t parse_cpu_stat_usec(std::string_view cpu_stat);

// Cumulative cpu and current memory of cgroupsPath `path`. kNotFound if it is gone.
Result<Usage> read_cgroup_usage(std::string_view path);

// How many processes of cgroupsPath `path` the OOM killer has killed (v1
// memory.oom_control or v2 memory.events "oom_kill N"); 0 when unknown or gone.
int64_t read_oom_kills(std::string_view path);
// PURE: the "oom_kill N" line of memory.oom_control / memory.events text, or 0.
int64_t parse_oom_kills(std::string_view text);

// Kills every process of cgroupsPath `path` (and of the cgroups under it) with SIGKILL
// and returns once none is left. The CPU quota is lifted first: processes throttled by
// it (a fork bomb under `cpu = 0.2`) otherwise take minutes to get through their exit.
// Whatever forks meanwhile is caught by the next pass (every 10 ms). A cgroup that is
// gone is fine. kTimeout, naming how many remain, if some are still there after
// `limit`.
Result<void> kill_cgroup(std::string_view path, std::chrono::milliseconds limit);

// Removes `path` (and anything under it, deepest first) from every hierarchy.
// Missing directories are fine; a busy one is kConflict.
Result<void> remove_cgroup(std::string_view path);

}  // namespace mill::runtime
