// The HTTP API as a user sees it: response shapes with real machine figures, the
// secrets round trip, input validation with JSON errors, limits, keep-alive and
// concurrency. Against one real `mill server` on loopback.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/version.h"
#include "harness.h"

namespace mill::testing {
namespace {

namespace json = boost::json;

double num(const json::value& v) {
  if (v.is_double()) return v.as_double();
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  ADD_FAILURE() << "not a number: " << json::serialize(v);
  return -1;
}

// MemTotal from /proc/meminfo, in bytes.
int64_t mem_total_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t value = 0;
  while (in >> key >> value >> unit) {
    if (key == "MemTotal:") return value * 1024;
  }
  return -1;
}

json::value parse_json(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  EXPECT_FALSE(ec) << "not JSON: " << body;
  return v;
}

// A status code plus an {"error": "<non-empty string>"} JSON body.
void expect_error(const net::ClientResponse& res, int status, const std::string& what) {
  EXPECT_EQ(res.status, status) << what << ": " << res.body;
  const std::string* ct = res.header("Content-Type");
  EXPECT_TRUE(ct && ct->starts_with("application/json"))
      << what << ": content type " << (ct ? *ct : "(none)");
  boost::system::error_code ec;
  json::value v = json::parse(res.body, ec);
  ASSERT_FALSE(ec) << what << ": error body is not JSON: " << res.body;
  ASSERT_TRUE(v.is_object()) << what << ": " << res.body;
  auto* e = v.as_object().if_contains("error");
  ASSERT_TRUE(e && e->is_string()) << what << ": no \"error\" string: " << res.body;
  EXPECT_FALSE(e->as_string().empty()) << what;
}

std::string secret_body(const std::string& value) {
  return json::serialize(json::object{{"value", value}});
}

class ApiTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    delete token_;
    server_ = nullptr;
    dir_ = nullptr;
    token_ = nullptr;
  }
  // One server for the suite, started by the first test (from SetUp, so a server that
  // does not come up fails the test: a failure in SetUpTestSuite would only skip it).
  void SetUp() override {
    if (server_) return;
    if (!dir_) {
      dir_ = new TempDir();
      token_ = new std::string(init_data_dir(*dir_));
    }
    ASSERT_FALSE(token_->empty()) << "mill init failed";
    server_ = MillServer::start(*dir_).release();
    ASSERT_NE(server_, nullptr) << "mill server did not start";
  }

  static const std::string& addr() { return server_->address(); }
  static net::ClientResponse call(const std::string& method, const std::string& target,
                                  const std::string& body = {}) {
    return api(addr(), method, target, *token_, body);
  }
  static std::string auth_header() { return "Authorization: Bearer " + *token_ + "\r\n"; }

  static TempDir* dir_;
  static std::string* token_;
  static MillServer* server_;
};

TempDir* ApiTest::dir_ = nullptr;
std::string* ApiTest::token_ = nullptr;
MillServer* ApiTest::server_ = nullptr;

