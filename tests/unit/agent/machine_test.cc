#include "agent/machine.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "support/temp_dir.h"

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

// Room for disks: free space plus what the allocations' disk images hold already, less
// the reserve (5% of the filesystem, at most 2G).
TEST(SampleDisk, CountsFreeSpaceAndWhatDisksAlreadyHold) {
  testing::TempDir dir;
  model::Resources before;
  ASSERT_TRUE(sample_disk(dir.path(), before));  // no allocs/ dir yet: nothing held
  struct statvfs fs {};
  ASSERT_EQ(::statvfs(dir.path().c_str(), &fs), 0);
  const int64_t size = static_cast<int64_t>(fs.f_blocks) * static_cast<int64_t>(fs.f_frsize);
  const int64_t reserve = std::min<int64_t>(size / 20, int64_t{2} << 30);
  EXPECT_GT(before.disk_available, 0);
  EXPECT_EQ(before.disk_total, before.disk_available - reserve);

  // An allocation's disk holding 8 MB: it counts as room for disks (its reservation
  // covers it), while free space is what the filesystem says.
  std::filesystem::create_directories(dir.path() + "/allocs/task-a");
  const std::string image = dir.path() + "/allocs/task-a/disk.img";
  {
    std::ofstream img(image, std::ios::binary);
    std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 8; ++i) img << chunk;
  }
  ::sync();
  struct stat st {};
  ASSERT_EQ(::stat(image.c_str(), &st), 0);
  const int64_t held = static_cast<int64_t>(st.st_blocks) * 512;
  EXPECT_GE(held, 8 << 20);
  model::Resources after;
  ASSERT_TRUE(sample_disk(dir.path(), after));
  EXPECT_EQ(after.disk_total, after.disk_available + held - reserve);

  EXPECT_FALSE(sample_disk(dir.path() + "/missing", after));
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
