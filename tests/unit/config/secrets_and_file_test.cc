#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "config/config.h"
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

// Each "${secret:NAME}" is kept with the position of the string that holds it (line and
// column checked against the TOML by hand), in file order, whatever else is wrong.
TEST(SecretReferencePositions, EveryReferenceAtItsValueInFileOrder) {
  const std::string text =
      "[service.web]\n"                                                     // 1
      "image = \"x\"\n"                                                     // 2
      "env = { B = \"${secret:b}\", A = \"x-${secret:a}-${secret:c}\" }\n"  // 3
      "replicas = \"two\"\n"                                                // 4
      "\n"                                                                  // 5
      "[registry.\"r.example.com\"]\n"                                      // 6
      "username = \"deploy\"\n"                                             // 7
      "password = \"${secret:reg_pass}\"\n"                                 // 8
      "\n"                                                                  // 9
      "[task.job]\n"                                                        // 10
      "image = \"y\"\n"                                                     // 11
      "env = { T = \"${secret:t}\" }\n";                                    // 12
  auto outcome = config::parse_config(text, "mill.toml");
  ASSERT_FALSE(outcome.ok()) << "replicas is wrong, and the references are still there";
  std::vector<std::string> seen;
  for (const auto& r : outcome.secrets) {
    seen.push_back(r.file + ":" + std::to_string(r.line) + ":" + std::to_string(r.column) + " " +
                   r.context + " " + r.name);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "mill.toml:3:13 service.web: env.B b",
                      "mill.toml:3:32 service.web: env.A a",
                      "mill.toml:3:32 service.web: env.A c",
                      "mill.toml:8:12 registry.\"r.example.com\": password reg_pass",
                      "mill.toml:12:13 task.job: env.T t",
                  }));
  // A malformed reference is an error of its own, not a reference.
  auto bad = config::parse_config("[service.web]\nimage = \"x\"\nenv = { A = \"${secret:}\" }\n",
                                  "mill.toml");
  EXPECT_TRUE(bad.secrets.empty());
  EXPECT_EQ(bad.errors.size(), 1u);
}

TEST(RequireSecrets, MissingOnesAreErrorsAtTheirReferencesAmongTheOthers) {
  const std::string text =
      "[service.web]\n"                                                  // 1
      "image = \"x\"\n"                                                  // 2
      "env = { DB = \"${secret:db_uri}\" }\n"                            // 3
      "replicas = \"two\"\n"                                             // 4
      "[service.web.route]\n"                                            // 5
      "host = \"a.example.com\"\n"                                       // 6
      "tls = { cert = \"${secret:cert}\", key = \"${secret:key}\" }\n";  // 7
  auto outcome = config::parse_config(text, "mill.toml");
  config::require_secrets(outcome, {"db_url", "cert"});
  std::vector<std::string> errors;
  for (const auto& e : outcome.errors) errors.push_back(e.to_string());
  ASSERT_EQ(errors.size(), 4u) << ::testing::PrintToString(errors);
  EXPECT_EQ(errors[0],
            "mill.toml:3:14: service.web: env.DB: secret \"db_uri\" is not set (mill secret set "
            "db_uri); did you mean \"db_url\"?");
  EXPECT_EQ(errors[1].rfind("mill.toml:4:12: ", 0), 0u) << errors[1];
  EXPECT_EQ(errors[2].rfind("mill.toml:5:", 0), 0u) << errors[2] << " (route needs a port)";
  EXPECT_EQ(errors[3],
            "mill.toml:7:40: service.web: route.tls.key: secret \"key\" is not set (mill secret "
            "set key)");

  // All there: the config stays valid, warnings and all.
  auto fine = config::parse_config("[service.web]\nimage = \"x\"\nenv = { A = \"${secret:a}\" }\n",
                                   "mill.toml");
  config::require_secrets(fine, {"a"});
  EXPECT_TRUE(fine.ok());
  EXPECT_TRUE(fine.errors.empty());
  // Only a missing one makes a valid config invalid.
  config::require_secrets(fine, {});
  EXPECT_FALSE(fine.ok());
  ASSERT_EQ(fine.errors.size(), 1u);
  EXPECT_EQ(fine.errors[0].to_string(),
            "mill.toml:3:13: service.web: env.A: secret \"a\" is not set (mill secret set a)");
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
