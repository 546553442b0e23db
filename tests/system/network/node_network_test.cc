// NodeNetwork against the real kernel (needs root). Every test has its own bridge,
// cluster network and netns dir (net_fixture.h); packets only go between the host
// and namespaces the test made.

#include "network/node_network.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "net_fixture.h"
#include "support/eventually.h"

namespace mill::network {
namespace {

using testing::NetFixture;
using testing::sh;
using testing::socket_in_netns;

sockaddr_in addr_of(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// A TCP listener on ip:0 made in the netns at `netns` ("" = this one); returns fd, port.
std::pair<int, uint16_t> listen_on(const std::string& netns, const std::string& ip) {
  int fd = netns.empty() ? ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)
                         : socket_in_netns(netns, SOCK_STREAM);
  sockaddr_in a = addr_of(ip, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(fd, 4) != 0) {
    ADD_FAILURE() << "listen on " << ip << ": " << strerror(errno);
    return {fd, 0};
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return {fd, ntohs(a.sin_port)};
}

// Connects from inside `netns` ("" = this one) to ip:port with a deadline; returns 0 or
// the errno.
// With `retransmits`, also how many segments (the SYN) the kernel had to send again.
int connect_from(const std::string& netns, const std::string& ip, uint16_t port,
                 std::chrono::milliseconds deadline = std::chrono::seconds(5),
                 int* retransmits = nullptr) {
  int fd = netns.empty() ? ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
                         : socket_in_netns(netns, SOCK_STREAM | SOCK_NONBLOCK);
  if (fd < 0) return EBADF;
  sockaddr_in a = addr_of(ip, port);
  int err = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(deadline.count())) == 1) {
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      } else {
        err = ETIMEDOUT;
      }
    }
  }
  if (err == 0 && retransmits) {
    tcp_info info{};
    socklen_t len = sizeof info;
    *retransmits = ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0
                       ? static_cast<int>(info.tcpi_total_retrans)
                       : -1;
  }
  ::close(fd);
  return err;
}

// "02:6d:…" from `ip -o link show` output; "" when there is none.
std::string mac_of(const std::string& link) {
  size_t at = link.find("link/ether ");
  return at == std::string::npos ? "" : link.substr(at + 11, 17);
}

