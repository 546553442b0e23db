// VolumeManager refuses bad names before it touches anything, so this runs as any
// user; what needs loop devices and mounts is in tests/system/volume.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/files.h"
#include "support/temp_dir.h"
#include "system/volume/system_state.h"
#include "volume/volume_manager.h"

namespace mill::volume {
namespace {

constexpr std::int64_t kMiB = 1024 * 1024;

TEST(VolumeNames, BadNamesAreRejectedAndCreateNothing) {
  testing::TempDir tmp;
  auto manager = VolumeManager::create(tmp.path());
  ASSERT_TRUE(manager) << manager.error().to_string();
  const std::vector<std::string> bad = {"",           ".",         "..",
                                        "a/b",        "../escape", "with space",
                                        "semi;colon", "star*",     std::string(129, 'a')};
  for (const auto& name : bad) {
    auto ensured = (*manager)->ensure(name, 4 * kMiB);
    ASSERT_FALSE(ensured) << name;
    EXPECT_EQ(ensured.error().code, ErrorCode::kInvalidArgument) << name;
    EXPECT_EQ((*manager)->info(name).error().code, ErrorCode::kInvalidArgument) << name;
    EXPECT_EQ((*manager)->remove(name).error().code, ErrorCode::kInvalidArgument) << name;
  }
  EXPECT_TRUE(testing::names_in(tmp.path() + "/volumes").empty());
  EXPECT_TRUE(testing::loops_under(tmp.path()).empty());
}

}  // namespace
}  // namespace mill::volume
