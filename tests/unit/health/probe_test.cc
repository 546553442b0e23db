#include "health/probe.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "unit/health/servers.h"

namespace mill::health {
namespace {

using namespace std::chrono_literals;
using testing::HttpServer;
using testing::RefusingPort;
using testing::SilentServer;

Probe http_probe(std::string address, std::chrono::milliseconds timeout = 2s) {
  return Probe{.address = std::move(address), .path = "/healthz", .timeout = timeout};
}

Probe tcp_probe(std::string address, std::chrono::milliseconds timeout = 1s) {
  return Probe{.address = std::move(address), .path = "", .timeout = timeout};
}

TEST(ProbeOnce, OkAnswerPassesAndSendsTheConfiguredPath) {
  HttpServer server;
  ProbeResult result = probe_once(http_probe(server.address()));
  EXPECT_TRUE(result.ok) << result.error;
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(server.last_request_line(), "GET /healthz HTTP/1.1");
}

TEST(ProbeOnce, ErrorStatusFailsWithTheStatus) {
  HttpServer server;
  server.set_status(500);
  ProbeResult result = probe_once(http_probe(server.address()));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error, "GET /healthz: 500");

  server.set_status(404);
  EXPECT_EQ(probe_once(http_probe(server.address())).error, "GET /healthz: 404");
}

TEST(ProbeOnce, RedirectPasses) {
  HttpServer server;
  server.set_status(302);
  ProbeResult result = probe_once(http_probe(server.address()));
  EXPECT_TRUE(result.ok) << result.error;
  EXPECT_EQ(server.served_with(302), 1);
}

TEST(ProbeOnce, RefusedConnectionSaysSo) {
  RefusingPort port;
  ProbeResult result = probe_once(http_probe(port.address()));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error, "GET /healthz: connection refused");
}

TEST(ProbeOnce, SilentServerTimesOutOnTime) {
  SilentServer server;
  auto start = std::chrono::steady_clock::now();
  ProbeResult result = probe_once(http_probe(server.address(), 1s));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error, "GET /healthz: timed out after 1s");
  EXPECT_GE(took, 1s);
  EXPECT_LT(took, 1s + 500ms);
}

TEST(ProbeOnce, TimeoutMessageUsesConfigUnits) {
  SilentServer server;
  EXPECT_EQ(probe_once(http_probe(server.address(), 250ms)).error,
            "GET /healthz: timed out after 250ms");
}

TEST(ProbeOnce, AnswerThatIsNotHttpFails) {
  HttpServer server;
  server.set_raw("hello there\r\n");
  EXPECT_EQ(probe_once(http_probe(server.address())).error, "GET /healthz: not an HTTP response");
  server.set_raw("");  // closes without a word
  EXPECT_EQ(probe_once(http_probe(server.address())).error,
            "GET /healthz: connection closed before a response");
}

TEST(ProbeOnce, TcpModePassesOnConnectAlone) {
  SilentServer server;  // accepts (in the kernel) but never says anything
  ProbeResult result = probe_once(tcp_probe(server.address()));
  EXPECT_TRUE(result.ok) << result.error;
}

TEST(ProbeOnce, TcpModeRefusedNamesTheAddress) {
  RefusingPort port;
  ProbeResult result = probe_once(tcp_probe(port.address()));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error, "tcp " + port.address() + ": connection refused");
}

TEST(ProbeOnce, BracketedIpv6AddressIsProbed) {
  // Nothing listens on [::1]:1 in the test environment: refused, or unreachable when
  // the host has no IPv6; either way the address was accepted and a probe ran.
  ProbeResult result = probe_once(tcp_probe("[::1]:1"));
  EXPECT_FALSE(result.ok);
  EXPECT_TRUE(result.error.starts_with("tcp [::1]:1: ")) << result.error;
}

