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
  }

  void TearDown() override {
    if (network_) {
      auto r = network_->teardown();
      EXPECT_TRUE(r) << r.error().to_string();
      network_.reset();
    }
    // Belt and braces: whatever a failed test or teardown left.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(options_.netns_dir, ec)) {
      ::umount2(e.path().c_str(), MNT_DETACH);
    }
    ::umount2(options_.netns_dir.c_str(), MNT_DETACH);
    sh("ip link del " + bridge_ + " 2>/dev/null; ip route del unreachable " + net(0, 0) +
       "/16 2>/dev/null; nft delete table ip mill_" + bridge_ + " 2>/dev/null");
    for (const char* d : {"-i", "-o"}) {
      sh("while iptables -w 5 -D FORWARD " + std::string(d) + " " + bridge_ +
         " -m comment --comment 'mill " + bridge_ + "' -j ACCEPT 2>/dev/null; do :; done");
    }
    lease_ = {};
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

  mill::testing::TempDir dir_;
  std::string bridge_;
  mill::testing::ClusterLease lease_;
  int octet_ = -1;
  NetworkOptions options_;
  std::unique_ptr<NodeNetwork> network_;
};

}  // namespace mill::network::testing
