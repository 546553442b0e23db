#include "volume/volume_manager.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "model/units.h"
#include "support/crash_cleanup.h"
#include "support/eventually.h"
#include "support/files.h"
#include "support/require.h"
#include "support/temp_dir.h"
#include "system_state.h"

namespace mill::volume {
namespace {

using testing::fill;
using testing::loops_under;
using testing::mounts_under;

using namespace std::chrono_literals;

constexpr std::int64_t kMiB = std::int64_t{1} << 20;

void write_text(const std::string& path, const std::string& text) {
  ASSERT_EQ(fill(path, 0), 0);
  std::ofstream(path) << text;
}

class VolumeManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MILL_REQUIRE(::geteuid() == 0, "volumes need root (loop devices, mount)");
    MILL_REQUIRE(::access("/dev/loop-control", R_OK | W_OK) == 0, "volumes need /dev/loop-control");
    root_ = std::filesystem::canonical(tmp_.path()).string();
    // A crash skips TearDown: then the shell does what release_everything_under does
    // (loop devices found by their image file's identity, as losetup -j does, before
    // the mounts that may be the only way to them go).
    crash_cleanup_ = std::make_unique<testing::OnCrash>(std::vector<std::string>{
        "/bin/sh", "-c",
        "loops=$(find " + root_ + " -name '*.img' -exec losetup -j {} \\; | cut -d: -f1); " +
            "for i in 1 2 3 4 5 6 7 8; do awk '$5 ~ \"^" + root_ +
            "/\" {print $5}' /proc/self/mountinfo | sort -r | xargs -r umount -l; done; " +
            "for l in $loops; do losetup -d $l; done; true"});
    auto manager = VolumeManager::create(root_);
    ASSERT_TRUE(manager) << manager.error().to_string();
    manager_ = std::move(*manager);
  }

  // Runs even when a test fails half-way: no mount or loop device outlives the test,
  // and only then does TempDir delete the files.
  void TearDown() override {
    if (!root_.empty()) testing::release_everything_under(root_);
  }

  std::string volume_dir(const std::string& name) const { return root_ + "/volumes/" + name; }
  std::string mnt(const std::string& name) const { return volume_dir(name) + "/mnt"; }

  // The volume, or (with a test failure) one whose path does not exist: a failed
  // ensure must never send the test's writes to the host's "/".
  VolumeInfo ensure(const std::string& name, std::int64_t size) {
    auto info = manager_->ensure(name, size);
    if (info) return *info;
    ADD_FAILURE() << info.error().to_string();
    VolumeInfo missing;
    missing.path = root_ + "/no-such-volume";
    return missing;
  }

  testing::TempDir tmp_;
  std::unique_ptr<testing::OnCrash> crash_cleanup_;
  std::string root_;
  std::unique_ptr<VolumeManager> manager_;
};

