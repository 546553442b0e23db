#include "model/ipv4.h"

#include <gtest/gtest.h>

#include "model/node.h"

namespace mill::model {
namespace {

TEST(Ipv4, ParsesAndFormatsAddresses) {
  auto a = parse_ipv4("10.99.1.7");
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, 0x0a630107u);
  EXPECT_EQ(format_ipv4(*a), "10.99.1.7");
  EXPECT_EQ(format_ipv4(0), "0.0.0.0");
  EXPECT_EQ(*parse_ipv4("255.255.255.255"), 0xffffffffu);
}

TEST(Ipv4, RejectsMalformedAddresses) {
  for (const char* bad : {"", "10", "10.1.2", "10.1.2.3.4", "256.1.1.1", "1..2.3", "1.2.3.",
                          "a.b.c.d", "1.2.3.4 ", "-1.2.3.4", "1.2.3.0004", "+1.2.3.4"}) {
    EXPECT_FALSE(parse_ipv4(bad)) << bad;
  }
}

TEST(Ipv4Net, ParsesContainsAndFormats) {
  auto net = Ipv4Net::parse("10.99.0.0/16");
  ASSERT_TRUE(net);
  EXPECT_EQ(net->str(), "10.99.0.0/16");
  EXPECT_TRUE(net->contains(*parse_ipv4("10.99.255.3")));
  EXPECT_FALSE(net->contains(*parse_ipv4("10.98.255.3")));
  EXPECT_EQ(format_ipv4(net->broadcast()), "10.99.255.255");
  auto node = Ipv4Net::parse("10.99.1.0/24");
  ASSERT_TRUE(node);
  EXPECT_TRUE(net->contains(*node));
  EXPECT_FALSE(node->contains(*net));
  auto all = Ipv4Net::parse("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->contains(0xffffffffu));
  auto host = Ipv4Net::parse("10.1.2.3/32");
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->contains(0x0a010203u));
  EXPECT_FALSE(host->contains(0x0a010204u));
}

TEST(Ipv4Net, RejectsHostBitsAndBadPrefixes) {
  for (const char* bad : {"10.99.1.1/16", "10.99.0.0", "10.99.0.0/33", "10.99.0.0/-1", "10.99.0.0/",
                          "10.99.0.0/1x", "x/16", "10.99.0.0/016"}) {
    EXPECT_FALSE(Ipv4Net::parse(bad)) << bad;
  }
}

}  // namespace
}  // namespace mill::model

namespace mill::model {
namespace {

TEST(NodeSubnet, NodeNGetsTheNthSlash24) {
  auto cluster = Ipv4Net::parse("10.99.0.0/16");
  ASSERT_TRUE(cluster.has_value());
  EXPECT_EQ(node_subnet(*cluster, 1)->str(), "10.99.1.0/24");
  EXPECT_EQ(node_subnet(*cluster, 255)->str(), "10.99.255.0/24");
  EXPECT_FALSE(node_subnet(*cluster, 256).has_value());
  EXPECT_FALSE(node_subnet(*cluster, 0).has_value());
  EXPECT_FALSE(node_subnet(*Ipv4Net::parse("10.99.1.0/25"), 1).has_value());
}

// One reading of a node id for everyone who needs its number (the registry's next id,
// the register answer's subnet, the address pool).
TEST(NodeSubnet, ByNodeIdOnlyForIdsTheServerAssigns) {
  EXPECT_EQ(node_index("node-3"), 3);
  EXPECT_EQ(node_index("node-255"), 255);
  for (std::string_view id : {"node-", "node-03", "node-0", "node--3", "node-+3", "node-3x", "web",
                              "node-99999999999", "Node-3", ""}) {
    EXPECT_FALSE(node_index(id).has_value()) << id;
  }
  auto cluster = *Ipv4Net::parse("10.99.0.0/16");
  EXPECT_EQ(node_subnet(cluster, std::string_view("node-3"))->str(), "10.99.3.0/24");
  EXPECT_FALSE(node_subnet(cluster, std::string_view("node-256")).has_value());
  EXPECT_FALSE(node_subnet(cluster, std::string_view("web")).has_value());
}

}  // namespace
}  // namespace mill::model
