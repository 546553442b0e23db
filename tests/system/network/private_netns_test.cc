// The whole node network inside a private network namespace that stands in for a
// host where Docker set the iptables FORWARD policy to DROP, with a second namespace
// as "the outside world" behind an uplink veth. Here we can send container traffic
// out for real (it never leaves namespaces this test made) and check that it is
// accepted despite the DROP policy and masqueraded to the uplink address.

#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <thread>

#include "net_fixture.h"
#include "network/netns.h"
#include "network/node_network.h"

namespace mill::network {
namespace {

using testing::sh;
using testing::socket_in_netns;

// Connects from inside `netns` to ip:port; returns the connected fd or -errno.
int connect_from(const std::string& netns, const char* ip, uint16_t port, int timeout_ms) {
  int fd = socket_in_netns(netns, SOCK_STREAM | SOCK_NONBLOCK);
  if (fd < 0) return -EBADF;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  int err = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    err = errno;
    pollfd p{fd, POLLOUT, 0};
    if (err == EINPROGRESS) {
      err = ETIMEDOUT;
      if (::poll(&p, 1, timeout_ms) == 1) {
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
    }
  }
  if (err != 0) {
    ::close(fd);
    return -err;
  }
  return fd;
}

// Runs in its own thread, which first moves to a fresh network namespace: every
// device, route, nft table and iptables rule made here vanishes with it.
void egress_scenario(const std::string& dir) {
  ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << strerror(errno);
  sh("ip link set lo up");
  // The outside world: a namespace at 198.51.100.2 behind the uplink 198.51.100.1.
  std::string outside = dir + "/outside";
  {
    auto ns = create_netns(outside);
    ASSERT_TRUE(ns) << ns.error().to_string();
    ::close(ns->fd);
  }
  sh("ip link add up0 type veth peer name out0 netns " + outside +
     " && ip addr add 198.51.100.1/24 dev up0 && ip link set up0 up && nsenter --net=" + outside +
     " sh -c 'ip addr add 198.51.100.2/24 dev out0 && ip link set out0 up'");
  // What Docker does to the filter table.
  ASSERT_EQ(sh("iptables -w 5 -P FORWARD DROP && echo ok"), "ok\n");

  NetworkOptions options;
  options.node_cidr = "10.99.1.0/24";
  options.netns_dir = dir + "/netns";
  auto net = NodeNetwork::setup(options);
  ASSERT_TRUE(net) << net.error().to_string();
  auto ep = (*net)->attach("c", "10.99.1.2");
  ASSERT_TRUE(ep) << ep.error().to_string();

  int listener = socket_in_netns(outside, SOCK_STREAM);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  socklen_t len = sizeof a;
  ASSERT_EQ(::listen(listener, 4), 0);  // binds an ephemeral port on every address
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t port = ntohs(a.sin_port);

  int fd = connect_from(ep->netns_path, "198.51.100.2", port, 3000);
  EXPECT_GE(fd, 0) << "forwarded despite FORWARD DROP: " << strerror(-fd);
  pollfd p{listener, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 3000), 1);
  sockaddr_in peer{};
  len = sizeof peer;
  int conn = ::accept(listener, reinterpret_cast<sockaddr*>(&peer), &len);
  ASSERT_GE(conn, 0);
  char from[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &peer.sin_addr, from, sizeof from);
  EXPECT_STREQ(from, "198.51.100.1") << "masqueraded to the uplink address";
  ::close(conn);
  if (fd >= 0) ::close(fd);

  // Control: without our iptables accept rule the DROP policy wins, so it was the rule.
  sh("iptables -w 5 -D FORWARD -i " + options.bridge + " -m comment --comment 'mill " +
     options.bridge + "' -j ACCEPT");
  EXPECT_EQ(connect_from(ep->netns_path, "198.51.100.2", port, 1000), -ETIMEDOUT);
  ::close(listener);

  EXPECT_TRUE((*net)->teardown());
  EXPECT_TRUE(remove_netns(outside));
}

TEST(PrivateNetns, EgressPassesADropForwardPolicyAndIsMasqueraded) {
  MILL_REQUIRE(::geteuid() == 0, "network namespaces and nftables need root");
  mill::testing::TempDir dir;
  std::thread(egress_scenario, dir.path()).join();
}

}  // namespace
}  // namespace mill::network
