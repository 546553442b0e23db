// unpack_layer as root: owners, modes, times, device nodes and trusted.* xattrs (the
// overlayfs whiteouts) on the real filesystem.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>

#include "support/files.h"
#include "support/require.h"
#include "support/unpack_fixture.h"

namespace mill::image {
namespace {

namespace fs = std::filesystem;
using testing::names_in;
using testing::slurp;
using testing::tar_dir;
using testing::tar_file;
using testing::TarEntry;
using testing::UnpackTest;
using testing::xattr;

class UnpackAsRoot : public UnpackTest {
 protected:
  void SetUp() override {
    MILL_REQUIRE(::geteuid() == 0, "owners, device nodes and trusted.* xattrs need root");
    UnpackTest::SetUp();
  }
};

TEST_F(UnpackAsRoot, KeepsModesOwnersTimesXattrsAndDevices) {
  TarEntry suid = tar_file("usr/bin/su", "su", 04755);
  suid.uid = 1234;
  suid.gid = 5678;
  suid.mtime = 1500000000;
  suid.xattrs = {
      {"user.mill", "hello"},
      {"security.capability",
       std::string(
           "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
           20)}};
  TarEntry null_dev = testing::tar_entry("dev/null", AE_IFCHR, 0666);
  null_dev.rdev_major = 1;
  null_dev.rdev_minor = 3;
  TarEntry fifo = testing::tar_entry("run/fifo", AE_IFIFO, 0600);
  TarEntry secret = tar_dir("root", 0700);
  secret.uid = 42;
  auto stats = unpack(
      {tar_dir("tmp", 01777), secret, tar_file("root/.profile", "x", 0600), suid, null_dev, fifo});
  ASSERT_TRUE(stats) << stats.error().to_string();

  struct stat st {};
  ASSERT_EQ(::lstat(in_dest("usr/bin/su").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mtime, 1500000000);
  EXPECT_EQ(xattr(in_dest("usr/bin/su"), "user.mill"), "hello");
  EXPECT_NE(xattr(in_dest("usr/bin/su"), "security.capability"), "<none>");

  ASSERT_EQ(::lstat(in_dest("tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  ASSERT_EQ(::lstat(in_dest("root").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, 42u);
  ASSERT_EQ(::lstat(in_dest("dev/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  ASSERT_EQ(::lstat(in_dest("run/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(UnpackAsRoot, WhiteoutsBecomeOverlayfsWhiteouts) {
  auto stats = unpack({tar_dir("a"), tar_file("a/.wh.gone", ""), tar_dir("b"),
                       tar_file("b/.wh..wh..opq", ""), tar_file("b/new", "new"),
                       tar_file("c/.wh..wh.plnk", ""),  // aufs bookkeeping: ignored
                       tar_file("kept", "mine"), tar_file(".wh.kept", ""),
                       tar_file(".wh.later", ""), tar_file("later", "back")});
  ASSERT_TRUE(stats) << stats.error().to_string();
  EXPECT_EQ(stats->entries, 10u);

  struct stat st {};
  ASSERT_EQ(::lstat(in_dest("a/gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_EQ(names_in(in_dest("a")), std::set<std::string>{"gone"});
  EXPECT_EQ(xattr(in_dest("b"), "trusted.overlay.opaque"), "y");
  EXPECT_EQ(xattr(in_dest("a"), "trusted.overlay.opaque"), "<none>");
  EXPECT_EQ(names_in(in_dest("b")), std::set<std::string>{"new"});
  EXPECT_FALSE(fs::exists(in_dest("c")));
  // A whiteout hides lower layers only: this layer's own "kept" stays a file.
  EXPECT_EQ(slurp(in_dest("kept")), "mine");
  // A later entry of the same name replaces the whiteout.
  EXPECT_EQ(slurp(in_dest("later")), "back");
}

TEST_F(UnpackAsRoot, OpaqueMarkerBeforeItsDirectoryStillApplies) {
  auto stats = unpack({tar_file("d/.wh..wh..opq", ""), tar_dir("d", 0750)});
  ASSERT_TRUE(stats) << stats.error().to_string();
  EXPECT_EQ(xattr(in_dest("d"), "trusted.overlay.opaque"), "y");
  struct stat st {};
  ASSERT_EQ(::lstat(in_dest("d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

}  // namespace
}  // namespace mill::image
