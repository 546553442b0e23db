#include "image/rootfs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "common/fd.h"

namespace mill::image {
namespace {

// Mount data is copied from user space as one page, NUL included.
constexpr size_t kMountDataMax = 4095;

std::string errno_text(int err) { return std::strerror(err); }

using Fd = UniqueFd;

Result<void> ensure_dir(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return make_error(ErrorCode::kIo, "mkdir " + path + ": " + ec.message());
  return {};
}

// "/proc/self/fd/N" for an O_PATH descriptor of dir, kept open in `fds`.
Result<std::string> fd_path(const std::string& dir, std::vector<Fd>& fds) {
  int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::kIo, "open " + dir + ": " + errno_text(errno));
  fds.emplace_back(fd);
  return "/proc/self/fd/" + std::to_string(fd);
}

// True when path is the root of a mount (statx knows since Linux 5.8).
Result<bool> is_mount_point(const std::string& path) {
  struct statx stx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, 0, &stx) != 0) {
    return make_error(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                      "statx " + path + ": " + errno_text(errno));
  }
  if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) == 0) {
    return make_error(ErrorCode::kInternal, "kernel does not report mount roots (< 5.8)");
  }
  return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

}  // namespace

Result<void> mount_rootfs(const std::vector<std::string>& layer_dirs, const std::string& upper_dir,
                          const std::string& work_dir, const std::string& target) {
  if (layer_dirs.empty()) return make_error(ErrorCode::kInvalidArgument, "rootfs: no layers");
  if (layer_dirs.size() > kMaxLayers) {
    return make_error(ErrorCode::kInvalidArgument, "rootfs: " + std::to_string(layer_dirs.size()) +
                                                       " layers, at most " +
                                                       std::to_string(kMaxLayers) + " supported");
  }
  MILL_TRY(ensure_dir(upper_dir));
  MILL_TRY(ensure_dir(work_dir));
  MILL_TRY(ensure_dir(target));
  if (MILL_TRY(is_mount_point(target))) {
    return make_error(ErrorCode::kAlreadyExists, "rootfs: " + target + " is already mounted");
  }

  std::vector<Fd> fds;
  fds.reserve(layer_dirs.size() + 2);
  std::string data = "lowerdir=";
  for (auto it = layer_dirs.rbegin(); it != layer_dirs.rend(); ++it) {  // top first
    if (it != layer_dirs.rbegin()) data += ':';
    data += MILL_TRY(fd_path(*it, fds));
  }
  data += ",upperdir=" + MILL_TRY(fd_path(upper_dir, fds));
  data += ",workdir=" + MILL_TRY(fd_path(work_dir, fds));
  // No inode index: the same lower layers are shared by many rootfs mounts.
  data += ",index=off";
  if (data.size() > kMountDataMax) {
    return make_error(ErrorCode::kInvalidArgument, "rootfs: overlay options exceed one page");
  }

  if (::mount("overlay", target.c_str(), "overlay", 0, data.c_str()) != 0) {
    return make_error(ErrorCode::kIo, "mount overlay on " + target + ": " + errno_text(errno));
  }
  if (::mount(nullptr, target.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) {
    int err = errno;
    ::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    return make_error(ErrorCode::kIo, "make " + target + " private: " + errno_text(err));
  }
  return {};
}

Result<void> unmount_rootfs(const std::string& target) {
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0) return {};
  if (errno == EINVAL || errno == ENOENT) return {};  // not mounted / not there
  if (errno == EBUSY && ::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) return {};
  return make_error(ErrorCode::kIo, "unmount " + target + ": " + errno_text(errno));
}

Result<void> make_mount_private(const std::string& dir) {
  MILL_TRY(ensure_dir(dir));
  if (!MILL_TRY(is_mount_point(dir)) &&
      ::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return make_error(ErrorCode::kIo, "bind mount " + dir + ": " + errno_text(errno));
  }
  if (::mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE | MS_REC, nullptr) != 0) {
    return make_error(ErrorCode::kIo, "make " + dir + " private: " + errno_text(errno));
  }
  return {};
}

}  // namespace mill::image
