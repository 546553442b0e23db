#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace mill::config {
namespace {

using std::chrono::milliseconds;

constexpr std::string_view kSample = R"toml(
[service.office]
image    = "registry.example.com/office:v2"
replicas = 1
port     = 3000
cpu      = 0.5
memory   = "512M"
command  = ["./office", "--serve"]
env      = { MODE = "prod", DATABASE_URL = "${secret:database_url}" }
volumes  = ["office-data:/var/lib/office", "shared:/srv/shared:ro"]
health   = { path = "/healthz", interval = "2s", timeout = "1s", deadline = "60s", passes = 3 }
route    = { host = "office.example.com", path = "/" }
update   = { parallel = 2 }
init     = false

[service.web]
image = "nginx:1.25"

[volume.office-data]
size = "10G"

[volume.shared]
size = 1073741824

[task.coop-agent]
image   = "registry.example.com/coop-agent:v3"
cpu     = 1
memory  = "2G"
timeout = "1h30m"
port    = 8080
env     = { TOKEN = "${secret:agent_token}" }

[registry."registry.example.com"]
username = "deploy"
password = "${secret:registry_password}"
insecure = true
)toml";

std::vector<std::string> error_strings(const ParseOutcome& outcome) {
  std::vector<std::string> out;
  for (const ConfigError& error : outcome.errors) out.push_back(error.to_string());
  return out;
}

TEST(ParseConfig, FullSampleParsesIntoModel) {
  ParseOutcome outcome = parse_config(kSample, "mill.toml");
  ASSERT_TRUE(outcome.ok()) << ::testing::PrintToString(error_strings(outcome));
  EXPECT_TRUE(outcome.errors.empty());
  const model::Config& config = *outcome.config;

  ASSERT_EQ(config.services.size(), 2u);
  const model::ServiceSpec& office = config.services.at("office");
  EXPECT_EQ(office.name, "office");
  EXPECT_EQ(office.image, "registry.example.com/office:v2");
  EXPECT_EQ(office.replicas, 1);
  EXPECT_EQ(office.port, 3000);
  EXPECT_DOUBLE_EQ(office.cpu, 0.5);
  EXPECT_EQ(office.memory, 536870912);
  EXPECT_EQ(office.command, (std::vector<std::string>{"./office", "--serve"}));
  EXPECT_EQ(office.env, (std::map<std::string, std::string>{
                            {"DATABASE_URL", "${secret:database_url}"}, {"MODE", "prod"}}));
  EXPECT_EQ(office.volumes,
            (std::vector<model::VolumeMount>{{"office-data", "/var/lib/office", false},
                                             {"shared", "/srv/shared", true}}));
  ASSERT_TRUE(office.health.has_value());
  EXPECT_EQ(office.health->path, "/healthz");
  EXPECT_EQ(office.health->interval, milliseconds(2000));
  EXPECT_EQ(office.health->timeout, milliseconds(1000));
  EXPECT_EQ(office.health->deadline, milliseconds(60000));
  EXPECT_EQ(office.health->passes, 3);
  EXPECT_EQ(office.route, (model::Route{"office.example.com", "/"}));
  EXPECT_EQ(office.update_parallel, 2);
  EXPECT_EQ(office.update_order, model::UpdateOrder::kDefault);
  EXPECT_TRUE(model::rolls_stop_first(office)) << "it writes office-data";
  EXPECT_FALSE(office.init);

  const model::ServiceSpec& web = config.services.at("web");  // all defaults
  EXPECT_EQ(web.replicas, 1);
  EXPECT_EQ(web.port, std::nullopt);
  EXPECT_DOUBLE_EQ(web.cpu, 0.1);
  EXPECT_EQ(web.memory, 256 * 1024 * 1024);
  EXPECT_TRUE(web.command.empty());
  EXPECT_EQ(web.health, std::nullopt);
  EXPECT_EQ(web.route, std::nullopt);
  EXPECT_EQ(web.update_parallel, 1);
  EXPECT_FALSE(model::rolls_stop_first(web)) << "no volume: start-first";
  EXPECT_TRUE(web.init);

  EXPECT_EQ(config.volumes.at("office-data"), (model::VolumeSpec{"office-data", 10737418240}));
  EXPECT_EQ(config.volumes.at("shared").size, 1073741824);

  const model::TaskTemplate& task = config.tasks.at("coop-agent");
  EXPECT_EQ(task.image, "registry.example.com/coop-agent:v3");
  EXPECT_DOUBLE_EQ(task.cpu, 1.0);
  EXPECT_EQ(task.memory, 2147483648);
  EXPECT_EQ(task.timeout, milliseconds(5400000));
  EXPECT_EQ(task.port, 8080);
  EXPECT_TRUE(task.init);

  EXPECT_EQ(config.registries.at("registry.example.com"),
            (model::RegistryConfig{"registry.example.com", "deploy", "${secret:registry_password}",
                                   true}));

  EXPECT_EQ(model::secret_references(config),
            (std::set<std::string>{"agent_token", "database_url", "registry_password"}));
}

TEST(ParseConfig, SameTextGivesEqualConfigsAndChangesAreVisible) {
  auto a = parse_config(kSample, "a.toml");
  auto b = parse_config(kSample, "b.toml");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a.config, *b.config);
  b.config->services["office"].replicas = 0;
  EXPECT_NE(*a.config, *b.config);
}

TEST(ParseConfig, EmptyConfigIsValid) {
  for (std::string_view text : {"", "\n# only a comment\n"}) {
    ParseOutcome outcome = parse_config(text, "mill.toml");
    ASSERT_TRUE(outcome.ok());
    EXPECT_EQ(*outcome.config, model::Config{});
  }
}

