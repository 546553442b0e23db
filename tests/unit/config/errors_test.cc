// Each validation error: the exact file:line:col (checked against the TOML by hand) and
// the message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"

namespace mill::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Parses `text`, expecting failure; returns "file:line:col: message" strings.
std::vector<std::string> errors_of(std::string_view text) {
  ParseOutcome outcome = parse_config(text, "mill.toml");
  EXPECT_FALSE(outcome.ok());
  std::vector<std::string> out;
  for (const ConfigError& error : outcome.errors) out.push_back(error.to_string());
  return out;
}

// Expects exactly one error, at `where` ("line:col"), whose message contains `message`.
void expect_error(std::string_view text, const std::string& where, const std::string& message) {
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors);
  EXPECT_THAT(errors[0], StartsWith("mill.toml:" + where + ": "));
  EXPECT_THAT(errors[0], HasSubstr(message));
}

TEST(ConfigErrors, TomlSyntaxErrorIsTheOnlyError) {
  auto errors = errors_of("[service.web]\nimagee = \"x\"\nbad = = 1\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], StartsWith("mill.toml:3:7: TOML syntax error: "));
  expect_error("[a]\n[a]\n", "2:1", "TOML syntax error");
  ParseOutcome outcome = parse_config("x = \"unterminated\n", "other.toml");
  ASSERT_EQ(outcome.errors.size(), 1u);
  EXPECT_EQ(outcome.errors[0].file, "other.toml");
  EXPECT_EQ(outcome.errors[0].line, 1);
}

TEST(ConfigErrors, WrongTypes) {
  expect_error("[service.web]\nimage = \"x\"\nreplicas = \"two\"\n", "3:12",
               "service.web: replicas must be an integer, got string");
  expect_error("[service.web]\nimage = \"x\"\ncpu = \"1\"\n", "3:7",
               "cpu must be a number of cores (integer or float), got string");
  expect_error("[service.web]\nimage = \"x\"\nmemory = true\n", "3:10",
               "memory must be a size like \"512M\" or an integer number of bytes, got boolean");
  expect_error("[service.web]\nimage = 5\n", "2:9", "image must be a string, got integer");
  expect_error("[service.web]\nimage = \"x\"\ninit = \"yes\"\n", "3:8",
               "init must be true or false, got string");
  expect_error("[service.web]\nimage = \"x\"\ncommand = \"./run\"\n", "3:11",
               "command must be an array of strings, got string");
  expect_error("[service.web]\nimage = \"x\"\ncommand = [\"a\", 1]\n", "3:17",
               "command element must be a string, got integer");
  expect_error("[service.web]\nimage = \"x\"\nreplicas = 2.0\n", "3:12",
               "replicas must be an integer, got float");
  expect_error("[service.web]\nimage = \"x\"\nhealth = \"/h\"\nport = 1\n", "3:10",
               "health must be a table, got string");
  expect_error("[service.web]\nimage = \"x\"\nenv = { A = 1 }\n", "3:13",
               "env.A must be a string, got integer");
  expect_error("[registry.r]\ninsecure = 1\n", "2:12", "insecure must be true or false");
}

TEST(ConfigErrors, UnknownSectionsAndKeys) {
  expect_error("[services.web]\nimage = \"x\"\n", "1:2",
               "unknown section \"services\" (expected service, volume, task or registry); did "
               "you mean \"service\"?");
  expect_error("name = \"x\"\n", "1:1", "unknown section \"name\"");
  expect_error("service = 3\n", "1:11", "service: must be a table of named sections");
  expect_error("[service]\nweb = 1\n", "2:7", "service.web: must be a table, like [service.web]");
  expect_error("[service.web]\nimage = \"x\"\nimagee = \"y\"\n", "3:1",
               "service.web: unknown key \"imagee\" (did you mean \"image\"?)");
  expect_error("[service.web]\nimage = \"x\"\nport = 1\nhealth = { pth = \"/\" }\n", "4:12",
               "unknown key \"health.pth\" (did you mean \"path\"?)");
  expect_error("[task.t]\nimage = \"x\"\nreplicas = 2\n", "3:1",
               "task.t: unknown key \"replicas\"");
  expect_error("[volume.v]\nsize = \"1G\"\nsizes = 1\n", "3:1", "unknown key \"sizes\"");
  expect_error("[registry.r]\ntoken = \"x\"\n", "2:1", "registry.\"r\": unknown key \"token\"");
  expect_error("[service.web]\nimage = \"x\"\nupdate = { max = 1 }\n", "3:12",
               "unknown key \"update.max\"");
}

TEST(ConfigErrors, Ranges) {
  expect_error("[service.web]\nimage = \"x\"\nreplicas = 1001\n", "3:12",
               "replicas must be between 0 and 1000, got 1001");
  expect_error("[service.web]\nimage = \"x\"\nreplicas = -1\n", "3:12",
               "replicas must be between 0 and 1000, got -1");
  expect_error("[service.web]\nimage = \"x\"\nport = 0\n", "3:8",
               "port must be between 1 and 65535, got 0");
  expect_error("[task.t]\nimage = \"x\"\nport = 65536\n", "3:8",
               "port must be between 1 and 65535");
  for (const char* cpu : {"0", "-1", "0.0", "1025", "nan", "inf"}) {
    expect_error(std::string("[service.web]\nimage = \"x\"\ncpu = ") + cpu + "\n", "3:7",
                 "cpu must be greater than 0 and at most 1024 cores");
  }
  expect_error("[service.web]\nimage = \"x\"\nupdate = { parallel = 0 }\n", "3:23",
               "update.parallel must be between 1 and 1000");
  expect_error("[service.web]\nimage = \"x\"\nupdate = { order = \"first\" }\n", "3:20",
               "update.order must be \"start-first\" or \"stop-first\"");
  expect_error("[service.web]\nimage = \"x\"\nport = 1\nhealth = { passes = 0 }\n", "4:21",
               "health.passes must be between 1 and 100");
}

TEST(ConfigErrors, SizesAndDurations) {
  expect_error("[service.web]\nimage = \"x\"\nmemory = \"1M\"\n", "3:10",
               "memory must be at least 4M");
  expect_error("[service.web]\nimage = \"x\"\nmemory = 4194303\n", "3:10",
               "memory must be at least 4M");
  expect_error("[service.web]\nimage = \"x\"\nmemory = \"99999999999T\"\n", "3:10",
               "memory: invalid size \"99999999999T\": too large");
  expect_error("[service.web]\nimage = \"x\"\nmemory = \"512X\"\n", "3:10",
               "memory: invalid size \"512X\"");
  expect_error("[volume.v]\nsize = \"10\"\n", "2:8", "volume.v: size must be at least 1M");
  expect_error("[task.t]\nimage = \"x\"\ntimeout = \"1x\"\n", "3:11",
               "timeout: invalid duration \"1x\"");
  expect_error("[task.t]\nimage = \"x\"\ntimeout = 60\n", "3:11",
               "timeout must be a duration string like \"2s\", got integer");
  expect_error("[service.w]\nimage = \"x\"\nport = 1\nhealth = { interval = \"0s\" }\n", "4:23",
               "health.interval must be greater than 0");
  expect_error("[service.w]\nimage = \"x\"\nport = 1\nhealth = { deadline = \"2\" }\n", "4:23",
               "health.deadline: invalid duration \"2\": missing or unknown unit");
}

TEST(ConfigErrors, NamesAndImages) {
  expect_error("[service.Web_App]\nimage = \"x\"\n", "1:10",
               "invalid service name \"Web_App\": service names become \"<name>.mill\" host "
               "names");
  expect_error("[task.1st]\nimage = \"x\"\n", "1:7", "invalid task name \"1st\"");
  std::string long_name(64, 'a');
  expect_error("[service." + long_name + "]\nimage = \"x\"\n", "1:10", "at most 63 characters");
  EXPECT_TRUE(parse_config("[service." + std::string(63, 'a') + "]\nimage = \"x\"\n", "m").ok());
  expect_error("[volume.\"a/b\"]\nsize = \"1G\"\n", "1:9", "invalid volume name \"a/b\"");
  expect_error("[service.web]\nreplicas = 1\n", "1:1", "service.web: image is required");
  expect_error("[task.t]\ncpu = 1\n", "1:1", "task.t: image is required");
  expect_error("[volume.v]\n", "1:1", "volume.v: size is required");
  expect_error("[service.web]\nimage = \"\"\n", "2:9", "image must not be empty");
  expect_error("[service.web]\nimage = \"a b\"\n", "2:9",
               "image \"a b\" must not contain whitespace");
  expect_error("[registry.\"\"]\n", "1:11", "registry host must not be empty");
  expect_error("[registry.\"https://r.io\"]\n", "1:11", "invalid registry host");
  expect_error("[registry.r]\nusername = \"u\"\n", "1:1",
               "username and password must be given together");
}

TEST(ConfigErrors, EnvAndSecrets) {
  expect_error("[service.web]\nimage = \"x\"\nenv = { 1A = \"x\" }\n", "3:9",
               "invalid environment variable name \"1A\"");
  expect_error("[service.web]\nimage = \"x\"\nenv = { A = \"${secret:}\" }\n", "3:13",
               "env.A: invalid secret name \"\"");
  expect_error("[service.web]\nimage = \"x\"\nenv = { A = \"${secret:a/b}\" }\n", "3:13",
               "env.A: invalid secret name \"a/b\"");
  expect_error("[task.t]\nimage = \"x\"\nenv = { A = \"x${secret:abc\" }\n", "3:13",
               "env.A: unterminated secret reference");
  expect_error("[registry.r]\nusername = \"${secret:u}\"\npassword = \"${secret:p\"\n", "3:12",
               "password: unterminated secret reference");
  expect_error("[registry.r]\nusername = \"${secret:a b}\"\npassword = \"p\"\n", "2:12",
               "username: invalid secret name \"a b\"");
  // "$" that is not "${secret:" is left alone.
  auto ok = parse_config(
      "[service.web]\nimage = \"x\"\nenv = { A = \"cost $5 ${HOME} $\", B = \"${secret:ok}\" }\n",
      "mill.toml");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(model::secret_references(*ok.config), (std::set<std::string>{"ok"}));
}

// The limits a spawn's body has too (model/limits.h), at the line and column of what
// passes them; exactly at a limit is fine.
TEST(ConfigErrors, EnvAndCommandLimits) {
  auto env_of = [](int entries, std::size_t value_bytes) {
    std::string env = "env = {";
    for (int i = 0; i < entries; ++i) {
      env +=
          (i ? ", V" : " V") + std::to_string(i) + " = \"" + std::string(value_bytes, 'x') + "\"";
    }
    return env + " }\n";
  };
  const std::string head = "[task.t]\nimage = \"x\"\n";
  EXPECT_TRUE(parse_config(head + env_of(1000, 1), "mill.toml").ok());
  expect_error(head + env_of(1001, 1), "3:7",
               "task.t: env: env has 1001 entries, over the limit of 1000 (env entries)");
  EXPECT_TRUE(parse_config(head + env_of(1, 32768), "mill.toml").ok());
  expect_error(head + env_of(1, 32769), "3:14",
               "env.V0: env value of 'V0' has 32769 bytes, over the limit of 32768 (env value "
               "bytes)");
  expect_error(head + env_of(9, 30000), "3:7",
               "env: env has 270036 bytes, over the limit of 262144 (env bytes)");
  expect_error(head + "env = { " + std::string(257, 'N') + " = \"x\" }\n", "3:9",
               "over the limit of 256 (env name bytes)");

  auto command_of = [](int args, std::size_t arg_bytes) {
    std::string command = "command = [";
    for (int i = 0; i < args; ++i)
      command += (i ? ", \"" : "\"") + std::string(arg_bytes, 'a') + "\"";
    return command + "]\n";
  };
  EXPECT_TRUE(parse_config(head + command_of(256, 1), "mill.toml").ok());
  expect_error(head + command_of(257, 1), "3:11",
               "task.t: command: command has 257 arguments, over the limit of 256 (command "
               "arguments)");
  expect_error("[service.web]\nimage = \"x\"\n" + command_of(5, 30000), "3:11",
               "command has 150005 bytes, over the limit of 131072 (command bytes)");
  // A health check's command is a command too.
  std::string health_command = command_of(257, 1);
  health_command.pop_back();  // its newline
  expect_error("[service.web]\nimage = \"x\"\nport = 80\nhealth = { " + health_command + " }\n",
               "4:22", "over the limit of 256 (command arguments)");
}

TEST(ConfigErrors, VolumeMounts) {
  const std::string volume = "[volume.data]\nsize = \"1G\"\n";
  expect_error("[service.web]\nimage = \"x\"\nvolumes = [\"data:/d\"]\n", "3:12",
               "service.web: volume \"data\" is not declared (add a [volume.data] section)");
  expect_error("[service.web]\nimage = \"x\"\nvolumes = [\"data\"]\n" + volume, "3:12",
               "invalid volume mount \"data\": expected \"NAME:/absolute/path\"");
  expect_error("[service.web]\nimage = \"x\"\nvolumes = [\"data:d\"]\n" + volume, "3:12",
               "container path must be absolute");
  expect_error("[service.web]\nimage = \"x\"\nvolumes = [\"data:/d:rx\"]\n" + volume, "3:12",
               "unknown mount option");
  expect_error("[service.web]\nimage = \"x\"\nvolumes = [\"data:/a/../b\"]\n" + volume, "3:12",
               "must not contain . or ..");
  expect_error("[service.web]\nimage = \"x\"\nvolumes = [\"data:/\"]\n" + volume, "3:12",
               "cannot mount over the container's root");
  expect_error("[service.web]\nimage = \"x\"\nvolumes = \"data:/d\"\n" + volume, "3:11",
               "volumes must be an array");
  expect_error(
      "[service.web]\nimage = \"x\"\nvolumes = [\"data:/d\"]\n"
      "[service.api]\nimage = \"x\"\nvolumes = [\"data:/e\"]\n" +
          volume,
      "6:12",
      "service.api: volume \"data\" is already mounted by service \"web\" (a volume belongs to "
      "one service)");
  expect_error("[service.web]\nimage = \"x\"\nvolumes = [\"data:/d\", \"data:/e:ro\"]\n" + volume,
               "3:23", "volume \"data\" is mounted twice");
  expect_error("[service.web]\nimage = \"x\"\nreplicas = 2\nvolumes = [\"data:/d\"]\n" + volume,
               "3:12",
               "replicas must be 0 or 1 for a service with volumes: a volume lives on one node");
  EXPECT_TRUE(
      parse_config(
          "[service.web]\nimage = \"x\"\nreplicas = 0\nvolumes = [\"data:/d:rw\"]\n" + volume,
          "mill.toml")
          .ok());
}

TEST(ConfigErrors, HealthAndRoutes) {
  expect_error("[service.web]\nimage = \"x\"\nhealth = { path = \"/h\" }\n", "3:10",
               "health needs a port (the container port to check), or a command to run in the "
               "container");
  expect_error("[service.db]\nimage = \"x\"\nport = 1\nhealth = { command = [] }\n", "4:22",
               "health.command must not be empty (leave it out for an HTTP or TCP check)");
  expect_error("[service.db]\nimage = \"x\"\nport = 1\nhealth = { command = [\"\", \"-q\"] }\n",
               "4:23", "health.command[0] (the program) must not be empty");
  expect_error("[service.db]\nimage = \"x\"\nport = 1\nhealth = { command = \"pg_isready -q\" }\n",
               "4:22", "health.command must be an array of strings, got string");
  expect_error(
      "[service.db]\nimage = \"x\"\nport = 1\n"
      "health = { path = \"/h\", command = [\"pg_isready\"] }\n",
      "4:10", "health: path (an HTTP check) and command (run in the container) exclude each other");
  expect_error("[service.web]\nimage = \"x\"\nroute = { host = \"a.com\" }\n", "3:9",
               "route needs a port");
  expect_error("[service.web]\nimage = \"x\"\nport = 1\nhealth = { path = \"healthz\" }\n", "4:19",
               "health.path: path \"healthz\" must start with \"/\"");
  expect_error("[service.web]\nimage = \"x\"\nport = 1\nroute = { path = \"/\" }\n", "4:9",
               "route.host is required");
  expect_error(
      "[service.web]\nimage = \"x\"\nport = 1\nroute = { host = \"a.com\", path = \"x\" }\n",
      "4:34", "route.path: path \"x\" must start with \"/\"");
  expect_error(
      "[service.web]\nimage = \"x\"\nport = 1\nroute = { host = \"a.com\", tls = { cert = "
      "\"${secret:c}\" } }\n",
      "4:33", "route.tls needs both cert and key");
  expect_error(
      "[service.web]\nimage = \"x\"\nport = 1\nroute = { host = \"a.com\", https_redirect = "
      "true }\n",
      "4:9", "route.https_redirect needs route.tls");
  expect_error(
      "[service.web]\nimage = \"x\"\nport = 1\nroute = { host = \"a.com\", tls = { cert = "
      "\"c\", key = \"k\", chain = \"x\" } }\n",
      "4:58", "unknown key \"route.tls.chain\"");
  for (const char* host :
       {"", "*.", "*", "a..com", "-a.com", "A.com", "a.com:80", "http://a.com", "a.*.com"}) {
    expect_error(std::string("[service.web]\nimage = \"x\"\nport = 1\nroute = { host = \"") + host +
                     "\" }\n",
                 "4:18", "route host");
  }
  expect_error(
      "[service.a]\nimage = \"x\"\nport = 80\nroute = { host = \"a.com\" }\n"
      "[service.b]\nimage = \"x\"\nport = 80\nroute = { host = \"a.com\", path = \"/\" }\n",
      "8:9", "service.b: route host \"a.com\" path \"/\" is already used by service \"a\"");
  EXPECT_TRUE(
      parse_config("[service.a]\nimage = \"x\"\nport = 80\nroute = { host = \"a.com\" }\n"
                   "[service.b]\nimage = \"x\"\nport = 80\nroute = { host = \"a.com\", path = "
                   "\"/api\" }\n[service.c]\nimage = \"x\"\nport = 80\nroute = { host = "
                   "\"*.a.com\" }\n",
                   "mill.toml")
          .ok());
}

TEST(ConfigErrors, ServiceAndTaskShareNames) {
  expect_error("[service.a]\nimage = \"x\"\n[task.a]\nimage = \"y\"\n", "3:1",
               "task.a: \"a\" is also a service");
}

TEST(ConfigErrors, ReportsAllErrorsInFileOrder) {
  auto errors = errors_of(
      "[service.web]\n"            // 1
      "imagee = \"x\"\n"           // 2
      "replicas = \"two\"\n"       // 3
      "memory = \"1K\"\n"          // 4
      "volumes = [\"nope:/d\"]\n"  // 5
      "[task.Bad]\n"               // 6
      "image = \"y\"\n"            // 7
      "[colume.v]\n");             // 8
  EXPECT_THAT(
      errors,
      ElementsAre(StartsWith("mill.toml:1:1: service.web: image is required"),
                  StartsWith("mill.toml:2:1: service.web: unknown key \"imagee\""),
                  StartsWith("mill.toml:3:12: service.web: replicas must be an integer"),
                  StartsWith("mill.toml:4:10: service.web: memory must be at least 4M"),
                  StartsWith("mill.toml:5:12: service.web: volume \"nope\" is not declared"),
                  StartsWith("mill.toml:6:7: task.Bad: invalid task name \"Bad\""),
                  StartsWith("mill.toml:8:2: unknown section \"colume\"")));
}

}  // namespace
}  // namespace mill::config
