#pragma once

// Persistent volumes of one node (DESIGN.md: `[volume.NAME] size = "10G"`).
//
// A volume is an ext4 filesystem in a sparse image file of exactly its size, mounted
// through a loop device, so its size is a hard limit: writes past it fail with ENOSPC
// inside the volume and never fill the node's disk beyond it. Layout:
//
//   <data>/volumes/                 0700, a private mount point (see ensure())
//     NAME/disk.img                 the image; its size is the volume's size
//     NAME/mnt/                     where the image is mounted (nodev, nosuid)
//     NAME/mnt/data/                what containers get (hides lost+found)
//
// The image is the only state: nothing else records a volume, so after a reboot or a
// restart of the agent ensure() finds the image and mounts it again. While a volume is
// not mounted, mnt/data does not exist, so a bind of it fails instead of silently
// using the node's own disk.
//
// Needs root (CAP_SYS_ADMIN). Every call is thread-safe (one lock per manager); one
// manager per data dir and process.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "model/config.h"

namespace mill::volume {

// The smallest volume (the config's minimum too): mkfs.ext4 makes a working, if
// journal-less, filesystem at 1 MiB.
inline constexpr std::int64_t kMinVolumeSize = std::int64_t{1} << 20;

struct VolumeInfo {
  std::string name;
  std::int64_t size_bytes = 0;       // the image's size: all the volume may take
  std::int64_t used_bytes = 0;       // in use on the filesystem (metadata included)
  std::int64_t available_bytes = 0;  // still free for files
  bool mounted = false;              // used/available are 0 when not mounted
  std::string path;                  // <data>/volumes/NAME/mnt/data, bind this one
  std::string image_path;            // <data>/volumes/NAME/disk.img
  std::string device;                // "/dev/loopN" while attached, else ""

  bool operator==(const VolumeInfo&) const = default;
};

class VolumeManager {
 public:
  // Creates <data_dir>/volumes when missing. Does not mount anything.
  static Result<std::unique_ptr<VolumeManager>> create(const std::string& data_dir);

  // Makes volume `name` exist with `size_bytes` and be mounted; idempotent.
  //  - no image: creates it (sparse, mkfs.ext4) under a temp name and renames it into
  //    place, so a crash never leaves a half-made image that passes for a volume;
  //  - image but not mounted (a reboot, `mill cleanup`): mounts it again, through the
  //    loop device already attached to it if there is one (a container may still hold
  //    the filesystem), so one image never has two live filesystems;
  //  - a larger size: grows the image and its filesystem, online if the host allows
  //    it (CAP_SYS_RESOURCE), else unmounted with e2fsck and resize2fs; kConflict when
  //    the volume must be unmounted for that but a container still mounts it;
  //  - a smaller size: kConflict (ext4 cannot shrink online; data would be lost).
  // kInvalidArgument for a bad name or a size under kMinVolumeSize.
  Result<VolumeInfo> ensure(const std::string& name, std::int64_t size_bytes);
  Result<VolumeInfo> ensure(const model::VolumeSpec& spec) { return ensure(spec.name, spec.size); }

  // kNotFound when there is no such volume.
  Result<VolumeInfo> info(const std::string& name);
  // Every volume with an image, by name.
  Result<std::vector<VolumeInfo>> list();

  // Unmounts the volume, detaches its loop device and deletes its files. kNotFound
  // when absent; kConflict (nothing deleted) when it is busy, on the node or inside a
  // container that still mounts it.
  Result<void> remove(const std::string& name);

  // Unmounts every volume (lazily when busy) and the private mount of the volumes dir,
  // for `mill cleanup` and shutdown. Data stays on disk; ensure() mounts again. Tries
  // every volume and reports the first failure.
  Result<void> unmount_all();

  const std::string& volumes_dir() const { return root_; }

 private:
  explicit VolumeManager(std::string root) : root_(std::move(root)) {}

  struct Paths {
    std::string name, dir, image, mnt, data;
  };
  Paths paths(const std::string& name) const;

  Result<void> create_image(const Paths& p, std::int64_t size_bytes);
  Result<void> mount_image(const Paths& p);
  Result<void> grow_if_needed(const Paths& p, std::int64_t size_bytes);
  Result<VolumeInfo> describe(const std::string& name);

  std::string root_;  // <data>/volumes
  std::mutex mutex_;
};

}  // namespace mill::volume
