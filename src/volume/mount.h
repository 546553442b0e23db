#pragma once

// Mount helpers for volumes. Internal to src/volume.

#include <string>

#include "common/result.h"

namespace mill::volume {

// True when `path` is the root of a mount (statx, Linux 5.8+). kNotFound when `path`
// does not exist.
Result<bool> is_mount_point(const std::string& path);

// Makes `dir` a mount point of its own (a bind onto itself unless it already is one)
// with private propagation: volume mounts below it neither show up in nor come from
// other mount namespaces. Idempotent.
Result<void> make_mount_private(const std::string& dir);

// Whether `dir` is the bind onto itself that make_mount_private() made, rather than a
// filesystem someone mounted there (which must be left alone).
bool is_self_bind(const std::string& dir);

// Mounts the ext4 filesystem on `device` at `target` with nodev, nosuid and
// errors=remount-ro, then makes the mount private. `scratch`: one made with
// Ext4Use::kScratch, whose inode tables the kernel then leaves unwritten (noinit_itable).
Result<void> mount_ext4(const std::string& device, const std::string& target, bool scratch = false);

enum class WhenBusy { kFail, kDetach };

// Unmounts `target` (never following a symlink there). Busy: kConflict, or a lazy
// unmount with WhenBusy::kDetach. Success when nothing is mounted there.
Result<void> unmount(const std::string& target, WhenBusy when_busy);

// Whether the filesystem mounted at `path` lives on block device `device`.
bool is_mounted_from(const std::string& path, const std::string& device);

}  // namespace mill::volume
