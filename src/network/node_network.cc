#include "network/node_network.h"

#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <thread>

#include "common/files.h"
#include "common/log.h"
#include "network/firewall.h"
#include "network/netns.h"

namespace mill::network {
namespace {

bool name_chars_ok(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

Result<void> check_options(const NetworkOptions& o) {
  // The bridge name goes into nft scripts and iptables arguments: keep it plain.
  if (o.bridge.empty() || o.bridge.size() > 15 || !name_chars_ok(o.bridge) || o.bridge == "." ||
      o.bridge == "..") {
    return make_error(ErrorCode::kInvalidArgument, "bad bridge name '" + o.bridge + "'");
  }
  if (!name_chars_ok(o.netns_prefix)) {
    return make_error(ErrorCode::kInvalidArgument, "bad netns prefix '" + o.netns_prefix + "'");
  }
  if (o.netns_dir.empty() || o.netns_dir.front() != '/') {
    return make_error(ErrorCode::kInvalidArgument, "netns dir must be absolute");
  }
  return {};
}

bool id_ok(const std::string& id) {
  return !id.empty() && id.size() <= 128 && name_chars_ok(id) && id != "." && id != "..";
}

uint64_t fnv1a(std::string_view s, uint64_t h = 14695981039346656037ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Sets the sysctl file `path` to 1.
Result<void> turn_on(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return make_error(ErrorCode::kIo, "open " + path + ": " + strerror(errno));
  bool ok = std::fputs("1\n", f) >= 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) return make_error(ErrorCode::kIo, "write " + path);
  return {};
}

Result<void> enable_ip_forward() {
  const std::string path = "/proc/sys/net/ipv4/ip_forward";
  auto now = read_file(path);
  if (now && trim(*now) == "1") return {};
  return turn_on(path);
}

// Containers reach the node through the bridge only by IPv4, which the firewall
// filters: with IPv6 off on the bridge the node has no link-local address there, and
// takes no IPv6 packet from it. A kernel without IPv6 has nothing to turn off.
Result<void> disable_ipv6_on(const std::string& bridge) {
  const std::string path = "/proc/sys/net/ipv6/conf/" + bridge + "/disable_ipv6";
  if (::access(path.c_str(), F_OK) != 0) return {};
  return turn_on(path);
}

Result<void> ignore_missing(Result<void> r) {
  if (!r && r.error().code == ErrorCode::kNotFound) return {};
  return r;
}

// The node's subnet must not overlap a route to another link: the kernel would send
// the containers' packets there (or theirs here), and the symptom — containers that
// run but cannot be reached — says nothing about the cause. `bridge` is our own link's
// index, or -1 when it does not exist yet.
Result<void> check_no_overlap(NetlinkSocket& link, const Ipv4Net& node, int bridge) {
  auto routes = MILL_TRY(link.main_routes());
  for (const auto& r : routes) {
    if (r.type != RTN_UNICAST || r.prefix == 0 || r.oif == bridge) continue;
    Ipv4Net other{r.dst, r.prefix};
    if (!other.contains(node) && !node.contains(other)) continue;
    char name[IF_NAMESIZE] = "?";
    if (r.oif > 0 && if_indextoname(static_cast<unsigned>(r.oif), name) == nullptr)
      ::strcpy(name, "?");
    return make_error(ErrorCode::kAlreadyExists,
                      "node network " + node.str() + " overlaps the route " + other.str() +
                          " dev " + name +
                          " on this machine; choose another cluster network "
                          "(--cluster-network), or remove what owns " +
                          name);
  }
  return {};
}

}  // namespace

NodeNetwork::NodeNetwork(NetworkOptions options, Ipv4Net cluster, Ipv4Net node, NetlinkSocket link)
    : options_(std::move(options)),
      cluster_(cluster),
      node_(node),
      link_(std::move(link)),
      spares_("spare netns", options_.spare_netns, make_netns,
              [](NewNetns& ns) { ::close(ns.fd); }) {}

Result<std::unique_ptr<NodeNetwork>> NodeNetwork::setup(NetworkOptions options) {
  MILL_TRY(check_options(options));
  auto cluster = MILL_TRY(Ipv4Net::parse(options.cluster_cidr));
  auto node = MILL_TRY(Ipv4Net::parse(options.node_cidr));
  if (!cluster.contains(node) || node.prefix > 30) {
    return make_error(
        ErrorCode::kInvalidArgument,
        "node network " + node.str() + " must be a /30 or larger inside " + cluster.str());
  }
  auto link = MILL_TRY(NetlinkSocket::open());
  std::unique_ptr<NodeNetwork> net(
      new NodeNetwork(std::move(options), cluster, node, std::move(link)));
  const auto& o = net->options_;

  auto existing = net->link_.link_index(o.bridge);
  if (!existing && existing.error().code != ErrorCode::kNotFound)
    return Unexpected(existing.error());
  MILL_TRY(check_no_overlap(net->link_, node, existing ? *existing : -1));

  uint8_t mac[6];
  if (getrandom(mac, sizeof mac, 0) != sizeof mac) return make_error(ErrorCode::kIo, "getrandom");
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfe) | 0x02);  // unicast, locally administered
  auto created = net->link_.create_bridge(o.bridge, mac);
  if (!created && created.error().code != ErrorCode::kAlreadyExists)
    return Unexpected(created.error());
  int bridge = MILL_TRY(net->link_.link_index(o.bridge));
  MILL_TRY(net->link_.add_address(bridge, node.addr + 1, node.prefix));
  MILL_TRY(net->link_.set_up(bridge));
  MILL_TRY(enable_ip_forward());
  MILL_TRY(net->link_.add_unreachable_route(cluster.addr, cluster.prefix));
  if (o.manage_firewall) {
    if (auto off = disable_ipv6_on(o.bridge); !off) {
      log::warn("network: containers may reach this node by IPv6: " + off.error().message);
    }
    MILL_TRY(install_firewall({o.bridge, node, cluster, o.dns_port, o.allow_host_ports}));
  }
  MILL_TRY(prepare_netns_dir(o.netns_dir));
  net->spares_.start();
  log::info("network: bridge " + o.bridge + " at " + net->bridge_ip() + "/" +
            std::to_string(node.prefix) + ", cluster " + cluster.str());
  return net;
}

