// The ingress proxy end to end: services deployed with a route answer through the
// node's proxy (on loopback), a rolling deploy under load drops no request, a crashed
// replica leaves the rotation, TLS comes from secrets. Needs root.

#include "deploy_fixture.h"

namespace mill::testing {
namespace {

using Ingress = Deploy;

struct Answer {
  int status = 0;  // 0: the request failed in transport
  std::string body;
  std::chrono::steady_clock::time_point at;
  std::chrono::milliseconds took{0};
};

Answer through(uint16_t port, const std::string& host, const std::string& path) {
  net::ClientRequest req;
  req.target = path;
  req.headers.push_back({"Host", host});
  req.timeout = 10s;
  auto t0 = std::chrono::steady_clock::now();
  auto res = net::http_request("127.0.0.1:" + std::to_string(port), req);
  Answer a;
  a.at = std::chrono::steady_clock::now();
  a.took = std::chrono::duration_cast<std::chrono::milliseconds>(a.at - t0);
  if (res) {
    a.status = res->status;
    a.body = res->body;
  }
  return a;
}

// Sends requests from `threads` threads until stopped; keeps every answer.
class Load {
 public:
  Load(uint16_t port, std::string host, std::string path, int threads = 4) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, port, host, path] {
        while (running_) {
          auto a = through(port, host, path);
          std::lock_guard lock(mutex_);
          answers_.push_back(std::move(a));
        }
      });
    }
  }
  ~Load() { stop(); }
  size_t count() {
    std::lock_guard lock(mutex_);
    return answers_.size();
  }
  std::vector<Answer> stop() {
    running_ = false;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    std::lock_guard lock(mutex_);
    return answers_;
  }

 private:
  std::atomic<bool> running_{true};
  std::mutex mutex_;
  std::vector<Answer> answers_;
  std::vector<std::thread> threads_;
};

bool wait_for(const std::function<bool()>& ok, std::chrono::seconds limit = 30s) {
  return eventually(ok, limit);
}

