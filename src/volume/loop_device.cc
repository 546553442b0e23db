#include "volume/loop_device.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace mill::volume {
namespace {

// How often to try again when another process takes the free device we were given.
constexpr int kAttachAttempts = 16;

Unexpected sys_error(const std::string& what, int err) {
  return make_error(ErrorCode::kIo, what + ": " + std::strerror(err));
}

}  // namespace

Result<LoopDevice> attach_loop_device(const std::string& image) {
  UniqueFd file(::open(image.c_str(), O_RDWR | O_CLOEXEC));
  if (!file.valid()) return sys_error("open " + image, errno);
  UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control.valid()) return sys_error("open /dev/loop-control", errno);

  for (int attempt = 0; attempt < kAttachAttempts; ++attempt) {
    int n = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (n < 0) return sys_error("find a free loop device", errno);
    std::string path = "/dev/loop" + std::to_string(n);
    UniqueFd device(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!device.valid()) {
      // udev may not have made the node yet; another round gets the next free one.
      if (errno == ENOENT) continue;
      return sys_error("open " + path, errno);
    }
    loop_config config{};
    config.fd = static_cast<__u32>(file.get());
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    std::strncpy(reinterpret_cast<char*>(config.info.lo_file_name), image.c_str(),
                 LO_NAME_SIZE - 1);
    if (::ioctl(device.get(), LOOP_CONFIGURE, &config) == 0) {
      return LoopDevice{std::move(device), path};
    }
    if (errno != EBUSY) return sys_error("attach " + image + " to " + path, errno);
  }
  return make_error(ErrorCode::kUnavailable,
                    "attach " + image + ": every free loop device was taken by another process");
}

std::string find_loop_device(const std::string& image) {
  struct stat st {};
  if (::stat(image.c_str(), &st) != 0) return "";
  DIR* dir = ::opendir("/sys/block");
  if (dir == nullptr) return "";
  std::string found;
  while (auto* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    // backing_file exists only while the device is attached. Its path is not good
    // enough to compare: it is relative to the mount the file was opened through,
    // which may be gone (an unmounted bind of the volumes dir).
    if (!name.starts_with("loop") ||
        ::access(("/sys/block/" + name + "/loop/backing_file").c_str(), F_OK) != 0) {
      continue;
    }
    UniqueFd device(::open(("/dev/" + name).c_str(), O_RDONLY | O_CLOEXEC));
    loop_info64 info{};
    if (device.valid() && ::ioctl(device.get(), LOOP_GET_STATUS64, &info) == 0 &&
        info.lo_device == st.st_dev && info.lo_inode == st.st_ino) {
      found = "/dev/" + name;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

Result<void> detach_loop_device(const std::string& device) {
  UniqueFd fd(::open(device.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT || errno == ENXIO) return {};
    return sys_error("open " + device, errno);
  }
  if (::ioctl(fd.get(), LOOP_CLR_FD) != 0 && errno != ENXIO) {
    return sys_error("detach " + device, errno);
  }
  return {};
}

Result<void> refresh_loop_capacity(const std::string& device) {
  UniqueFd fd(::open(device.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return sys_error("open " + device, errno);
  if (::ioctl(fd.get(), LOOP_SET_CAPACITY) != 0) return sys_error("resize " + device, errno);
  return {};
}

}  // namespace mill::volume