void expect_node_shape(const json::object& n) {
  EXPECT_EQ(n.at("id").as_string(), "node-1");
  ASSERT_TRUE(n.at("name").is_string());
  EXPECT_FALSE(n.at("name").as_string().empty());
  ASSERT_TRUE(n.at("address").is_string());
  EXPECT_FALSE(n.at("address").as_string().empty());
  EXPECT_EQ(n.at("status").as_string(), "ready");
  const auto& cpu = n.at("cpu").as_object();
  const auto& mem = n.at("memory").as_object();
  EXPECT_EQ(num(cpu.at("total")), static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_GE(num(cpu.at("available")), 0);
  EXPECT_LE(num(cpu.at("available")), num(cpu.at("total")));
  EXPECT_EQ(num(mem.at("total")), static_cast<double>(mem_total_bytes()));
  EXPECT_GT(num(mem.at("available")), 0);
  EXPECT_LE(num(mem.at("available")), num(mem.at("total")));
  EXPECT_EQ(num(n.at("allocations")), 0);
  // The agent heartbeats every 2 s: it was heard from moments ago, and says its version.
  ASSERT_TRUE(n.at("seconds_since_heartbeat").is_number());
  EXPECT_GE(num(n.at("seconds_since_heartbeat")), 0);
  EXPECT_LT(num(n.at("seconds_since_heartbeat")), 10);
  EXPECT_EQ(n.at("version").as_string(), std::string(mill::version()));
}

TEST_F(ApiTest, StatusShape) {
  auto res = call("GET", "/v1/status");
  ASSERT_EQ(res.status, 200) << res.body;
  const std::string* ct = res.header("Content-Type");
  EXPECT_TRUE(ct && ct->starts_with("application/json"));
  auto v = parse_json(res.body);
  ASSERT_TRUE(v.is_object()) << res.body;
  const auto& o = v.as_object();
  ASSERT_TRUE(o.contains("nodes") && o.at("nodes").is_array()) << res.body;
  ASSERT_EQ(o.at("nodes").as_array().size(), 1u) << res.body;
  expect_node_shape(o.at("nodes").as_array()[0].as_object());
  ASSERT_TRUE(o.contains("services") && o.at("services").is_array()) << res.body;
  EXPECT_TRUE(o.at("services").as_array().empty());
  ASSERT_TRUE(o.contains("tasks") && o.at("tasks").is_array()) << res.body;
  EXPECT_TRUE(o.at("tasks").as_array().empty());
  const auto& u = o.at("utilization").as_object();
  EXPECT_GT(num(u.at("cpu").as_object().at("total")), 0);
  EXPECT_GT(num(u.at("memory").as_object().at("total")), 0);
  EXPECT_EQ(num(u.at("memory").as_object().at("total")), static_cast<double>(mem_total_bytes()));
}

TEST_F(ApiTest, NodesShapeWithRealMachineFigures) {
  auto res = call("GET", "/v1/nodes");
  ASSERT_EQ(res.status, 200) << res.body;
  auto v = parse_json(res.body);
  ASSERT_TRUE(v.is_array()) << res.body;
  ASSERT_EQ(v.as_array().size(), 1u) << res.body;
  expect_node_shape(v.as_array()[0].as_object());
}

TEST_F(ApiTest, SecretRoundTrip) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"db_url", "postgres://user:pa ss@db:5432/app?sslmode=require"},
      {"unicode.Name-1", "h\u00e9llo w\u00f6rld \u2603 \u65e5\u672c \U0001F600 \"quoted\" \\ \n\t"},
      {"big", std::string(64 * 1024, 'z')},
      {"empty", ""},
  };
  for (const auto& [name, value] : cases) {
    auto put = call("PUT", "/v1/secrets/" + name, secret_body(value));
    ASSERT_EQ(put.status, 200) << name << ": " << put.body;
    auto get = call("GET", "/v1/secrets/" + name);
    ASSERT_EQ(get.status, 200) << name << ": " << get.body;
    auto v = parse_json(get.body);
    EXPECT_EQ(v.at("value").as_string(), value) << name;
    EXPECT_EQ(v.at("name").as_string(), name);
  }
  // Overwrite.
  ASSERT_EQ(call("PUT", "/v1/secrets/db_url", secret_body("second")).status, 200);
  EXPECT_EQ(parse_json(call("GET", "/v1/secrets/db_url").body).at("value").as_string(), "second");

  // The list has every name and no value.
  auto list = call("GET", "/v1/secrets");
  ASSERT_EQ(list.status, 200) << list.body;
  auto arr = parse_json(list.body).as_array();
  std::vector<std::string> names;
  for (const auto& s : arr) {
    names.emplace_back(s.at("name").as_string());
    EXPECT_FALSE(s.as_object().contains("value")) << list.body;
  }
  for (const auto& [name, value] : cases) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
  EXPECT_EQ(list.body.find("second"), std::string::npos) << "a value in the listing";
  EXPECT_EQ(list.body.find("zzzzzzzz"), std::string::npos) << "a value in the listing";
  EXPECT_EQ(list.body.find("sslmode"), std::string::npos) << "a value in the listing";

  // Delete, then it is gone; deleting again is 404.
  for (const auto& [name, value] : cases) {
    auto del = call("DELETE", "/v1/secrets/" + name);
    EXPECT_EQ(del.status, 200) << name << ": " << del.body;
    expect_error(call("GET", "/v1/secrets/" + name), 404, "GET after DELETE " + name);
    expect_error(call("DELETE", "/v1/secrets/" + name), 404, "second DELETE " + name);
  }
  auto after = call("GET", "/v1/secrets");
  ASSERT_EQ(after.status, 200) << after.body;
  for (const auto& [name, value] : cases) {
    EXPECT_EQ(after.body.find("\"" + name + "\""), std::string::npos) << after.body;
  }
}

