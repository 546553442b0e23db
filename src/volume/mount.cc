#include "volume/mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace mill::volume {
namespace {

Unexpected sys_error(const std::string& what, int err) {
  return make_error(ErrorCode::kIo, what + ": " + std::strerror(err));
}

// The mountinfo "root" field of the topmost mount at exactly `dir`, or "" when there is
// none. Mountinfo escapes spaces as \040; volume paths have none.
std::string mount_root_at(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, root;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, mount_root, mount_point;
    fields >> id >> parent >> devno >> mount_root >> mount_point;
    if (mount_point == dir) root = mount_root;  // later lines are mounted on top
  }
  return root;
}

}  // namespace

Result<bool> is_mount_point(const std::string& path) {
  struct statx stx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, 0, &stx) != 0) {
    if (errno == ENOENT) return make_error(ErrorCode::kNotFound, "no such path " + path);
    return sys_error("statx " + path, errno);
  }
  if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) == 0) {
    return make_error(ErrorCode::kInternal, "kernel does not report mount roots (< 5.8)");
  }
  return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

Result<void> make_mount_private(const std::string& dir) {
  if (!MILL_TRY(is_mount_point(dir)) &&
      ::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return sys_error("bind mount " + dir, errno);
  }
  if (::mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE | MS_REC, nullptr) != 0) {
    return sys_error("make " + dir + " private", errno);
  }
  return {};
}

bool is_self_bind(const std::string& dir) {
  std::string root = mount_root_at(dir);
  return !root.empty() && root != "/";
}

Result<void> mount_ext4(const std::string& device, const std::string& target, bool scratch) {
  const char* data = scratch ? "errors=remount-ro,noinit_itable" : "errors=remount-ro";
  if (::mount(device.c_str(), target.c_str(), "ext4", MS_NODEV | MS_NOSUID, data) != 0) {
    return sys_error("mount " + device + " on " + target, errno);
  }
  if (::mount(nullptr, target.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) {
    int err = errno;
    ::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    return sys_error("make " + target + " private", err);
  }
  return {};
}

Result<void> unmount(const std::string& target, WhenBusy when_busy) {
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0) return {};
  if (errno == EINVAL || errno == ENOENT) return {};  // not mounted / not there
  if (errno == EBUSY) {
    if (when_busy == WhenBusy::kFail) {
      return make_error(ErrorCode::kConflict, target + " is busy (open files or a cwd in it)");
    }
    if (::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) return {};
  }
  return sys_error("unmount " + target, errno);
}

bool is_mounted_from(const std::string& path, const std::string& device) {
  struct stat mounted {};
  struct stat dev {};
  return ::stat(path.c_str(), &mounted) == 0 && ::stat(device.c_str(), &dev) == 0 &&
         S_ISBLK(dev.st_mode) && mounted.st_dev == dev.st_rdev;
}

}  // namespace mill::volume
