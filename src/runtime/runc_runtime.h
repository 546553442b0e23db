#pragma once

// Runtime on an OCI runtime binary (runc; crun where the cgroup layout allows) with
// one mill-shim per container. State layout, per container (see README.md):
//   STATE_ROOT/<id>/bundle/config.json   written by start(); with a bundle_root, bundle
//                                        is a link to BUNDLE_ROOT/<id>, in memory
//   STATE_ROOT/<id>/state.json           pids + start times, written by the shim
//   STATE_ROOT/<id>/exit.json            the exit, written by the shim
//   STATE_ROOT/<id>/log/current.jsonl    output, rotated to .1 .. .N
//   STATE_ROOT/<id>/exec.pid             the latest exec_command's process
// Everything about a container lives in those files, so a new RuncRuntime over the
// same state_root (an agent restart) sees exactly what the old one did.

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/exit_watcher.h"
#include "runtime/runtime.h"

namespace mill::runtime {

struct RuntimeOptions {
  std::string runtime_path = "/usr/sbin/runc";
  std::string shim_path;   // empty: mill-shim beside the running executable
  std::string state_root;  // per-container dirs STATE_ROOT/<id>/
  std::string runc_root;   // runc --root, so two Mills on one host do not collide
  // Where bundles (config.json: the process's environment, secrets included) live,
  // in memory: a tmpfs is mounted there at the first start unless it already is one.
  // Empty: in the state dir (tests of the runtime alone).
  std::string bundle_root;
  uint64_t log_max_bytes = 10 << 20;
  int log_max_files = 3;  // rotated files kept beside current.jsonl
  std::chrono::milliseconds start_timeout{60'000};
};

// Unmounts the tmpfs make_bundle_dir mounted at `bundle_root` (if it did) and removes
// the dir: what `mill cleanup` does once no container is left.
void release_bundle_root(const std::string& bundle_root);

class RuncRuntime final : public Runtime {
 public:
  // Creates state_root and runc_root; kInvalidArgument when a path is missing or the
  // runtime or shim is not executable.
  static Result<std::unique_ptr<RuncRuntime>> create(RuntimeOptions options);

  Result<ContainerState> start(const ContainerSpec& spec, const model::ImageConfig& image) override;
  Result<ContainerState> state(const std::string& id) override;
  Result<std::vector<ContainerState>> list() override;
  Result<void> signal(const std::string& id, int sig) override;
  Result<ExitStatus> stop(const std::string& id, std::chrono::milliseconds grace) override;
  Result<ExitStatus> wait(const std::string& id, std::chrono::milliseconds timeout) override;
  Result<void> on_exit(const std::string& id, ExitCallback callback) override;
  Result<void> remove(const std::string& id, KeepLogs keep_logs) override;
  Result<Usage> usage(const std::string& id) override;
  ExecCommand exec_command(const std::string& id,
                           const std::vector<std::string>& args) const override;

  const RuntimeOptions& options() const { return options_; }

 private:
  explicit RuncRuntime(RuntimeOptions options) : options_(std::move(options)) {}

  std::string dir(const std::string& id) const { return options_.state_root + "/" + id; }
  Result<int> launch_shim(const std::string& id);
  // runc's cgroupsPath of the container, read from its bundle once and then kept
  // (usage, exits and kills all ask; config.json is tens of KiB). remove() forgets it.
  Result<std::string> cgroup_path(const std::string& id) const;
  // Kills what is left in the container's cgroups (kill_cgroup) and returns once
  // nothing is: a container counts as ended only then. kConflict if something
  // survives kKillLimit.
  Result<void> empty_cgroup(const std::string& id);
  // The exit the shim recorded, if any, with oom_killed from the memory cgroup.
  std::optional<ExitStatus> exit_of(const std::string& id) const;
  static constexpr std::chrono::milliseconds kKillLimit{10'000};
  void cleanup_failed_start(const std::string& id, bool kept_logs);
  // Makes STATE_ROOT/<id>/bundle: a dir, or a link to a fresh BUNDLE_ROOT/<id>.
  Result<void> make_bundle_dir(const std::string& id, const std::string& bundle);

  RuntimeOptions options_;
  std::mutex bundle_root_mutex_;
  bool bundle_root_ready_ = false;  // in memory, checked or mounted by make_bundle_dir
  mutable std::mutex cgroups_mutex_;
  mutable std::map<std::string, std::string> cgroups_;  // cgroup_path()'s, by id
  std::once_flag watcher_once_;
  std::unique_ptr<ExitWatcher> watcher_;  // last: its thread stops before the rest goes
};

}  // namespace mill::runtime
