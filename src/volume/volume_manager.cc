#include "volume/volume_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

#include "common/fd.h"
#include "model/names.h"
#include "model/units.h"
#include "volume/ext4.h"
#include "volume/loop_device.h"
#include "volume/mount.h"

namespace mill::volume {
namespace {

// How long remove() waits for the kernel to let go of a loop device after the unmount.
constexpr auto kDetachWait = std::chrono::seconds(2);
constexpr auto kDetachPoll = std::chrono::milliseconds(10);

Unexpected sys_error(const std::string& what, int err) {
  return make_error(ErrorCode::kIo, what + ": " + std::strerror(err));
}

Result<void> check_name(const std::string& name) {
  if (!model::is_valid_name(name)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid volume name \"" + name +
                          "\": use 1-128 of A-Z a-z 0-9 _ . - (and not \".\" or \"..\")");
  }
  return {};
}

Result<void> make_dir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return sys_error("mkdir " + path, errno);
  return {};
}

Result<void> remove_path(const std::string& path, bool dir) {
  int rc = dir ? ::rmdir(path.c_str()) : ::unlink(path.c_str());
  if (rc != 0 && errno != ENOENT) return sys_error("remove " + path, errno);
  return {};
}

// Waits a little for the kernel to detach the loop device of `image` (autoclear, once
// its last user is gone). False when it is still attached: someone still uses it.
bool wait_detached(const std::string& image) {
  auto deadline = std::chrono::steady_clock::now() + kDetachWait;
  while (!find_loop_device(image).empty()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(kDetachPoll);
  }
  return true;
}

Result<void> fsync_path(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0) return sys_error("fsync " + path, errno);
  return {};
}

}  // namespace