NodeNetwork::~NodeNetwork() = default;

Result<NewNetns> NodeNetwork::netns_at(const std::string& path) {
  auto spare = spares_.take();
  if (!spare) return create_netns(path);
  if (auto bound = bind_netns(spare->fd, path); !bound) {
    ::close(spare->fd);
    return Unexpected(std::move(bound).error());
  }
  return std::move(*spare);
}

void NodeNetwork::started() { spares_.started(); }

std::string NodeNetwork::bridge_ip() const { return format_ipv4(node_.addr + 1); }

std::string NodeNetwork::host_veth_name(const std::string& id) const {
  uint64_t h = fnv1a(id, fnv1a(options_.netns_prefix + '\0', fnv1a(options_.bridge + '\0')));
  char buf[16];
  std::snprintf(buf, sizeof buf, "mv%013llx",
                static_cast<unsigned long long>(h & 0xfffffffffffffull));
  return buf;
}

std::string NodeNetwork::netns_path(const std::string& id) const {
  return options_.netns_dir + "/" + options_.netns_prefix + id;
}

Result<void> NodeNetwork::configure_inside(NetlinkSocket& inside, uint32_t ip,
                                           const std::string& host_veth) {
  MILL_TRY(inside.set_up(1));  // lo is always ifindex 1 in a new netns
  int eth0 = MILL_TRY(inside.link_index("eth0"));
  MILL_TRY(inside.set_up(eth0));
  MILL_TRY(inside.add_address(eth0, ip, node_.prefix));
  MILL_TRY(inside.add_default_route(eth0, node_.addr + 1));
  return wait_until_ready(inside, eth0, host_veth);
}

