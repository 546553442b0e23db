// The Api's authentication in front of the router, with real components over an
// in-memory store.

#include "api/api.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "crypto/cluster_ca.h"
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
    ctx.ca = ca_;
    api_ = std::make_unique<Api>(ctx);
  }

  static crypto::ClusterCa make_ca() {
    auto ca = crypto::make_cluster_ca();
    EXPECT_TRUE(ca);
    return ca ? *ca : crypto::ClusterCa{};
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

  // A request the TLS layer verified a node certificate for (CN = identity), no token.
  net::HttpResponse call_as(std::string identity, std::string method, std::string path,
                            std::string body) {
    net::HttpRequest r;
    r.method = std::move(method);
    r.path = std::move(path);
    r.body = std::move(body);
    r.remote = "10.0.0.7:40000";
    r.peer_identity = std::move(identity);
    return api_->handle(r);
  }

  static std::string join_body(const std::string& secret, const std::string& public_key,
                               const std::string& id = {}) {
    boost::json::object o{{"secret", secret}, {"name", "box"}, {"public_key", public_key}};
    if (!id.empty()) o["id"] = id;
    return boost::json::serialize(o);
  }

  static std::string heartbeat(const std::string& id) {
    return R"({"id":")" + id +
           R"(","resources":{"cpu":{"total":1,"available":1},"memory":{"total":1,"available":1}}})";
  }

  crypto::ClusterCa ca_ = make_ca();
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

TEST_F(ApiTest, JoinWithAWrongSecretIs401AndRegistersNothing) {
  auto key = crypto::make_key();
  ASSERT_TRUE(key);
  auto res = call_as("", "POST", "/v1/agent/join",
                     join_body(std::string(64, 'x'), *crypto::public_key_pem(*key)));
  EXPECT_EQ(res.status, 401) << res.body;
  EXPECT_EQ(res.body.find(std::string(64, 'x')), std::string::npos);
  EXPECT_EQ(*store_.revision(), 0);
  EXPECT_EQ(call_as("", "POST", "/v1/agent/join", "{}").status, 400);
  EXPECT_EQ(*store_.revision(), 0);
}

TEST_F(ApiTest, JoinSignsACertificateForTheNodeItRegisters) {
  auto key = crypto::make_key();
  ASSERT_TRUE(key);
  auto res = call_as("", "POST", "/v1/agent/join",
                     join_body(std::string(64, 'j'), *crypto::public_key_pem(*key)));
  ASSERT_EQ(res.status, 200) << res.body;
  auto answer = boost::json::parse(res.body).as_object();
  EXPECT_EQ(answer.at("id"), "node-1");
  EXPECT_EQ(std::string(answer.at("ca").as_string()), ca_.cert_pem);
  std::string cert(answer.at("certificate").as_string());
  EXPECT_TRUE(crypto::verify_certificate(ca_.cert_pem, cert, crypto::CertUsage::kBoth));
  EXPECT_EQ(crypto::certificate_info(cert)->common_name, "node-1");
  auto listed = nodes_.list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].address, "10.0.0.7") << "no address sent: the one it called from";

  // A node that registered before keeps its id.
  auto again = call_as("", "POST", "/v1/agent/join",
                       join_body(std::string(64, 'j'), *crypto::public_key_pem(*key), "node-1"));
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(boost::json::parse(again.body).at("id"), "node-1");
  EXPECT_EQ(nodes_.list()->size(), 1u);

  // A key that is not one is refused before anything is registered.
  auto bad = call_as("", "POST", "/v1/agent/join", join_body(std::string(64, 'j'), "nope"));
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(nodes_.list()->size(), 1u);
}

TEST_F(ApiTest, ANodeCertificateActsForItsOwnNodeOnly) {
  std::string join = "Bearer " + std::string(64, 'j');
  ASSERT_EQ(
      call(
          "POST", "/v1/agent/register", join,
          R"({"name":"a","address":"10.0.0.1","resources":{"cpu":{"total":1,"available":1},"memory":{"total":1,"available":1}}})")
          .status,
      200);
  ASSERT_EQ(
      call(
          "POST", "/v1/agent/register", join,
          R"({"name":"b","address":"10.0.0.2","resources":{"cpu":{"total":1,"available":1},"memory":{"total":1,"available":1}}})")
          .status,
      200);
  EXPECT_EQ(call_as("node-1", "POST", "/v1/agent/heartbeat", heartbeat("node-1")).status, 200);
  EXPECT_EQ(call_as("node-1", "POST", "/v1/agent/heartbeat", heartbeat("node-2")).status, 403);
  EXPECT_EQ(
      call_as(
          "node-1", "POST", "/v1/agent/register",
          R"({"id":"node-2","name":"x","address":"10.0.0.9","resources":{"cpu":{"total":1,"available":1},"memory":{"total":1,"available":1}}})")
          .status,
      403);
  EXPECT_EQ(
      call_as(
          "node-1", "POST", "/v1/agent/register",
          R"({"name":"x","address":"10.0.0.9","resources":{"cpu":{"total":1,"available":1},"memory":{"total":1,"available":1}}})")
          .status,
      403)
      << "a certificate cannot make a new node";
  EXPECT_EQ(nodes_.list()->size(), 2u);
  EXPECT_EQ(call_as("node-1", "GET", "/v1/secrets", "").status, 401)
      << "a node certificate opens the node protocol only";
  EXPECT_EQ(call_as("", "POST", "/v1/agent/heartbeat", heartbeat("node-1")).status, 401);
}

}  // namespace
}  // namespace mill::api
