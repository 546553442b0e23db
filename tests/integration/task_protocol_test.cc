// The tasks API and the node protocol against the real server, with this test playing
// the agent (`mill server --no-agent` plus a node it registers): what the control
// plane promises on its own, without containers. The container path is covered by
// the tests that run real images.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cctype>
#include <fstream>
#include <future>
#include <thread>

#include "harness.h"
#include "model/allocation.h"
#include "model/json.h"

namespace mill::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

class TaskProtocol : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = init_data_dir(dir_);
    std::string config_path = dir_.file("mill.toml");
    std::ofstream(config_path) << "[task.worker]\nimage = \"127.0.0.1:1/probe:v1\"\n"
                                  "cpu = 1\nmemory = \"64M\"\nport = 8080\ntimeout = \"1h\"\n";
    server_ = MillServer::start(dir_, {"--no-agent", "--config", config_path});
    ASSERT_TRUE(server_);
    join_ = read_file_text(dir_.file("data/join.token"));
    while (!join_.empty() && std::isspace(static_cast<unsigned char>(join_.back())))
      join_.pop_back();
    auto reg = agent("POST", "/v1/agent/register",
                     R"({"name":"fake","address":"127.0.0.1","resources":{"cpu":{"total":2,)"
                     R"("available":2},"memory":{"total":1073741824,"available":1073741824}}})");
    ASSERT_EQ(reg.status, 200) << reg.body;
    auto o = json::parse(reg.body).as_object();
    node_ = std::string(o.at("id").as_string());
    EXPECT_EQ(o.at("subnet").as_string(), "10.99.1.0/24");
  }

  net::ClientResponse agent(const std::string& method, const std::string& target,
                            const std::string& body = {}) {
    return api(server_->address(), method, target, join_, body);
  }

  json::object poll(int64_t index, int wait_ms) {
    net::ClientRequest req;
    req.target = "/v1/agent/allocations?node=" + node_ + "&index=" + std::to_string(index) +
                 "&wait_ms=" + std::to_string(wait_ms);
    req.headers.push_back({"Authorization", "Bearer " + join_});
    req.timeout = std::chrono::milliseconds(wait_ms) + 10s;
    auto res = api_request(server_->address(), req);
    EXPECT_EQ(res.status, 200) << res.body;
    // Also called from the test's own agent threads: never throws. An answer that is
    // not the query's shape is a failure, and reads as "no change".
    boost::system::error_code ec;
    json::value v = json::parse(res.body, ec);
    if (!ec && v.is_object() && v.as_object().if_contains("index") &&
        v.as_object().at("index").is_int64() && v.as_object().if_contains("allocations") &&
        v.as_object().at("allocations").is_array()) {
      return v.as_object();
    }
    ADD_FAILURE() << "not an allocations answer: " << res.body;
    return json::object{{"index", index}, {"allocations", json::array()}};
  }

  void report(const std::string& id, const std::string& status, int exit_code = -1) {
    std::string st = R"({"id":")" + id + R"(","status":")" + status + R"(","started_at_ms":1)";
    if (exit_code >= 0)
      st += R"(,"exit_code":)" + std::to_string(exit_code) + R"(,"finished_at_ms":2)";
    st += "}";
    auto res = agent("POST", "/v1/agent/status",
                     R"({"node":")" + node_ + R"(","allocations":[)" + st + "]}");
    ASSERT_EQ(res.status, 200) << res.body;
  }

  TempDir dir_;
  std::string token_;
  std::string join_;
  std::string node_;
  std::unique_ptr<MillServer> server_;
};

