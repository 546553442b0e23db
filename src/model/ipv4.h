#pragma once

// IPv4 addresses and networks as plain values: the cluster network, a node's /24,
// a container's address. Pure. Addresses are host-order uint32_t
// (10.0.0.1 == 0x0a000001) so arithmetic like "the .1 of this /24" is just `+ 1`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace mill::model {

// "10.99.1.7" -> 0x0a630107. kInvalidArgument for anything but four decimal octets.
Result<uint32_t> parse_ipv4(std::string_view text);
std::string format_ipv4(uint32_t addr);

struct Ipv4Net {
  uint32_t addr = 0;  // the network address (host bits are zero after parse)
  int prefix = 0;     // 0..32

  // "10.99.0.0/16". Host bits set ("10.99.1.1/16") are an error, so a typo in a
  // setting never silently names another network.
  static Result<Ipv4Net> parse(std::string_view text);
  std::string str() const;
  uint32_t mask() const;
  bool contains(uint32_t a) const;
  // True when every address of `inner` is in this network.
  bool contains(const Ipv4Net& inner) const;
  uint32_t broadcast() const;

  bool operator==(const Ipv4Net&) const = default;
};

// Node N's /24 inside the cluster network: 10.99.0.0/16 and node-3 -> 10.99.3.0/24.
// nullopt when the network is smaller than a /24 or has no room for index N.
std::optional<Ipv4Net> node_subnet(const Ipv4Net& cluster, int index);
// The same for a node id ("node-3", see node_index); nullopt also for an id without
// a number.
std::optional<Ipv4Net> node_subnet(const Ipv4Net& cluster, std::string_view node_id);

}  // namespace mill::model
