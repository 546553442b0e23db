// The data dir's filesystem full (issue 16's chaos section): a small loop-mounted
// ext4 as the data dir, filled to the last block. Writes are refused with a clear
// error and change nothing, reads still answer, nothing acknowledged is lost, and
// once there is room again the same writes work, across a restart too. Needs root.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <string>

#include "common/command.h"
#include "harness.h"
#include "support/crash_cleanup.h"
#include "support/require.h"

namespace mill::testing {
namespace {

namespace json = boost::json;

// Writes until the filesystem refuses: the errno of the refusal (ENOSPC expected).
int fill_up(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  std::string chunk(1 << 20, 'x');
  int err = 0;
  while (err == 0) {
    ssize_t n = ::write(fd, chunk.data(), chunk.size());
    if (n < 0) err = errno;
    if (n == 0) err = ENOSPC;
  }
  // The last partial blocks too.
  while (::write(fd, chunk.data(), 512) > 0) {
  }
  ::fsync(fd);
  ::close(fd);
  return err;
}

TEST(DiskFull, WritesAreRefusedClearlyAndNothingAcknowledgedIsLost) {
  MILL_REQUIRE(::geteuid() == 0, "a loop-mounted data dir needs root");
  TempDir dir;
  const std::string image = dir.file("data.img");
  const std::string data = dir.file("data");
  std::filesystem::create_directories(data);
  {
    int fd = ::open(image.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 48 << 20), 0);
    ::close(fd);
  }
  auto mkfs = run_command({"mkfs.ext4", "-q", "-F", "-m", "0", image});
  ASSERT_TRUE(mkfs && mkfs->exit_code == 0) << (mkfs ? mkfs->output : mkfs.error().message);
  auto mounted = run_command({"mount", "-o", "loop,nodev,nosuid", image, data});
  ASSERT_TRUE(mounted && mounted->exit_code == 0)
      << (mounted ? mounted->output : mounted.error().message);
  // Unmounted whatever happens: at the end, or by the crash handler.
  OnCrash unmount_on_crash({"/bin/umount", "-l", data});
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{data};

  std::string token = init_data_dir(dir);
  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  auto put = [&](const std::string& name, const std::string& value) {
    return api(server->address(), "PUT", "/v1/secrets/" + name, token,
               json::serialize(json::object{{"value", value}}));
  };
  std::map<std::string, std::string> acknowledged;
  for (int i = 0; i < 20; ++i) {
    std::string name = "before-" + std::to_string(i);
    std::string value = "value-" + std::to_string(i);
    ASSERT_EQ(put(name, value).status, 200);
    acknowledged[name] = value;
  }

  ASSERT_EQ(fill_up(data + "/filler"), ENOSPC);
  // Writes now fail (the store's free pages may take a few first): clearly, as 503.
  std::string refusal;
  const std::string big(30 << 10, 'v');
  for (int i = 0; i < 1000 && refusal.empty(); ++i) {
    std::string name = "full-" + std::to_string(i);
    auto res = put(name, big + std::to_string(i));
    if (res.status == 200) {
      acknowledged[name] = big + std::to_string(i);
    } else {
      EXPECT_EQ(res.status, 503) << res.body;
      refusal = res.body;
    }
  }
  ASSERT_FALSE(refusal.empty()) << "every write was accepted on a full disk";
  EXPECT_NE(refusal.find("disk holding the state store is full"), std::string::npos) << refusal;
  // Reads still answer while it is full.
  EXPECT_EQ(api(server->address(), "GET", "/v1/status", token).status, 200);
  auto listed = api(server->address(), "GET", "/v1/secrets", token);
  EXPECT_EQ(listed.status, 200) << listed.body;

  // Room again: the same write works, with no restart.
  std::filesystem::remove(data + "/filler");
  auto after = put("after", "room-again");
  EXPECT_EQ(after.status, 200) << after.body;
  if (after.status == 200) acknowledged["after"] = "room-again";

  // Nothing acknowledged is lost, read back after a restart.
  EXPECT_EQ(server->stop(SIGTERM), 0) << server->log();
  server = MillServer::start(dir);
  ASSERT_TRUE(server);
  for (const auto& [name, value] : acknowledged) {
    auto got = api(server->address(), "GET", "/v1/secrets/" + name, token);
    ASSERT_EQ(got.status, 200) << name << ": " << got.body;
    EXPECT_EQ(json::parse(got.body).as_object().at("value").as_string(), value) << name;
  }
  EXPECT_EQ(server->stop(SIGTERM), 0);
  server.reset();
}

}  // namespace
}  // namespace mill::testing
