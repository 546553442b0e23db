#include "cli/argv.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mill::cli {
namespace {

using Args = std::vector<std::string>;

TEST(SplitSpawnCommand, EverythingAfterCommandIsTheCommandWithItsOwnOptions) {
  auto s = split_spawn_command(
      {"mill", "spawn", "--image", "redis", "--command", "redis-cli", "-h", "10.61.1.3", "ping"});
  EXPECT_EQ(s.args, (Args{"mill", "spawn", "--image", "redis"}));
  ASSERT_TRUE(s.command);
  EXPECT_EQ(*s.command, (Args{"redis-cli", "-h", "10.61.1.3", "ping"}));

  s = split_spawn_command(
      {"mill", "spawn", "--image", "x", "--command", "sh", "-c", "echo hi; exit 3"});
  ASSERT_TRUE(s.command);
  EXPECT_EQ(*s.command, (Args{"sh", "-c", "echo hi; exit 3"}));
  // What looks like one of mill's options after the command is the command's.
  s = split_spawn_command(
      {"mill", "spawn", "--image", "x", "--command", "app", "--port", "9", "--json"});
  EXPECT_EQ(s.args, (Args{"mill", "spawn", "--image", "x"}));
  EXPECT_EQ(*s.command, (Args{"app", "--port", "9", "--json"}));
}

TEST(SplitSpawnCommand, DoubleDashWorksTooAndOnlyTheFirstMarkerCounts) {
  auto s = split_spawn_command({"mill", "spawn", "--image", "x", "--", "sh", "-c", "a -- b"});
  EXPECT_EQ(s.args, (Args{"mill", "spawn", "--image", "x"}));
  EXPECT_EQ(*s.command, (Args{"sh", "-c", "a -- b"}));
  s = split_spawn_command({"mill", "spawn", "--image", "x", "--command", "env", "--", "--command"});
  EXPECT_EQ(*s.command, (Args{"env", "--", "--command"}));
}

TEST(SplitSpawnCommand, OtherCommandsAndTheEqualsFormAreLeftToTheParser) {
  for (const Args& args :
       {Args{"mill", "secret", "set", "spawn", "--command", "x"},
        Args{"mill", "spawn", "--image", "x", "--command=a", "--command=b"},
        Args{"mill", "spawn", "--image", "x"}, Args{"mill", "spawn", "--image", "x", "--command"},
        Args{"mill"}, Args{}}) {
    auto s = split_spawn_command(args);
    EXPECT_EQ(s.args, args);
    EXPECT_FALSE(s.command);
  }
}

}  // namespace
}  // namespace mill::cli
