// The mill-shim binary started by hand, as any user.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "support/eventually.h"
#include "support/temp_dir.h"

namespace mill::runtime {
namespace {

using namespace std::chrono_literals;
using mill::testing::eventually;

// Started by hand without the agent's pipe on fd 3, the shim once took that slot for
// its signalfd, closed it as "the pipe" and then spun at 100% CPU, deaf to SIGTERM.
TEST(Shim, RefusesToRunWithoutTheAgentsPipeOnFd3) {
  mill::testing::TempDir tmp;
  const char* dir = tmp.path().c_str();
  int err[2];
  ASSERT_EQ(::pipe(err), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(err[1], 2);
    ::close(3);
    ::execl(MILL_SHIM_PATH, MILL_SHIM_PATH, "t", dir, "/bin/true", dir, "4096", "1", nullptr);
    ::_exit(127);
  }
  ::close(err[1]);
  int status = 0;
  pid_t done = 0;
  eventually([&] { return (done = ::waitpid(pid, &status, WNOHANG)) != 0; }, 5s);
  if (done == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  char buf[512] = {};
  ssize_t n = ::read(err[0], buf, sizeof buf - 1);
  ::close(err[0]);
  ASSERT_NE(done, 0) << "the shim did not exit";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(std::string(buf, n > 0 ? n : 0).find("sync pipe"), std::string::npos) << buf;
}

}  // namespace
}  // namespace mill::runtime
