// Spare disks (volume/scratch_disk.h): a start takes a ready, mounted disk by renaming
// its dir, the pool makes another while no start runs, and what the pool still holds
// goes with it.

#include <gtest/gtest.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>

#include "support/crash_cleanup.h"
#include "support/eventually.h"
#include "support/require.h"
#include "support/temp_dir.h"
#include "system_state.h"
#include "volume/scratch_disk.h"

namespace mill::volume {
namespace {

using namespace std::chrono_literals;
using testing::mounts_under;

constexpr std::int64_t kMiB = std::int64_t{1} << 20;

class SpareDisksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MILL_REQUIRE(::geteuid() == 0, "disks need root (loop devices, mount)");
    MILL_REQUIRE(::access("/dev/loop-control", R_OK | W_OK) == 0, "disks need /dev/loop-control");
    root_ = std::filesystem::canonical(tmp_.path()).string();
    crash_cleanup_ = std::make_unique<testing::OnCrash>(std::vector<std::string>{
        "/bin/sh", "-c",
        "for i in 1 2 3 4; do awk '$5 ~ \"^" + root_ +
            "/\" {print $5}' /proc/self/mountinfo | sort -r | xargs -r umount -l; done; true"});
  }
  void TearDown() override {
    if (!root_.empty()) testing::release_everything_under(root_);
  }

  int spare_dirs() const {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(root_)) {
      if (is_spare_disk_dir(e.path().filename().string())) ++n;
    }
    return n;
  }
  int mounts() const { return static_cast<int>(mounts_under(root_).size()); }
  static std::int64_t size_of(const std::string& dir) {
    struct statvfs fs {};
    if (::statvfs(dir.c_str(), &fs) != 0) return -1;
    return static_cast<std::int64_t>(fs.f_blocks) * static_cast<std::int64_t>(fs.f_frsize);
  }

  testing::TempDir tmp_;
  std::unique_ptr<testing::OnCrash> crash_cleanup_;
  std::string root_;
};

TEST_F(SpareDisksTest, AStartTakesAMountedDiskAndThePoolMakesAnotherWhenNoStartRuns) {
  {
    SpareDisks spares(root_, 32 * kMiB, 2);
    EXPECT_FALSE(spares.take(root_ + "/task-a", 32 * kMiB)) << "none before start()";
    spares.start();
    ASSERT_TRUE(testing::eventually([&] { return spare_dirs() == 2 && mounts() == 2; }, 10s));

    // Taken: the dir is the allocation's now, with its disk mounted in it.
    ASSERT_TRUE(spares.take(root_ + "/task-a", 32 * kMiB));
    const std::string disk = root_ + "/task-a/disk";
    EXPECT_TRUE(std::filesystem::exists(root_ + "/task-a/disk.img"));
    EXPECT_GT(size_of(disk), 28 * kMiB);
    EXPECT_LE(size_of(disk), 32 * kMiB);
    EXPECT_NE(size_of(disk), size_of(root_)) << "the disk is a filesystem of its own";
    EXPECT_EQ(testing::fill(disk + "/big", 64 * kMiB), ENOSPC);
    // Spares are of one size: another is made by whoever asks for it.
    EXPECT_FALSE(spares.take(root_ + "/task-b", 64 * kMiB));
    EXPECT_FALSE(std::filesystem::exists(root_ + "/task-b"));
    ASSERT_TRUE(testing::eventually([&] { return spare_dirs() == 2; }, 10s));

    // While a start runs, the pool waits (one spare is still ready) ...
    spares.starting();
    ASSERT_TRUE(spares.take(root_ + "/task-c", 32 * kMiB));
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(spare_dirs(), 1);
    // ... and makes it once the start is over.
    spares.started();
    EXPECT_TRUE(testing::eventually([&] { return spare_dirs() == 2; }, 10s));
    // A dir left by an interrupted start is not taken over.
    std::filesystem::create_directories(root_ + "/task-d/rootfs");
    EXPECT_FALSE(spares.take(root_ + "/task-d", 32 * kMiB));
    EXPECT_EQ(spare_dirs(), 2);
  }
  // The pool's spares went with it; the taken disks stay until their owners go.
  EXPECT_EQ(spare_dirs(), 0);
  EXPECT_EQ(mounts(), 2);
  ASSERT_TRUE(remove_scratch_disk(root_ + "/task-a"));
  ASSERT_TRUE(remove_scratch_disk(root_ + "/task-c"));
  EXPECT_EQ(mounts(), 0);
  EXPECT_TRUE(testing::eventually([&] { return testing::loops_under(root_).empty(); }, 5s));
}

TEST(SpareDiskDirs, AreNamedSoNoAllocationIdCanBeOne) {
  EXPECT_TRUE(is_spare_disk_dir(".spare-123-4"));
  EXPECT_FALSE(is_spare_disk_dir("task-abcd"));
  EXPECT_FALSE(is_spare_disk_dir("web-1-abcd"));
}

}  // namespace
}  // namespace mill::volume
