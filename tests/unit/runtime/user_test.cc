#include "runtime/user.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/temp_dir.h"

namespace mill::runtime {
namespace {

constexpr std::string_view kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# comment\n"
    "nginx:x:101:102:nginx:/var/cache/nginx:/sbin/nologin\n"
    "app:x:1000:1000::/home/app:/bin/sh\n";
constexpr std::string_view kGroup = "root:x:0:\nnginx:x:102:\nstaff:x:50:app\n";

TEST(ParseUser, NumericNamesAndGroups) {
  EXPECT_EQ(*parse_user("", kPasswd, kGroup), (UidGid{0, 0}));
  EXPECT_EQ(*parse_user("1000", kPasswd, kGroup), (UidGid{1000, 1000}));  // gid from passwd
  EXPECT_EQ(*parse_user("4242", kPasswd, kGroup), (UidGid{4242, 0}));     // no entry
  EXPECT_EQ(*parse_user("4242:7", "", ""), (UidGid{4242, 7}));
  EXPECT_EQ(*parse_user("nginx", kPasswd, kGroup), (UidGid{101, 102}));
  EXPECT_EQ(*parse_user("nginx:staff", kPasswd, kGroup), (UidGid{101, 50}));
  EXPECT_EQ(*parse_user("app:0", kPasswd, kGroup), (UidGid{1000, 0}));
  EXPECT_EQ(*parse_user("1000:staff", kPasswd, kGroup), (UidGid{1000, 50}));
  EXPECT_EQ(parse_user("nobody", kPasswd, kGroup).error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(parse_user("app:wheel", kPasswd, kGroup));
  EXPECT_FALSE(parse_user("nginx", "", ""));
}

TEST(ResolveUser, ReadsTheRootfsAndStaysInsideIt) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.file("etc"));
  std::ofstream(dir.file("etc/passwd")) << kPasswd;
  std::ofstream(dir.file("etc/group")) << kGroup;
  EXPECT_EQ(*resolve_user(dir.path(), "nginx:staff"), (UidGid{101, 50}));

  // An image whose /etc/passwd is an absolute symlink resolves inside the rootfs, not
  // on the host: /etc/passwd of the host has root, and here there is no file.
  testing::TempDir evil;
  std::filesystem::create_directories(evil.file("etc"));
  ASSERT_EQ(symlink("/etc/passwd", evil.file("etc/passwd").c_str()), 0);
  EXPECT_FALSE(resolve_user(evil.path(), "root"));
  EXPECT_EQ(*resolve_user(evil.path(), "0"), (UidGid{0, 0}));
}

}  // namespace
}  // namespace mill::runtime