TEST_F(TaskProtocol, SpawnAnswersOnceTheAgentReportsRunning) {
  auto first = poll(0, 0);
  int64_t index = first.at("index").as_int64();
  EXPECT_TRUE(first.at("allocations").as_array().empty());

  std::promise<net::ClientResponse> spawned;
  std::jthread client([&] {
    net::ClientRequest req;
    req.method = "POST";
    req.target = "/v1/tasks/spawn";
    req.body = R"({"task":"worker","env":{"SESSION_ID":"abc123"}})";
    req.headers.push_back({"Authorization", "Bearer " + token_});
    req.timeout = 30s;
    spawned.set_value(api_request(server_->address(), req));
  });
  // The blocking query wakes with the new allocation.
  auto woke = poll(index, 20000);
  auto allocs = woke.at("allocations").as_array();
  ASSERT_EQ(allocs.size(), 1u);
  EXPECT_EQ(allocs[0].as_object().at("status").as_string(), "pending");
  auto a = model::decode_allocation(model::serialize(allocs[0].as_object().at("alloc")));
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_TRUE(a->id.starts_with("worker-"));
  EXPECT_EQ(a->spec.env.at("SESSION_ID"), "abc123");
  EXPECT_EQ(a->ip, "10.99.1.2");
  auto future = spawned.get_future();
  EXPECT_EQ(future.wait_for(300ms), std::future_status::timeout);  // not running yet

  report(a->id, "pulling");
  report(a->id, "running");
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  auto res = future.get();
  client.join();
  ASSERT_EQ(res.status, 201) << res.body;
  auto body = json::parse(res.body).as_object();
  EXPECT_EQ(body.at("id").as_string(), a->id);
  EXPECT_EQ(body.at("address").as_string(), a->id + ".mill:8080");
  EXPECT_EQ(body.at("node").as_string(), node_);
  EXPECT_EQ(body.at("status").as_string(), "running");
  EXPECT_EQ(body.size(), 4u);

  auto listed = api(server_->address(), "GET", "/v1/tasks", token_);
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(json::parse(listed.body).as_array().size(), 1u);

  // DELETE asks the node to stop and answers when it reports the end.
  std::promise<net::ClientResponse> killed;
  std::jthread killer([&] {
    net::ClientRequest req;
    req.method = "DELETE";
    req.target = "/v1/tasks/" + a->id;
    req.headers.push_back({"Authorization", "Bearer " + token_});
    req.timeout = 30s;
    killed.set_value(api_request(server_->address(), req));
  });
  // The query also wakes for state changes (the reports above move the proxy's
  // routes): poll on until the stop shows.
  auto stop = poll(woke.at("index").as_int64(), 20000);
  for (int i = 0;
       i < 5 && stop.at("allocations").as_array().size() == 1 &&
       stop.at("allocations").as_array()[0].as_object().at("alloc").as_object().at("desired") !=
           "stop";
       ++i) {
    stop = poll(stop.at("index").as_int64(), 20000);
  }
  ASSERT_EQ(stop.at("allocations").as_array().size(), 1u);
  const auto& item = stop.at("allocations").as_array()[0].as_object();
  EXPECT_EQ(item.at("alloc").as_object().at("desired").as_string(), "stop");
  EXPECT_EQ(item.at("status").as_string(), "running");
  report(a->id, "killed", 143);
  auto kill_future = killed.get_future();
  ASSERT_EQ(kill_future.wait_for(10s), std::future_status::ready);
  auto kres = kill_future.get();
  killer.join();
  ASSERT_EQ(kres.status, 200) << kres.body;
  EXPECT_EQ(json::parse(kres.body).as_object().at("status").as_string(), "killed");
  EXPECT_EQ(json::parse(kres.body).as_object().at("exit_code").as_int64(), 143);

  auto running = api(server_->address(), "GET", "/v1/tasks", token_);
  EXPECT_TRUE(json::parse(running.body).as_array().empty());
  auto all = api(server_->address(), "GET", "/v1/tasks?all=true", token_);
  EXPECT_EQ(json::parse(all.body).as_array().size(), 1u);
}