TEST_F(Ingress, ARollingDeployUnderLoadDropsNoRequestAndSwitchesVersions) {
  const std::string health = "health = { path = \"/health\", interval = \"100ms\" }\n";
  const std::string route = "route = { host = \"web.test\", path = \"/\" }\n";
  auto first = deploy(service("web", 3, health + route));
  ASSERT_FALSE(first.empty()) << server_->log();
  ASSERT_EQ(first.back().event, "done") << server_->log();
  ASSERT_TRUE(wait_for([&] { return through(proxy_port_, "web.test", "/health").status == 200; }))
      << server_->log();
  // Other hosts are not routed: a 404, counted once for no route.
  const std::string unrouted = "mill_proxy_requests_total{route=\"\",code=\"4xx\"}";
  // A counter not yet counted has no sample: 0.
  double unrouted_before = metric_sample(call("GET", "/v1/metrics").body, unrouted).value_or(0);
  auto other = through(proxy_port_, "other.test", "/health");
  EXPECT_EQ(other.status, 404);
  EXPECT_NE(other.body.find("no route"), std::string::npos);
  EXPECT_EQ(metric_sample(call("GET", "/v1/metrics").body, unrouted), unrouted_before + 1);

  // Load before, during and after the rollout: v1 answers before it, nothing fails,
  // and a request sent once the deploy is done meets v2 only (an old allocation leaves
  // the rotation before it stops, and done comes after the last stop).
  Load load(proxy_port_, "web.test", "/env");
  ASSERT_TRUE(wait_for([&] { return load.count() >= 20; })) << "no load went through";
  auto events = deploy(service("web", 3, health + route + "env = { V = \"2\" }"));
  auto done_at = std::chrono::steady_clock::now();
  ASSERT_EQ(events.back().event, "done") << server_->log();
  size_t at_done = load.count();
  ASSERT_TRUE(wait_for([&] { return load.count() >= at_done + 20; })) << "the load stopped";
  auto answers = load.stop();

  int failed = 0, old_after_done = 0;
  std::string first_failure;
  for (const auto& a : answers) {
    if (a.status != 200) {
      if (failed++ == 0) first_failure = std::to_string(a.status) + " " + a.body;
    }
    if (a.at - a.took > done_at && a.body.find("V=2") == std::string::npos) ++old_after_done;
  }
  EXPECT_EQ(failed, 0) << "of " << answers.size() << "; first: " << first_failure;
  // The load was real: requests before, during and after (a count, not a rate).
  EXPECT_GE(answers.size(), 40u);
  ASSERT_FALSE(answers.empty());
  EXPECT_EQ(answers.front().body.find("V=2"), std::string::npos) << answers.front().body;
  EXPECT_NE(answers.back().body.find("V=2"), std::string::npos) << answers.back().body;
  EXPECT_EQ(old_after_done, 0) << "v1 answered requests sent after the deploy was done";

  auto metrics = call("GET", "/v1/metrics");
  EXPECT_NE(metrics.body.find("mill_proxy_requests_total{route=\"web\",code=\"2xx\"}"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("mill_proxy_latency_seconds_count{route=\"web\"}"),
            std::string::npos);
  EXPECT_EQ(promtool_problems(metrics.body), "") << "--- exposition ---\n" << metrics.body;
}

TEST_F(Ingress, ACrashedReplicaLeavesTheRotationWithinAHealthInterval) {
  const std::string config = service("web", 2,
                                     "health = { path = \"/health\", interval = \"200ms\" }\n"
                                     "route = { host = \"web.test\", path = \"/\" }\n");
  auto first = deploy(config);
  ASSERT_FALSE(first.empty()) << server_->log();
  ASSERT_EQ(first.back().event, "done") << server_->log();
  auto allocs = service_json("web").at("allocations").as_array();
  ASSERT_EQ(allocs.size(), 2u);
  std::string victim(allocs[0].as_object().at("id").as_string());
  std::string victim_address(allocs[0].as_object().at("address").as_string());
  ASSERT_TRUE(wait_for([&] {
    return through(proxy_port_, "web.test", "/hostname").body.find(victim) != std::string::npos;
  })) << "the victim never answered through the proxy";

  // The upstreams the node's proxy is given for web (the node protocol's route feed).
  std::string join = read_file_text(dir_.file("data/join.token"));
  while (!join.empty() && join.back() == '\n') join.pop_back();
  auto upstreams = [&] {
    std::set<std::string> out;
    auto res =
        api(server_->address(), "GET", "/v1/agent/allocations?node=node-1&index=0&wait_ms=0", join);
    boost::system::error_code ec;
    auto v = json::parse(res.body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("routes")) return out;
    for (auto& r : v.as_object().at("routes").as_array()) {
      if (r.as_object().at("service") != "web") continue;
      for (auto& u : r.as_object().at("upstreams").as_array())
        out.insert(std::string(u.as_string()));
    }
    return out;
  };
  ASSERT_TRUE(upstreams().contains(victim_address)) << "the victim is not in the rotation";

  Load load(proxy_port_, "web.test", "/hostname", 2);
  ASSERT_TRUE(wait_for([&] { return load.count() >= 10; })) << "no load went through";
  get(victim_address, "/crash");  // the probe aborts: no answer, the process is gone
  // The crashed replica leaves the rotation (before its restart, 1 s of backoff away)...
  EXPECT_TRUE(wait_for([&] { return !upstreams().contains(victim_address); }))
      << "the crashed replica stayed in the rotation";
  // ...and, restarted and healthy again, comes back into it.
  auto victim_back = [&] {
    auto web = service_json("web");
    for (auto& a : web.at("allocations").as_array()) {
      const auto& o = a.as_object();
      if (o.at("id").as_string() != victim) continue;
      auto* restarts = o.if_contains("restarts");
      return restarts && restarts->is_int64() && restarts->as_int64() >= 1 &&
             o.at("status").as_string() == "healthy";
    }
    return false;
  };
  ASSERT_TRUE(wait_for(victim_back, 60s)) << json::serialize(service_json("web"));
  auto answers = load.stop();
  EXPECT_TRUE(wait_for([&] { return upstreams().contains(victim_address); }));
  EXPECT_TRUE(wait_for([&] {
    return through(proxy_port_, "web.test", "/hostname").body.find(victim) != std::string::npos;
  })) << "the restarted replica never answered through the proxy again";

  // No request failed across the crash, and none waited on the dead replica: one that
  // met it went to the other at once, not after a timeout (the proxy's upstream
  // timeouts are tens of seconds).
  int failed = 0;
  auto worst = 0ms;
  for (const auto& a : answers) {
    if (a.status != 200) ++failed;
    worst = std::max(worst, a.took);
  }
  EXPECT_EQ(failed, 0) << "of " << answers.size();
  EXPECT_LT(worst, 5000ms) << "a request waited on the crashed replica";
}

TEST_F(Ingress, ServesTlsFromSecretsAndRedirectsPlainHttp) {
  std::string d = dir_.path();
  std::string gen =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=secure.test "
      "-addext subjectAltName=DNS:secure.test -keyout " +
      d + "/key.pem -out " + d + "/cert.pem 2>/dev/null";
  ASSERT_EQ(std::system(gen.c_str()), 0);
  for (const auto& [name, file] : {std::pair{"web_cert", "cert.pem"}, {"web_key", "key.pem"}}) {
    auto set =
        run_mill({"secret", "set", name, "-"},
                 {{"MILL_CONFIG", dir_.file("client.toml")}, {"MILL_ADDR", server_->address()}},
                 read_file_text(d + "/" + file));
    ASSERT_EQ(set.exit_code, 0) << set.err;
  }
  const std::string config =
      service("web", 1,
              "health = { path = \"/health\", interval = \"100ms\" }\n"
              "route = { host = \"secure.test\", https_redirect = true, tls = { cert = "
              "\"${secret:web_cert}\", key = \"${secret:web_key}\" } }\n");
  auto events = deploy(config);
  ASSERT_FALSE(events.empty()) << server_->log();
  ASSERT_EQ(events.back().event, "done") << json::serialize(events.back().data) << server_->log();
  // The key never shows in the deploy's events or the service listing.
  std::string key_pem = read_file_text(d + "/key.pem");
  std::string key_line = key_pem.substr(key_pem.find('\n') + 1, 40);
  for (const auto& e : events) EXPECT_EQ(json::serialize(e.data).find(key_line), std::string::npos);
  EXPECT_EQ(call("GET", "/v1/services").body.find(key_line), std::string::npos);

  // The HTTPS port is the one the fixture gave (the last flag of the server's).
  ASSERT_TRUE(wait_for([&] {
    return through(proxy_port_, "secure.test", "/health").status == 308;
  })) << server_->log();
  auto redirect = through(proxy_port_, "secure.test", "/health");
  EXPECT_EQ(redirect.status, 308);
  std::string https_port;
  {
    net::ClientRequest req;
    req.target = "/health";
    req.headers.push_back({"Host", "secure.test"});
    auto res = net::http_request("127.0.0.1:" + std::to_string(proxy_port_), req);
    ASSERT_TRUE(res);
    const std::string* location = res->header("Location");
    ASSERT_TRUE(location);
    EXPECT_TRUE(location->starts_with("https://secure.test:")) << *location;
    https_port = location->substr(20, location->find('/', 20) - 20);
  }
  std::string curl = "curl -sS --max-time 10 --cacert " + d +
                     "/cert.pem --resolve secure.test:" + https_port +
                     ":127.0.0.1 https://secure.test:" + https_port + "/health";
  std::string out;
  if (FILE* p = ::popen(curl.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
  }
  EXPECT_EQ(out, "ok") << curl;
}

}  // namespace
}  // namespace mill::testing