// A config that refers to a secret that is not set and has another error: both are
// reported at once, sorted by position, as file:line:col; nothing is deployed.
TEST_F(ApiTest, ADeployWithAMissingSecretAndAnotherErrorReportsBothAndChangesNothing) {
  ASSERT_EQ(call("PUT", "/v1/secrets/api_db_url", secret_body("postgres://db/app")).status, 200);
  const std::string deploys_before = call("GET", "/v1/deploys").body;
  const std::string services_before = call("GET", "/v1/services").body;
  const std::string config =
      "[service.web]\n"
      "image = \"127.0.0.1:1/none:v1\"\n"
      "replicas = 1\n"
      "env = { DB = \"${secret:api_db_uri}\", OK = \"${secret:api_db_url}\" }\n"
      "port = 99999\n";
  auto res = call("POST", "/v1/deploy?file=app.toml", config);
  expect_error(res, 400, "a deploy with a missing secret");
  auto errors = parse_json(res.body).at("errors").as_array();
  ASSERT_EQ(errors.size(), 2u) << res.body;
  EXPECT_EQ(errors[0].as_string(),
            "app.toml:4:14: service.web: env.DB: secret \"api_db_uri\" is not set (mill secret set "
            "api_db_uri); did you mean \"api_db_url\"?");
  EXPECT_EQ(std::string(errors[1].as_string()).rfind("app.toml:5:8: service.web: port", 0), 0u)
      << res.body;
  EXPECT_EQ(parse_json(res.body).at("error").as_string(), "the config has 2 errors");
  EXPECT_EQ(call("GET", "/v1/deploys").body, deploys_before) << "a refused config starts no deploy";
  EXPECT_EQ(call("GET", "/v1/services").body, services_before);
  EXPECT_EQ(call("DELETE", "/v1/secrets/api_db_url").status, 200);
}

TEST_F(ApiTest, MissingSecretIs404) {
  expect_error(call("GET", "/v1/secrets/never-set"), 404, "GET missing");
  expect_error(call("DELETE", "/v1/secrets/never-set"), 404, "DELETE missing");
}

TEST_F(ApiTest, BadSecretNamesAre400) {
  const std::vector<std::string> bad{
      "a%2Fb",                // a/b
      "..",                   // parent
      "%2E%2E",               // .. encoded
      ".",                    // current
      std::string(129, 'n'),  // too long
      "%20",                  // a space
      "a%20b",                // space inside
      "a%00b",                // NUL
      "caf%C3%A9",            // non-ASCII
      "semi%3Bcolon",         // ;
  };
  for (const auto& name : bad) {
    expect_error(call("PUT", "/v1/secrets/" + name, secret_body("v")), 400, "PUT " + name);
    expect_error(call("GET", "/v1/secrets/" + name), 400, "GET " + name);
    expect_error(call("DELETE", "/v1/secrets/" + name), 400, "DELETE " + name);
  }
  // 128 characters is fine.
  std::string longest(128, 'n');
  EXPECT_EQ(call("PUT", "/v1/secrets/" + longest, secret_body("v")).status, 200);
  EXPECT_EQ(call("DELETE", "/v1/secrets/" + longest).status, 200);
  // Nothing invalid was stored.
  auto list = call("GET", "/v1/secrets");
  ASSERT_EQ(list.status, 200) << list.body;
  auto names = parse_json(list.body);
  ASSERT_TRUE(names.is_array()) << list.body;
  for (const auto& s : names.as_array()) {
    std::string name(s.at("name").as_string());
    EXPECT_TRUE(name.size() <= 128 && name != ".." && name != "." &&
                name.find_first_of("/ ;") == std::string::npos)
        << "invalid name stored: " << list.body;
  }
}

