#pragma once

// IPv4 addresses and networks as plain values: the cluster network, a node's /24,
// a container's address. Pure; used by the leader's address pool and by node setup.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mill::model {

std::optional<uint32_t> parse_ipv4(std::string_view text);  // "10.99.1.7" -> host order
std::string format_ipv4(uint32_t addr);

struct Ipv4Net {
  uint32_t addr = 0;  // network address, host order, host bits zero
  int prefix = 0;

  // "10.99.0.0/16". Host bits must be zero.
  static std::optional<Ipv4Net> parse(std::string_view text);
  std::string str() const;
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  bool contains(uint32_t ip) const { return (ip & mask()) == addr; }
  uint32_t size() const { return prefix == 0 ? 0 : uint32_t{1} << (32 - prefix); }

  bool operator==(const Ipv4Net&) const = default;
};

// Node N's /24 inside the cluster network: 10.99.0.0/16 and node-3 -> 10.99.3.0/24.
// nullopt when the network is smaller than a /24 or has no room for index N.
std::optional<Ipv4Net> node_subnet(const Ipv4Net& cluster, int index);

}  // namespace mill::model
