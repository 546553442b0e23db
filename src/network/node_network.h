#pragma once

// This node's container network (DESIGN.md "Nodes and networking"): a bridge at the
// .1 of the node's /24, one network namespace and veth pair per container, routing,
// NAT and the guard route. The control plane allocates container addresses; this
// class only wires them up.
//
// Everything that could collide between two Mill instances on one machine — the
// bridge name, the cluster and node networks, the netns directory and name prefix,
// the nftables table (named after the bridge) — comes from NetworkOptions.
//
// Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN). Methods are thread-safe.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/spare_pool.h"
#include "network/host_port.h"
#include "network/ipv4.h"
#include "network/netlink.h"
#include "network/netns.h"

namespace mill::network {

struct NetworkOptions {
  std::string bridge = "mill0";  // 1..15 chars of [A-Za-z0-9_.-]
  std::string cluster_cidr = "10.99.0.0/16";
  std::string node_cidr;                 // this node's /24, e.g. "10.99.1.0/24"; bridge gets .1
  std::string netns_dir = "/run/netns";  // where named netns files live (as `ip netns`)
  std::string netns_prefix = "mill-";    // netns file = netns_dir/<prefix><id>
  bool manage_firewall = true;           // nftables table "mill_<bridge>" + iptables accepts
  // What containers may reach on the node itself (firewall.h): the DNS server's port
  // on the bridge address, and the ports the operator allows (--allow-host-port).
  int dns_port = 53;
  std::vector<HostPort> allow_host_ports;
  // Namespaces made ahead of attach(), held only by descriptors (nothing to clean up
  // if the process dies): making one is most of an attach's cost.
  int spare_netns = 2;
};

// One container's network, as the runtime needs it: join `netns_path` (an OCI
// "network" namespace path) and find eth0 configured with `ip`.
struct Endpoint {
  std::string netns_path;
  std::string ip;         // "10.99.1.7"
  std::string gateway;    // the bridge address, also the DNS server for the container
  std::string host_veth;  // host side of the veth pair, enslaved to the bridge
};

class NodeNetwork {
 public:
  // Idempotent; reuses what exists:
  //  - the bridge, up, with .1/<node prefix> (a fixed random MAC, so it does not change
  //    as ports come and go and containers' ARP caches stay right);
  //  - net.ipv4.ip_forward = 1;
  //  - `unreachable <cluster_cidr>`: a cluster address that is not routed more
  //    specifically (our /24 on the bridge, other nodes' /24s) fails fast instead of
  //    leaving by the default route;
  //  - when manage_firewall: see firewall.h, and IPv6 off on the bridge (the node then
  //    has no IPv6 address there for containers to reach it by);
  //  - netns_dir made a shared mount point, as `ip netns add` does.
  // kInvalidArgument for bad options (node_cidr must lie inside cluster_cidr).
  static Result<std::unique_ptr<NodeNetwork>> setup(NetworkOptions options);
  ~NodeNetwork();

  // Gives container `id` a network: a new netns bound at netns_dir/<prefix><id>, a
  // veth pair whose host side (host_veth_name(id)) is up on the bridge and whose peer
  // is eth0 in the netns with ip/<node prefix>, lo up, default route via the bridge.
  // `ip` must be a host address of node_cidr other than the bridge's. kAlreadyExists
  // when `id` is attached. On failure nothing is left behind. Takes about a millisecond.
  Result<Endpoint> attach(const std::string& id, const std::string& ip);
  // Says that the container of a successful attach() is running (or failed to start):
  // the pool of spare namespaces does not refill while starts are under way.
  void started();
  // Deletes the veth pair and unmounts and removes the netns file. Idempotent: missing
  // pieces are fine. Processes still inside the netns keep it alive (without a link).
  Result<void> detach(const std::string& id);
  // Ids that have a netns file under netns_dir with our prefix, sorted: after a
  // restart the agent re-adopts or detaches them.
  std::vector<std::string> attached() const;
  // Detaches every attached id, then removes the bridge, the firewall rules and the
  // guard route. Leaves ip_forward alone (other software may rely on it).
  Result<void> teardown();

  const NetworkOptions& options() const { return options_; }
  // "10.99.1.1": the containers' gateway, where the DNS server listens.
  std::string bridge_ip() const;
  // The host-side veth name for `id`: "mv" + 13 hex digits of a hash of the bridge,
  // prefix and id (so it fits IFNAMSIZ and two instances never collide).
  std::string host_veth_name(const std::string& id) const;
  std::string netns_path(const std::string& id) const;

 private:
  NodeNetwork(NetworkOptions options, Ipv4Net cluster, Ipv4Net node, NetlinkSocket link);
  Result<void> configure_inside(NetlinkSocket& inside, uint32_t ip, const std::string& host_veth);
  Result<void> wait_until_ready(NetlinkSocket& inside, int eth0, const std::string& host_veth);
  // A spare namespace bound at `path`, or a new one when none is ready.
  Result<NewNetns> netns_at(const std::string& path);

  NetworkOptions options_;
  Ipv4Net cluster_;
  Ipv4Net node_;
  std::mutex mu_;       // guards link_
  NetlinkSocket link_;  // in the host's network namespace

  SparePool<NewNetns> spares_;  // options_.spare_netns namespaces, bound nowhere
};

}  // namespace mill::network
