#pragma once

// A private node network per test: a bridge "mt<random>", a cluster network
// 10.<200..254>.0.0/16 that no route on this host uses (a ClusterLease), and a netns
// dir under a TempDir. Whatever a test leaves behind is removed in TearDown, also when
// the test failed.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "common/command.h"
#include "network/node_network.h"
#include "support/cluster_lease.h"
#include "support/crash_cleanup.h"
#include "support/require.h"
#include "support/temp_dir.h"

namespace mill::network::testing {

inline std::string sh(const std::string& cmd) {
  auto r = run_command({"sh", "-c", cmd});
  return r ? r->output : "";
}

// A socket created inside the netns at `path` (sockets keep the netns they were made
// in), so the test can talk from a container's point of view without forking.
inline int socket_in_netns(const std::string& path, int type) {
  int out = -1;
  std::thread([&] {
    int ns = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) return;
    if (::setns(ns, CLONE_NEWNET) == 0) out = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    ::close(ns);
  }).join();
  return out;
}

class NetFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    MILL_REQUIRE(::geteuid() == 0, "node networks need root (bridges, netns, nftables)");
    std::random_device rd;
    std::mt19937 rng(rd());
    bridge_ = "mt" + std::to_string(rng() % 100000000);
    lease_ = mill::testing::ClusterLease::take(200, 254);
    octet_ = lease_.octet();
    ASSERT_GE(octet_, 0) << "no free 10.x.0.0/16 for the test";
    options_.bridge = bridge_;
    options_.cluster_cidr = net(0, 0) + "/16";
    options_.node_cidr = net(1, 0) + "/24";
    options_.netns_dir = dir_.path() + "/netns";
    options_.netns_prefix = "t-";
    crash_cleanup_ = std::make_unique<mill::testing::OnCrash>(
        std::vector<std::string>{"/bin/sh", "-c", leftovers_script()});
  }

  void TearDown() override {
    if (network_) {
      auto r = network_->teardown();
      EXPECT_TRUE(r) << r.error().to_string();
      network_.reset();
    }
    // Belt and braces: whatever a failed test or teardown left.
    if (!bridge_.empty()) sh(leftovers_script());
    lease_ = {};
  }

  // Removes everything a node network of this test can leave on the host: mounts under
  // the netns dir, the bridge, the guard route, the nftables table, the FORWARD rules.
  // TearDown runs it, and so does a crash (which skips TearDown).
  std::string leftovers_script() const {
    const std::string ns = options_.netns_dir;
    std::string s = "for f in " + ns + "/*; do umount -l \"$f\"; done; umount -l " + ns +
                    "; ip link del " + bridge_ + "; ip route del unreachable " + net(0, 0) +
                    "/16; nft delete table ip mill_" + bridge_ + ";";
    for (const char* d : {"-i", "-o"}) {
      s += " while iptables -w 5 -D FORWARD " + std::string(d) + " " + bridge_ +
           " -m comment --comment 'mill " + bridge_ + "' -j ACCEPT; do :; done;";
    }
    return "(" + s + ") 2>/dev/null; true";
  }

  // "10.<octet>.<c>.<d>"
  std::string net(int c, int d) const {
    return "10." + std::to_string(octet_) + "." + std::to_string(c) + "." + std::to_string(d);
  }

  void setup_network() {
    auto r = NodeNetwork::setup(options_);
    ASSERT_TRUE(r) << r.error().to_string();
    network_ = std::move(*r);
  }

  std::unique_ptr<mill::testing::OnCrash> crash_cleanup_;
  mill::testing::TempDir dir_;
  std::string bridge_;
  mill::testing::ClusterLease lease_;
  int octet_ = -1;
  NetworkOptions options_;
  std::unique_ptr<NodeNetwork> network_;
};

}  // namespace mill::network::testing
