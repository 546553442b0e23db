// Every route of the spec (spec/http-api.md) is served by the real server: none answers
// "no such route" (404) or "method not allowed" (405).

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "harness.h"
#include "routes.h"

namespace mill::testing {
namespace {

class SpecRoutes : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = init_data_dir(dir_);
    ASSERT_FALSE(token_.empty());
    server_ = MillServer::start(dir_);
    ASSERT_TRUE(server_) << "mill server did not start";
  }

  // "" when the route is served; otherwise what the server said.
  std::string unserved(const Route& r) {
    net::ClientRequest req;
    req.method = r.method;
    req.target = r.target;
    req.body = r.body;
    if (!r.body.empty())
      req.content_type = r.target == "/v1/deploy" ? "text/plain" : "application/json";
    req.headers.push_back({"Authorization", "Bearer " + token_});
    auto res = api_request(server_->address(), req);
    if (res.status == 0) return "no answer";
    if (res.status == 405 ||
        (res.status == 404 && res.body.find("no such route") != std::string::npos)) {
      return std::to_string(res.status) + " " + res.body;
    }
    return "";
  }

  TempDir dir_;
  std::string token_;
  std::unique_ptr<MillServer> server_;
};

#ifdef MILL_SPEC_FILE
// The list in routes.h is the spec's: a route added to the spec and not to the list
// fails here. (Built where the spec is beside the repository, as in CI.)
TEST(SpecRouteList, MatchesTheSpecsHeadings) {
  std::ifstream in(MILL_SPEC_FILE);
  ASSERT_TRUE(in.good()) << MILL_SPEC_FILE;
  std::vector<std::string> headings;
  std::regex heading(R"(^### `([A-Z]+ /v1/[^`]*)`)");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, heading)) headings.push_back(m[1]);
  }
  std::vector<std::string> listed;
  for (const auto& r : spec_routes()) listed.push_back(r.spec);
  EXPECT_EQ(listed, headings);
}
#endif

TEST_F(SpecRoutes, EveryRouteOfTheSpecIsServed) {
  int checked = 0;
  for (const auto& r : spec_routes()) {
    EXPECT_EQ(unserved(r), "") << r.spec;
    ++checked;
  }
  EXPECT_EQ(checked, 19);
}

}  // namespace
}  // namespace mill::testing
