// mount_rootfs with real overlayfs over layers unpacked by unpack_layer (runs as root).
// Every mount a test makes is undone by a MountGuard, also when an assertion fails.

#include "image/rootfs.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "image/unpack.h"
#include "support/files.h"
#include "support/require.h"
#include "support/tar_writer.h"
#include "support/temp_dir.h"

namespace mill::image {
namespace {

namespace fs = std::filesystem;
using testing::names_in;
using testing::slurp;
using testing::tar_dir;
using testing::tar_file;
using testing::TarEntry;
using testing::write_tar;

// True when some mount in this namespace has `path` as its mount point.
bool mounted(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point == path) return true;
  }
  return false;
}

// Lazily unmounts what it was given, last first, when the test ends however it ends;
// declared after the TempDir so it runs before the directory is removed.
class MountGuard {
 public:
  ~MountGuard() {
    for (auto it = paths_.rbegin(); it != paths_.rend(); ++it) {
      while (mounted(*it) && ::umount2(it->c_str(), MNT_DETACH) == 0) {
      }
    }
  }
  void add(const std::string& path) { paths_.push_back(path); }

 private:
  std::vector<std::string> paths_;
};

class RootfsTest : public ::testing::Test {
 protected:
  void SetUp() override { MILL_REQUIRE(::geteuid() == 0, "overlayfs mounts need root"); }

  // Unpacks one layer from `entries` into layers/<name> and returns its dir.
  std::string layer(const std::string& name, const std::vector<TarEntry>& entries) {
    std::string blob = tmp_.file(name + ".tar");
    std::string dir = tmp_.file("layers/" + name);
    fs::create_directories(dir);
    write_tar(blob, entries);
    auto stats = unpack_layer(blob, dir, Sync::kNo);
    EXPECT_TRUE(stats) << stats.error().to_string();
    return dir;
  }
  Result<void> mount(const std::vector<std::string>& layers) {
    guard_.add(target_);
    return mount_rootfs(layers, upper_, work_, target_);
  }
  std::string merged(const std::string& rel) const { return target_ + "/" + rel; }

  mill::testing::TempDir tmp_;
  MountGuard guard_;
  std::string upper_ = tmp_.file("alloc/upper");
  std::string work_ = tmp_.file("alloc/work");
  std::string target_ = tmp_.file("alloc/rootfs");
};

TEST_F(RootfsTest, WhiteoutsAndOpaqueDirsGiveTheMergedView) {
  std::string base =
      layer("base", {tar_dir("etc"), tar_file("etc/keep", "k"), tar_file("etc/gone", "g"),
                     tar_dir("var"), tar_file("var/old1", "1"), tar_file("var/old2", "2")});
  std::string top =
      layer("top", {tar_dir("etc"), tar_file("etc/.wh.gone", ""), tar_file("etc/added", "a"),
                    tar_dir("var"), tar_file("var/.wh..wh..opq", ""), tar_file("var/new", "n")});
  auto mounted_ok = mount({base, top});
  ASSERT_TRUE(mounted_ok) << mounted_ok.error().to_string();

  EXPECT_EQ(names_in(merged("etc")), (std::set<std::string>{"keep", "added"}));
  EXPECT_EQ(names_in(merged("var")), std::set<std::string>{"new"});
  EXPECT_EQ(slurp(merged("etc/keep")), "k");
  EXPECT_EQ(slurp(merged("var/new")), "n");
}

TEST_F(RootfsTest, WritesGoToTheUpperDirAndLeaveLayersUntouched) {
  std::string base = layer("base", {tar_dir("etc"), tar_file("etc/conf", "original")});
  auto mounted_ok = mount({base});  // a single layer is fine: the upper dir makes it rw
  ASSERT_TRUE(mounted_ok) << mounted_ok.error().to_string();

  std::ofstream(merged("etc/conf"), std::ios::trunc) << "changed";
  std::ofstream(merged("created")) << "new";
  fs::remove(merged("etc/conf"));
  EXPECT_FALSE(fs::exists(merged("etc/conf")));
  EXPECT_EQ(slurp(merged("created")), "new");

  EXPECT_EQ(slurp(base + "/etc/conf"), "original");
  EXPECT_EQ(names_in(base), std::set<std::string>{"etc"});
  EXPECT_EQ(slurp(upper_ + "/created"), "new");
}

