#pragma once

// A container's writable layer on a filesystem of its own (`disk`, 1G unless the spec
// says otherwise), so its size is a hard limit the kernel enforces (a write past it
// fails with ENOSPC) and a task cannot fill the disk the node's data dir and state
// store are on: a sparse ext4 image DIR/disk.img of that size, without a journal,
// loop-mounted (nodev, nosuid) at DIR/disk, which holds the overlay's upper and work
// dirs. Sparse: it takes only the room written to it (under a megabyte when new).
//
// Making one costs a mkfs and a mount, some tens of milliseconds: too much for a
// spawn. SpareDisks keeps a few of the default size ready, each in a dir of its own
// next to the allocations' dirs, and a start takes one by renaming that dir to its own
// (the mount moves with it).

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/spare_pool.h"

namespace mill::volume {

// Makes and mounts the disk; returns its mount dir (DIR/disk). A disk left by an
// earlier, interrupted start is made anew. kInvalidArgument for a size under 1 MiB;
// on failure nothing is left mounted or attached.
Result<std::string> make_scratch_disk(const std::string& dir, std::int64_t bytes);

// Unmounts DIR/disk (the loop device detaches itself) and deletes the image. Nothing
// there is fine.
Result<void> remove_scratch_disk(const std::string& dir);

// Whether an entry of the allocations' root is a spare's dir (".spare-..."), which no
// allocation id can be.
bool is_spare_disk_dir(std::string_view name);

class SpareDisks {
 public:
  // Spares of `size` bytes in ROOT/.spare-<pid>-<n>; `count` of them once start()ed
  // (none when size is 0). Those not taken are removed with the pool.
  SpareDisks(std::string root, std::int64_t size, int count);

  // Begins making spares (after the caller has swept the spares an earlier process
  // left: is_spare_disk_dir()).
  void start() { pool_.start(); }
  // A start takes a spare: renames one of `bytes` to `dir`, which must not exist or be
  // empty. False when none of that size is ready (the caller then makes its own).
  bool take(const std::string& dir, std::int64_t bytes);
  // Bracket a container's start (common/spare_pool.h).
  void starting() { pool_.starting(); }
  void started() { pool_.started(); }

 private:
  const std::string root_;
  const std::int64_t size_;
  std::atomic<std::uint64_t> next_{0};
  SparePool<std::string> pool_;  // their dirs; last, so it stops first
};

}  // namespace mill::volume
