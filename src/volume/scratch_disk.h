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

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/result.h"

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
  // Spares of `size` bytes in ROOT/.spare-<pid>-<n>; `count` of them once start()ed.
  SpareDisks(std::string root, std::int64_t size, int count);
  // Stops making spares and removes those not taken.
  ~SpareDisks();
  SpareDisks(const SpareDisks&) = delete;
  SpareDisks& operator=(const SpareDisks&) = delete;

  // Begins making spares, in a thread of its own (after the caller has swept the
  // spares an earlier process left: is_spare_disk_dir()).
  void start();
  // A start takes a spare: renames one of `bytes` to `dir`, which must not exist or be
  // empty. False when none of that size is ready (the caller then makes its own).
  bool take(const std::string& dir, std::int64_t bytes);
  // Brackets a container's start: no spare is made meanwhile (the start has the
  // machine), unless none is left or it takes longer than a couple of seconds.
  void starting();
  void started();

 private:
  void run();

  const std::string root_;
  const std::int64_t size_;
  const int count_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> ready_;  // dirs, oldest first
  int starting_ = 0;
  bool stop_ = false;
  std::uint64_t next_ = 0;
  std::thread thread_;
};

}  // namespace mill::volume
