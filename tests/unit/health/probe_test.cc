#include "health/probe.h"

#include <gtest/gtest.h>

#include <chrono>

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
