#include "volume/ext4.h"

#include <fcntl.h>
#include <linux/types.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/fd.h"

// Not in the UAPI headers; fs/ext4/ext4.h defines it so (resize2fs uses the same).
#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, __u64)
#endif

extern char** environ;

namespace mill::volume {
namespace {

constexpr size_t kMaxOutput = 16 * 1024;

Unexpected sys_error(const std::string& what, int err) {
  return make_error(ErrorCode::kIo, what + ": " + std::strerror(err));
}

std::string find_tool(const std::string& name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    std::string path = dir + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return name;  // posix_spawnp tries PATH
}

struct ToolResult {
  int exit_code = -1;  // -1 when it died of a signal
  std::string output;  // stdout and stderr, at most kMaxOutput bytes
};

// Runs a tool with stdin from /dev/null and waits for it.
Result<ToolResult> run_tool(const std::vector<std::string>& argv) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return sys_error("pipe", errno);
  UniqueFd read_end(out[0]);
  UniqueFd write_end(out[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int err = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    return make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                      "run " + argv[0] + ": " + std::strerror(err) +
                          (err == ENOENT ? " (install e2fsprogs)" : ""));
  }
  write_end = UniqueFd();
  ToolResult result;
  std::array<char, 4096> buf;
  for (;;) {
    ssize_t n = ::read(read_end.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t keep = std::min(static_cast<size_t>(n), kMaxOutput - result.output.size());
    result.output.append(buf.data(), keep);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return sys_error("wait for " + argv[0], errno);
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

}  // namespace

Result<void> make_ext4(const std::string& image) {
  auto run = MILL_TRY(run_tool({find_tool("mkfs.ext4"), "-q", "-F", "-m", "0", image}));
  if (run.exit_code != 0) {
    return make_error(ErrorCode::kIo, "mkfs.ext4 " + image + " failed (exit " +
                                          std::to_string(run.exit_code) + "): " + run.output);
  }
  return {};
}

Result<Ext4Size> read_ext4_size(const std::string& path) {
  // The superblock: 1024 bytes at offset 1024, little-endian (x86 and arm64 alike).
  constexpr off_t kOffset = 1024;
  constexpr size_t kBlocksLo = 0x04, kLogBlockSize = 0x18, kMagic = 0x38, kIncompat = 0x60,
                   kBlocksHi = 0x150;
  constexpr std::uint32_t kIncompat64Bit = 0x80;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return sys_error("open " + path, errno);
  std::array<unsigned char, 1024> sb{};
  if (::pread(fd.get(), sb.data(), sb.size(), kOffset) != static_cast<ssize_t>(sb.size())) {
    return make_error(ErrorCode::kIo, "read the superblock of " + path);
  }
  auto u32 = [&sb](size_t at) {
    std::uint32_t v = 0;
    std::memcpy(&v, sb.data() + at, sizeof v);
    return v;
  };
  if ((u32(kMagic) & 0xffff) != 0xef53 || u32(kLogBlockSize) > 6) {
    return make_error(ErrorCode::kIo, path + " holds no ext4 filesystem");
  }
  Ext4Size size;
  size.block_size = std::int64_t{1024} << u32(kLogBlockSize);
  size.blocks = u32(kBlocksLo);
  if (u32(kIncompat) & kIncompat64Bit) size.blocks |= std::int64_t{u32(kBlocksHi)} << 32;
  return size;
}

Result<void> grow_ext4_offline(const std::string& image, std::int64_t size_bytes) {
  // e2fsck: 0 clean, 1 errors fixed; anything else means it could not make it sound.
  auto check = MILL_TRY(run_tool({find_tool("e2fsck"), "-f", "-p", image}));
  if (check.exit_code != 0 && check.exit_code != 1) {
    return make_error(ErrorCode::kIo, "e2fsck " + image + " failed (exit " +
                                          std::to_string(check.exit_code) + "): " + check.output);
  }
  std::string kib = std::to_string(size_bytes / 1024) + "K";
  auto resize = MILL_TRY(run_tool({find_tool("resize2fs"), image, kib}));
  if (resize.exit_code != 0) {
    return make_error(ErrorCode::kIo, "resize2fs " + image + " " + kib + " failed (exit " +
                                          std::to_string(resize.exit_code) + "): " + resize.output);
  }
  return {};
}

Result<void> grow_ext4(const std::string& mount_dir, std::int64_t size_bytes) {
  UniqueFd dir(::open(mount_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return sys_error("open " + mount_dir, errno);
  struct statvfs vfs {};
  if (::fstatvfs(dir.get(), &vfs) != 0) return sys_error("statvfs " + mount_dir, errno);
  __u64 blocks = static_cast<__u64>(size_bytes) / vfs.f_frsize;
  if (::ioctl(dir.get(), EXT4_IOC_RESIZE_FS, &blocks) != 0) {
    return sys_error("grow the filesystem at " + mount_dir, errno);
  }
  return {};
}

}  // namespace mill::volume