bool accept_one(int listener) {
  pollfd p{listener, POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return false;
  int c = ::accept(listener, nullptr, nullptr);
  if (c >= 0) ::close(c);
  return c >= 0;
}

size_t count_lines(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

bool exists(const std::string& path) { return std::filesystem::exists(path); }

TEST_F(NetFixture, SetupBuildsTheBridgeGuardRouteAndFirewallIdempotently) {
  // iptables accept rules go in only where an iptables filter table exists
  // (private_netns_test.cc covers that case); without one we must not create it.
  bool had_filter = sh("nft list tables").find("table ip filter\n") != std::string::npos;
  size_t iptables_rules = had_filter ? 1 : 0;
  ASSERT_NO_FATAL_FAILURE(setup_network());
  for (int round = 0; round < 2; ++round) {
    if (round == 1) setup_network();  // again, over what exists
    EXPECT_EQ(count_lines(sh("ip -4 -o addr show dev " + bridge_), net(1, 1) + "/24"), 1u);
    EXPECT_NE(sh("ip -o link show dev " + bridge_).find("state"), std::string::npos);
    EXPECT_NE(sh("ip -d link show dev " + bridge_).find("bridge"), std::string::npos);
    EXPECT_EQ(sh("cat /proc/sys/net/ipv4/ip_forward"), "1\n");
    EXPECT_EQ(count_lines(sh("ip route show type unreachable"), "unreachable " + net(0, 0) + "/16"),
              1u);
    std::string table = sh("nft list table ip mill_" + bridge_);
    EXPECT_NE(table.find("masquerade"), std::string::npos) << table;
    // Containers are kept off the node itself (firewall.h), by IPv6 too.
    EXPECT_NE(table.find("type filter hook input priority filter; policy accept;"),
              std::string::npos)
        << table;
    EXPECT_NE(table.find("iifname \"" + bridge_ + "\" reject with tcp reset"), std::string::npos)
        << table;
    if (exists("/proc/sys/net/ipv6")) {
      EXPECT_EQ(sh("cat /proc/sys/net/ipv6/conf/" + bridge_ + "/disable_ipv6"), "1\n");
    }
    EXPECT_EQ(count_lines(sh("nft list tables"), "table ip mill_" + bridge_ + "\n"), 1u);
    std::string fwd = sh("iptables -w 5 -S FORWARD");
    EXPECT_EQ(count_lines(fwd, "-i " + bridge_ + " "), iptables_rules) << fwd;
    EXPECT_EQ(count_lines(fwd, "-o " + bridge_ + " "), iptables_rules) << fwd;
    EXPECT_EQ(sh("nft list tables").find("table ip filter\n") != std::string::npos, had_filter);
  }
  EXPECT_EQ(network_->bridge_ip(), net(1, 1));
  // The route to the node's own /24 beats the guard route.
  EXPECT_NE(sh("ip route get " + net(1, 9)).find("dev " + bridge_), std::string::npos);
  EXPECT_NE(sh("ip route get " + net(7, 9) + " 2>&1").find("No route to host"), std::string::npos);

  ASSERT_TRUE(network_->teardown());
  EXPECT_FALSE(exists("/sys/class/net/" + bridge_));
  EXPECT_EQ(sh("ip route show type unreachable").find(net(0, 0) + "/16"), std::string::npos);
  EXPECT_EQ(sh("nft list tables").find("mill_" + bridge_ + "\n"), std::string::npos);
  EXPECT_EQ(sh("iptables -w 5 -S FORWARD").find(" " + bridge_ + " "), std::string::npos);
  EXPECT_EQ(sh("grep -c ' " + options_.netns_dir + " ' /proc/self/mountinfo"), "0\n");
  ASSERT_TRUE(network_->teardown()) << "teardown twice is fine";
}

TEST_F(NetFixture, SetupRefusesANodeNetworkAnotherLinkAlreadyRoutes) {
  // What a killed run leaves, or a second Mill given the same cluster network: another
  // link with a route into this node's /24. Setup must say so rather than build a
  // bridge whose containers cannot be reached.
  std::string other = "mo" + bridge_.substr(2);
  sh("ip link add " + other + " type bridge && ip addr add " + net(1, 200) + "/25 dev " + other +
     " && ip link set " + other + " up");
  struct Cleanup {
    std::string link;
    ~Cleanup() { sh("ip link del " + link + " 2>/dev/null"); }
  } cleanup{other};
  ASSERT_NE(sh("ip -4 route show dev " + other).find(net(1, 128) + "/25"), std::string::npos);
  auto refused = NodeNetwork::setup(options_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kAlreadyExists);
  EXPECT_NE(refused.error().message.find("overlaps the route " + net(1, 128) + "/25 dev " + other),
            std::string::npos)
      << refused.error().message;
  EXPECT_FALSE(exists("/sys/class/net/" + bridge_)) << "a refused setup creates nothing";
  EXPECT_EQ(sh("ip route show type unreachable").find(net(0, 0) + "/16"), std::string::npos);

  sh("ip link del " + other);
  ASSERT_NO_FATAL_FAILURE(setup_network());  // once the other link is gone, the network is ours
  EXPECT_EQ(network_->bridge_ip(), net(1, 1));
}

TEST_F(NetFixture, AttachedContainersReachEachOtherAndTheNodeOnlyWhereAllowed) {
  ASSERT_NO_FATAL_FAILURE(setup_network());
  auto a = network_->attach("a", net(1, 2));
  ASSERT_TRUE(a) << a.error().to_string();
  auto b = network_->attach("b", net(1, 3));
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(a->netns_path, options_.netns_dir + "/t-a");
  EXPECT_EQ(a->ip, net(1, 2));
  EXPECT_EQ(a->gateway, net(1, 1));
  EXPECT_LE(a->host_veth.size(), 15u);
  EXPECT_NE(a->host_veth, b->host_veth);
  EXPECT_EQ(network_->attached(), (std::vector<std::string>{"a", "b"}));

  // Inside: eth0 with the address, lo up, default route via the bridge.
  std::string inside = sh("nsenter --net=" + a->netns_path +
                          " ip -4 -o addr; nsenter --net=" + a->netns_path + " ip route");
  EXPECT_NE(inside.find("eth0    inet " + net(1, 2) + "/24"), std::string::npos) << inside;
  EXPECT_NE(inside.find("lo    inet 127.0.0.1/8"), std::string::npos) << inside;
  EXPECT_NE(inside.find("default via " + net(1, 1) + " dev eth0"), std::string::npos) << inside;
  // Outside: the host side is up on the bridge.
  std::string host = sh("ip -o link show dev " + a->host_veth);
  EXPECT_NE(host.find("master " + bridge_), std::string::npos) << host;
  EXPECT_NE(host.find(",UP"), std::string::npos) << host;

  // Container -> the node (a listener on the bridge address in the host's namespace):
  // refused at once (firewall.h)...
  auto [host_listener, host_port] = listen_on("", net(1, 1));
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(connect_from(a->netns_path, net(1, 1), host_port), ECONNREFUSED);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
  // ...unless the port is allowed.
  options_.allow_host_ports = {HostPort{host_port, host_port, "tcp"}};
  ASSERT_NO_FATAL_FAILURE(setup_network());
  EXPECT_EQ(connect_from(a->netns_path, net(1, 1), host_port), 0);
  EXPECT_TRUE(accept_one(host_listener));
  ::close(host_listener);
  // The node -> a container: its answers are replies, which pass.
  auto [a_listener, a_port] = listen_on(a->netns_path, net(1, 2));
  EXPECT_EQ(connect_from("", net(1, 2), a_port), 0);
  EXPECT_TRUE(accept_one(a_listener));
  ::close(a_listener);
  // Container a -> container b, across the bridge.
  auto [b_listener, b_port] = listen_on(b->netns_path, net(1, 3));
  EXPECT_EQ(connect_from(a->netns_path, net(1, 3), b_port), 0);
  EXPECT_TRUE(accept_one(b_listener));
  ::close(b_listener);
}

TEST_F(NetFixture, UnroutedClusterAddressFailsFast) {
  ASSERT_NO_FATAL_FAILURE(setup_network());
  auto a = network_->attach("a", net(1, 2));
  ASSERT_TRUE(a) << a.error().to_string();
  // Without the guard route this packet would leave by the host's default route, so
  // make sure it is there before sending anything.
  ASSERT_NE(sh("ip route get " + net(42, 7) + " 2>&1").find("No route to host"), std::string::npos);
  auto start = std::chrono::steady_clock::now();
  int err = connect_from(a->netns_path, net(42, 7), 80, std::chrono::seconds(3));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(err == EHOSTUNREACH || err == ENETUNREACH) << strerror(err);
  EXPECT_LT(took, std::chrono::seconds(2));
}

TEST_F(NetFixture, DetachRemovesEverythingAndIsIdempotent) {
  ASSERT_NO_FATAL_FAILURE(setup_network());
  auto a = network_->attach("a", net(1, 2));
  ASSERT_TRUE(a) << a.error().to_string();
  ASSERT_TRUE(exists("/sys/class/net/" + a->host_veth));
  ASSERT_TRUE(network_->detach("a"));
  EXPECT_FALSE(exists("/sys/class/net/" + a->host_veth));
  EXPECT_FALSE(exists(a->netns_path));
  EXPECT_TRUE(network_->attached().empty());
  EXPECT_TRUE(network_->detach("a"));
  EXPECT_TRUE(network_->detach("never-attached"));
  // The id and the address can be used again.
  auto again = network_->attach("a", net(1, 2));
  EXPECT_TRUE(again) << again.error().to_string();
}

// A task's address is reused by later tasks. Others that talked to the previous
// holder must reach the new one at once, not send to the old MAC from their neighbour
// cache until the entry goes stale (seconds, and a lost SYN costs a 1 s retransmit).
// So the MAC follows the address, as Docker does.
TEST_F(NetFixture, AnAddressUsedAgainKeepsItsMacSoOthersReachTheNewHolderAtOnce) {
  ASSERT_NO_FATAL_FAILURE(setup_network());
  auto client = network_->attach("client", net(1, 2));
  ASSERT_TRUE(client) << client.error().to_string();
  auto first = network_->attach("first", net(1, 3));
  ASSERT_TRUE(first) << first.error().to_string();
  std::string link = sh("nsenter --net=" + first->netns_path + " ip -o link show dev eth0");
  EXPECT_NE(link.find("link/ether 02:6d:"), std::string::npos) << link;
  {
    auto [listener, port] = listen_on(first->netns_path, net(1, 3));
    EXPECT_EQ(connect_from(client->netns_path, net(1, 3), port), 0);
    EXPECT_TRUE(accept_one(listener));
    ::close(listener);
  }
  // Each round hands the address to a new holder; the client reaches each one at once.
  // This also holds attach() to its word that a container is reachable when it returns
  // (a packet sent before the kernel has brought the veth up is dropped).
  std::string previous = "first";
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(network_->detach(previous));
    previous = "holder-" + std::to_string(round);
    auto next = network_->attach(previous, net(1, 3));
    ASSERT_TRUE(next) << next.error().to_string();
    auto [listener, port] = listen_on(next->netns_path, net(1, 3));
    // The new holder has the old MAC, so the client's neighbour entry stays true...
    EXPECT_EQ(mac_of(sh("nsenter --net=" + next->netns_path + " ip -o link show dev eth0")),
              mac_of(link))
        << "round " << round;
    // ...and its first SYN gets through: no retransmit (which would cost a second).
    int retransmits = -1;
    EXPECT_EQ(
        connect_from(client->netns_path, net(1, 3), port, std::chrono::seconds(10), &retransmits),
        0)
        << "round " << round;
    EXPECT_EQ(retransmits, 0) << "round " << round << ": the SYN was sent again";
    EXPECT_TRUE(accept_one(listener));
    ::close(listener);
  }
}

// attach() takes namespaces made ahead; when more come at once than are ready it
// makes them itself.
TEST_F(NetFixture, ManyAttachesInARowAllGetTheirOwnNamespace) {
  ASSERT_NO_FATAL_FAILURE(setup_network());
  std::vector<std::string> paths;
  for (int i = 0; i < 6; ++i) {
    auto e = network_->attach("n" + std::to_string(i), net(1, 10 + i));
    ASSERT_TRUE(e) << e.error().to_string();
    paths.push_back(e->netns_path);
  }
  std::set<std::string> inodes;
  for (const auto& p : paths) inodes.insert(sh("stat -L -c %i " + p));
  EXPECT_EQ(inodes.size(), paths.size()) << "every container its own netns";
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(network_->detach("n" + std::to_string(i)));
}

// Network namespaces this process holds open: the spares (attach() closes its own).
int open_namespaces() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string().rfind("net:[", 0) == 0) ++n;
  }
  return n;
}