TEST_F(ApiTest, OversizedSecretValueIs413AndNotStored) {
  std::string value(64 * 1024 + 1, 'q');
  expect_error(call("PUT", "/v1/secrets/too-big", secret_body(value)), 413, "65537-byte value");
  expect_error(call("GET", "/v1/secrets/too-big"), 404, "GET after 413");
  // An existing secret is not replaced by a rejected oversized value either.
  ASSERT_EQ(call("PUT", "/v1/secrets/keep", secret_body("kept")).status, 200);
  expect_error(call("PUT", "/v1/secrets/keep", secret_body(value)), 413, "oversized overwrite");
  EXPECT_EQ(parse_json(call("GET", "/v1/secrets/keep").body).at("value").as_string(), "kept");
  EXPECT_EQ(call("DELETE", "/v1/secrets/keep").status, 200);
}

TEST_F(ApiTest, BadBodiesAre400) {
  const std::vector<std::pair<std::string, std::string>> bad{
      {"malformed JSON", R"({"value": )"},
      {"not JSON", "value=x"},
      {"empty body", ""},
      {"array", R"(["x"])"},
      {"unknown field", R"({"value":"x","extra":1})"},
      {"missing value", R"({})"},
      {"value is a number", R"({"value":1})"},
      {"value is null", R"({"value":null})"},
      {"value is an object", R"({"value":{"a":"b"}})"},
      {"trailing garbage", R"({"value":"x"} junk)"},
  };
  for (const auto& [label, body] : bad) {
    expect_error(call("PUT", "/v1/secrets/body-probe", body), 400, label);
  }
  expect_error(call("GET", "/v1/secrets/body-probe"), 404, "nothing stored by bad bodies");
}

TEST_F(ApiTest, BodyOverServerLimitIs413) {
  // Headers announcing a body over 1 MiB are answered at once, before the body.
  RawConnection conn(addr());
  ASSERT_TRUE(conn.connected());
  ASSERT_TRUE(conn.send("PUT /v1/secrets/huge HTTP/1.1\r\nHost: test\r\n" + auth_header() +
                        "Content-Type: application/json\r\nContent-Length: " +
                        std::to_string(1024 * 1024 + 1) + "\r\n\r\n"));
  auto res = conn.read_response();
  expect_error(res, 413, "1 MiB + 1 body");

  // And a client that sends a whole 2 MiB body gets 413 too.
  std::string body = secret_body(std::string(2 * 1024 * 1024, 'h'));
  expect_error(call("PUT", "/v1/secrets/huge", body), 413, "2 MiB body");
  expect_error(call("GET", "/v1/secrets/huge"), 404, "nothing stored");
}

