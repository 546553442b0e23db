#pragma once

// The container runtime as the agent sees it: start a container from an image config
// and a spec, watch it, signal and stop it, read its usage, clean up after it. One
// implementation runs real containers (RuncRuntime); the agent's tests can fake it.
//
// Every method is thread-safe for distinct ids; callers serialise calls per id.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "model/image.h"

namespace mill::runtime {

// A host path bind-mounted into the container.
struct Mount {
  std::string source, destination;
  bool read_only = true;
};

struct ContainerSpec {
  std::string id;  // runc container id = allocation id ([a-z0-9-], <= 64)
  std::string hostname;
  std::vector<std::string> entrypoint;     // empty: the image's
  std::vector<std::string> command;        // empty: the image's cmd (see build_oci_config)
  std::map<std::string, std::string> env;  // overrides the image's env by key
  std::string working_dir;                 // empty: the image's, else "/"
  // Resolved uid/gid. nullopt: the image's user, which build_oci_config accepts only
  // when numeric or empty (RuncRuntime::start resolves names through the rootfs).
  std::optional<std::pair<uint32_t, uint32_t>> user;
  double cpu = 0;             // cores; 0 = no limit
  int64_t memory_bytes = 0;   // 0 = no limit
  int64_t pids_limit = 4096;  // 0 = no limit
  // RLIMIT_NOFILE (soft = hard); 0 inherits the agent's. Raising it past the agent's
  // hard limit needs CAP_SYS_RESOURCE, which some hosts (nested containers) lack.
  uint64_t nofile_limit = 0;
  bool init = true;                                // run a minimal init as PID 1 (Docker's --init)
  std::string init_path = "/usr/bin/tini-static";  // host path bind-mounted as /sbin/mill-init
  std::string rootfs;                              // absolute path, mounted by the caller
  std::string netns_path;                          // empty: a new, empty network namespace
  std::string hosts_path, resolv_conf_path, hostname_path;  // bound read-only; empty: none
  std::vector<Mount> mounts;
  std::string cgroup_path;  // runc's cgroupsPath; empty: "/mill/<id>"
};

struct ExitStatus {
  int code = 0;             // exit code; 128 + signal when killed by a signal
  int signal = 0;           // the signal that killed the container's PID 1, 0 if it exited
  std::string finished_at;  // RFC 3339, UTC, milliseconds
  // SIGKILLed after the kernel's OOM killer struck in the container's memory cgroup
  // (its oom_kill counter), as Docker's OOMKilled.
  bool oom_killed = false;

  bool operator==(const ExitStatus&) const = default;
};

struct ContainerState {
  std::string id;
  int pid = 0;       // the container's PID 1 as the host sees it
  int shim_pid = 0;  // the mill-shim holding its stdio
  bool running = false;
  std::optional<ExitStatus> exit;  // set once the container has ended
  std::string log_dir;             // where its log lines go (see log_reader.h)
};

struct Usage {
  double cpu_seconds = 0;    // cumulative
  int64_t memory_bytes = 0;  // current
};

enum class KeepLogs { kNo, kYes };

// A command to run inside a running container, as `docker exec` does (its namespaces,
// cgroup, user, environment and limits): the host program to spawn, and the file
// where that program writes the host pid of the process it starts in the container
// (so a caller that gives up can kill it).
struct ExecCommand {
  std::vector<std::string> argv;
  std::string pid_file;
};

class Runtime {
 public:
  virtual ~Runtime() = default;

  // Writes the bundle, launches the shim and returns once the container's process
  // runs; on failure the error carries the OCI runtime's message and nothing is left.
  virtual Result<ContainerState> start(const ContainerSpec& spec,
                                       const model::ImageConfig& image) = 0;
  // kNotFound for an unknown id.
  virtual Result<ContainerState> state(const std::string& id) = 0;
  // Every container with a state dir, running or ended: what the agent re-adopts after
  // a restart.
  virtual Result<std::vector<ContainerState>> list() = 0;
  // kConflict if the container is not running.
  virtual Result<void> signal(const std::string& id, int sig) = 0;
  // The image's stop signal (SIGTERM by default), `grace`, then SIGKILL. Returns the
  // exit (also when the container had already ended).
  virtual Result<ExitStatus> stop(const std::string& id, std::chrono::milliseconds grace) = 0;
  // Blocks without polling until the container ends; kTimeout if it still runs after
  // `timeout`.
  virtual Result<ExitStatus> wait(const std::string& id, std::chrono::milliseconds timeout) = 0;
  // Calls `callback` once, on a runtime thread, when the container has ended (soon
  // after start if it already has); with wait()'s error if its exit is lost. No
  // polling: the agent learns of exits as they happen. kNotFound for an unknown id.
  using ExitCallback = std::function<void(const std::string& id, Result<ExitStatus> exit)>;
  virtual Result<void> on_exit(const std::string& id, ExitCallback callback) = 0;
  // Kills what is left, deletes the runtime's state, the cgroups and the state dir
  // (but the log dir when KeepLogs::kYes). The caller unmounts the rootfs and removes
  // the netns.
  virtual Result<void> remove(const std::string& id, KeepLogs keep_logs) = 0;
  // From the container's cgroups (v1 cpuacct/memory or v2 cpu.stat/memory.current).
  virtual Result<Usage> usage(const std::string& id) = 0;
  // How to run `args` in container `id` (see ExecCommand). Runs nothing itself; the
  // caller spawns argv (the health checker does, with its timeout).
  virtual ExecCommand exec_command(const std::string& id,
                                   const std::vector<std::string>& args) const = 0;
};

}  // namespace mill::runtime