TEST_F(VolumeManagerTest, EnsureCreatesAndMountsASparseExt4Image) {
  VolumeInfo info = ensure("office-data", 16 * kMiB);
  EXPECT_EQ(info.name, "office-data");
  EXPECT_EQ(info.size_bytes, 16 * kMiB);
  EXPECT_TRUE(info.mounted);
  EXPECT_EQ(info.path, mnt("office-data") + "/data");
  EXPECT_EQ(info.image_path, volume_dir("office-data") + "/disk.img");
  EXPECT_GT(info.used_bytes, 0);
  EXPECT_GT(info.available_bytes, 12 * kMiB);
  EXPECT_LE(info.used_bytes + info.available_bytes, 16 * kMiB);

  // Sparse: the image takes far less of the node's disk than its size.
  struct stat st {};
  ASSERT_EQ(::stat(info.image_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 16 * kMiB);
  EXPECT_LT(st.st_blocks * 512, 8 * kMiB);

  // The loop device is the image's, and what is mounted at mnt/.
  EXPECT_EQ(loops_under(root_), std::vector<std::string>{info.device});
  std::vector<std::string> points;
  for (const auto& m : mounts_under(volume_dir("office-data"))) {
    points.push_back(m.point);
    EXPECT_NE(m.options.find("nodev"), std::string::npos) << m.options;
    EXPECT_NE(m.options.find("nosuid"), std::string::npos) << m.options;
  }
  EXPECT_EQ(points, std::vector<std::string>{mnt("office-data")});

  // Containers get an empty directory: lost+found stays one level up.
  EXPECT_TRUE(std::filesystem::is_directory(info.path));
  EXPECT_TRUE(testing::names_in(info.path).empty());
  EXPECT_TRUE(testing::names_in(mnt("office-data")).contains("lost+found"));
}

TEST_F(VolumeManagerTest, TheSizeReallyHolds) {
  VolumeInfo info = ensure("small", 8 * kMiB);
  EXPECT_EQ(fill(info.path + "/big", 9 * kMiB), ENOSPC);
  // Space freed is usable again; the image never grew.
  ASSERT_EQ(::unlink((info.path + "/big").c_str()), 0);
  EXPECT_EQ(fill(info.path + "/fits", 4 * kMiB), 0);
  struct stat st {};
  ASSERT_EQ(::stat(info.image_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8 * kMiB);
}

TEST_F(VolumeManagerTest, DataSurvivesUnmountAllAndANewManager) {
  VolumeInfo info = ensure("keep", 4 * kMiB);
  write_text(info.path + "/note.txt", "still here");

  ASSERT_TRUE(manager_->unmount_all());
  EXPECT_TRUE(mounts_under(root_).empty());
  // Autoclear lets go of the device (the kernel may finish that just after umount).
  EXPECT_TRUE(mill::testing::eventually([&] { return loops_under(root_).empty(); }, 5s));
  EXPECT_FALSE(std::filesystem::exists(info.path));  // no bind target while unmounted

  // As after a restart: a new manager finds the volume and mounts it again.
  auto restarted = VolumeManager::create(root_);
  ASSERT_TRUE(restarted);
  manager_ = std::move(*restarted);
  auto listed = manager_->list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "keep");
  EXPECT_FALSE((*listed)[0].mounted);
  EXPECT_EQ((*listed)[0].size_bytes, 4 * kMiB);

  VolumeInfo again = ensure("keep", 4 * kMiB);
  EXPECT_TRUE(again.mounted);
  EXPECT_EQ(testing::slurp(again.path + "/note.txt"), "still here");
}

TEST_F(VolumeManagerTest, EnsureIsIdempotent) {
  VolumeInfo first = ensure("same", 4 * kMiB);
  write_text(first.path + "/f", "x");
  VolumeInfo second = ensure("same", 4 * kMiB);
  VolumeInfo third = ensure("same", 4 * kMiB);
  EXPECT_EQ(second.device, first.device);
  EXPECT_EQ(third.path, first.path);
  EXPECT_EQ(third.size_bytes, first.size_bytes);
  EXPECT_EQ(mounts_under(volume_dir("same")).size(), 1u);
  EXPECT_EQ(loops_under(root_).size(), 1u);
  EXPECT_EQ(testing::slurp(third.path + "/f"), "x");
}

TEST_F(VolumeManagerTest, TakesTheSizeFromTheConfigModel) {
  auto size = model::parse_size("6M");
  ASSERT_TRUE(size);
  auto info = manager_->ensure(model::VolumeSpec{"from-config", *size});
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->size_bytes, 6 * kMiB);
}

