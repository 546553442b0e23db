// The static test app (tests/apps/probe) run directly, not in a container: every
// endpoint over loopback with net::http_request, its signals and exit codes.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "net/http_client.h"

namespace mill {
namespace {

using namespace std::chrono_literals;

constexpr auto kDeadline = 10s;

// Reads whole lines from a pipe, waiting at most until a deadline.
class LineReader {
 public:
  explicit LineReader(int fd = -1) : fd_(fd) {}
  std::optional<std::string> next(std::chrono::milliseconds timeout = kDeadline) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        return std::nullopt;
      }
      char buf[4096];
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buffer_;
};

// One mill_probe process on a free port; killed and reaped when the test ends.
class Probe {
 public:
  Probe(std::vector<std::string> args, std::vector<std::string> env) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    args.insert(args.begin(), MILL_PROBE_PATH);
    env.push_back("PORT=0");
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    for (auto& e : env) envp.push_back(e.data());
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    if (::posix_spawn(&pid_, MILL_PROBE_PATH, &actions, nullptr, argv.data(), envp.data()) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    stdout_ = LineReader(out_fd_);
    stderr_ = LineReader(err_fd_);
    if (pid_ > 0) pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (auto line = stdout_.next(); line && line->starts_with("listening on :")) {
      address_ = "127.0.0.1:" + line->substr(14);
    }
  }
  ~Probe() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {out_fd_, err_fd_, pidfd_}) {
      if (fd >= 0) ::close(fd);
    }
  }
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  // "" when the probe did not start or did not say where it listens.
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  LineReader& out() { return stdout_; }
  LineReader& err() { return stderr_; }

  Result<net::ClientResponse> get(const std::string& target) {
    net::ClientRequest request;
    request.target = target;
    return net::http_request(address_, request);
  }

  // The wait status once the process has ended, or nullopt if it has not in time.
  std::optional<int> wait_exit() {
    pollfd p{pidfd_, POLLIN, 0};
    int ms = static_cast<int>(std::chrono::milliseconds(kDeadline).count());
    if (::poll(&p, 1, ms) != 1) return std::nullopt;
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return std::nullopt;
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1, pidfd_ = -1;
  bool reaped_ = false;
  LineReader stdout_, stderr_;
  std::string address_;
};

std::string body_of(Result<net::ClientResponse> response, int status = 200) {
  if (!response) return "request failed: " + response.error().to_string();
  EXPECT_EQ(response->status, status) << response->body;
  return response->body;
}

// What the probe's memory limit must read as: its cgroup's, found as the test sees it.
std::string expected_memory_limit(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  bool v2 = static_cast<bool>(std::ifstream("/sys/fs/cgroup/cgroup.controllers"));
  std::string line, file;
  while (std::getline(in, line)) {
    std::string path = line.substr(line.find(':', line.find(':') + 1) + 1);
    if (v2 && line.starts_with("0::")) file = "/sys/fs/cgroup" + path + "/memory.max";
    if (!v2 && line.find(":memory:") != std::string::npos) {
      file = "/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes";
    }
  }
  std::ifstream limit(file);
  std::string value;
  if (file.empty() || !std::getline(limit, value)) return "unknown";
  return value;
}

TEST(ProbeTest, AnswersEveryEndpoint) {
  Probe probe({}, {"MILL_PROBE_MARK=hello there"});
  ASSERT_FALSE(probe.address().empty()) << "probe did not start";

  EXPECT_EQ(body_of(probe.get("/health")), "ok");
  std::string env = body_of(probe.get("/env"));
  EXPECT_NE(env.find("MILL_PROBE_MARK=hello there\n"), std::string::npos) << env;
  EXPECT_NE(env.find("PORT=0\n"), std::string::npos) << env;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_EQ(body_of(probe.get("/hostname")), host);
  EXPECT_EQ(body_of(probe.get("/pid")), std::to_string(probe.pid()));

  std::string cgroup = body_of(probe.get("/cgroup"));
  EXPECT_NE(cgroup.find("memory_max=" + expected_memory_limit(probe.pid()) + "\n"),
            std::string::npos)
      << cgroup;
  for (const char* key : {"cpu_quota=", "cpu_period=", "pids_max="}) {
    EXPECT_NE(cgroup.find(key), std::string::npos) << cgroup;
  }

  EXPECT_EQ(body_of(probe.get("/log?line=hello%20world&count=3")), "logged 3");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(probe.out().next(), "hello world");
  EXPECT_EQ(body_of(probe.get("/log?line=oops+now&stream=stderr")), "logged 1");
  EXPECT_EQ(probe.err().next(), "oops now");

  EXPECT_EQ(body_of(probe.get("/alloc?mb=16")), "allocated 16 MB");
  auto before = std::chrono::steady_clock::now();
  EXPECT_EQ(body_of(probe.get("/sleep?ms=100")), "slept 100");
  EXPECT_GE(std::chrono::steady_clock::now() - before, 100ms);
  EXPECT_EQ(body_of(probe.get("/nope"), 404), "not found");
}

