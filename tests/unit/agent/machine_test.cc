#include "agent/machine.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace mill::agent {
namespace {

TEST(Meminfo, ParsesTotalAndAvailableInBytes) {
  auto m = parse_meminfo(
      "MemTotal:       24683592 kB\n"
      "MemFree:        23100000 kB\n"
      "MemAvailable:   24000000 kB\n"
      "Buffers:            1234 kB\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->total, 24683592LL * 1024);
  EXPECT_EQ(m->available, 24000000LL * 1024);
}

TEST(Meminfo, MissingFieldsAreAnError) {
  EXPECT_FALSE(parse_meminfo("MemTotal: 1 kB\n"));
  EXPECT_FALSE(parse_meminfo(""));
  // "MemTotalX" is not "MemTotal".
  EXPECT_FALSE(parse_meminfo("MemTotalX: 1 kB\nMemAvailable: 1 kB\n"));
}

TEST(ProcStat, ParsesAggregateLine) {
  auto t = parse_proc_stat("cpu  100 5 50 800 20 1 2 3 7 0\ncpu0 1 2 3 4\n");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->idle, 820u);
  EXPECT_EQ(t->total, 100u + 5 + 50 + 800 + 20 + 1 + 2 + 3);
  EXPECT_FALSE(parse_proc_stat("intr 1 2 3\n"));
  EXPECT_FALSE(parse_proc_stat("cpu  1 2\n"));
}

TEST(ProcStat, IdleCoresFromTwoSamples) {
  CpuTimes a{800, 1000};
  CpuTimes b{850, 1100};  // 50 of 100 jiffies idle
  EXPECT_DOUBLE_EQ(idle_cores(a, b, 4), 2.0);
  EXPECT_DOUBLE_EQ(idle_cores(a, a, 4), 4.0) << "no time passed: assume idle";
}

TEST(MachineSampler, ReadsThisMachine) {
  MachineSampler sampler;
  auto r = sampler.sample();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->cpu_total, static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_GE(r->cpu_available, 0);
  EXPECT_LE(r->cpu_available, r->cpu_total);
  EXPECT_GT(r->memory_total, 0);
  EXPECT_GT(r->memory_available, 0);
  EXPECT_LE(r->memory_available, r->memory_total);
}

}  // namespace
}  // namespace mill::agent
