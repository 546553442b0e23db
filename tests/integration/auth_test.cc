// Authentication of every /v1 route (routes.h: the spec's, Mill's own and the node
// protocol's) against the real server: no token, wrong token, wrong scheme, token
// prefix/suffix, and the two tokens not opening each other's routes.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "routes.h"

namespace mill::testing {
namespace {

namespace json = boost::json;

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v =
        (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

struct BadAuth {
  std::string label;
  std::string header;  // "" = no Authorization header at all
};

// Authorization headers that must not open a route whose right token is `good`.
std::vector<BadAuth> bad_auths(const std::string& good) {
  return {
      {"no header", ""},
      {"empty bearer", "Bearer "},
      {"wrong token", "Bearer " + std::string(good.size(), 'a')},
      {"Basic scheme with the token", "Basic " + base64("mill:" + good)},
      {"Basic scheme, token as is", "Basic " + good},
      {"token without scheme", good},
      {"token prefix", "Bearer " + good.substr(0, good.size() - 1)},
      {"token first half", "Bearer " + good.substr(0, good.size() / 2)},
      {"token plus suffix", "Bearer " + good + "x"},
      {"token twice", "Bearer " + good + good},
      {"token with inner space", "Bearer " + good.substr(0, 10) + " " + good.substr(10)},
  };
}

class AuthTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    delete api_token_;
    delete join_token_;
    server_ = nullptr;
    dir_ = nullptr;
    api_token_ = nullptr;
    join_token_ = nullptr;
  }
  // One server for the suite, started by the first test (from SetUp, so a server that
  // does not come up fails the test: a failure in SetUpTestSuite would only skip it).
  void SetUp() override {
    if (!dir_) {
      dir_ = new TempDir();
      api_token_ = new std::string(init_data_dir(*dir_));
      std::string join = read_file_text(dir_->file("data/join.token"));
      while (!join.empty() && join.back() == '\n') join.pop_back();
      join_token_ = new std::string(join);
    }
    if (!server_) server_ = MillServer::start(*dir_).release();
    ASSERT_NE(server_, nullptr) << "mill server did not start";
    ASSERT_EQ(api_token_->size(), 64u);
    ASSERT_EQ(join_token_->size(), 64u);
    ASSERT_NE(*api_token_, *join_token_);
  }

  static net::ClientResponse call(const Route& r, const std::string& authorization) {
    net::ClientRequest req;
    req.method = r.method;
    req.target = r.target;
    req.body = r.body;
    if (!r.body.empty()) req.content_type = "application/json";
    if (!authorization.empty()) req.headers.push_back({"Authorization", authorization});
    return api_request(server_->address(), req);
  }

  // 401 with a JSON {"error": "..."} body.
  static void expect_unauthorized(const net::ClientResponse& res, const std::string& what) {
    EXPECT_EQ(res.status, 401) << what << ": " << res.body;
    const std::string* ct = res.header("Content-Type");
    EXPECT_TRUE(ct && ct->starts_with("application/json")) << what;
    EXPECT_TRUE(res.header("WWW-Authenticate")) << what << ": 401 without WWW-Authenticate";
    boost::system::error_code ec;
    json::value v = json::parse(res.body, ec);
    ASSERT_FALSE(ec) << what << ": 401 body is not JSON: " << res.body;
    ASSERT_TRUE(v.is_object()) << what << ": " << res.body;
    auto* e = v.as_object().if_contains("error");
    ASSERT_TRUE(e && e->is_string()) << what << ": no \"error\" string: " << res.body;
    EXPECT_FALSE(e->as_string().empty()) << what;
  }