TEST(Validate, RejectsWhatCannotBeProbed) {
  for (const char* address :
       {"web:80", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:70000", "::1:80", "[::1]80", ""}) {
    auto valid = validate(tcp_probe(address));
    ASSERT_FALSE(valid) << address;
    EXPECT_EQ(valid.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(valid.error().message.find("want IP:PORT"), std::string::npos);
  }
  EXPECT_FALSE(validate(Probe{.address = "10.0.0.1:80", .path = "healthz"}));
  EXPECT_FALSE(validate(Probe{.address = "10.0.0.1:80", .path = "/a b"}));
  EXPECT_FALSE(validate(Probe{.address = "10.0.0.1:80", .path = "/a\r\nX: y"}));
  EXPECT_FALSE(validate(tcp_probe("10.0.0.1:80", 0ms)));
  EXPECT_TRUE(validate(Probe{.address = "10.0.0.1:80", .path = "/healthz?full=1"}));
  EXPECT_TRUE(validate(tcp_probe("[fd00::2]:3000")));

  ProbeResult result = probe_once(Probe{.address = "web:80", .path = "/healthz"});
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error, "invalid address \"web:80\": want IP:PORT");
}

Probe command_probe(std::vector<std::string> command, std::chrono::milliseconds timeout = 2s) {
  return Probe{.command = std::move(command), .timeout = timeout};
}

TEST(CommandProbe, ExitZeroPassesAndAnyOtherExitFailsWithItsLastLine) {
  EXPECT_TRUE(probe_once(command_probe({"true"})).ok);
  ProbeResult result =
      probe_once(command_probe({"sh", "-c",
                                "echo starting; echo >&2 'the database system is starting "
                                "up'; echo; exit 2"}));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error,
            "command sh -c echo starting; echo >&2 'the database system is starting up'; echo; "
            "exit 2: exit 2: the database system is starting up");
  // The service's own words name it, not the host program that runs it.
  Probe labelled = command_probe({"sh", "-c", "exit 1"});
  labelled.label = "pg_isready -q";
  EXPECT_EQ(probe_once(labelled).error, "command pg_isready -q: exit 1");
  EXPECT_EQ(probe_once(command_probe({"sh", "-c", "kill -9 $$"})).error,
            "command sh -c kill -9 $$: killed by signal 9");
  EXPECT_EQ(probe_once(command_probe({"/nonexistent/check"})).error,
            "command /nonexistent/check: no such file or directory");
}

TEST(CommandProbe, OutputLargerThanAPipeDoesNotStallIt) {
  ProbeResult result = probe_once(command_probe({"sh", "-c", "head -c 1000000 /dev/zero"}));
  EXPECT_TRUE(result.ok) << result.error;
}

// A hung command is killed at the timeout, with the process its pid file names (what
// runc exec started in the container) and what it started in its group.
TEST(CommandProbe, HungCommandIsKilledAtTheTimeoutWithWhatItStarted) {
  char dir_template[] = "/tmp/mill-probe-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  Probe probe = command_probe(
      {"sh", "-c",
       "setsid sleep 30 & echo $! > " + dir + "/pid; sleep 30 & echo $! > " + dir + "/child; wait"},
      300ms);
  probe.pid_file = dir + "/pid";
  auto start = std::chrono::steady_clock::now();
  ProbeResult result = probe_once(probe);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(result.ok);
  EXPECT_TRUE(result.error.ends_with(": timed out after 300ms")) << result.error;
  EXPECT_LT(took, 2s);
  for (const char* file : {"/pid", "/child"}) {
    std::ifstream in(dir + file);
    pid_t pid = 0;
    ASSERT_TRUE(in >> pid) << file;
    // Killed; a zombie of a reparented child counts as gone once init reaps it.
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
      std::string line;
      gone = !std::getline(stat, line) || line.find(") Z ") != std::string::npos;
      if (!gone) std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(gone) << file << " " << pid << " still runs";
  }
  std::filesystem::remove_all(dir);
}

// An old pid file never names the process to kill: it is removed before each run.
TEST(CommandProbe, StalePidFileIsRemovedBeforeTheCommandRuns) {
  char dir_template[] = "/tmp/mill-probe-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string pid_file = std::string(dir_template) + "/pid";
  std::ofstream(pid_file) << "1\n";
  Probe probe = command_probe({"sh", "-c", "test ! -e " + pid_file}, 1s);
  probe.pid_file = pid_file;
  EXPECT_TRUE(probe_once(probe).ok);
  std::filesystem::remove_all(dir_template);
}

TEST(ProbeFor, CommandCheckIsLabelledWithTheContainersCommand) {
  model::HealthCheck check{.path = "", .timeout = 3s, .command = {"pg_isready", "-q"}};
  Probe probe = probe_for(check, "");
  EXPECT_EQ(probe.label, "pg_isready -q");
  EXPECT_TRUE(probe.command.empty()) << "the agent says how to run it in the container";
  EXPECT_EQ(probe.timeout, 3s);
  EXPECT_FALSE(validate(Probe{.command = {""}}));
  EXPECT_TRUE(validate(Probe{.command = {"true"}})) << "no address needed";
}

TEST(ProbeFor, TakesEverythingFromTheServiceHealthCheck) {
  model::HealthCheck check{
      .path = "/up", .interval = 3s, .timeout = 500ms, .deadline = 30s, .passes = 2};
  Probe probe = probe_for(check, "10.99.0.2:3000");
  EXPECT_EQ(probe.address, "10.99.0.2:3000");
  EXPECT_EQ(probe.path, "/up");
  EXPECT_EQ(probe.interval, 3s);
  EXPECT_EQ(probe.timeout, 500ms);
  EXPECT_EQ(probe.deadline, 30s);
  EXPECT_EQ(probe.passes, 2);
  EXPECT_EQ(probe.failures, 3);
}

}  // namespace
}  // namespace mill::health
