#pragma once

// The root filesystem of an allocation: overlayfs over the image's unpacked layers
// (unpack.h), read-only, with a private upper dir that takes the container's writes.
//
// Mount data is one page (4 KiB) and layer dirs have long paths, so the options name
// each dir as "/proc/self/fd/N" (an O_PATH descriptor held only during the mount):
// about 20 bytes per layer whatever the real path (commas and colons in it are fine
// too). We accept up to kMaxLayers layers (Docker's limit, well under the page and
// overlayfs's own 500-layer stack limit).
//
// Propagation: the new mount is made private at once, but whether *creating* it
// propagates depends on the mount it lands on. Call make_mount_private() once on the
// directory that holds the targets (under the data dir) so that rootfs mounts never
// show up in, or pin layers from, other mount namespaces.
//
// Needs root (CAP_SYS_ADMIN). Thread-safe.

#include <cstddef>
#include <string>
#include <vector>

#include "common/result.h"

namespace mill::image {

inline constexpr size_t kMaxLayers = 128;

// layer_dirs: bottom layer first, as in the image manifest (overlayfs wants them top
// first; this function reverses them). upper_dir, work_dir and target are created
// (0755) when missing; upper and work must be on the same filesystem and must not be
// in use by another mount. kInvalidArgument for no layers or too many, kIo (with
// errno text) when the kernel refuses.
Result<void> mount_rootfs(const std::vector<std::string>& layer_dirs, const std::string& upper_dir,
                          const std::string& work_dir, const std::string& target);

// Unmounts target (lazily, MNT_DETACH, when it is busy). Idempotent: success when
// nothing is mounted there or target does not exist. Never follows a symlink at
// target.
Result<void> unmount_rootfs(const std::string& target);

// Makes dir a mount point of its own (a bind mount onto itself, if it is not one)
// with private propagation, so mounts below it neither propagate to nor receive from
// other namespaces. Idempotent. Undo with unmount_rootfs(dir) once nothing is below.
Result<void> make_mount_private(const std::string& dir);

}  // namespace mill::image
