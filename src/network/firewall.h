#pragma once

// The node's packet filter rules, set up once by NodeNetwork::setup (not per
// container). Two layers, because a packet must be accepted by every base chain on a
// hook — an accept in our own nftables table does not override a DROP policy in
// another table (Docker's iptables FORWARD chain is one):
//   1. an nftables table of our own, `ip mill_<bridge>`: forward accept for traffic in
//      or out of the bridge, and masquerade for the node's /24 leaving by another
//      interface to anything outside the cluster network;
//   2. when an iptables filter table exists (nft `ip filter`, or the legacy one):
//      `iptables -I FORWARD -i/-o <bridge> -j ACCEPT`, so a FORWARD policy of DROP
//      (Docker sets one) does not drop us. Without that table nothing needs them, and
//      adding them would create it. Docker started after setup() means setup() again.
// Internal to src/network.

#include <string>

#include "common/result.h"
#include "network/ipv4.h"

namespace mill::network {

struct FirewallSpec {
  std::string bridge;
  Ipv4Net node;
  Ipv4Net cluster;
};

// "mill_" + the bridge name with anything but [A-Za-z0-9_] turned into '_'.
std::string nft_table_name(const std::string& bridge);

// The nft script that (re)creates our table atomically: applying it twice leaves one
// copy. Pure, so the ruleset is unit-tested as text.
std::string nft_ruleset(const FirewallSpec& spec);
// The nft script that deletes our table, and succeeds when it is already gone.
std::string nft_delete_script(const std::string& bridge);

// Applies both layers. The iptables layer is best effort (warned, not failed).
Result<void> install_firewall(const FirewallSpec& spec);
// Removes both layers; missing pieces are fine.
Result<void> remove_firewall(const std::string& bridge);

}  // namespace mill::network