bool spares_become(int want) {
  return mill::testing::eventually([want] { return open_namespaces() == want; },
                                   std::chrono::seconds(5));
}

// Making a namespace costs the kernel milliseconds that a container start would share:
// the spare taken by an attach is made again once its container has started.
TEST_F(NetFixture, TheSpareAnAttachTookIsMadeAgainOnlyOnceTheStartHasFinished) {
  options_.spare_netns = 2;
  ASSERT_NO_FATAL_FAILURE(setup_network());
  ASSERT_TRUE(spares_become(2));
  ASSERT_TRUE(network_->attach("a", net(1, 2)));
  EXPECT_EQ(open_namespaces(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(open_namespaces(), 1) << "no spare made while the start is under way";
  network_->started();
  EXPECT_TRUE(spares_become(2)) << "the pool refills after the start";
  // Nor does a failed attach (a duplicate takes a spare, then gives up).
  ASSERT_FALSE(network_->attach("a", net(1, 3)));
  EXPECT_TRUE(spares_become(2));
  ASSERT_TRUE(network_->detach("a"));
}

TEST_F(NetFixture, AttachRefusesBadInputAndDuplicatesWithoutLeftovers) {
  ASSERT_NO_FATAL_FAILURE(setup_network());
  ASSERT_TRUE(network_->attach("a", net(1, 2)));
  auto dup = network_->attach("a", net(1, 3));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::kAlreadyExists);
  EXPECT_TRUE(exists(network_->netns_path("a"))) << "the first attach is untouched";
  for (const auto& ip : {net(2, 5), net(1, 1), net(1, 0), net(1, 255), std::string("x")}) {
    auto r = network_->attach("b", ip);
    ASSERT_FALSE(r) << ip;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << ip;
  }
  for (const auto& id : {"", "../x", "a/b", ".."}) {
    EXPECT_EQ(network_->attach(id, net(1, 9)).error().code, ErrorCode::kInvalidArgument) << id;
  }
  EXPECT_EQ(network_->attached(), std::vector<std::string>{"a"});
  EXPECT_FALSE(exists("/sys/class/net/" + network_->host_veth_name("b")));
}

TEST_F(NetFixture, TeardownDetachesWhatIsStillAttached) {
  ASSERT_NO_FATAL_FAILURE(setup_network());
  auto a = network_->attach("a", net(1, 2));
  ASSERT_TRUE(a);
  ASSERT_TRUE(network_->teardown());
  EXPECT_FALSE(exists(a->netns_path));
  EXPECT_FALSE(exists("/sys/class/net/" + a->host_veth));
}

}  // namespace
}  // namespace mill::network