TEST_F(RootfsTest, UnmountIsIdempotent) {
  std::string base = layer("base", {tar_file("f", "x")});
  ASSERT_TRUE(mount({base}));
  ASSERT_TRUE(mounted(target_));
  std::ofstream(merged("scratch")) << "y";

  EXPECT_TRUE(unmount_rootfs(target_));
  EXPECT_FALSE(mounted(target_));
  EXPECT_TRUE(fs::is_empty(target_));
  EXPECT_TRUE(unmount_rootfs(target_));
  EXPECT_TRUE(unmount_rootfs(tmp_.file("never/created")));
  EXPECT_EQ(slurp(upper_ + "/scratch"), "y");  // the upper dir outlives the mount

  // Mounting again over the same upper dir brings the writes back.
  ASSERT_TRUE(mount({base}));
  EXPECT_EQ(slurp(merged("scratch")), "y");
}

TEST_F(RootfsTest, RefusesNoLayersTooManyLayersAndADoubleMount) {
  auto none = mount({});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kInvalidArgument);

  std::string base = layer("base", {tar_file("f", "x")});
  auto too_many = mount(std::vector<std::string>(kMaxLayers + 1, base));
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(mounted(target_));

  ASSERT_TRUE(mount({base}));
  auto twice = mount({base});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, ErrorCode::kAlreadyExists);
}

// 128 layers with 200-character paths: ~26 KB of paths, far over the one-page limit
// of mount data, still mount, in the right order.
TEST_F(RootfsTest, MountsTheMaximumLayerCountWithLongPaths) {
  std::vector<std::string> layers;
  std::string padding(200, 'p');
  for (size_t i = 0; i < kMaxLayers; ++i) {
    std::string dir = tmp_.file("layers/" + padding + std::to_string(i));
    fs::create_directories(dir);
    std::ofstream(dir + "/layer-" + std::to_string(i)) << i;
    std::ofstream(dir + "/top") << i;  // the highest layer must win
    layers.push_back(dir);
  }
  auto mounted_ok = mount(layers);
  ASSERT_TRUE(mounted_ok) << mounted_ok.error().to_string();
  EXPECT_EQ(names_in(target_).size(), kMaxLayers + 1);
  EXPECT_EQ(slurp(merged("top")), std::to_string(kMaxLayers - 1));
  EXPECT_EQ(slurp(merged("layer-0")), "0");
}

// Under a shared mount (as systemd makes "/"), a rootfs mounted below a dir made
// private with make_mount_private must not appear in the peer.
TEST_F(RootfsTest, RootfsMountsDoNotPropagateToPeers) {
  std::string a = tmp_.file("a"), peer = tmp_.file("peer");
  fs::create_directories(a);
  fs::create_directories(peer);
  guard_.add(a);
  ASSERT_EQ(::mount(a.c_str(), a.c_str(), nullptr, MS_BIND, nullptr), 0);
  ASSERT_EQ(::mount(nullptr, a.c_str(), nullptr, MS_SHARED, nullptr), 0);
  guard_.add(peer);
  ASSERT_EQ(::mount(a.c_str(), peer.c_str(), nullptr, MS_BIND, nullptr), 0);  // a peer of a

  std::string roots = a + "/roots";
  guard_.add(peer + "/roots");  // the bind of roots onto itself propagates once
  guard_.add(roots);
  auto made_private = make_mount_private(roots);
  ASSERT_TRUE(made_private) << made_private.error().to_string();
  EXPECT_TRUE(make_mount_private(roots));  // idempotent

  std::string base = layer("base", {tar_file("f", "x")});
  std::string target = roots + "/alloc1";
  guard_.add(target);
  auto mounted_ok = mount_rootfs({base}, tmp_.file("up"), tmp_.file("wk"), target);
  ASSERT_TRUE(mounted_ok) << mounted_ok.error().to_string();
  EXPECT_TRUE(mounted(target));
  EXPECT_EQ(slurp(target + "/f"), "x");
  EXPECT_FALSE(mounted(peer + "/roots/alloc1"));
  EXPECT_TRUE(unmount_rootfs(target));
}

}  // namespace
}  // namespace mill::image
