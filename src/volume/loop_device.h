#pragma once

// Loop devices over volume image files. Internal to src/volume.
//
// Devices are attached with LO_FLAGS_AUTOCLEAR: the kernel detaches one when its last
// opener goes away, so once the filesystem on it is unmounted everywhere (the host
// mount and any container's bind of it) nothing is left behind, and a mount that fails
// cannot leak a device either.

#include <string>

#include "common/fd.h"
#include "common/result.h"

namespace mill::volume {

struct LoopDevice {
  UniqueFd fd;       // open until the caller has mounted it (or given up)
  std::string path;  // "/dev/loopN"
};

// Attaches `image` (read-write) to a free loop device: LOOP_CTL_GET_FREE, then
// LOOP_CONFIGURE, retried when another process takes the same free device first.
Result<LoopDevice> attach_loop_device(const std::string& image);

// The "/dev/loopN" whose backing file is `image` (the same inode), or "" when there is
// none or `image` does not exist.
std::string find_loop_device(const std::string& image);

// Detaches `device` if nothing holds it open; when something does, the kernel only
// marks it for autoclear. Idempotent.
Result<void> detach_loop_device(const std::string& device);

// Tells `device` that its backing file grew (LOOP_SET_CAPACITY).
Result<void> refresh_loop_capacity(const std::string& device);

}  // namespace mill::volume
