// Graceful stop and restart on the same data dir: exit 0 on SIGTERM, secrets and the
// node's identity survive, and a request in flight at SIGTERM still gets its answer.

#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "support/eventually.h"

namespace mill::testing {
namespace {

using namespace std::chrono_literals;

namespace json = boost::json;

std::string secret_body(const std::string& value) {
  return json::serialize(json::object{{"value", value}});
}

TEST(Restart, SigtermIsGracefulAndStateSurvives) {
  TempDir dir;
  std::string token = init_data_dir(dir);
  const std::vector<std::pair<std::string, std::string>> secrets{{"db", "postgres://u:p@h/db"},
                                                                 {"uni", "\u00e9t\u00e9 \u2603"},
                                                                 {"big", std::string(65536, 'b')}};
  {
    auto server = MillServer::start(dir);
    ASSERT_TRUE(server);
    for (const auto& [name, value] : secrets) {
      ASSERT_EQ(
          api(server->address(), "PUT", "/v1/secrets/" + name, token, secret_body(value)).status,
          200);
    }
    auto nodes = json::parse(api(server->address(), "GET", "/v1/nodes", token).body);
    ASSERT_EQ(nodes.as_array().size(), 1u);
    EXPECT_EQ(nodes.as_array()[0].at("id").as_string(), "node-1");
    EXPECT_EQ(server->stop(SIGTERM), 0) << "not a graceful exit on SIGTERM:\n" << server->log();
  }
  for (int round = 0; round < 2; ++round) {
    auto server = MillServer::start(dir);
    ASSERT_TRUE(server) << "round " << round;
    for (const auto& [name, value] : secrets) {
      auto get = api(server->address(), "GET", "/v1/secrets/" + name, token);
      ASSERT_EQ(get.status, 200) << name << " lost after restart: " << get.body;
      EXPECT_EQ(json::parse(get.body).at("value").as_string(), value) << name;
    }
    auto res = api(server->address(), "GET", "/v1/nodes", token);
    ASSERT_EQ(res.status, 200);
    auto nodes = json::parse(res.body).as_array();
    ASSERT_EQ(nodes.size(), 1u) << "restart registered a second node: " << res.body;
    EXPECT_EQ(nodes[0].at("id").as_string(), "node-1") << res.body;
    EXPECT_EQ(nodes[0].at("status").as_string(), "ready") << res.body;
    auto status = json::parse(api(server->address(), "GET", "/v1/status", token).body);
    EXPECT_EQ(status.at("nodes").as_array().size(), 1u);
    // SIGINT (Ctrl-C) is as graceful as SIGTERM.
    EXPECT_EQ(server->stop(round == 0 ? SIGINT : SIGTERM), 0) << server->log();
  }
}

TEST(Restart, IdleKeepAliveConnectionDoesNotBlockStop) {
  TempDir dir;
  std::string token = init_data_dir(dir);
  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  RawConnection idle(server->address());
  ASSERT_TRUE(idle.send("GET /v1/status HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token +
                        "\r\n\r\n"));
  ASSERT_EQ(idle.read_response().status, 200);
  auto started = std::chrono::steady_clock::now();
  // Within 8 s, so below the 10 s grace (and far below the 60 s keep-alive idle
  // timeout) that a server waiting on the idle connection would take.
  EXPECT_EQ(server->stop(SIGTERM, std::chrono::seconds(8)), 0) << server->log();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(8));
  EXPECT_TRUE(idle.wait_closed(std::chrono::seconds(10)));
}

TEST(Restart, RequestInFlightAtSigtermGetsItsAnswer) {
  TempDir dir;
  std::string token = init_data_dir(dir);
  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  // A PUT whose body is half sent when SIGTERM arrives: the server has begun reading
  // it, so it must finish it and answer before it exits.
  std::string body = secret_body("in-flight-value");
  std::string head =
      "PUT /v1/secrets/inflight HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n";
  RawConnection conn(server->address());
  ASSERT_TRUE(conn.connected());
  ASSERT_TRUE(conn.send(head + body.substr(0, body.size() / 2)));
  // The server has begun reading it: its socket holds no unread byte.
  ASSERT_TRUE(eventually([&] { return conn.peer_has_read_everything(); }, 30s))
      << "the server never read the first half";
  ASSERT_EQ(kill(server->pid(), SIGTERM), 0);
  // Wait until the server is shutting down, then deliver the rest.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (server->log().find("shutting down") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_NE(server->log().find("shutting down"), std::string::npos) << server->log();
  conn.send(body.substr(body.size() / 2));
  auto res = conn.read_response();
  EXPECT_EQ(res.status, 200) << "the in-flight request got no answer: " << res.body << "\n"
                             << server->log();
  if (res.status == 200) {
    const std::string* c = res.header("Connection");
    EXPECT_TRUE(c && *c == "close") << "a stopping server should close the connection";
  }
  EXPECT_EQ(server->stop(SIGTERM), 0) << server->log();

  // The answered write is durable.
  if (res.status == 200) {
    auto again = MillServer::start(dir);
    ASSERT_TRUE(again);
    auto get = api(again->address(), "GET", "/v1/secrets/inflight", token);
    ASSERT_EQ(get.status, 200) << get.body;
    EXPECT_EQ(json::parse(get.body).at("value").as_string(), "in-flight-value");
  }
}

}  // namespace
}  // namespace mill::testing
