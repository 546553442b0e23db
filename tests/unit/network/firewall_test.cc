#include "network/firewall.h"

#include <gtest/gtest.h>

namespace mill::network {
namespace {

TEST(Firewall, TableIsNamedAfterTheBridge) {
  EXPECT_EQ(nft_table_name("mill0"), "mill_mill0");
  EXPECT_EQ(nft_table_name("br-x.1"), "mill_br_x_1");
}

TEST(Firewall, RulesetRecreatesTheTableAtomically) {
  FirewallSpec spec{"mill0", *Ipv4Net::parse("10.99.1.0/24"), *Ipv4Net::parse("10.99.0.0/16")};
  std::string s = nft_ruleset(spec);
  // Declare, delete, define: the delete never fails and the old copy goes in the same
  // transaction, so applying twice leaves exactly one table.
  size_t declare = s.find("table ip mill_mill0 {}");
  size_t del = s.find("delete table ip mill_mill0\n");
  size_t define = s.find("table ip mill_mill0 {\n");
  ASSERT_NE(declare, std::string::npos);
  ASSERT_NE(del, std::string::npos);
  ASSERT_NE(define, std::string::npos);
  EXPECT_LT(declare, del);
  EXPECT_LT(del, define);
  EXPECT_NE(s.find("type filter hook forward priority filter; policy accept;"), std::string::npos);
  EXPECT_NE(s.find("iifname \"mill0\" accept"), std::string::npos);
  EXPECT_NE(s.find("oifname \"mill0\" accept"), std::string::npos);
  EXPECT_NE(s.find("type nat hook postrouting priority srcnat;"), std::string::npos);
  // Only the node's containers are masqueraded, only when leaving by another interface,
  // and never towards other nodes' containers (those keep their addresses).
  EXPECT_NE(
      s.find("ip saddr 10.99.1.0/24 ip daddr != 10.99.0.0/16 oifname != \"mill0\" masquerade"),
      std::string::npos)
      << s;
}

TEST(Firewall, DeleteScriptToleratesAMissingTable) {
  EXPECT_EQ(nft_delete_script("mt1"), "table ip mill_mt1 {}\ndelete table ip mill_mt1\n");
}

}  // namespace
}  // namespace mill::network
