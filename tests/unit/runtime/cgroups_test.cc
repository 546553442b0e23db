#include "runtime/cgroups.h"

#include <gtest/gtest.h>

#include "runtime/process.h"

namespace mill::runtime {
namespace {

TEST(ParseCgroupMounts, HybridLayout) {
  constexpr std::string_view kMountinfo =
      "22 1 0:21 / / rw - ext4 /dev/vda rw\n"
      "25 22 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
      "26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
      "27 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
      "28 25 0:25 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
      "29 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n";
  auto mounts = parse_cgroup_mounts(kMountinfo);
  ASSERT_EQ(mounts.size(), 4u);
  EXPECT_EQ(mounts[0].path, "/sys/fs/cgroup/cpu");
  EXPECT_EQ(mounts[0].controllers, std::vector<std::string>{"cpu"});
  EXPECT_EQ(mounts[1].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ(mounts[2].controllers, std::vector<std::string>{"xattr"});
  EXPECT_TRUE(mounts[3].v2);
  EXPECT_EQ(mounts[3].path, "/sys/fs/cgroup/unified");
}

TEST(ParseCpuStat, UsageUsec) {
  EXPECT_EQ(parse_cpu_stat_usec("usage_usec 1234\nuser_usec 1000\n"), 1234);
  EXPECT_EQ(parse_cpu_stat_usec("nr_periods 0\nusage_usec 5\n"), 5);
  EXPECT_EQ(parse_cpu_stat_usec("user_usec 5\n"), -1);
}

TEST(Cgroups, OomKillCounterFromV1OomControlAndV2MemoryEvents) {
  EXPECT_EQ(parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), 2);
  EXPECT_EQ(parse_oom_kills("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n"), 1);
  EXPECT_EQ(parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"), 0);
  EXPECT_EQ(parse_oom_kills("oom_kill_disable 1\n"), 0) << "not the oom_kill line";
  EXPECT_EQ(parse_oom_kills(""), 0);
}

TEST(RemoveCgroup, RefusesDangerousPaths) {
  EXPECT_FALSE(kill_cgroup("/", std::chrono::milliseconds(10)));
  EXPECT_FALSE(kill_cgroup("/mill/../x", std::chrono::milliseconds(10)));
  EXPECT_FALSE(remove_cgroup(""));
  EXPECT_FALSE(remove_cgroup("/"));
  EXPECT_FALSE(remove_cgroup("/mill/../.."));
  EXPECT_TRUE(remove_cgroup("/mill-test-does-not-exist/x"));
}

TEST(ParseStartTime, CommWithSpacesAndParens) {
  std::string stat = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000";
  EXPECT_EQ(parse_start_time(stat), 987654u);
  EXPECT_EQ(parse_start_time("garbage"), 0u);
  EXPECT_GT(process_start_time(getpid()), 0u);
  EXPECT_EQ(process_start_time(0), 0u);
}

}  // namespace
}  // namespace mill::runtime
