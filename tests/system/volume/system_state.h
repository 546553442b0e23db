#pragma once

// What the kernel says about mounts and loop devices under a directory, straight from
// /proc and /sys (not through the code under test), and a cleanup that undoes both.

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace mill::testing {

// Writes `bytes` to a new file at `path`; the errno of the first failing write or
// fsync, or 0 when everything fit.
inline int fill(const std::string& path, std::int64_t bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  std::string chunk(std::size_t{1} << 20, 'x');
  int err = 0;
  for (std::int64_t done = 0; done < bytes && err == 0;) {
    ssize_t n =
        ::write(fd, chunk.data(),
                static_cast<std::size_t>(std::min<std::int64_t>(chunk.size(), bytes - done)));
    if (n < 0) err = errno;
    if (n > 0) done += n;
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  ::close(fd);
  return err;
}

struct MountEntry {
  std::string point;
  std::string options;  // per-mount options, "rw,nosuid,nodev,relatime"
};

inline bool is_under(const std::string& path, const std::string& dir) {
  return path == dir || path.starts_with(dir + "/");
}

// Mounts at or below `dir`, in mount order.
inline std::vector<MountEntry> mounts_under(const std::string& dir) {
  std::vector<MountEntry> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, point, options;
    fields >> id >> parent >> devno >> root >> point >> options;
    if (is_under(point, dir)) out.push_back({point, options});
  }
  return out;
}

struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator<(const FileId& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

// Every attached loop device with the identity of its backing file. The kernel's
// backing_file path is relative to the mount the file was opened through, which may be
// gone, so the identity is what to compare.
inline std::map<std::string, FileId> attached_loops() {
  std::map<std::string, FileId> out;
  DIR* d = ::opendir("/sys/block");
  if (d == nullptr) return out;
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (!name.starts_with("loop") ||
        ::access(("/sys/block/" + name + "/loop/backing_file").c_str(), F_OK) != 0) {
      continue;
    }
    int fd = ::open(("/dev/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    loop_info64 info{};
    if (fd >= 0 && ::ioctl(fd, LOOP_GET_STATUS64, &info) == 0) {
      out["/dev/" + name] = {static_cast<dev_t>(info.lo_device), static_cast<ino_t>(info.lo_inode)};
    }
    if (fd >= 0) ::close(fd);
  }
  ::closedir(d);
  return out;
}

inline std::optional<FileId> file_id(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

// Loop devices attached to the file with identity `id` (which may since be deleted).
inline std::vector<std::string> loops_bound_to(FileId id) {
  std::vector<std::string> out;
  for (const auto& [device, backing] : attached_loops()) {
    if (backing.dev == id.dev && backing.ino == id.ino) out.push_back(device);
  }
  return out;
}

// Loop devices whose backing file is a regular file at or below `dir`.
inline std::vector<std::string> loops_under(const std::string& dir) {
  std::set<FileId> files;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) {
      if (auto id = file_id(it->path().string())) files.insert(*id);
    }
  }
  std::vector<std::string> out;
  for (const auto& [device, backing] : attached_loops()) {
    if (files.contains(backing)) out.push_back(device);
  }
  return out;
}

// Unmounts everything below `dir` (top mounts first) and detaches its loop devices.
inline void release_everything_under(const std::string& dir) {
  // Found before the unmounts: an image may only be reachable through a mount.
  auto loops = loops_under(dir);
  for (int round = 0; round < 8; ++round) {
    auto mounts = mounts_under(dir);
    if (mounts.empty()) break;
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) {
      ::umount2(it->point.c_str(), MNT_DETACH);
    }
  }
  for (const auto& device : loops) {
    int fd = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
      ::ioctl(fd, LOOP_CLR_FD);
      ::close(fd);
    }
  }
}

}  // namespace mill::testing
