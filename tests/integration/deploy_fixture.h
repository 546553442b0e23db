#pragma once

// The fixture of the service tests (deploy_test.cc, ingress_test.cc): `mill server` on
// a bridge of the test's own with its ingress proxy on loopback, the probe image in a
// real registry, POST /v1/deploy streamed as SSE. Needs root.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "harness.h"
#include "net/sse.h"
#include "support/cluster_lease.h"
#include "support/eventually.h"
#include "support/probe_image.h"
#include "support/require.h"
#include "support/test_registry.h"

namespace mill::testing {

namespace json = boost::json;
using namespace std::chrono_literals;

struct Event {
  std::string event;
  json::object data;
};

class Deploy : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { registry_.stop(); }

  // The probe as the image's cmd, so a service's `command` can replace it; v2 is
  // another config on the same layer: a rollout that pulls.
  static void start_registry() {
    registry_.start([] {
      auto version = [](const char* env) {
        return probe_image(MILL_PROBE_PATH, {env}, LayerCompression::kZstd,
                           /*probe_as_cmd=*/true);
      };
      return std::vector<SuiteRegistry::Image>{{"probe", "v1", version("VERSION=1")},
                                               {"probe", "v2", version("VERSION=2")}};
    });
  }

  void SetUp() override {
    MILL_REQUIRE(::geteuid() == 0, "running containers needs root");
    ASSERT_NO_FATAL_FAILURE(start_registry());
    bridge_ = random_name("md");
    lease_ = ClusterLease::take(150, 199);
    ASSERT_GE(lease_.octet(), 0) << "no free 10.x.0.0/16 for the test";
    cluster_ = lease_.cidr();
    token_ = init_data_dir(dir_);
    crash_cleanup_ = clean_up_on_crash(dir_.file("data"));
    // The proxy binds port 0 itself; the port it got is read back from the log.
    server_ = MillServer::start(
        dir_, {"--bridge", bridge_, "--cluster-network", cluster_, "--stop-grace", "2s",
               "--proxy-http", "127.0.0.1:0", "--proxy-https", "127.0.0.1:0"});
    ASSERT_TRUE(server_) << read_file_text(dir_.file("server.log"));
    proxy_port_ = server_->proxy_port();
    ASSERT_NE(proxy_port_, 0) << server_->log();
  }

  void TearDown() override {
    if (bridge_.empty()) return;  // SetUp stopped before it made anything
    if (server_) server_->stop(SIGTERM);
    auto cleaned = run_mill({"cleanup", "--data-dir", dir_.file("data")});
    EXPECT_EQ(cleaned.exit_code, 0) << cleaned.err;
    EXPECT_FALSE(std::filesystem::exists("/sys/class/net/" + bridge_));
  }

  net::ClientResponse call(const std::string& method, const std::string& target,
                           const std::string& body = {}, const std::string& type = {},
                           std::chrono::milliseconds timeout = 180s) {
    net::ClientRequest req;
    req.method = method;
    req.target = target;
    req.body = body;
    if (!type.empty()) req.content_type = type;
    req.headers.push_back({"Authorization", "Bearer " + token_});
    req.timeout = timeout;
    if (timeout < 180s) {  // expected to give up mid-stream: no test failure for that
      auto res = net::http_request(server_->address(), req);
      return res ? *res : net::ClientResponse{};
    }
    return api_request(server_->address(), req);
  }

  // A service of the probe image; `extra` goes into its section.
  std::string service(const std::string& name, int replicas, const std::string& extra = "",
                      const std::string& tag = "v1") {
    return "[service." + name + "]\nimage = \"" + registry_->host() + "/probe:" + tag +
           "\"\nreplicas = " + std::to_string(replicas) +
           "\nport = 8080\ncpu = 0.1\nmemory = \"32M\"\n" + extra + "\n";
  }

  // POSTs the config and reads the whole stream. A stream that does not end with done
  // or failed is a test failure, and the events then end with one named "(no end)", so
  // that events.back() is always safe to look at. With `status` a refusal (not 200) is
  // the caller's to check, and gives no events.
  std::vector<Event> deploy(const std::string& config, int* status = nullptr,
                            std::string* body = nullptr,
                            const std::string& target = "/v1/deploy?file=test.toml") {
    auto res = call("POST", target, config, "text/plain");
    if (status) *status = res.status;
    if (body) *body = res.body;
    if (res.status != 200) {
      // A caller that asks for the status expects a refusal, and checks it.
      if (status) return {};
      ADD_FAILURE() << "deploy answered " << res.status << ": " << res.body;
      return {{"(no end)", {}}};
    }
    const std::string* type = res.header("Content-Type");
    EXPECT_TRUE(type && type->starts_with("text/event-stream"))
        << "a deploy streams SSE; Content-Type " << (type ? *type : "(none)");
    return read_events(res.body);
  }

