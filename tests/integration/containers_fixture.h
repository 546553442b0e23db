#pragma once

// The fixture of the tests that run tasks for real (tests/integration/containers_test.cc
// and the chaos suite's hostile tasks, tests/chaos/hostile_test.cc): images built from
// the probe app and pushed to a real registry (Debian's docker-registry on loopback),
// `mill server` running them under runc on a bridge and a 10.x.0.0/16 of the test's
// own, reached at their addresses from the host. Needs root and runc; MILL_PROBE_PATH
// (set by CMake) is the probe's binary.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/command.h"
#include "harness.h"
#include "support/cluster_lease.h"
#include "support/probe_image.h"
#include "support/require.h"
#include "support/test_registry.h"

namespace mill::testing {

namespace json = boost::json;
using namespace std::chrono_literals;

class Containers : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { registry_.stop(); }

  // The probe image: the probe as its entrypoint, FROM_IMAGE=yes in its environment.
  static TestImage probe_image() {
    return testing::probe_image(MILL_PROBE_PATH, {"FROM_IMAGE=yes"});
  }

  // probe:cmd has the probe as the image's cmd (not its entrypoint): a command
  // replaces it whole.
  static void start_registry() {
    registry_.start([] {
      return std::vector<SuiteRegistry::Image>{
          {"probe", "v1", probe_image()},
          {"probe", "cmd",
           testing::probe_image(MILL_PROBE_PATH, {"FROM_IMAGE=yes"}, LayerCompression::kZstd,
                                /*probe_as_cmd=*/true)}};
    });
  }

  void SetUp() override {
    MILL_REQUIRE(::geteuid() == 0, "running containers needs root");
    ASSERT_NO_FATAL_FAILURE(start_registry());
    bridge_ = random_name("mc");
    // A private /16 this test alone uses (network tests take 10.2xx).
    lease_ = ClusterLease::take(150, 199);
    ASSERT_GE(lease_.octet(), 0) << "no free 10.x.0.0/16 for the test";
    cluster_ = lease_.cidr();
    subnet_prefix_ = "10." + std::to_string(lease_.octet()) + ".1.";
    token_ = init_data_dir(dir_);
    crash_cleanup_ = clean_up_on_crash(dir_.file("data"));
    config_ = dir_.file("mill.toml");
    write_config("");
    ASSERT_NO_FATAL_FAILURE(start());
  }

  void TearDown() override {
    if (bridge_.empty()) return;  // SetUp stopped before it made anything
    if (server_) server_->stop(SIGTERM);
    auto cleaned = run_mill({"cleanup", "--data-dir", dir_.file("data")});
    EXPECT_EQ(cleaned.exit_code, 0) << cleaned.err;
    // Nothing of this node is left on the host: bridge, cgroup parents, guard route.
    EXPECT_FALSE(std::filesystem::exists("/sys/class/net/" + bridge_));
    EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/memory/mill-" + bridge_));
    EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/pids/mill-" + bridge_));
    // Nor its nftables table, with every chain in it (forward, input, postrouting).
    auto tables = run_command({"nft", "list", "tables"});
    ASSERT_TRUE(tables);
    EXPECT_EQ(tables->output.find("mill_" + bridge_ + "\n"), std::string::npos) << tables->output;
    // Nor is anything under the data dir still mounted (rootfs binds, the allocs bind,
    // volumes): `rm -rf` of it works.
    const std::string data = dir_.file("data");
    std::istringstream mounts(read_file_text("/proc/self/mountinfo"));
    for (std::string line; std::getline(mounts, line);) {
      EXPECT_EQ(line.find(" " + data + "/"), std::string::npos) << "still mounted: " << line;
    }
  }

  void write_config(const std::string& extra) {
    std::ofstream(config_) << "[task.probe]\nimage = \"" << registry_->host()
                           << "/probe:v1\"\nport = 8080\ncpu = 0.2\nmemory = \"64M\"\n"
                           << "env = { FROM_TEMPLATE = \"1\" }\n"
                           << extra;
  }

  void start(const std::string& retention = "1h", const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"--bridge",         bridge_,  "--cluster-network", cluster_,
                                  "--config",         config_,  "--stop-grace",      "2s",
                                  "--task-retention", retention};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = MillServer::start(dir_, args);
    ASSERT_TRUE(server_) << (server_ ? "" : read_file_text(dir_.file("server.log")));
  }

  net::ClientResponse call(const std::string& method, const std::string& target,
                           const std::string& body = {}) {
    net::ClientRequest req;
    req.method = method;
    req.target = target;
    req.body = body;
    if (!body.empty()) req.content_type = "application/json";
    req.headers.push_back({"Authorization", "Bearer " + token_});
    req.timeout = 120s;
    return api_request(server_->address(), req);
  }

  // Spawns and returns the task's JSON (GET /v1/tasks/:id), failing the test unless 201.
  json::object spawn(const std::string& body) {
    auto res = call("POST", "/v1/tasks/spawn", body);
    EXPECT_EQ(res.status, 201) << res.body << "\n" << server_->log();
    if (res.status != 201) return {};
    auto id = std::string(json::parse(res.body).as_object().at("id").as_string());
    return task(id);
  }

  json::object task(const std::string& id) {
    auto res = call("GET", "/v1/tasks/" + id);
    EXPECT_EQ(res.status, 200) << res.body;
    return json::parse(res.body).as_object();
  }

  // Waits until the task's status is `status`.
  json::object wait_status(const std::string& id, const std::string& status,
                           std::chrono::seconds limit = 20s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    json::object t;
    while (std::chrono::steady_clock::now() < deadline) {
      t = task(id);
      if (t.at("status").as_string() == status) return t;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << id << " never became " << status << ": " << json::serialize(t);
    return t;
  }

  // GET on the task's own HTTP server, from the host over the bridge.
  std::string probe(const json::object& t, const std::string& path) {
    std::string addr = std::string(t.at("ip").as_string()) + ":8080";
    net::ClientRequest req;
    req.target = path;
    req.timeout = 5s;
    for (int i = 0; i < 100; ++i) {  // the app may still be binding its port
      auto res = net::http_request(addr, req);
      if (res && res->status == 200) return res->body;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "no answer from " << addr << path;
    return "";
  }

  static std::string id_of(const json::object& t) { return std::string(t.at("id").as_string()); }

  static SuiteRegistry registry_;
  TempDir dir_;
  std::unique_ptr<OnCrash> crash_cleanup_;  // a crash still cleans up the node
  ClusterLease lease_;
  std::string token_, bridge_, cluster_, subnet_prefix_, config_;
  std::unique_ptr<MillServer> server_;
};

inline SuiteRegistry Containers::registry_;

}  // namespace mill::testing