// A spawn's env and command past their limits (docs/api.md "Limits") are 400 naming
// the limit, and create nothing; at the limits the spawn gets past them (to the image).
TEST_F(ApiTest, SpawnEnvAndCommandOverTheirLimitsAre400AndCreateNothing) {
  auto env_of = [](int entries, std::size_t value_bytes) {
    json::object env;
    for (int i = 0; i < entries; ++i) env["V" + std::to_string(i)] = std::string(value_bytes, 'x');
    return env;
  };
  auto command_of = [](int args, std::size_t arg_bytes) {
    json::array command;
    for (int i = 0; i < args; ++i) command.emplace_back(std::string(arg_bytes, 'a'));
    return command;
  };
  auto spawn = [](json::object body) {
    body["image"] = "127.0.0.1:1/nothing:here";
    return call("POST", "/v1/tasks/spawn", json::serialize(body));
  };
  json::object long_name;
  long_name[std::string(257, 'N')] = "x";
  const std::vector<std::tuple<std::string, json::object, std::string>> over{
      {"1001 env entries",
       {{"env", env_of(1001, 1)}},
       "env has 1001 entries, over the limit of 1000 (env entries)"},
      {"40000 env entries (the issue's 0.95 MB body)",
       {{"env", env_of(40000, 8)}},
       "env has 40000 entries, over the limit of 1000 (env entries)"},
      {"a 32 KiB + 1 value",
       {{"env", env_of(1, 32769)}},
       "env value of 'V0' has 32769 bytes, over the limit of 32768 (env value bytes)"},
      {"a 257-byte name", {{"env", long_name}}, "over the limit of 256 (env name bytes)"},
      {"270 KB of env",
       {{"env", env_of(9, 30000)}},
       "env has 270036 bytes, over the limit of 262144 (env bytes)"},
      {"257 arguments",
       {{"command", command_of(257, 1)}},
       "command has 257 arguments, over the limit of 256 (command arguments)"},
      {"150 KB of command",
       {{"command", command_of(5, 30000)}},
       "command has 150005 bytes, over the limit of 131072 (command bytes)"},
  };
  for (const auto& [label, body, message] : over) {
    auto res = spawn(body);
    expect_error(res, 400, label);
    EXPECT_NE(res.body.find(message), std::string::npos) << label << ": " << res.body;
  }
  // A template spawn's extra env has the same limits.
  auto templated = call("POST", "/v1/tasks/spawn",
                        json::serialize(json::object{{"task", "t"}, {"env", env_of(1001, 1)}}));
  expect_error(templated, 400, "template spawn with 1001 env entries");
  auto tasks = call("GET", "/v1/tasks?all=true");
  ASSERT_EQ(tasks.status, 200) << tasks.body;
  EXPECT_TRUE(parse_json(tasks.body).as_array().empty()) << "a refused spawn created a task";

  // Exactly at the limits passes them: these fail on the field decoded after env and
  // command instead (so nothing is placed either).
  for (auto body :
       {json::object{{"env", env_of(1000, 1)}, {"command", command_of(256, 1)}},
        json::object{{"env", env_of(8, 32000)}}, json::object{{"command", command_of(4, 32000)}}}) {
    body["init"] = "maybe";
    auto res = spawn(body);
    expect_error(res, 400, "at the limits");
    EXPECT_NE(res.body.find("'init' must be true or false"), std::string::npos) << res.body;
  }
}

TEST_F(ApiTest, HeadersOverLimitAre431) {
  net::ClientRequest req;
  req.method = "GET";
  req.target = "/v1/status";
  req.headers.push_back({"Authorization", "Bearer " + *token_});
  req.headers.push_back({"X-Padding", std::string(20 * 1024, 'p')});
  expect_error(api_request(addr(), req), 431, "20 KiB header");
  // The server is fine afterwards.
  EXPECT_EQ(call("GET", "/v1/status").status, 200);
}

TEST_F(ApiTest, UnknownRouteIs404) {
  expect_error(call("GET", "/v1/whatever"), 404, "GET /v1/whatever");
  expect_error(call("GET", "/v1/secrets/x/y"), 404, "GET /v1/secrets/x/y");
  expect_error(call("GET", "/v2/status"), 404, "GET /v2/status");
  expect_error(call("DELETE", "/v1/nope"), 404, "DELETE /v1/nope");
}