  static TempDir* dir_;
  static std::string* api_token_;
  static std::string* join_token_;
  static MillServer* server_;
};

TempDir* AuthTest::dir_ = nullptr;
std::string* AuthTest::api_token_ = nullptr;
std::string* AuthTest::join_token_ = nullptr;
MillServer* AuthTest::server_ = nullptr;

TEST_F(AuthTest, EveryApiRouteRejectsMissingOrBadTokens) {
  // Auth comes before routing: an unknown route is refused the same way.
  auto routes = api_routes();
  routes.push_back({"GET", "/v1/whatever", "", ""});
  for (const auto& route : routes) {
    for (const auto& bad : bad_auths(*api_token_)) {
      expect_unauthorized(call(route, bad.header),
                          route.method + " " + route.target + " with " + bad.label);
    }
  }
}

TEST_F(AuthTest, EveryAgentRouteRejectsMissingOrBadTokens) {
  for (const auto& route : agent_routes()) {
    for (const auto& bad : bad_auths(*join_token_)) {
      expect_unauthorized(call(route, bad.header),
                          route.method + " " + route.target + " with " + bad.label);
    }
  }
}

TEST_F(AuthTest, JoinTokenDoesNotOpenApiRoutes) {
  for (const auto& route : api_routes()) {
    expect_unauthorized(call(route, "Bearer " + *join_token_),
                        route.method + " " + route.target + " with the join token");
  }
}

TEST_F(AuthTest, ApiTokenDoesNotOpenAgentRoutes) {
  for (const auto& route : agent_routes()) {
    expect_unauthorized(call(route, "Bearer " + *api_token_),
                        route.method + " " + route.target + " with the API token");
  }
  // The rejected register created no node.
  auto nodes = api(server_->address(), "GET", "/v1/nodes", *api_token_);
  ASSERT_EQ(nodes.status, 200) << nodes.body;
  EXPECT_EQ(json::parse(nodes.body).as_array().size(), 1u) << nodes.body;
}

TEST_F(AuthTest, RightTokensOpenTheirRoutes) {
  // The controls: the same requests with the right token are not 401, so the tests
  // above fail if auth rejected everything.
  for (const auto& route : api_routes()) {
    auto res = call(route, "Bearer " + *api_token_);
    EXPECT_NE(res.status, 401) << route.method << " " << route.target << ": " << res.body;
    EXPECT_NE(res.status, 0) << route.method << " " << route.target;
  }
  for (const auto& route : agent_routes()) {
    if (route.target == "/v1/agent/register") continue;  // would register a node
    auto res = call(route, "Bearer " + *join_token_);
    EXPECT_NE(res.status, 401) << route.method << " " << route.target << ": " << res.body;
    EXPECT_NE(res.status, 0) << route.method << " " << route.target;
    EXPECT_EQ(res.body.find("no such route"), std::string::npos) << route.target;
  }
  auto hb = call(agent_routes()[1], "Bearer " + *join_token_);
  EXPECT_EQ(hb.status, 200) << hb.body;
}

TEST_F(AuthTest, WrongTokenChangesNothing) {
  const std::string& addr = server_->address();
  const std::string target = "/v1/secrets/auth-probe";
  // A PUT with any bad credential leaves the secret absent.
  for (const auto& bad : bad_auths(*api_token_)) {
    auto res = call({"PUT", target, R"({"value":"should-not-be-stored"})"}, bad.header);
    EXPECT_EQ(res.status, 401) << bad.label;
  }
  auto res = call({"PUT", target, R"({"value":"x"})"}, "Bearer " + *join_token_);
  EXPECT_EQ(res.status, 401);
  auto get = api(addr, "GET", target, *api_token_);
  EXPECT_EQ(get.status, 404) << "a PUT with a bad token stored something: " << get.body;
  auto list = api(addr, "GET", "/v1/secrets", *api_token_);
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.body.find("auth-probe"), std::string::npos) << list.body;

  // A DELETE or overwriting PUT with a bad credential leaves an existing secret as is.
  ASSERT_EQ(api(addr, "PUT", target, *api_token_, R"({"value":"original"})").status, 200);
  for (const auto& bad : bad_auths(*api_token_)) {
    EXPECT_EQ(call({"DELETE", target, ""}, bad.header).status, 401) << bad.label;
    EXPECT_EQ(call({"PUT", target, R"({"value":"overwritten"})"}, bad.header).status, 401)
        << bad.label;
  }
  get = api(addr, "GET", target, *api_token_);
  ASSERT_EQ(get.status, 200) << get.body;
  EXPECT_EQ(json::parse(get.body).at("value").as_string(), "original");
  EXPECT_EQ(api(addr, "DELETE", target, *api_token_).status, 200);
}

TEST_F(AuthTest, UnauthenticatedCallerCannotTellRoutesApart) {
  // Without a token an unknown route and a real one look the same: 401, not 404/405.
  auto unknown = call({"GET", "/v1/no-such-route", ""}, "");
  auto wrong_method = call({"POST", "/v1/status", ""}, "");
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(wrong_method.status, 401);
}

}  // namespace
}  // namespace mill::testing
