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

// What containers send to the node itself is refused (reset for tcp, admin-prohibited
// for the rest) but for replies, DNS on the bridge address and the allowed ports.
TEST(Firewall, InputChainRefusesContainersButForRepliesDnsAndAllowedPorts) {
  FirewallSpec spec{"mill0",
                    *Ipv4Net::parse("10.99.1.0/24"),
                    *Ipv4Net::parse("10.99.0.0/16"),
                    5353,
                    {*parse_host_port("5432/tcp"), *parse_host_port("7000-7010/udp")}};
  std::string s = nft_ruleset(spec);
  size_t chain = s.find(
      "  chain input {\n"
      "    type filter hook input priority filter; policy accept;\n");
  ASSERT_NE(chain, std::string::npos) << s;
  std::string input = s.substr(chain, s.find("  }\n", chain) - chain);
  EXPECT_EQ(input,
            "  chain input {\n"
            "    type filter hook input priority filter; policy accept;\n"
            "    iifname \"mill0\" ct state established,related accept\n"
            "    iifname \"mill0\" ip daddr 10.99.1.1 udp dport 5353 accept\n"
            "    iifname \"mill0\" ip daddr 10.99.1.1 tcp dport 5353 accept\n"
            "    iifname \"mill0\" tcp dport 5432 accept\n"
            "    iifname \"mill0\" udp dport 7000-7010 accept\n"
            "    iifname \"mill0\" meta l4proto tcp reject with tcp reset\n"
            "    iifname \"mill0\" reject with icmp type admin-prohibited\n");
}

TEST(Firewall, HostPortsParse) {
  EXPECT_EQ(*parse_host_port("5432/tcp"), (HostPort{5432, 5432, "tcp"}));
  EXPECT_EQ(*parse_host_port("5432"), (HostPort{5432, 5432, "tcp"}));
  EXPECT_EQ(*parse_host_port("53/udp"), (HostPort{53, 53, "udp"}));
  EXPECT_EQ(*parse_host_port("8000-8100/tcp"), (HostPort{8000, 8100, "tcp"}));
  EXPECT_EQ(parse_host_port("8000-8100/tcp")->str(), "8000-8100/tcp");
  for (const char* bad : {"", "0/tcp", "65536/tcp", "5432/sctp", "5432/", "/tcp", "x/tcp",
                          "100-99/tcp", "1-/tcp", "5432/tcp ", "-1/tcp"}) {
    auto r = parse_host_port(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find("PORT/tcp"), std::string::npos) << r.error().message;
  }
}

TEST(Firewall, DeleteScriptToleratesAMissingTable) {
  EXPECT_EQ(nft_delete_script("mt1"), "table ip mill_mt1 {}\ndelete table ip mill_mt1\n");
}

}  // namespace
}  // namespace mill::network
