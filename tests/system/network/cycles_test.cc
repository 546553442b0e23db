// 200 attach/detach cycles leave nothing behind: no veth, no netns file, no mount.
// Counts only this test's pieces, so tests running in parallel do not disturb it.
// Also reports attach latency (p50/p90), the budget being a few milliseconds.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "net_fixture.h"

namespace mill::network {
namespace {

using testing::NetFixture;

size_t count_entries(const std::string& dir) {
  std::error_code ec;
  size_t n = 0;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// Mounts at or under `dir` (other tests may mount and unmount elsewhere meanwhile).
size_t count_mounts_under(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    if (line.find(" " + dir + " ") != std::string::npos ||
        line.find(" " + dir + "/") != std::string::npos) {
      ++n;
    }
  }
  return n;
}

TEST_F(NetFixture, TwoHundredCyclesLeaveNothingBehind) {
  ASSERT_NO_FATAL_FAILURE(setup_network());
  // Only this test's pieces are counted: parallel tests make and remove their own.
  std::string ports = "/sys/class/net/" + bridge_ + "/brif";
  ASSERT_EQ(count_entries(ports), 0u);
  size_t mounts = count_mounts_under(options_.netns_dir);
  EXPECT_EQ(mounts, 1u) << "just the netns dir's own bind mount";
  std::vector<double> attach_ms;
  for (int i = 0; i < 200; ++i) {
    std::string id = "cycle-" + std::to_string(i);
    auto start = std::chrono::steady_clock::now();
    auto ep = network_->attach(id, net(1, 2 + i % 200));
    attach_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
    ASSERT_TRUE(ep) << id << ": " << ep.error().to_string();
    ASSERT_TRUE(network_->detach(id));
  }
  EXPECT_EQ(count_entries(ports), 0u) << "veths left on the bridge";
  for (int i = 0; i < 200; ++i) {
    std::string veth = network_->host_veth_name("cycle-" + std::to_string(i));
    ASSERT_FALSE(std::filesystem::exists("/sys/class/net/" + veth)) << veth << " left";
  }
  EXPECT_EQ(count_entries(options_.netns_dir), 0u) << "netns files left";
  EXPECT_EQ(count_mounts_under(options_.netns_dir), mounts) << "mounts left";
  std::sort(attach_ms.begin(), attach_ms.end());
  std::printf("attach latency over 200 cycles: p50 %.2f ms, p90 %.2f ms, max %.2f ms\n",
              attach_ms[100], attach_ms[180], attach_ms.back());
}

}  // namespace
}  // namespace mill::network
