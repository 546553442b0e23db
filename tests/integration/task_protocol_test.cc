// The tasks API and the node protocol against the real server, with this test playing
// the agent (`mill server --no-agent` plus a node it registers): what the control
// plane promises on its own, without containers. The container path is covered by
// the tests that run real images.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cctype>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
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

  // As an agent would: waits for the first allocation placed on the node and reports
  // it running (what lets a spawn answer 201).
  void report_first_allocation_running() {
    int64_t index = poll(0, 0).at("index").as_int64();
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
  std::jthread agent_thread([&] { report_first_allocation_running(); });
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

// "Free" has two meanings, named apart the same way in the API, the metrics and the
// CLI (issue 15 item 7): allocatable is the node's capacity minus what its live
// allocations reserve (what placement counts: the 409 says the same figure), used is
// what its agent measured. Here the machine is busy with something else (0.25 of 2
// cores idle) while one 1-core task is placed on it.
TEST_F(TaskProtocol, FreeIsNamedAllocatableOrUsedAndPlacementCountsAllocatable) {
  constexpr double kGiB = 1073741824;
  constexpr double kMiB = 1048576;
  std::jthread agent_thread([&] { report_first_allocation_running(); });
  auto ok = api(server_->address(), "POST", "/v1/tasks/spawn", token_, R"({"task":"worker"})");
  agent_thread.join();
  ASSERT_EQ(ok.status, 201) << ok.body;
  auto beat = agent("POST", "/v1/agent/heartbeat",
                    R"({"id":")" + node_ +
                        R"(","resources":{"cpu":{"total":2,"available":0.25},)"
                        R"("memory":{"total":1073741824,"available":268435456}}})");
  ASSERT_EQ(beat.status, 200) << beat.body;

  auto nodes = json::parse(api(server_->address(), "GET", "/v1/nodes", token_).body);
  const auto& node = nodes.as_array().at(0).as_object();
  auto figure = [](const json::object& o, const char* part, const char* key) {
    return o.at(part).as_object().at(key).to_number<double>();
  };
  EXPECT_EQ(figure(node, "cpu", "total"), 2);
  EXPECT_EQ(figure(node, "cpu", "available"), 0.25) << "as the agent measured it";
  EXPECT_EQ(figure(node, "cpu", "used"), 1.75);
  EXPECT_EQ(figure(node, "cpu", "reserved"), 1);
  EXPECT_EQ(figure(node, "cpu", "allocatable"), 1);
  EXPECT_EQ(figure(node, "memory", "used"), 768 * kMiB);
  EXPECT_EQ(figure(node, "memory", "reserved"), 64 * kMiB);
  EXPECT_EQ(figure(node, "memory", "allocatable"), kGiB - 64 * kMiB);
  EXPECT_EQ(node.at("allocations").as_int64(), 1);

  auto status = json::parse(api(server_->address(), "GET", "/v1/status", token_).body);
  const auto& u = status.at("utilization").as_object();
  EXPECT_EQ(figure(u, "cpu", "used"), 1.75);
  EXPECT_EQ(figure(u, "cpu", "reserved"), 1);
  EXPECT_EQ(figure(u, "cpu", "allocatable"), 1);
  EXPECT_EQ(figure(u, "memory", "allocatable"), kGiB - 64 * kMiB);

  auto metrics = api(server_->address(), "GET", "/v1/metrics", token_).body;
  auto sample = [&](const std::string& name) {
    return metric_sample(metrics, name + "{node=\"" + node_ + "\"}").value_or(-1);
  };
  EXPECT_EQ(sample("mill_node_cpu_available"), 1) << metrics;
  EXPECT_EQ(sample("mill_node_memory_available_bytes"), kGiB - 64 * kMiB) << metrics;
  EXPECT_EQ(sample("mill_node_cpu_used"), 1.75) << metrics;
  EXPECT_EQ(sample("mill_node_memory_used_bytes"), 768 * kMiB) << metrics;
  EXPECT_EQ(sample("mill_node_cpu_capacity"), 2) << metrics;
  EXPECT_EQ(sample("mill_node_memory_capacity_bytes"), kGiB) << metrics;
  EXPECT_EQ(promtool_problems(metrics), "") << metrics;

  // Placement counts allocatable, not what is idle: just over it is refused, and the
  // answer names the same figure.
  auto over = api(server_->address(), "POST", "/v1/tasks/spawn", token_,
                  R"({"image":"127.0.0.1:1/probe:v1","cpu":1.01})");
  EXPECT_EQ(over.status, 409) << over.body;
  EXPECT_NE(over.body.find("cpu 1,"), std::string::npos) << over.body;

  // The CLI names them the same way.
  const std::map<std::string, std::string> env{{"MILL_ADDR", server_->address()},
                                               {"MILL_TOKEN", token_},
                                               {"MILL_CONFIG", dir_.file("none.toml")}};
  auto cli = run_mill({"nodes"}, env);
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("CPU ALLOCATABLE  CPU USED  MEM ALLOCATABLE  MEM USED"), std::string::npos)
      << cli.out;
  std::istringstream lines(cli.out);
  std::vector<std::string> row;
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(node_ + " ")) continue;
    std::istringstream words(line);
    for (std::string w; words >> w;) row.push_back(w);
  }
  ASSERT_GE(row.size(), 9u) << cli.out;
  EXPECT_EQ(row[4], "1.00/2.00") << cli.out;
  EXPECT_EQ(row[5], "1.75") << cli.out;
  EXPECT_EQ(row[6], "960M/1.0G") << cli.out;
  EXPECT_EQ(row[7], "768M") << cli.out;
  EXPECT_EQ(row[8], "-") << "a node that does not report its disk:\n" << cli.out;
  cli = run_mill({"status"}, env);
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("CPU:      1.00 of 2.00 cores allocatable (1.00 reserved), 1.75 used "
                         "(measured)\n"),
            std::string::npos)
      << cli.out;
  EXPECT_NE(cli.out.find("Memory:   960M of 1.0G allocatable (64M reserved), 768M used "
                         "(measured)\n"),
            std::string::npos)
      << cli.out;
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
