#pragma once

// Allocations: one container instance of a task (or, later, a service) placed on one
// node. The leader writes what should run (Allocation); the node's agent reports what
// does (AllocState). Both are stored as JSON under the store keys below and travel as
// the same JSON in the node protocol.

#include <boost/json/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "model/config.h"

namespace mill::model {

// pending -> pulling -> starting -> running [-> healthy] -> stopping -> an end state.
// Services are "healthy" while their health check passes (or, without one, as soon as
// they run) and "running" otherwise; a service that crashed and waits to be restarted
// is "starting" again, with the reason in its message.
enum class AllocStatus {
  kPending,
  kPulling,
  kStarting,
  kRunning,
  kHealthy,
  kStopping,
  kExited,   // the process ended by itself
  kTimeout,  // a task stopped at its timeout
  kKilled,   // stopped on request
  kFailed,   // could not start (pull, runtime, network)
  kLost,     // its node forgot it (e.g. the machine rebooted)
};
std::string_view to_string(AllocStatus status);
std::optional<AllocStatus> parse_alloc_status(std::string_view text);
// An end state: the container is gone and its resources are released.
bool is_terminal(AllocStatus status);
// The container runs: running or healthy.
inline bool is_up(AllocStatus status) {
  return status == AllocStatus::kRunning || status == AllocStatus::kHealthy;
}

// What to run: an image and how.
// A volume as an allocation mounts it: which, how big (created at that size on the
// node where it first lands), and where in the container.
struct AllocVolume {
  std::string name;
  int64_t size = 0;  // bytes
  std::string path;
  bool read_only = false;

  bool operator==(const AllocVolume&) const = default;
};

struct AllocSpec {
  std::string image;
  double cpu = 0;                                    // cores reserved (and the cgroup quota)
  int64_t memory = 0;                                // bytes reserved (and the cgroup limit)
  std::optional<std::chrono::milliseconds> timeout;  // tasks: counted from running
  std::optional<int> port;
  std::vector<std::string> command;
  std::map<std::string, std::string> env;  // may hold "${secret:NAME}" until delivery
  bool init = true;
  std::optional<HealthCheck> health;  // services
  std::vector<AllocVolume> volumes;   // services: created on the node on first use
  // Services: where the ingress proxy sends requests for it (TLS key and cert as
  // "${secret:NAME}" until delivery to the node).
  std::optional<Route> route;
  // Bytes its writable layer may hold: the overlay's upper dir on an ext4 filesystem
  // of this size of its own (ENOSPC past it). 0 (a record from before disks had a
  // default, model::kDefaultDisk): on the node's data disk, no limit.
  int64_t disk = 0;

  bool operator==(const AllocSpec&) const = default;
};

enum class DesiredState { kRun, kStop };

struct Allocation {
  std::string id;     // "coop-agent-x7k2": also the container's host name and DNS name
  std::string kind;   // "task" or "service"
  std::string group;  // the task template (empty for an inline task) or the service
  std::string node;
  std::string ip;  // the container's address on its node's /24
  AllocSpec spec;
  DesiredState desired = DesiredState::kRun;
  SystemTime created_at{};

  bool operator==(const Allocation&) const = default;
};

// What the agent reports about one allocation.
struct AllocState {
  std::string id;
  AllocStatus status = AllocStatus::kPending;
  std::string message;  // why it failed, or what it is doing
  int pid = 0;          // the container's init, as the host sees it
  std::optional<int> exit_code;
  std::optional<SystemTime> started_at;   // running since
  std::optional<SystemTime> finished_at;  // reached an end state
  std::chrono::milliseconds pull_duration{0};
  std::chrono::milliseconds start_duration{0};
  double cpu_seconds = 0;
  int64_t memory_bytes = 0;
  int restarts = 0;  // services: times the agent restarted the container after it ended
  std::map<std::string, int64_t> volume_used;  // bytes in use on each mounted volume

  bool operator==(const AllocState&) const = default;
};

// What the ingress proxies route to: a service's route and the addresses
// ("ip:port") of its healthy allocations anywhere in the cluster. Empty upstreams
// mean the service exists but has nothing healthy (the proxy answers 503, not 404).
struct ServiceRoute {
  std::string service;
  Route route;
  std::vector<std::string> upstreams;

  bool operator==(const ServiceRoute&) const = default;
};

// Store layout.
inline constexpr std::string_view kAllocPrefix = "/allocs/";
inline constexpr std::string_view kAllocStatePrefix = "/alloc-state/";
inline constexpr std::string_view kKindTask = "task";
inline constexpr std::string_view kKindService = "service";
inline std::string alloc_key(std::string_view id) { return std::string(kAllocPrefix) += id; }
inline std::string alloc_state_key(std::string_view id) {
  return std::string(kAllocStatePrefix) += id;
}

// Their JSON, as stored and as the node protocol carries them. Decoding is strict:
// unknown fields, wrong types and out-of-range numbers are kInvalidArgument.
std::string encode(const Allocation& a);
Result<Allocation> decode_allocation(std::string_view text);
std::string encode(const AllocState& s);
Result<AllocState> decode_alloc_state(std::string_view text);
std::string encode(const ServiceRoute& r);
Result<ServiceRoute> decode_service_route(std::string_view text);

// The same codecs on parsed JSON, for documents that embed them (node_protocol.h).
boost::json::object to_json(const Allocation& a);
Result<Allocation> allocation_from_json(const boost::json::value& v);
boost::json::object to_json(const AllocState& s);
Result<AllocState> alloc_state_from_json(const boost::json::value& v);
boost::json::object to_json(const ServiceRoute& r);
Result<ServiceRoute> service_route_from_json(const boost::json::value& v);

}  // namespace mill::model