// A veth passes packets only once the kernel's linkwatch work has run for both ends,
// shortly after they came up. A packet sent before is dropped, and a dropped SYN costs
// the sender a 1 s retransmit, so attach() returns only when both ends are ready.
Result<void> NodeNetwork::wait_until_ready(NetlinkSocket& inside, int eth0,
                                           const std::string& host_veth) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  int host = -1;
  while (true) {
    bool ready = MILL_TRY(inside.link_ready(eth0));
    if (ready) {
      std::lock_guard lock(mu_);
      if (host < 0) host = MILL_TRY(link_.link_index(host_veth));
      ready = MILL_TRY(link_.link_ready(host));
    }
    if (ready) return {};
    if (std::chrono::steady_clock::now() > deadline) {
      return make_error(ErrorCode::kTimeout, "veth " + host_veth + " did not come up within 2s");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

Result<Endpoint> NodeNetwork::attach(const std::string& id, const std::string& ip_text) {
  if (!id_ok(id)) return make_error(ErrorCode::kInvalidArgument, "bad endpoint id '" + id + "'");
  auto ip = MILL_TRY(parse_ipv4(ip_text));
  if (!node_.contains(ip) || ip == node_.addr || ip == node_.addr + 1 || ip == node_.broadcast()) {
    return make_error(ErrorCode::kInvalidArgument,
                      ip_text + " is not a container address of " + node_.str());
  }
  Endpoint ep{netns_path(id), format_ipv4(ip), bridge_ip(), host_veth_name(id)};
  // The container's MAC is derived from its address, as Docker does: an address used
  // again by a later container keeps its MAC, so the neighbour entries of the host
  // (and of other containers) stay right and its first packets are not sent to the
  // previous holder's MAC until the entry goes stale.
  const uint8_t mac[6] = {0x02,
                          0x6d,
                          static_cast<uint8_t>(ip >> 24),
                          static_cast<uint8_t>(ip >> 16),
                          static_cast<uint8_t>(ip >> 8),
                          static_cast<uint8_t>(ip)};
  spares_.starting();  // until started(), also called here when attach fails
  auto ns = netns_at(ep.netns_path);
  if (!ns) {
    started();
    return Unexpected(std::move(ns).error());
  }
  Result<void> wired = [&]() -> Result<void> {
    std::lock_guard lock(mu_);
    // Looked up each time, so a bridge re-created by another setup() is found.
    int bridge = MILL_TRY(link_.link_index(options_.bridge));
    return link_.create_veth(ep.host_veth, bridge, "eth0", mac, ns->fd);
  }();
  ::close(ns->fd);
  if (wired) wired = configure_inside(ns->link, ip, ep.host_veth);
  if (!wired) {
    started();
    if (wired.error().code != ErrorCode::kAlreadyExists)
      (void)detach(id);
    else
      (void)remove_netns(ep.netns_path);  // the veth is someone else's: leave it
    return Unexpected(std::move(wired).error());
  }
  return ep;
}

Result<void> NodeNetwork::detach(const std::string& id) {
  if (!id_ok(id)) return make_error(ErrorCode::kInvalidArgument, "bad endpoint id '" + id + "'");
  {
    std::lock_guard lock(mu_);
    // Deleting one end deletes the pair now, rather than when the kernel gets round to
    // freeing the netns.
    MILL_TRY(ignore_missing(link_.delete_link(host_veth_name(id))));
  }
  return remove_netns(netns_path(id));
}

std::vector<std::string> NodeNetwork::attached() const {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.netns_dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() > options_.netns_prefix.size() &&
        name.compare(0, options_.netns_prefix.size(), options_.netns_prefix) == 0) {
      ids.push_back(name.substr(options_.netns_prefix.size()));
    }
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

Result<void> NodeNetwork::teardown() {
  for (const auto& id : attached()) {
    if (id_ok(id)) MILL_TRY(detach(id));
  }
  {
    std::lock_guard lock(mu_);
    MILL_TRY(ignore_missing(link_.delete_link(options_.bridge)));
    MILL_TRY(ignore_missing(link_.delete_unreachable_route(cluster_.addr, cluster_.prefix)));
  }
  if (options_.manage_firewall) MILL_TRY(remove_firewall(options_.bridge));
  release_netns_dir(options_.netns_dir);
  return {};
}

}  // namespace mill::network
