#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "config/config_file.h"
#include "model/config.h"

namespace mill {
namespace {

TEST(FindSecretReferences, FindsNamesInOrder) {
  auto names = model::find_secret_references("a${secret:one}b${secret:two.2}${secret:one}");
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, (std::vector<std::string>{"one", "two.2", "one"}));
  EXPECT_TRUE(model::find_secret_references("no refs, $HOME ${HOME} ${secret")->empty());
}

TEST(FindSecretReferences, RejectsMalformed) {
  for (const char* bad :
       {"${secret:}", "${secret:a/b}", "${secret:abc", "x${secret:..}", "${secret:ok}${secret:"}) {
    auto names = model::find_secret_references(bad);
    EXPECT_FALSE(names) << bad;
    if (!names) {
      EXPECT_EQ(names.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(SecretReferences, CollectsFromEnvAndRegistries) {
  model::Config config;
  config.services["a"].env = {{"X", "${secret:s1}"}, {"Y", "plain"}};
  config.tasks["t"].env = {{"X", "pre-${secret:s2}-${secret:s1}"}};
  config.registries["r"] = {"r", "${secret:user}", "${secret:pass}", false};
  EXPECT_EQ(model::secret_references(config), (std::set<std::string>{"pass", "s1", "s2", "user"}));
  EXPECT_TRUE(model::secret_references(model::Config{}).empty());
}

TEST(ParseConfigFile, ReadsFileAndLabelsErrorsWithPath) {
  auto path = std::filesystem::temp_directory_path() /
              ("mill_config_test_" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream out(path);
    out << "[service.web]\nimage = \"x\"\nport = 0\n";
  }
  auto outcome = config::parse_config_file(path.string());
  std::filesystem::remove(path);
  ASSERT_EQ(outcome.errors.size(), 1u);
  EXPECT_EQ(outcome.errors[0].to_string().rfind(path.string() + ":3:8: ", 0), 0u)
      << outcome.errors[0].to_string();
}

TEST(ParseConfigFile, MissingFileIsOneErrorWithoutPosition) {
  auto outcome = config::parse_config_file("/nonexistent/dir/mill.toml");
  EXPECT_FALSE(outcome.ok());
  ASSERT_EQ(outcome.errors.size(), 1u);
  EXPECT_EQ(outcome.errors[0].line, 0);
  EXPECT_EQ(outcome.errors[0].to_string().rfind("/nonexistent/dir/mill.toml: cannot read file", 0),
            0u);
}

}  // namespace
}  // namespace mill
