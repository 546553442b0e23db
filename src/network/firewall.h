#pragma once

// The node's packet filter rules, set up once by NodeNetwork::setup (not per
// container). Two layers, because a packet must be accepted by every base chain on a
// hook — an accept in our own nftables table does not override a DROP policy in
// another table (Docker's iptables FORWARD chain is one):
//   1. an nftables table of our own, `ip mill_<bridge>`: forward accept for traffic in
//      or out of the bridge, masquerade for the node's /24 leaving by another
//      interface to anything outside the cluster network, and an input chain that
//      refuses what containers send to the node itself (any of its addresses: the
//      bridge's, the host's) but for replies (established, related), the node's DNS
//      server on the bridge address (udp and tcp) and the ports the operator allows.
//      Refused, not dropped, so a client fails at once: tcp with a reset, the rest
//      with icmp admin-prohibited. Other containers (on this node: bridged; on others:
//      forwarded) and the outside (forwarded) are not the input hook's, so stay
//      reachable. IPv6 is off on the bridge (NodeNetwork::setup), so the node has no
//      address there for containers to reach it by;
//   2. when an iptables filter table exists (nft `ip filter`, or the legacy one):
//      `iptables -I FORWARD -i/-o <bridge> -j ACCEPT`, so a FORWARD policy of DROP
//      (Docker sets one) does not drop us. Without that table nothing needs them, and
//      adding them would create it. Docker started after setup() means setup() again.
// Internal to src/network.

#include <string>
#include <vector>

#include "common/result.h"
#include "network/host_port.h"
#include "network/ipv4.h"

namespace mill::network {

struct FirewallSpec {
  std::string bridge;
  Ipv4Net node;
  Ipv4Net cluster;
  int dns_port = 53;                // on the bridge address (node's .1)
  std::vector<HostPort> allowed{};  // containers may reach these on any node address
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
