// The Api's authentication in front of the router, with real components over an
// in-memory store.

#include "api/api.h"

#include <gtest/gtest.h>

#include "store/memory_store.h"

namespace mill::api {
namespace {

class ApiTest : public ::testing::Test {
 protected:
  ApiTest()
      : secrets_(store_, *crypto::Aead::create(std::string(32, 'k')), clock_),
        nodes_(store_, clock_, std::chrono::seconds(15)) {
    ApiContext ctx;
    ctx.api_token = std::string(64, 'a');
    ctx.join_token = std::string(64, 'j');
    ctx.secrets = &secrets_;
    ctx.nodes = &nodes_;
    ctx.metrics = &metrics_;
    ctx.clock = &clock_;
    api_ = std::make_unique<Api>(ctx);
  }

  net::HttpResponse call(std::string method, std::string path, std::string token,
                         std::string body = {}) {
    net::HttpRequest r;
    r.method = std::move(method);
    r.path = std::move(path);
    r.body = std::move(body);
    if (!token.empty()) r.headers.push_back({"authorization", token});
    return api_->handle(r);
  }

  store::MemoryStore store_;
  ManualClock clock_;
  server::Secrets secrets_;
  server::NodeRegistry nodes_;
  metrics::Registry metrics_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiTest, TokenRequiredEverywhere) {
  std::string good = "Bearer " + std::string(64, 'a');
  EXPECT_EQ(call("GET", "/v1/secrets", good).status, 200);
  EXPECT_EQ(call("GET", "/v1/secrets", "").status, 401);
  EXPECT_EQ(call("GET", "/v1/secrets", "Bearer " + std::string(63, 'a')).status, 401);
  EXPECT_EQ(call("GET", "/v1/secrets", "Basic " + std::string(64, 'a')).status, 401);
  EXPECT_EQ(call("GET", "/v1/nope", "").status, 401) << "unknown routes must not leak";
  EXPECT_EQ(call("GET", "/v1/nope", good).status, 404);
  EXPECT_EQ(call("GET", "/v1/secrets", "bearer " + std::string(64, 'a')).status, 200)
      << "the scheme is case-insensitive";
}

TEST_F(ApiTest, JoinTokenOnlyOpensTheNodeProtocol) {
  std::string join = "Bearer " + std::string(64, 'j');
  std::string api = "Bearer " + std::string(64, 'a');
  EXPECT_EQ(call("GET", "/v1/secrets", join).status, 401);
  EXPECT_EQ(call("POST", "/v1/agent/heartbeat", api, R"({"id":"node-1"})").status, 401);
  EXPECT_EQ(call("POST", "/v1/agent/heartbeat", join,
                 R"({"id":"node-9","resources":{"cpu":{"total":1,"available":1},)"
                 R"("memory":{"total":1,"available":1}}})")
                .status,
            404);
}

TEST_F(ApiTest, RejectedWriteChangesNothing) {
  EXPECT_EQ(call("PUT", "/v1/secrets/x", "Bearer wrong", R"({"value":"v"})").status, 401);
  EXPECT_EQ(
      call("PUT", "/v1/secrets/x", "Bearer " + std::string(64, 'a'), R"({"value":"v","extra":1})")
          .status,
      400);
  EXPECT_EQ(*store_.revision(), 0);
}

}  // namespace
}  // namespace mill::api
