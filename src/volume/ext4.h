#pragma once

// The ext4 filesystem inside a volume's image. Internal to src/volume.

#include <cstdint>
#include <string>

#include "common/result.h"

namespace mill::volume {

// Runs `mkfs.ext4 -q -F -m 0 IMAGE` (e2fsprogs; looked up in /usr/sbin, /sbin and
// PATH). No blocks are reserved for root: a container that runs as root and one that
// does not get the same room. kNotFound when mkfs.ext4 is not installed, kIo with its
// output when it fails.
// kScratch, for a container's writable layer, whose data dies with it: no journal and
// no inode tables written (a sparse image reads as zeroes), so the image takes well
// under a megabyte until used and mkfs writes next to nothing.
enum class Ext4Use { kVolume, kScratch };
Result<void> make_ext4(const std::string& image, Ext4Use use = Ext4Use::kVolume);

struct Ext4Size {
  std::int64_t blocks = 0;
  std::int64_t block_size = 0;
  std::int64_t bytes() const { return blocks * block_size; }
};

// The size the superblock of the ext4 filesystem in `path` (an image, or the loop
// device it is attached to while mounted) records. kIo when it holds no ext4.
Result<Ext4Size> read_ext4_size(const std::string& path);

// Grows the ext4 filesystem in the unmounted, detached `image` (already extended to
// `size_bytes`) to fill it: `e2fsck -f -p` (resize2fs wants a checked filesystem),
// then `resize2fs`.
Result<void> grow_ext4_offline(const std::string& image, std::int64_t size_bytes);

// Grows the mounted ext4 filesystem at `mount_dir` to fill `size_bytes` (its device
// must already have that size) with EXT4_IOC_RESIZE_FS, as resize2fs does online.
// Needs CAP_SYS_RESOURCE besides CAP_SYS_ADMIN (EPERM without it).
Result<void> grow_ext4(const std::string& mount_dir, std::int64_t size_bytes);

}  // namespace mill::volume
