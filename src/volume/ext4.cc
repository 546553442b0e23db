#include "volume/ext4.h"

#include <fcntl.h>
#include <linux/types.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/command.h"
#include "common/fd.h"

// Not in the UAPI headers; fs/ext4/ext4.h defines it so (resize2fs uses the same).
#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, __u64)
#endif

namespace mill::volume {
namespace {

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

// Runs one of e2fsprogs' tools; says what to install when it is missing.
Result<CommandResult> run_tool(const std::vector<std::string>& argv) {
  auto run = run_command(argv);
  if (!run && run.error().code == ErrorCode::kNotFound) {
    return make_error(ErrorCode::kNotFound, run.error().message + " (install e2fsprogs)");
  }
  return run;
}

}  // namespace

Result<void> make_ext4(const std::string& image, Ext4Use use) {
  std::vector<std::string> argv{find_tool("mkfs.ext4"), "-q", "-F", "-m", "0"};
  if (use == Ext4Use::kScratch) {
    argv.insert(argv.end(), {"-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard"});
  }
  argv.push_back(image);
  auto run = MILL_TRY(run_tool(argv));
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
