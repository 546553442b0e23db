// NodeNetwork::setup refuses bad options before it changes anything on the host, so
// these run as any user.

#include <gtest/gtest.h>

#include <filesystem>

#include "network/node_network.h"
#include "support/temp_dir.h"

namespace mill::network {
namespace {

TEST(NodeNetworkOptions, SetupRejectsBadOptionsAndMakesNothing) {
  mill::testing::TempDir dir;
  NetworkOptions good;
  good.bridge = "mtopts0";
  good.cluster_cidr = "10.251.0.0/16";
  good.node_cidr = "10.251.1.0/24";
  good.netns_dir = dir.path() + "/netns";
  good.netns_prefix = "t-";

  auto bad = good;
  bad.node_cidr = "10.1.1.0/24";  // outside the cluster network
  auto r = NodeNetwork::setup(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().to_string();
  bad = good;
  bad.bridge = "a;b";
  r = NodeNetwork::setup(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().to_string();
  bad = good;
  bad.bridge = "waytoolongbridgename";
  r = NodeNetwork::setup(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().to_string();
  EXPECT_FALSE(std::filesystem::exists("/sys/class/net/mtopts0"));
  EXPECT_FALSE(std::filesystem::exists(good.netns_dir));
}

}  // namespace
}  // namespace mill::network