TEST(ParseConfig, TaskTimeoutIsOptional) {
  auto outcome = parse_config("[task.t]\nimage = \"x\"\n", "mill.toml");
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome.config->tasks.at("t").timeout, std::nullopt);
  EXPECT_EQ(outcome.config->tasks.at("t").port, std::nullopt);
}

TEST(ParseConfig, MemoryAsIntegerBytesAndHealthDefaults) {
  auto outcome = parse_config(
      "[service.a]\nimage = \"x\"\nport = 80\nmemory = 8388608\nhealth = {}\n"
      "route = { host = \"*.example.com\" }\n",
      "mill.toml");
  ASSERT_TRUE(outcome.ok()) << ::testing::PrintToString(error_strings(outcome));
  const auto& service = outcome.config->services.at("a");
  EXPECT_EQ(service.memory, 8388608);
  EXPECT_EQ(service.health, model::HealthCheck{});
  EXPECT_EQ(service.route, (model::Route{"*.example.com", "/"}));
}

// pg_isready as a check: run in the container, no port needed.
TEST(ParseConfig, HealthCommandRunsInTheContainerWithoutAPort) {
  auto outcome = parse_config(
      "[service.db]\nimage = \"postgres\"\n"
      "health = { command = [\"pg_isready\", \"-q\"], timeout = \"3s\" }\n",
      "mill.toml");
  ASSERT_TRUE(outcome.ok()) << ::testing::PrintToString(error_strings(outcome));
  const auto& health = *outcome.config->services.at("db").health;
  EXPECT_EQ(health.command, (std::vector<std::string>{"pg_isready", "-q"}));
  EXPECT_EQ(health.path, "");
  EXPECT_EQ(health.timeout, std::chrono::seconds(3));
}

// disk: the writable layer's size, for services and task templates alike.
TEST(ParseConfig, DiskLimitsTheWritableLayer) {
  auto outcome = parse_config(
      "[service.db]\nimage = \"x\"\ndisk = \"2G\"\n[task.t]\nimage = \"x\"\ndisk = 16777216\n",
      "mill.toml");
  ASSERT_TRUE(outcome.ok()) << ::testing::PrintToString(error_strings(outcome));
  EXPECT_EQ(outcome.config->services.at("db").disk, std::int64_t{2} << 30);
  EXPECT_EQ(outcome.config->tasks.at("t").disk, std::int64_t{16} << 20);
  auto small = parse_config("[task.t]\nimage = \"x\"\ndisk = \"1M\"\n", "mill.toml");
  ASSERT_EQ(small.errors.size(), 1u);
  EXPECT_EQ(small.errors[0].line, 3);
  EXPECT_NE(small.errors[0].message.find("disk"), std::string::npos) << small.errors[0].message;
}

TEST(ParseConfig, RouteTlsAndRedirect) {
  auto outcome = parse_config(
      "[service.a]\nimage = \"x\"\nport = 80\n"
      "route = { host = \"a.example.com\", https_redirect = true, tls = { cert = "
      "\"${secret:a_cert}\", key = \"${secret:a_key}\" } }\n",
      "mill.toml");
  ASSERT_TRUE(outcome.ok()) << ::testing::PrintToString(error_strings(outcome));
  const auto& route = *outcome.config->services.at("a").route;
  EXPECT_TRUE(route.https_redirect);
  ASSERT_TRUE(route.tls);
  EXPECT_EQ(route.tls->cert, "${secret:a_cert}");
  EXPECT_EQ(route.tls->key, "${secret:a_key}");
  auto refs = model::secret_references(*outcome.config);
  EXPECT_TRUE(refs.contains("a_cert") && refs.contains("a_key"));
}

TEST(ConfigError, ToString) {
  EXPECT_EQ((ConfigError{"mill.toml", 3, 12, "bad"}).to_string(), "mill.toml:3:12: bad");
  EXPECT_EQ((ConfigError{"mill.toml", 0, 0, "unreadable"}).to_string(), "mill.toml: unreadable");
}

// update.order: a service on a writable volume rolls stop-first unless it says
// otherwise, and saying start-first there is allowed but warned about; a read-only
// volume changes nothing.
TEST(Config, UpdateOrderDefaultsToStopFirstOnAWritableVolume) {
  auto parse = [](const std::string& service) {
    return parse_config("[volume.data]\nsize = \"1G\"\n[service.db]\nimage = \"pg\"\n" + service,
                        "mill.toml");
  };
  auto written = parse("volumes = [\"data:/var/lib/pg\"]\n");
  ASSERT_TRUE(written.ok());
  EXPECT_TRUE(model::rolls_stop_first(written.config->services.at("db")));
  EXPECT_TRUE(written.warnings.empty());
  auto read_only = parse("volumes = [\"data:/srv:ro\"]\n");
  ASSERT_TRUE(read_only.ok());
  EXPECT_FALSE(model::rolls_stop_first(read_only.config->services.at("db")));
  auto chosen = parse("update = { order = \"stop-first\" }\n");
  ASSERT_TRUE(chosen.ok());
  EXPECT_TRUE(model::rolls_stop_first(chosen.config->services.at("db")));

  auto insisted = parse("volumes = [\"data:/var/lib/pg\"]\nupdate = { order = \"start-first\" }\n");
  ASSERT_TRUE(insisted.ok());
  EXPECT_FALSE(model::rolls_stop_first(insisted.config->services.at("db")));
  ASSERT_EQ(insisted.warnings.size(), 1u);
  EXPECT_EQ(insisted.warnings[0].line, 6);
  EXPECT_NE(insisted.warnings[0].message.find("start-first\" with a writable volume"),
            std::string::npos)
      << insisted.warnings[0].message;
}

}  // namespace
}  // namespace mill::config