TEST_F(ApiTest, WrongMethodIs405WithAllow) {
  struct Case {
    std::string method, target, must_allow;
  };
  const std::vector<Case> cases{
      {"POST", "/v1/status", "GET"},     {"DELETE", "/v1/nodes", "GET"},
      {"PATCH", "/v1/secrets/x", "PUT"}, {"POST", "/v1/secrets/x", "GET"},
      {"PUT", "/v1/secrets", "GET"},     {"POST", "/v1/metrics", "GET"},
  };
  for (const auto& c : cases) {
    auto res = call(c.method, c.target, c.method == "GET" ? "" : "{}");
    std::string what = c.method + " " + c.target;
    expect_error(res, 405, what);
    const std::string* allow = res.header("Allow");
    ASSERT_TRUE(allow) << what << ": no Allow header";
    EXPECT_NE(allow->find(c.must_allow), std::string::npos) << what << ": Allow: " << *allow;
    EXPECT_EQ(allow->find(c.method), std::string::npos) << what << ": Allow: " << *allow;
  }
  auto res = call("PATCH", "/v1/secrets/x", "{}");
  const std::string* allow = res.header("Allow");
  ASSERT_TRUE(allow);
  for (const char* m : {"GET", "PUT", "DELETE"}) {
    EXPECT_NE(allow->find(m), std::string::npos) << "Allow: " << *allow;
  }
}

TEST_F(ApiTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  RawConnection conn(addr());
  ASSERT_TRUE(conn.connected());
  const std::string get = "GET /v1/status HTTP/1.1\r\nHost: test\r\n" + auth_header() + "\r\n";
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(conn.send(get)) << "request " << i;
    auto res = conn.read_response();
    ASSERT_EQ(res.status, 200) << "request " << i << " on the same connection";
    EXPECT_NE(res.body.find("\"nodes\""), std::string::npos);
  }
  // A PUT and a GET on the same connection see each other.
  std::string body = secret_body("keepalive-value");
  ASSERT_TRUE(conn.send("PUT /v1/secrets/ka HTTP/1.1\r\nHost: test\r\n" + auth_header() +
                        "Content-Type: application/json\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body));
  EXPECT_EQ(conn.read_response().status, 200);
  // Pipelined: two requests in one write, two answers in order.
  ASSERT_TRUE(conn.send("GET /v1/secrets/ka HTTP/1.1\r\nHost: test\r\n" + auth_header() + "\r\n" +
                        "DELETE /v1/secrets/ka HTTP/1.1\r\nHost: test\r\n" + auth_header() +
                        "\r\n"));
  auto first = conn.read_response();
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(parse_json(first.body).at("value").as_string(), "keepalive-value");
  auto second = conn.read_response();
  EXPECT_EQ(second.status, 200) << second.body;
  // Connection: close is honoured.
  ASSERT_TRUE(conn.send("GET /v1/status HTTP/1.1\r\nHost: test\r\nConnection: close\r\n" +
                        auth_header() + "\r\n"));
  EXPECT_EQ(conn.read_response().status, 200);
  EXPECT_TRUE(conn.wait_closed(std::chrono::seconds(5))) << "server kept a Connection: close open";
}

TEST_F(ApiTest, ManyConcurrentConnectionsAllSucceed) {
  constexpr int kThreads = 50;
  constexpr int kRequests = 20;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequests; ++i) {
        net::ClientRequest req;
        req.target = (i % 2 == 0) ? "/v1/status" : "/v1/nodes";
        if (i % 5 == 4) {
          req.method = "PUT";
          req.target = "/v1/secrets/conc-" + std::to_string(t);
          req.body = secret_body("v" + std::to_string(i));
          req.content_type = "application/json";
        }
        req.headers.push_back({"Authorization", "Bearer " + *token_});
        auto res = net::http_request(addr(), req);
        (res && res->status == 200 ? ok : failed)++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kRequests);
  EXPECT_EQ(failed.load(), 0);
  // The last write of each thread won.
  for (int t = 0; t < kThreads; ++t) {
    auto get = call("GET", "/v1/secrets/conc-" + std::to_string(t));
    ASSERT_EQ(get.status, 200);
    EXPECT_EQ(parse_json(get.body).at("value").as_string(), "v19");
    call("DELETE", "/v1/secrets/conc-" + std::to_string(t));
  }
}

}  // namespace
}  // namespace mill::testing
