#pragma once

// A container's writable layer on a filesystem of its own (`disk = "1G"`), so its size
// is a hard limit the kernel enforces (a write past it fails with ENOSPC) and a task
// cannot fill the disk the node's data dir and state store are on: a sparse ext4 image
// DIR/disk.img of that size, loop-mounted (nodev, nosuid) at DIR/disk, which holds the
// overlay's upper and work dirs. Sparse: it takes only the room written to it.

#include <cstdint>
#include <string>

#include "common/result.h"

namespace mill::volume {

// Makes and mounts the disk; returns its mount dir (DIR/disk). A disk left by an
// earlier, interrupted start is made anew. kInvalidArgument for a size under 1 MiB;
// on failure nothing is left mounted or attached.
Result<std::string> make_scratch_disk(const std::string& dir, std::int64_t bytes);

// Unmounts DIR/disk (the loop device detaches itself) and deletes the image. Nothing
// there is fine.
Result<void> remove_scratch_disk(const std::string& dir);

}  // namespace mill::volume