// An agent may hold an index from ahead of the server's: status reports are committed
// without an fsync, and a power loss can take the last few revisions back. Such an
// index gets an answer at once, with the current one, instead of a long poll that
// waits for revisions the server would only reach later.
TEST_F(TaskProtocol, AnIndexAheadOfTheServersIsAnsweredAtOnce) {
  auto current = poll(0, 0);
  const int64_t index = current.at("index").as_int64();
  // Asked to wait a minute, it answers long before (a bound, not a measured time).
  auto started = std::chrono::steady_clock::now();
  auto ahead = poll(index + 1000, 60000);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 30s);
  EXPECT_EQ(ahead.at("index").as_int64(), index);
  // The current index still blocks until something changes: an early answer must
  // carry a newer index.
  started = std::chrono::steady_clock::now();
  auto same = poll(index, 500);
  bool waited = std::chrono::steady_clock::now() - started >= 450ms;
  EXPECT_TRUE(waited || same.at("index").as_int64() > index)
      << "answered early without a change: " << json::serialize(same);
}

TEST_F(TaskProtocol, BadSpawnsChangeNothing) {
  struct Case {
    std::string body;
    int status;
    std::string says;
  };
  std::vector<Case> cases{
      {"{", 400, "JSON"},
      {R"({"image":"x","bogus":1})", 400, "bogus"},
      {R"({"task":"nope"})", 404, "nope"},
      {R"({"task":"worker","image":"x"})", 400, "image"},
      {R"({"cpu":1})", 400, "image"},
      {R"({"image":"x","memory":"lots"})", 400, "memory"},
      {R"({"image":"x","env":{"A":"${secret:missing}"}})", 400, "missing"},
      {R"({"image":"x","cpu":1.5})", 409, "cpu"},  // with the 1-core worker below
      {R"({"image":"x","memory":"2G"})", 409, "memory"},
  };
  // Take one of the node's two cores so the capacity cases have something to hit.
  std::jthread agent_thread([&] {
    auto woke = poll(0, 0);
    int64_t index = woke.at("index").as_int64();
    for (int i = 0; i < 50; ++i) {
      auto w = poll(index, 5000);
      index = w.at("index").as_int64();
      for (const auto& a : w.at("allocations").as_array()) {
        const auto* alloc = a.is_object() ? a.as_object().if_contains("alloc") : nullptr;
        const auto* id =
            alloc && alloc->is_object() ? alloc->as_object().if_contains("id") : nullptr;
        if (!id || !id->is_string()) {
          ADD_FAILURE() << "an allocation without an id: " << json::serialize(a);
          return;
        }
        report(std::string(id->as_string()), "running");
        return;
      }
    }
  });
  auto ok = api(server_->address(), "POST", "/v1/tasks/spawn", token_, R"({"task":"worker"})");
  agent_thread.join();
  ASSERT_EQ(ok.status, 201) << ok.body;
  for (const auto& c : cases) {
    auto res = api(server_->address(), "POST", "/v1/tasks/spawn", token_, c.body);
    EXPECT_EQ(res.status, c.status) << c.body << " -> " << res.body;
    EXPECT_NE(res.body.find(c.says), std::string::npos) << c.body << " -> " << res.body;
  }
  auto all = api(server_->address(), "GET", "/v1/tasks?all=true", token_);
  EXPECT_EQ(json::parse(all.body).as_array().size(), 1u) << all.body;
  EXPECT_EQ(api(server_->address(), "GET", "/v1/tasks/task-zzzz", token_).status, 404);
  EXPECT_EQ(api(server_->address(), "DELETE", "/v1/tasks/task-zzzz", token_).status, 404);
}

TEST_F(TaskProtocol, ReportsNeedTheJoinTokenAndWellFormedStates) {
  EXPECT_EQ(api(server_->address(), "POST", "/v1/agent/status", token_,
                R"({"node":"node-1","allocations":[]})")
                .status,
            401);
  EXPECT_EQ(
      agent("POST", "/v1/agent/status", R"({"node":"node-1","allocations":[{"id":"x"}]})").status,
      400);
  EXPECT_EQ(agent("GET", "/v1/agent/allocations?node=node-1&index=abc").status, 400);
}

}  // namespace
}  // namespace mill::testing
