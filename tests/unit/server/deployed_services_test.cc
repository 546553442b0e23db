// The record of what is deployed for each service: its codec, and the config it
// composes with the last config deployed in full.

#include "server/deployed_services.h"

#include <gtest/gtest.h>

#include "config/config.h"

namespace mill::server {
namespace {

model::Config parse(const std::string& text) {
  auto outcome = config::parse_config(text, "t.toml");
  EXPECT_TRUE(outcome.ok()) << (outcome.errors.empty() ? "" : outcome.errors[0].to_string());
  return outcome.config.value_or(model::Config{});
}

TEST(DeployedServices, RoundTripsAndKeepsOnlyTheSourcesItsServicesName) {
  DeployedServices d;
  d.set("api", "d-1", {"a.toml", "[service.api]\nimage = \"r/api:v1\"\n"});
  d.set("web", "d-1", {"a.toml", "[service.api]\nimage = \"r/api:v1\"\n"});
  d.set("api", "d-2", {"b.toml", "[service.api]\nimage = \"r/api:v2\"\n"});
  EXPECT_EQ(d.sources.size(), 2u);
  d.set("web", "d-2", {"b.toml", "[service.api]\nimage = \"r/api:v2\"\n"});
  EXPECT_EQ(d.sources.size(), 1u) << "nobody runs d-1 any more";
  auto back = decode_deployed_services(encode(d));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, d);
  d.remove("api");
  d.remove("web");
  EXPECT_TRUE(d.sources.empty());
  EXPECT_EQ(decode_deployed_services(encode(d)), d);

  for (const char* bad :
       {"", "[]", "{}", R"({"services": {}, "sources": []})",
        R"({"services": {"a": "d-9"}, "sources": {}})", R"({"services": {"a": 1}, "sources": {}})",
        R"({"services": {}, "sources": {"d-1": {"file": "x"}}})"}) {
    EXPECT_FALSE(decode_deployed_services(bad).has_value()) << bad;
  }
}

// Each service as its own source has it, with the volumes it mounts there and any
// registry its source adds; templates, registries and other volumes of the last full.
TEST(ComposeDeployed, EachServiceFromItsSource) {
  const model::Config full = parse(
      "[service.api]\nimage = \"r/api:v1\"\nreplicas = 3\n"
      "[service.db]\nimage = \"r/db:v1\"\nvolumes = [\"data:/data\"]\n"
      "[volume.data]\nsize = \"1G\"\n[volume.spare]\nsize = \"1G\"\n"
      "[task.job]\nimage = \"r/job:v1\"\n"
      "[registry.\"r.example.com\"]\nusername = \"u\"\npassword = \"${secret:old}\"\n");
  const model::Config later = parse(
      "[service.api]\nimage = \"r/api:v2\"\nreplicas = 1\n"
      "[service.db]\nimage = \"r/db:v2\"\nvolumes = [\"data:/data\"]\n"
      "[service.new]\nimage = \"q.example.com/new:v1\"\n"
      "[volume.data]\nsize = \"2G\"\n"
      "[registry.\"r.example.com\"]\nusername = \"u\"\npassword = \"${secret:new}\"\n"
      "[registry.\"q.example.com\"]\nusername = \"q\"\npassword = \"${secret:q}\"\n");
  DeployedServices d;
  d.set("api", "d-2", {"b.toml", "(text)"});
  d.set("db", "d-1", {"a.toml", "(text)"});
  d.set("new", "d-2", {"b.toml", "(text)"});
  d.set("gone", "d-3", {"c.toml", "(text)"});  // its source did not parse: left out
  auto c = compose_deployed(full, d, {{"d-1", full}, {"d-2", later}});
  ASSERT_EQ(c.services.size(), 3u);
  EXPECT_EQ(c.services.at("api").image, "r/api:v2");
  EXPECT_EQ(c.services.at("api").replicas, 1);
  EXPECT_EQ(c.services.at("db").image, "r/db:v1");
  EXPECT_EQ(c.services.at("new").image, "q.example.com/new:v1");
  EXPECT_EQ(c.volumes.at("data").size, 1LL << 30) << "db runs with d-1's volume";
  EXPECT_TRUE(c.volumes.contains("spare"));
  EXPECT_TRUE(c.tasks.contains("job"));
  EXPECT_EQ(c.registries.at("r.example.com").password, "${secret:old}");
  EXPECT_EQ(c.registries.at("q.example.com").password, "${secret:q}");
  // Nothing recorded: no services, the rest of the last full config.
  auto none = compose_deployed(full, {}, {});
  EXPECT_TRUE(none.services.empty());
  EXPECT_TRUE(none.tasks.contains("job"));
}

}  // namespace
}  // namespace mill::server
