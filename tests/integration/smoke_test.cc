#include <gtest/gtest.h>
#include <signal.h>

#include "harness.h"

namespace mill::testing {
namespace {

TEST(Smoke, ServerAnswersStatusWithToken) {
  TempDir dir;
  std::string token = init_data_dir(dir);
  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  auto res = api(server->address(), "GET", "/v1/status", token);
  EXPECT_EQ(res.status, 200) << res.body;
  EXPECT_NE(res.body.find("\"nodes\""), std::string::npos);
  EXPECT_EQ(api(server->address(), "GET", "/v1/status", "").status, 401);
  EXPECT_EQ(server->stop(SIGTERM), 0) << server->log();
}

}  // namespace
}  // namespace mill::testing