  // The events of a whole SSE stream of a deploy or restart (see deploy()).
  std::vector<Event> read_events(const std::string& stream) {
    std::vector<Event> out;
    net::SseParser parser;
    for (auto& e : parser.feed(stream)) {
      boost::system::error_code ec;
      json::value v = json::parse(e.data, ec);
      if (ec || !v.is_object()) {
        ADD_FAILURE() << "event data is not a JSON object: " << e.data;
        continue;
      }
      out.push_back({e.event.empty() ? "message" : e.event, v.as_object()});
    }
    if (out.empty() || (out.back().event != "done" && out.back().event != "failed")) {
      ADD_FAILURE() << "the stream did not end with done or failed:\n"
                    << stream << "\nserver log:\n"
                    << server_->log();
      out.push_back({"(no end)", {}});
    }
    return out;
  }

  // The `phase` of the i-th event, "" (and a test failure) when there is none.
  static std::string phase_at(const std::vector<Event>& events, size_t i) {
    if (i >= events.size()) {
      ADD_FAILURE() << "no event " << i << " in " << events.size();
      return "";
    }
    const auto* p = events[i].data.if_contains("phase");
    return p && p->is_string() ? std::string(p->as_string()) : "";
  }

  json::array services() {
    auto res = call("GET", "/v1/services");
    EXPECT_EQ(res.status, 200) << res.body;
    return json::parse(res.body).as_array();
  }

  json::object service_json(const std::string& name) {
    for (auto& s : services()) {
      if (s.as_object().at("name").as_string() == name) return s.as_object();
    }
    ADD_FAILURE() << "no service " << name;
    return {};
  }

  std::set<std::string> alloc_ids(const std::string& name) {
    std::set<std::string> ids;
    auto s = service_json(name);
    if (s.empty()) return ids;
    for (auto& a : s.at("allocations").as_array()) {
      ids.insert(std::string(a.as_object().at("id").as_string()));
    }
    return ids;
  }

  std::string get(const std::string& address, const std::string& path) {
    net::ClientRequest req;
    req.method = "GET";
    req.target = path;
    req.timeout = 5s;
    auto res = net::http_request(address, req);
    return res ? res->body : "";
  }

  // The A records the node's DNS server (on the bridge address) gives for `name`.
  std::set<std::string> dig(const std::string& name) {
    std::string bridge_ip = cluster_.substr(0, cluster_.find(".0.0/")) + ".1.1";
    std::string cmd = "dig +short +time=2 +tries=5 @" + bridge_ip + " " + name;
    std::set<std::string> out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
      char line[128];
      while (std::fgets(line, sizeof line, p)) {
        std::string l(line);
        while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.pop_back();
        if (!l.empty()) out.insert(l);
      }
      ::pclose(p);
    }
    return out;
  }

  static std::string phases(const std::vector<Event>& events, const std::string& name) {
    std::string out;
    for (const auto& e : events) {
      if (e.event != "progress") continue;
      auto* s = e.data.if_contains("service");
      if (!s || s->as_string() != name) continue;
      out += std::string(e.data.at("phase").as_string()) + " ";
    }
    return out;
  }

  static std::string sorted_phases(const std::vector<Event>& events, const std::string& name) {
    std::vector<std::string> list;
    std::istringstream in(phases(events, name));
    for (std::string p; in >> p;) list.push_back(p);
    std::sort(list.begin(), list.end());
    std::string out;
    for (const auto& p : list) out += p + " ";
    return out;
  }

  // Surge 1: one new allocation at a time, and never more old ones stopped than new
  // ones healthy (an old one stops after its replacement is healthy; its `stopped`
  // may come once the next replacement is on its way).
  static bool stops_follow_health(const std::vector<Event>& events, const std::string& name) {
    int scheduled = 0, healthy = 0, stopped = 0;
    std::istringstream in(phases(events, name));
    for (std::string p; in >> p;) {
      scheduled += p == "scheduled";
      healthy += p == "healthy";
      stopped += p == "stopped";
      if (stopped > healthy || scheduled > healthy + 1) return false;
    }
    return true;
  }

  static SuiteRegistry registry_;
  uint16_t proxy_port_ = 0;  // the node's ingress proxy (HTTP), on loopback
  TempDir dir_;
  std::unique_ptr<OnCrash> crash_cleanup_;  // a crash still cleans up the node
  ClusterLease lease_;
  std::string bridge_, cluster_, token_;
  std::unique_ptr<MillServer> server_;
};

inline SuiteRegistry Deploy::registry_;

}  // namespace mill::testing