Result<std::unique_ptr<VolumeManager>> VolumeManager::create(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::path root = std::filesystem::path(data_dir) / "volumes";
  std::filesystem::create_directories(root, ec);
  if (ec) return make_error(ErrorCode::kIo, "mkdir " + root.string() + ": " + ec.message());
  std::filesystem::permissions(root, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  // Canonical, because /proc/self/mountinfo names mount points that way.
  auto canonical = std::filesystem::canonical(root, ec);
  if (ec) return make_error(ErrorCode::kIo, "resolve " + root.string() + ": " + ec.message());
  return std::unique_ptr<VolumeManager>(new VolumeManager(canonical.string()));
}

VolumeManager::Paths VolumeManager::paths(const std::string& name) const {
  Paths p;
  p.name = name;
  p.dir = root_ + "/" + name;
  p.image = p.dir + "/disk.img";
  p.mnt = p.dir + "/mnt";
  p.data = p.mnt + "/data";
  return p;
}

Result<VolumeInfo> VolumeManager::ensure(const std::string& name, std::int64_t size_bytes) {
  MILL_TRY(check_name(name));
  if (size_bytes < kMinVolumeSize) {
    return make_error(ErrorCode::kInvalidArgument,
                      "volume " + name + ": size " + std::to_string(size_bytes) +
                          " bytes is under the minimum of " + model::format_size(kMinVolumeSize));
  }
  std::lock_guard lock(mutex_);
  const Paths p = paths(name);
  MILL_TRY(make_mount_private(root_));
  MILL_TRY(make_dir(p.dir, 0700));

  struct stat st {};
  std::int64_t current = 0;
  if (::stat(p.image.c_str(), &st) == 0) {
    current = st.st_size;
  } else if (errno != ENOENT) {
    return sys_error("stat " + p.image, errno);
  }
  if (current > size_bytes) {
    return make_error(ErrorCode::kConflict,
                      "volume " + name + " cannot shrink from " + model::format_size(current) +
                          " to " + model::format_size(size_bytes) +
                          ": volumes only grow; to start smaller, remove it (losing its data)");
  }
  if (current == 0) MILL_TRY(create_image(p, size_bytes));
  MILL_TRY(grow_if_needed(p, size_bytes));
  MILL_TRY(mount_image(p));
  MILL_TRY(make_dir(p.data, 0755));
  return describe(name);
}

Result<void> VolumeManager::create_image(const Paths& p, std::int64_t size_bytes) {
  const std::string tmp = p.image + ".tmp";
  MILL_TRY(remove_path(tmp, false));  // left by a crash during an earlier create
  {
    UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return sys_error("create " + tmp, errno);
    if (::ftruncate(fd.get(), size_bytes) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return sys_error("size " + tmp, err);
    }
  }
  auto made = make_ext4(tmp);
  if (made) made = fsync_path(tmp, O_RDONLY);
  if (!made) {
    ::unlink(tmp.c_str());
    return made;
  }
  if (::rename(tmp.c_str(), p.image.c_str()) != 0) return sys_error("rename " + tmp, errno);
  return fsync_path(p.dir, O_RDONLY | O_DIRECTORY);
}

Result<void> VolumeManager::mount_image(const Paths& p) {
  MILL_TRY(make_dir(p.mnt, 0700));
  std::string device = find_loop_device(p.image);
  if (MILL_TRY(is_mount_point(p.mnt))) {
    if (!device.empty() && is_mounted_from(p.mnt, device)) return {};
    return make_error(ErrorCode::kConflict,
                      p.mnt + " holds a mount that is not this volume's image; unmount it");
  }
  // A device still attached to the image carries a live filesystem (a container may
  // still mount it): mount that one, never a second filesystem over the same file.
  LoopDevice attached;
  if (device.empty()) {
    attached = MILL_TRY(attach_loop_device(p.image));
    device = attached.path;
  }
  // `attached.fd` closes on return: from then on the mount alone keeps the device
  // attached, and a failed mount leaves nothing attached.
  return mount_ext4(device, p.mnt);
}

// The image's size is what was promised; the filesystem catches up with it here. So a
// growth cut short (a crash, a busy volume) is finished by a later ensure().
Result<void> VolumeManager::grow_if_needed(const Paths& p, std::int64_t size_bytes) {
  std::string device = find_loop_device(p.image);
  Ext4Size fs = MILL_TRY(read_ext4_size(device.empty() ? p.image : device));
  if (fs.blocks >= size_bytes / fs.block_size) return {};
  struct stat st {};
  if (::stat(p.image.c_str(), &st) != 0) return sys_error("stat " + p.image, errno);
  if (st.st_size < size_bytes && ::truncate(p.image.c_str(), size_bytes) != 0) {
    return sys_error("grow " + p.image, errno);
  }
  if (!device.empty()) {
    // Online, as resize2fs does it; needs CAP_SYS_RESOURCE, which not every host gives.
    if (is_mounted_from(p.mnt, device) && refresh_loop_capacity(device) &&
        grow_ext4(p.mnt, size_bytes)) {
      return {};
    }
    // Offline needs the filesystem released everywhere.
    MILL_TRY(unmount(p.mnt, WhenBusy::kFail));
    if (!wait_detached(p.image)) {
      (void)mount_image(p);
      return make_error(ErrorCode::kConflict,
                        "volume " + p.name + " cannot grow to " + model::format_size(size_bytes) +
                            " while something else mounts it (a container?); it grows on the "
                            "first ensure once nothing does");
    }
  }
  return grow_ext4_offline(p.image, size_bytes);
}

Result<VolumeInfo> VolumeManager::describe(const std::string& name) {
  const Paths p = paths(name);
  struct stat st {};
  if (::stat(p.image.c_str(), &st) != 0) {
    if (errno == ENOENT) return make_error(ErrorCode::kNotFound, "no volume " + name);
    return sys_error("stat " + p.image, errno);
  }
  VolumeInfo info;
  info.name = name;
  info.size_bytes = st.st_size;
  info.path = p.data;
  info.image_path = p.image;
  info.device = find_loop_device(p.image);
  auto mount_point = is_mount_point(p.mnt);
  info.mounted =
      mount_point && *mount_point && !info.device.empty() && is_mounted_from(p.mnt, info.device);
  struct statvfs vfs {};
  if (info.mounted && ::statvfs(p.mnt.c_str(), &vfs) == 0) {
    info.used_bytes = static_cast<std::int64_t>((vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize);
    info.available_bytes = static_cast<std::int64_t>(vfs.f_bavail * vfs.f_frsize);
  }
  return info;
}

Result<VolumeInfo> VolumeManager::info(const std::string& name) {
  MILL_TRY(check_name(name));
  std::lock_guard lock(mutex_);
  return describe(name);
}

Result<std::vector<VolumeInfo>> VolumeManager::list() {
  std::lock_guard lock(mutex_);
  std::vector<VolumeInfo> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root_, ec)) {
    std::string name = entry.path().filename().string();
    if (!model::is_valid_name(name)) continue;
    auto info = describe(name);
    if (info) {
      out.push_back(std::move(*info));
    } else if (info.error().code != ErrorCode::kNotFound) {
      return Unexpected(std::move(info).error());
    }
  }
  if (ec) return make_error(ErrorCode::kIo, "list " + root_ + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Result<void> VolumeManager::remove(const std::string& name) {
  MILL_TRY(check_name(name));
  std::lock_guard lock(mutex_);
  const Paths p = paths(name);
  struct stat st {};
  if (::lstat(p.dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return make_error(ErrorCode::kNotFound, "no volume " + name);
    return sys_error("stat " + p.dir, errno);
  }
  if (auto r = unmount(p.mnt, WhenBusy::kFail); !r) {
    if (r.error().code != ErrorCode::kConflict) return r;
    return make_error(ErrorCode::kConflict, "volume " + name + " is in use: " + r.error().message);
  }
  if (std::string device = find_loop_device(p.image); !device.empty()) {
    MILL_TRY(detach_loop_device(device));
    if (!wait_detached(p.image)) {
      return make_error(ErrorCode::kConflict,
                        "volume " + name + " is still mounted elsewhere (by a container?): " +
                            device + " stays attached; nothing deleted");
    }
  }
  // Never remove_all(): were the unmount ever to be undone behind our back, it would
  // delete the volume's contents through the mount. An unmounted mnt/ is empty.
  MILL_TRY(remove_path(p.image, false));
  MILL_TRY(remove_path(p.image + ".tmp", false));
  MILL_TRY(remove_path(p.mnt, true));
  MILL_TRY(remove_path(p.dir, true));
  return {};
}

Result<void> VolumeManager::unmount_all() {
  std::lock_guard lock(mutex_);
  Result<void> first;
  auto note = [&first](Result<void> r) {
    if (!r && first) first = std::move(r);
  };
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root_, ec)) {
    std::string name = entry.path().filename().string();
    if (!model::is_valid_name(name)) continue;
    const Paths p = paths(name);
    auto mounted = is_mount_point(p.mnt);
    if (mounted && *mounted) note(unmount(p.mnt, WhenBusy::kDetach));
  }
  if (ec) note(make_error(ErrorCode::kIo, "list " + root_ + ": " + ec.message()));
  if (is_self_bind(root_)) note(unmount(root_, WhenBusy::kDetach));
  return first;
}

}  // namespace mill::volume