TEST_F(VolumeManagerTest, RemoveCleansEverything) {
  VolumeInfo info = ensure("gone", 4 * kMiB);
  write_text(info.path + "/f", "data");
  ensure("other", 2 * kMiB);
  auto image = testing::file_id(info.image_path);
  ASSERT_TRUE(image);
  EXPECT_EQ(testing::loops_bound_to(*image), std::vector<std::string>{info.device});

  ASSERT_TRUE(manager_->remove("gone"));
  EXPECT_TRUE(mounts_under(volume_dir("gone")).empty());
  EXPECT_FALSE(std::filesystem::exists(volume_dir("gone")));
  EXPECT_TRUE(testing::loops_bound_to(*image).empty());  // not even to the deleted file
  auto loops = loops_under(root_);
  ASSERT_EQ(loops.size(), 1u);  // only "other"'s
  EXPECT_EQ(loops[0], manager_->info("other")->device);

  EXPECT_EQ(manager_->info("gone").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(manager_->remove("gone").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(manager_->remove("never-was").error().code, ErrorCode::kNotFound);
  auto listed = manager_->list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "other");

  // A new volume of the same name starts empty.
  VolumeInfo fresh = ensure("gone", 4 * kMiB);
  EXPECT_TRUE(testing::names_in(fresh.path).empty());
}

TEST_F(VolumeManagerTest, RemoveOfABusyVolumeIsRefusedAndDeletesNothing) {
  VolumeInfo info = ensure("busy", 4 * kMiB);
  int fd = ::open((info.path + "/open").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  auto removed = manager_->remove("busy");
  ::close(fd);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(manager_->info("busy")->mounted);
  EXPECT_TRUE(std::filesystem::exists(info.path + "/open"));
  EXPECT_TRUE(manager_->remove("busy"));
}

// A container's bind of the volume keeps its filesystem alive after the node's own
// mount is gone: ensure() must mount that same device again (two ext4 instances over
// one image would corrupt it), and remove() must not delete the image under it.
TEST_F(VolumeManagerTest, AFilesystemStillHeldElsewhereIsReusedNotDuplicated) {
  VolumeInfo info = ensure("held", 4 * kMiB);
  auto image = testing::file_id(info.image_path);
  ASSERT_TRUE(image);
  std::string holder = root_ + "/holder";
  ASSERT_EQ(::mkdir(holder.c_str(), 0700), 0);
  ASSERT_EQ(::mount(info.path.c_str(), holder.c_str(), nullptr, MS_BIND, nullptr), 0);
  write_text(holder + "/from-container", "hi");

  ASSERT_TRUE(manager_->unmount_all());
  EXPECT_EQ(loops_under(root_), std::vector<std::string>{info.device});
  VolumeInfo again = ensure("held", 4 * kMiB);
  EXPECT_EQ(again.device, info.device);
  EXPECT_EQ(loops_under(root_).size(), 1u);
  EXPECT_EQ(testing::slurp(again.path + "/from-container"), "hi");

  auto removed = manager_->remove("held");
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(std::filesystem::exists(info.image_path));

  ASSERT_EQ(::umount2(holder.c_str(), 0), 0);
  EXPECT_TRUE(manager_->remove("held")) << "once the holder is gone";
  EXPECT_TRUE(testing::loops_bound_to(*image).empty());
  EXPECT_FALSE(std::filesystem::exists(volume_dir("held")));
}

TEST_F(VolumeManagerTest, SizesUnderTheMinimumAreRejected) {
  for (std::int64_t size : {std::int64_t{-1}, std::int64_t{0}, kMinVolumeSize - 1}) {
    auto ensured = manager_->ensure("tiny", size);
    ASSERT_FALSE(ensured);
    EXPECT_EQ(ensured.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_FALSE(std::filesystem::exists(volume_dir("tiny")));
  EXPECT_TRUE(ensure("tiny", kMinVolumeSize).mounted);
}

TEST_F(VolumeManagerTest, ShrinkingIsRefused) {
  ensure("firm", 8 * kMiB);
  auto shrunk = manager_->ensure("firm", 4 * kMiB);
  ASSERT_FALSE(shrunk);
  EXPECT_EQ(shrunk.error().code, ErrorCode::kConflict);
  EXPECT_NE(shrunk.error().message.find("cannot shrink from 8M to 4M"), std::string::npos)
      << shrunk.error().message;
  auto info = manager_->info("firm");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->size_bytes, 8 * kMiB);
  EXPECT_TRUE(info->mounted);
}

TEST_F(VolumeManagerTest, GrowingKeepsTheDataAndAddsRoom) {
  VolumeInfo before = ensure("grows", 8 * kMiB);
  write_text(before.path + "/f", "kept");
  VolumeInfo after = ensure("grows", 32 * kMiB);
  EXPECT_EQ(after.size_bytes, 32 * kMiB);
  EXPECT_EQ(after.device, before.device);
  EXPECT_GT(after.available_bytes, before.available_bytes + 20 * kMiB);
  EXPECT_EQ(testing::slurp(after.path + "/f"), "kept");
  EXPECT_EQ(fill(after.path + "/big", 16 * kMiB), 0);
  EXPECT_EQ(fill(after.path + "/bigger", 32 * kMiB), ENOSPC);

  // Also when the volume was not mounted at the time (a config changed across a restart).
  auto full = manager_->info("grows");
  ASSERT_TRUE(full);
  ASSERT_TRUE(manager_->unmount_all());
  VolumeInfo later = ensure("grows", 48 * kMiB);
  EXPECT_EQ(later.size_bytes, 48 * kMiB);
  EXPECT_GT(later.available_bytes, full->available_bytes + 12 * kMiB);
  EXPECT_EQ(testing::slurp(later.path + "/f"), "kept");
}

TEST_F(VolumeManagerTest, ManyVolumes) {
  constexpr int kCount = 24;
  std::set<std::string> devices;
  std::vector<std::string> names;
  for (int i = 0; i < kCount; ++i) {
    std::string name = "vol-" + std::to_string(100 + i);
    names.push_back(name);
    VolumeInfo info = ensure(name, 2 * kMiB);
    ASSERT_TRUE(info.mounted) << name;
    write_text(info.path + "/id", name);
    devices.insert(info.device);
  }
  EXPECT_EQ(devices.size(), static_cast<size_t>(kCount));
  EXPECT_EQ(loops_under(root_).size(), static_cast<size_t>(kCount));

  auto listed = manager_->list();
  ASSERT_TRUE(listed);
  std::vector<std::string> listed_names;
  for (const auto& v : *listed) {
    listed_names.push_back(v.name);
    EXPECT_EQ(testing::slurp(v.path + "/id"), v.name);
  }
  EXPECT_EQ(listed_names, names);

  ASSERT_TRUE(manager_->unmount_all());
  EXPECT_TRUE(mounts_under(root_).empty());
  // Autoclear detaches each device once it is unmounted, the kernel possibly just after.
  EXPECT_TRUE(mill::testing::eventually([&] { return loops_under(root_).empty(); }, 5s))
      << loops_under(root_).size() << " loop devices left";
  for (const auto& name : names) ASSERT_TRUE(manager_->remove(name)) << name;
  EXPECT_TRUE(testing::names_in(root_ + "/volumes").empty());
}

}  // namespace
}  // namespace mill::volume
