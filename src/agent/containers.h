#pragma once

// What the allocation runner needs from this node to run one container: pull its
// image, give it a network and a root filesystem, start it under the OCI runtime,
// watch and stop it, and clean up after it. ContainerHost (container_host.h) does it
// for real; the runner's unit tests use a fake.
//
// Thread-safety: methods may be called concurrently for different ids; calls for one
// id are serialised by the caller.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "model/allocation.h"
#include "model/node_protocol.h"
#include "runtime/runtime.h"

namespace mill::agent {

struct Started {
  int pid = 0;
  std::string image_digest;
  std::chrono::milliseconds pull_duration{0};
  std::chrono::milliseconds start_duration{0};
};

struct Exit {
  int code = 0;      // 128 + signal when killed by a signal
  int signal = 0;    // 0 when it exited by itself
  bool oom = false;  // SIGKILLed by the OOM killer in its memory cgroup
};

struct Adopted {
  std::string id;
  int pid = 0;
  bool running = false;
  std::optional<Exit> exit;  // set when it ended while the agent was away
};

struct Usage {
  double cpu_seconds = 0;
  int64_t memory_bytes = 0;
  std::map<std::string, int64_t> volume_used;  // bytes, by volume the allocation mounts
};

class Containers {
 public:
  virtual ~Containers() = default;

  // The registry logins the control plane sent with the latest allocations.
  virtual void set_registries(std::map<std::string, model::RegistryLogin> registries) = 0;

  // Destroys a volume of this node and its data; gone already is fine.
  virtual Result<void> remove_volume(const std::string& name) = 0;
  // Pulls the image (a deploy's `pulling` phase) so a later start finds it here.
  virtual Result<void> pull(const std::string& image) = 0;
  // Pulls, wires the network, mounts the rootfs and starts the process; calls
  // `starting` once the image is there (the allocation moves from pulling to
  // starting). On failure nothing is left behind but the log dir.
  virtual Result<Started> start(const model::Allocation& alloc,
                                const std::function<void()>& starting) = 0;
  // Blocks until the container ends (kTimeout if it still runs after `timeout`).
  virtual Result<Exit> wait(const std::string& id, std::chrono::milliseconds timeout) = 0;
  // Calls `on_end` once, on another thread, when the container has ended (soon after
  // the call if it already has), with the error of an exit that was lost: the runner
  // learns of exits as they happen instead of looking. Must not block for long.
  // kNotFound for an unknown id.
  using ExitCallback = std::function<void(Result<Exit> exit)>;
  virtual Result<void> on_exit(const std::string& id, ExitCallback on_end) = 0;
  // SIGTERM (or the image's stop signal), `grace`, SIGKILL.
  virtual Result<Exit> stop(const std::string& id, std::chrono::milliseconds grace) = 0;
  virtual Result<Usage> usage(const model::Allocation& alloc) = 0;
  // How to run `args` inside running container `id` (a command health check).
  virtual runtime::ExecCommand exec_command(const std::string& id,
                                            const std::vector<std::string>& args) = 0;
  // After the end: removes the container, its rootfs mount, network and runtime state,
  // and releases its image, keeping only its log. Idempotent.
  virtual void release(const std::string& id, const std::string& image_digest) = 0;
  // Removes the log too: the control plane has forgotten the allocation.
  virtual void forget(const std::string& id) = 0;
  // Containers found at start: running ones are re-adopted, ended ones reaped.
  virtual std::vector<Adopted> adopt() = 0;
  // Where the allocation's log lines are (runtime/log_reader.h reads them).
  virtual std::string log_dir(const std::string& id) const = 0;
};

}  // namespace mill::agent
