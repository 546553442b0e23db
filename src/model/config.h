#pragma once

// The cluster's desired configuration as written in mill.toml, after validation
// (see config/config.h for the parser and docs/config.md for the format). Plain data:
// later code diffs two Configs, so every struct compares with ==.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace mill::model {

// Defaults for keys a config may leave out; docs/config.md lists the same values.
inline constexpr double kDefaultCpu = 0.1;                           // cores
inline constexpr std::int64_t kDefaultMemory = 256LL * 1024 * 1024;  // 256M
inline constexpr std::int64_t kMinMemory = 4LL * 1024 * 1024;        // 4M
// `disk`: what a container's writable layer may hold (a filesystem of its own). 1G
// unless the spec says otherwise; nodes keep spares of this size ready.
inline constexpr std::int64_t kDefaultDisk = 1024LL * 1024 * 1024;  // 1G
inline constexpr std::int64_t kMinDisk = 16LL * 1024 * 1024;        // 16M

struct HealthCheck {
  // HTTP GET path, starting with "/". Empty means a TCP connect to the port, unless
  // `command` is set.
  std::string path;
  std::chrono::milliseconds interval{2000};
  std::chrono::milliseconds timeout{1000};
  // How long a new allocation may take to become healthy before it counts as failed.
  std::chrono::milliseconds deadline{60000};
  // Consecutive passing checks before an allocation counts as healthy.
  int passes = 1;
  // Run inside the container (as `docker exec` would); exit 0 passes. Excludes path.
  std::vector<std::string> command{};

  bool operator==(const HealthCheck&) const = default;
};

// TLS for a route's host: PEM text, normally "${secret:NAME}" references.
struct RouteTls {
  std::string cert;  // certificate chain
  std::string key;   // private key

  bool operator==(const RouteTls&) const = default;
};

struct Route {
  std::string host;  // exact ("office.example.com") or wildcard ("*.example.com")
  std::string path;  // prefix, starts with "/"
  std::optional<RouteTls> tls = {};
  bool https_redirect = false;  // plain HTTP answers 308 to https://

  bool operator==(const Route&) const = default;
};

struct VolumeMount {
  std::string volume;  // a key of Config::volumes
  std::string path;    // absolute path inside the container
  bool read_only = false;

  bool operator==(const VolumeMount&) const = default;
};

// How a deploy replaces a service's allocations (Swarm's `update_config.order`):
// start-first (the new one healthy before the old one stops) or stop-first (the old one
// stopped and ended before the new one starts). kDefault is stop-first for a service
// that mounts a writable volume (two servers on one data directory corrupt it),
// start-first otherwise.
enum class UpdateOrder { kDefault, kStartFirst, kStopFirst };

struct ServiceSpec {
  std::string name;
  std::string image;
  int replicas = 1;
  std::optional<int> port;  // container port for health checks and the proxy
  double cpu = kDefaultCpu;
  std::int64_t memory = kDefaultMemory;  // bytes
  std::vector<std::string> command;      // empty: the image's entrypoint and cmd
  std::map<std::string, std::string> env;
  std::vector<VolumeMount> volumes;
  std::optional<HealthCheck> health;
  std::optional<Route> route;
  int update_parallel = 1;  // allocations replaced at a time during a deploy
  UpdateOrder update_order = UpdateOrder::kDefault;
  bool init = true;  // run a minimal init as PID 1
  // Bytes its writable layer may hold (a filesystem of its own).
  std::int64_t disk = kDefaultDisk;

  bool operator==(const ServiceSpec&) const = default;
};

// Whether its deploys replace allocations stop-first (UpdateOrder).
bool rolls_stop_first(const ServiceSpec& service);
// Whether it mounts a volume it may write.
bool writes_a_volume(const ServiceSpec& service);

// A template for one-off tasks spawned through the API.
struct TaskTemplate {
  std::string name;
  std::string image;
  double cpu = kDefaultCpu;
  std::int64_t memory = kDefaultMemory;              // bytes
  std::optional<std::chrono::milliseconds> timeout;  // none: runs until it exits
  std::optional<int> port;
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  bool init = true;
  std::int64_t disk = kDefaultDisk;  // as ServiceSpec::disk

  bool operator==(const TaskTemplate&) const = default;
};

struct VolumeSpec {
  std::string name;
  std::int64_t size = 0;  // bytes

  bool operator==(const VolumeSpec&) const = default;
};

struct RegistryConfig {
  std::string host;  // as in image references: "registry.example.com" or "host:5000"
  std::string username;
  std::string password;   // usually "${secret:NAME}"
  bool insecure = false;  // allow plain HTTP

  bool operator==(const RegistryConfig&) const = default;
};

struct Config {
  std::map<std::string, ServiceSpec> services;
  std::map<std::string, VolumeSpec> volumes;
  std::map<std::string, TaskTemplate> tasks;
  std::map<std::string, RegistryConfig> registries;  // keyed by host

  bool operator==(const Config&) const = default;
};

// The NAMEs of every "${secret:NAME}" in `text`, in order of appearance. Errors
// (kInvalidArgument) when a "${secret:" is unterminated or NAME is not a valid name
// (model::is_valid_name). Text without "${secret:" — including other "$" uses — is fine.
Result<std::vector<std::string>> find_secret_references(std::string_view text);

// Every secret a config refers to: in service and task env values and registry
// usernames and passwords. Malformed references (which a validated config has none
// of) are skipped.
std::set<std::string> secret_references(const Config& config);

}  // namespace mill::model
