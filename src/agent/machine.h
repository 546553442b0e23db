#pragma once

// What this machine has and has free, read from /proc. The parsers are pure so they
// can be tested on fixed text.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "model/node.h"

namespace mill::agent {

struct MemInfo {
  int64_t total = 0;      // bytes
  int64_t available = 0;  // bytes
};
// /proc/meminfo text -> MemTotal and MemAvailable in bytes.
Result<MemInfo> parse_meminfo(std::string_view text);

struct CpuTimes {
  uint64_t idle = 0;   // idle + iowait jiffies
  uint64_t total = 0;  // all jiffies
};
// The aggregate "cpu " line of /proc/stat.
Result<CpuTimes> parse_proc_stat(std::string_view text);

// Idle cores between two samples: cores * idle fraction of the elapsed jiffies.
double idle_cores(const CpuTimes& before, const CpuTimes& after, double cores);

// Room for allocations' disks on the node whose data dir is `data_dir` (each one's
// disk.img lives in data_dir/allocs/<id>): what is free on its filesystem plus what
// those images already hold (their reservations cover it), less a reserve for the state
// store, images and logs of 5% of the filesystem, at most 2G. Sets disk_total and
// disk_available.
Result<void> sample_disk(const std::string& data_dir, model::Resources& r);

// Samples the machine. Not thread-safe: one caller (the agent's loop) owns it.
class MachineSampler {
 public:
  // `data_dir`: see sample_disk(); empty: disk is not reported.
  explicit MachineSampler(std::string data_dir = {}) : data_dir_(std::move(data_dir)) {}
  // Resources now: cpu_available is measured since the previous call (the first call
  // measures over a short interval).
  Result<model::Resources> sample();

 private:
  std::string data_dir_;
  std::optional<CpuTimes> last_;
};

// The host name, and an address other machines can reach this one on: the first
// IPv4 of an interface that is up and not loopback, else 127.0.0.1.
std::string host_name();
std::string primary_address();
// Every up, non-loopback IPv4 address of this machine, in interface order.
std::vector<std::string> host_addresses();

}  // namespace mill::agent