TEST(ProbeTest, ServesConcurrentConnections) {
  Probe probe({}, {});
  ASSERT_FALSE(probe.address().empty());
  // The slow request is connected and sent first: a server that served one connection
  // at a time would take it first and answer the fast one only once it was done.
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(
      static_cast<uint16_t>(std::stoi(probe.address().substr(probe.address().rfind(':') + 1))));
  int slow = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(slow, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string request = "GET /sleep?ms=3000 HTTP/1.1\r\nHost: probe\r\n\r\n";
  ASSERT_EQ(::send(slow, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  EXPECT_EQ(body_of(probe.get("/sleep?ms=1")), "slept 1");
  pollfd p{slow, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "the fast request waited for the slow one";
  // The slow one is answered too, in its time.
  std::string answer;
  char buf[512];
  while (::poll(&p, 1, 30000) == 1) {
    ssize_t n = ::recv(slow, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  ::close(slow);
  EXPECT_NE(answer.find("slept 3000"), std::string::npos) << answer;
}

TEST(ProbeTest, ExitAnswersThenExitsWithTheCode) {
  Probe probe({}, {});
  ASSERT_FALSE(probe.address().empty());
  EXPECT_EQ(body_of(probe.get("/exit?code=7")), "exiting 7");
  auto status = probe.wait_exit();
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 7);
}

TEST(ProbeTest, CrashAborts) {
  Probe probe({}, {});
  ASSERT_FALSE(probe.address().empty());
  EXPECT_FALSE(probe.get("/crash"));
  auto status = probe.wait_exit();
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGABRT);
}

TEST(ProbeTest, SigtermPrintsAndExitsZero) {
  Probe probe({}, {});
  ASSERT_FALSE(probe.address().empty());
  ASSERT_EQ(::kill(probe.pid(), SIGTERM), 0);
  EXPECT_EQ(probe.out().next(), "got SIGTERM");
  auto status = probe.wait_exit();
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

// Had SIGTERM been acted on, the process would be gone (exit 0) before it could take
// the /exit request that follows it.
void expect_sigterm_ignored(Probe& probe) {
  ASSERT_FALSE(probe.address().empty());
  ASSERT_EQ(::kill(probe.pid(), SIGTERM), 0);
  EXPECT_EQ(body_of(probe.get("/health")), "ok");
  EXPECT_EQ(body_of(probe.get("/exit?code=3")), "exiting 3");
  auto status = probe.wait_exit();
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 3);
  EXPECT_EQ(probe.out().next(100ms), std::nullopt);  // no "got SIGTERM"
}

TEST(ProbeTest, IgnoreSigtermFromEnv) {
  Probe probe({}, {"IGNORE_SIGTERM=1"});
  expect_sigterm_ignored(probe);
}

TEST(ProbeTest, IgnoreSigtermFromFlag) {
  Probe probe({"--ignore-sigterm"}, {});
  expect_sigterm_ignored(probe);
}

TEST(ProbeTest, LogEveryPrintsNumberedLines) {
  Probe probe({"--log-every", "20"}, {});
  ASSERT_FALSE(probe.address().empty());
  EXPECT_EQ(probe.out().next(), "tick 1");
  EXPECT_EQ(probe.out().next(), "tick 2");
  EXPECT_EQ(probe.out().next(), "tick 3");
}

TEST(ProbeTest, RejectsUnknownArguments) {
  Probe probe({"--bogus"}, {});
  EXPECT_TRUE(probe.address().empty());
  auto status = probe.wait_exit();
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 2);
}

}  // namespace
}  // namespace mill
