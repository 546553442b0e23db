#pragma once

// Containers for real: images from the node's ImageStore, a network namespace from
// NodeNetwork, an overlayfs rootfs, and the OCI runtime (through its shim).
//
// On disk, under alloc_root: one dir per allocation with
//   rootfs/          the overlay mount the container runs in
//   disk.img disk/   its own filesystem (volume/scratch_disk.h), which holds
//     upper/ work/   its private writable layer (in the dir itself when its spec has
//                    no disk)
//   hosts resolv.conf hostname   bound read-only into the container
//   image            the image digest it runs (to hold the image after a restart)
// Logs live in the runtime's state dir (they outlast the rest until forget()).

#include <map>
#include <mutex>
#include <string>

#include "agent/containers.h"
#include "image/image_store.h"
#include "network/node_network.h"
#include "runtime/runtime.h"
#include "volume/scratch_disk.h"
#include "volume/volume_manager.h"

namespace mill::agent {

struct ContainerHostOptions {
  std::string alloc_root;          // <data>/allocs
  std::string runtime_state_root;  // the runtime's per-container dirs (logs inside)
  std::string cgroup_parent = "/mill";
  std::string init_path = "/usr/bin/tini-static";
  // Disks of this size kept ready for starts (0: none; each start makes its own).
  std::int64_t spare_disk_size = 0;
  int spare_disks = 2;
};

class ContainerHost final : public Containers {
 public:
  ContainerHost(ContainerHostOptions options, image::ImageStore& images,
                network::NodeNetwork& network, runtime::Runtime& runtime,
                volume::VolumeManager& volumes);

  void set_registries(std::map<std::string, model::RegistryLogin> registries) override;
  Result<void> pull(const std::string& image) override;
  Result<void> remove_volume(const std::string& name) override;
  Result<Started> start(const model::Allocation& alloc,
                        const std::function<void()>& starting) override;
  Result<Exit> wait(const std::string& id, std::chrono::milliseconds timeout) override;
  Result<void> on_exit(const std::string& id, ExitCallback on_end) override;
  Result<Exit> stop(const std::string& id, std::chrono::milliseconds grace) override;
  Result<Usage> usage(const model::Allocation& alloc) override;
  runtime::ExecCommand exec_command(const std::string& id,
                                    const std::vector<std::string>& args) override;
  void release(const std::string& id, const std::string& image_digest) override;
  void forget(const std::string& id) override;
  std::vector<Adopted> adopt() override;
  std::string log_dir(const std::string& id) const override;

  // For the ImageStore's credential lookup.
  std::optional<model::RegistryLogin> login_for(const std::string& host) const;

 private:
  std::string dir(const std::string& id) const { return options_.alloc_root + "/" + id; }
  Result<void> write_files(const model::Allocation& alloc, const std::string& gateway);
  void teardown(const std::string& id);

  ContainerHostOptions options_;
  image::ImageStore& images_;
  network::NodeNetwork& network_;
  runtime::Runtime& runtime_;
  volume::VolumeManager& volumes_;
  mutable std::mutex mutex_;
  std::map<std::string, model::RegistryLogin> registries_;
  volume::SpareDisks spares_;  // made from the end of adopt() on
};

}  // namespace mill::agent
