#pragma once

// A small rtnetlink (NETLINK_ROUTE) client: just the requests node networking needs,
// each one message + one kernel ack, so attaching a container costs microseconds
// rather than a fork/exec of `ip` per step. Internal to src/network.
//
// A socket acts in the network namespace it was opened in, for its whole life: open
// one inside a fresh netns and it configures that netns from any thread.

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace mill::network {

// One IPv4 route of the main table: unicast routes have an output link, others
// (unreachable, blackhole, ...) have oif 0.
struct RouteEntry {
  uint32_t dst = 0;  // host byte order
  int prefix = 0;
  int oif = 0;
  uint8_t type = 0;  // RTN_*
};

class NetlinkSocket {
 public:
  // Opens a NETLINK_ROUTE socket in the calling thread's network namespace.
  static Result<NetlinkSocket> open();
  NetlinkSocket() = default;
  NetlinkSocket(NetlinkSocket&& other) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&& other) noexcept;
  ~NetlinkSocket();

  // kNotFound when there is no such link.
  Result<int> link_index(const std::string& name);
  // Whether the link passes packets yet: the kernel has seen its carrier (operstate up)
  // and swapped the `noop` qdisc, which drops everything, for its real one. Both happen
  // asynchronously (linkwatch) some time after the link and its peer are set up.
  Result<bool> link_ready(int index);
  // Creates a bridge (kAlreadyExists if the name is taken), down, with this MAC.
  Result<void> create_bridge(const std::string& name, const uint8_t (&mac)[6]);
  // Creates a veth pair: `host_name` here, up and enslaved to `master_index`; its peer
  // `peer_name` with MAC `peer_mac` created directly inside the netns `netns_fd`, down.
  Result<void> create_veth(const std::string& host_name, int master_index,
                           const std::string& peer_name, const uint8_t (&peer_mac)[6],
                           int netns_fd);
  Result<void> set_up(int index);
  // kNotFound when there is no such link.
  Result<void> delete_link(const std::string& name);
  // Adds (or keeps) addr/prefix on the link; idempotent.
  Result<void> add_address(int index, uint32_t addr, int prefix);
  // Default route via `gateway` out of link `index`.
  Result<void> add_default_route(int index, uint32_t gateway);
  // `unreachable dst/prefix` in the main table; replace keeps it idempotent.
  Result<void> add_unreachable_route(uint32_t dst, int prefix);
  // kNotFound when it is not there.
  Result<void> delete_unreachable_route(uint32_t dst, int prefix);
  // Every IPv4 route in the main table.
  Result<std::vector<RouteEntry>> main_routes();

 private:
  explicit NetlinkSocket(int fd) : fd_(fd) {}
  // Sends one request, stamped with the next sequence number; returns that number.
  Result<uint32_t> send(std::string& msg, const std::string& what);
  // Sends one request with NLM_F_ACK and waits for its ack (or error). When `reply` is
  // given, the first non-ack message with the request's sequence is copied there.
  Result<void> transact(std::string& msg, const std::string& what, std::string* reply = nullptr);

  int fd_ = -1;
  uint32_t seq_ = 0;
};

}  // namespace mill::network
