// Services and rolling deploys end to end: `mill server` on a bridge of the test's
// own, the probe image in a real registry, POST /v1/deploy streamed as SSE. Needs root.

#include <regex>

#include "deploy_fixture.h"

namespace mill::testing {
namespace {

TEST_F(Deploy, TwoServicesThenOnlyTheChangedOneRolls) {
  std::string config = service("web", 2) + service("api", 1);
  auto events = deploy(config);
  ASSERT_FALSE(events.empty()) << server_->log();
  // The spec's first two events: progress with phase started, then pulling.
  EXPECT_EQ(events.front().event, "progress");
  EXPECT_EQ(phase_at(events, 0), "started");
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[1].event, "progress");
  EXPECT_EQ(phase_at(events, 1), "pulling");
  EXPECT_EQ(events.back().event, "done") << server_->log();
  EXPECT_TRUE(events.back().data.at("success").as_bool());
  EXPECT_GE(events.back().data.at("elapsed").to_number<double>(), 0.0);
  // A new service starts all its replicas at once; each goes scheduled -> starting ->
  // healthy (the events carry no allocation id, so count them).
  EXPECT_EQ(sorted_phases(events, "web"), "healthy healthy scheduled scheduled starting starting ");
  EXPECT_EQ(phases(events, "web").substr(0, 20), "scheduled scheduled ");
  EXPECT_EQ(phases(events, "api"), "scheduled starting healthy ");
  for (const auto& e : events) {
    if (e.event == "progress" && e.data.at("phase") == "scheduled") {
      EXPECT_EQ(e.data.at("node").as_string(), "node-1");
    }
    if (e.event == "progress" && e.data.at("phase") == "healthy") {
      EXPECT_TRUE(e.data.contains("elapsed"));
    }
  }

  // cpu is a rate: there once two usage reports give one (within a second or two).
  json::object web;
  EXPECT_TRUE(eventually(
      [&] {
        web = service_json("web");
        const auto* allocs = web.if_contains("allocations");
        if (!allocs || !allocs->is_array() || allocs->as_array().empty()) return false;
        return std::all_of(allocs->as_array().begin(), allocs->as_array().end(),
                           [](const json::value& a) { return a.as_object().contains("cpu"); });
      },
      10s))
      << json::serialize(web);
  EXPECT_EQ(web.at("replicas").as_object().at("desired").as_int64(), 2);
  EXPECT_EQ(web.at("replicas").as_object().at("healthy").as_int64(), 2);
  EXPECT_EQ(web.at("image").as_string(), registry_->host() + "/probe:v1");
  for (auto& a : web.at("allocations").as_array()) {
    auto& o = a.as_object();
    EXPECT_EQ(o.at("status").as_string(), "healthy");
    // The spec's fields: live cpu (cores) and memory (bytes) figures, node, start time.
    EXPECT_TRUE(o.at("cpu").is_number()) << json::serialize(o);
    EXPECT_TRUE(o.at("memory").is_number()) << json::serialize(o);
    EXPECT_EQ(o.at("node").as_string(), "node-1");
    EXPECT_EQ(o.at("started_at").as_string().size(), std::string("2026-02-14T10:00:00Z").size());
    // The allocation answers at its address.
    EXPECT_EQ(get(std::string(o.at("address").as_string()), "/health"), "ok");
  }
  // web.mill: the service's healthy allocations, from the node's DNS server.
  std::set<std::string> ips;
  for (auto& a : web.at("allocations").as_array()) {
    std::string address(a.as_object().at("address").as_string());
    ips.insert(address.substr(0, address.find(':')));
  }
  EXPECT_EQ(dig("web.mill"), ips);
  auto web_before = alloc_ids("web");
  auto api_before = alloc_ids("api");

  // The same config again: nothing rolls.
  auto again = deploy(config);
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(again.back().event, "done");
  EXPECT_EQ(phases(again, "web"), "");
  EXPECT_EQ(phases(again, "api"), "");

  // Only api changes: only api rolls, web keeps its allocations.
  auto changed = deploy(service("web", 2) + service("api", 1, "env = { MODE = \"two\" }"));
  ASSERT_FALSE(changed.empty());
  EXPECT_EQ(changed.back().event, "done") << server_->log();
  EXPECT_EQ(phases(changed, "web"), "");
  EXPECT_EQ(phases(changed, "api"), "scheduled starting healthy stopped ");
  EXPECT_EQ(alloc_ids("web"), web_before);
  auto api_after = alloc_ids("api");
  ASSERT_EQ(api_after.size(), 1u);
  EXPECT_NE(api_after, api_before);
  auto api = service_json("api").at("allocations").as_array().at(0).as_object();
  EXPECT_NE(get(std::string(api.at("address").as_string()), "/env").find("MODE=two"),
            std::string::npos);

  // The record of the deploy is there after the stream.
  auto list = call("GET", "/v1/deploys");
  ASSERT_EQ(list.status, 200);
  auto records = json::parse(list.body).as_array();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].as_object().at("status").as_string(), "done");
  std::string id(changed.front().data.at("deploy").as_string());
  auto one = call("GET", "/v1/deploys/" + id);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(json::parse(one.body).as_object().at("events").as_array().size(), changed.size());
}

TEST_F(Deploy, AContainerThatExitsFailsTheDeployAtOnceAndTheOldVersionKeepsServing) {
  auto first = deploy(service("web", 2));
  ASSERT_FALSE(first.empty());
  ASSERT_EQ(first.back().event, "done") << server_->log();
  auto before = alloc_ids("web");

  auto start = std::chrono::steady_clock::now();
  auto events = deploy(service("web", 2, "command = [\"/bin/sh\", \"-c\", \"echo boom; exit 3\"]"));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().event, "failed") << server_->log();
  EXPECT_EQ(events.back().data.at("service").as_string(), "web");
  EXPECT_EQ(events.back().data.at("reason").as_string(), "container exited with code 3: boom");
  EXPECT_LT(took, 15s) << "an exit fails the deploy at once, not at the deadline";
  // Rolled back: the old allocations are untouched and still serve.
  EXPECT_EQ(alloc_ids("web"), before);
  auto web = service_json("web");
  for (auto& a : web.at("allocations").as_array()) {
    EXPECT_EQ(a.as_object().at("status").as_string(), "healthy");
    EXPECT_EQ(get(std::string(a.as_object().at("address").as_string()), "/health"), "ok");
  }
}

TEST_F(Deploy, AnImageThatDoesNotExistFailsWithTheReason) {
  ASSERT_EQ(deploy(service("web", 1)).back().event, "done");
  auto before = alloc_ids("web");
  auto events = deploy(service("web", 1, "", "nope"));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().event, "failed");
  std::string reason(events.back().data.at("reason").as_string());
  EXPECT_NE(reason.find("probe:nope"), std::string::npos) << reason;
  EXPECT_NE(reason.find("not found"), std::string::npos) << reason;
  EXPECT_EQ(events.back().data.at("service").as_string(), "web");
  // It failed in the pulling phase: nothing was placed.
  EXPECT_EQ(phases(events, "web"), "") << reason;
  EXPECT_EQ(alloc_ids("web"), before);
}

TEST_F(Deploy, BadConfigsAreRefusedWithPositionsAndChangeNothing) {
  ASSERT_EQ(deploy(service("web", 1)).back().event, "done");
  auto before = alloc_ids("web");
  int status = 0;
  std::string body;
  deploy("[service.web]\nimage = \"x\"\nreplicas = \"two\"\nimag = 1\n", &status, &body);
  EXPECT_EQ(status, 400) << body;
  auto errors = json::parse(body).as_object().at("errors").as_array();
  ASSERT_GE(errors.size(), 2u) << body;
  EXPECT_EQ(std::string(errors[0].as_string()).rfind("test.toml:3:", 0), 0u) << body;

  // A missing secret: at its reference, with the config's other errors.
  deploy(service("web", 1, "env = { DB = \"${secret:nope}\" }\nimag = 1"), &status, &body);
  EXPECT_EQ(status, 400) << body;
  errors = json::parse(body).as_object().at("errors").as_array();
  ASSERT_EQ(errors.size(), 2u) << body;
  EXPECT_EQ(errors[0].as_string(),
            "test.toml:7:14: service.web: env.DB: secret \"nope\" is not set (mill secret set "
            "nope)");
  EXPECT_EQ(std::string(errors[1].as_string()).rfind("test.toml:8:1: ", 0), 0u) << body;

  EXPECT_EQ(alloc_ids("web"), before);
  auto records = json::parse(call("GET", "/v1/deploys").body).as_array();
  EXPECT_EQ(records.size(), 1u) << "a refused config starts no deploy";
}

TEST_F(Deploy, ACrashingServiceIsRestartedWithBackoffAndCounted) {
  ASSERT_EQ(deploy(service("flaky", 1)).back().event, "done") << server_->log();
  // The test makes it crash (exit 2), three times, each once it is up again: restart N
  // waits 1 s doubled N-1 times, says so with the container's last line, and is counted.
  json::object alloc;
  auto restarts = [&] {
    auto allocs = service_json("flaky").at("allocations").as_array();
    if (allocs.empty()) return int64_t{-1};
    alloc = allocs[0].as_object();
    auto* r = alloc.if_contains("restarts");
    return r && r->is_int64() ? r->as_int64() : int64_t{0};
  };
  for (int64_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(eventually(
        [&] {
          return restarts() == n - 1 &&
                 get(std::string(alloc.at("address").as_string()), "/health") == "ok";
        },
        60s))
        << "restart " << n - 1 << " never came up: " << json::serialize(alloc);
    get(std::string(alloc.at("address").as_string()), "/exit?code=2");
    ASSERT_TRUE(eventually([&] { return restarts() == n; }, 60s)) << json::serialize(alloc);
    EXPECT_EQ(alloc.at("message").as_string(),
              "container exited with code 2: listening on :8080; restarting in " +
                  std::to_string(1 << (n - 1)) + "s")
        << json::serialize(alloc);
  }
  auto metrics = call("GET", "/v1/metrics").body;
  auto at = metrics.find("\nmill_alloc_restarts_total{");
  ASSERT_NE(at, std::string::npos) << metrics;
  auto line = metrics.substr(at + 1, metrics.find('\n', at + 1) - at - 1);
  EXPECT_NE(line.find("service=\"flaky\""), std::string::npos) << line;
  EXPECT_NE(line.find("node=\"node-1\""), std::string::npos) << line;
  EXPECT_EQ(line.substr(line.rfind(' ') + 1), "3") << line;
}

// A health check answered 404: the new allocation never becomes healthy, the deploy
// fails at the check's deadline with the check's answer, and the old allocations
// (never stopped before a healthy replacement) keep serving.
TEST_F(Deploy, AHealthCheckThatNeverPassesRollsBackAndTheOldAllocationsStay) {
  const std::string health = "health = { path = \"/health\", interval = \"100ms\" }\n";
  ASSERT_EQ(deploy(service("web", 2, health)).back().event, "done") << server_->log();
  auto before = alloc_ids("web");
  ASSERT_EQ(before.size(), 2u);

  auto events = deploy(service(
      "web", 2, "health = { path = \"/nope\", interval = \"100ms\", deadline = \"2s\" }\n"));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().event, "failed") << server_->log();
  EXPECT_EQ(events.back().data.at("reason").as_string(), "health check GET /nope: 404 after 2s");
  EXPECT_EQ(phases(events, "web"), "scheduled starting ");
  EXPECT_EQ(alloc_ids("web"), before);
  auto web = service_json("web");
  for (auto& a : web.at("allocations").as_array()) {
    EXPECT_EQ(a.as_object().at("status").as_string(), "healthy");
    EXPECT_EQ(get(std::string(a.as_object().at("address").as_string()), "/health"), "ok");
  }
}

// health = { command = [...] }: run in the container (its filesystem, as runc exec),
// it holds a new allocation back until it passes (the container makes /ready 1.5 s
// after it starts); a check that fails or hangs fails the deploy with the command's
// own words, and a hung one is killed, inside the container too.
TEST_F(Deploy, ACommandHealthCheckRunsInTheContainerAndGatesTheRollout) {
  const std::string gated =
      "env = { READY_AFTER_MS = \"1500\" }\n"
      "health = { command = [\"/probe\", \"--check\", \"/ready\"], interval = \"100ms\", "
      "deadline = \"20s\" }\n";
  auto events = deploy(service("db", 1, gated));
  ASSERT_EQ(events.back().event, "done") << server_->log();
  double healthy = -1;
  for (const auto& e : events) {
    if (e.event == "progress" && e.data.at("phase") == "healthy") {
      healthy = e.data.at("elapsed").to_number<double>();
    }
  }
  EXPECT_GE(healthy, 1.4) << "healthy before the command could pass";
  auto before = alloc_ids("db");
  ASSERT_EQ(before.size(), 1u);

  auto hung = deploy(
      service("db", 1,
              "health = { command = [\"/probe\", \"--hang\"], timeout = \"300ms\", interval = "
              "\"100ms\", deadline = \"2s\" }\n"));
  EXPECT_EQ(hung.back().event, "failed") << server_->log();
  EXPECT_EQ(hung.back().data.at("reason").as_string(),
            "health check command /probe --hang: timed out after 300ms after 2s");
  EXPECT_EQ(alloc_ids("db"), before) << "the old allocation stays";
  EXPECT_TRUE(
      eventually([] { return std::system("pgrep -f '^/probe --hang' >/dev/null") != 0; }, 5s))
      << "a timed-out check's process still runs";

  auto missing =
      deploy(service("db", 1,
                     "health = { command = [\"/probe\", \"--check\", \"/nothing\"], interval = "
                     "\"100ms\", deadline = \"1s\" }\n"));
  EXPECT_EQ(missing.back().event, "failed") << server_->log();
  EXPECT_EQ(missing.back().data.at("reason").as_string(),
            "health check command /probe --check /nothing: exit 3: /nothing is missing after 1s");
  auto db = service_json("db");
  for (auto& a : db.at("allocations").as_array()) {
    EXPECT_EQ(a.as_object().at("status").as_string(), "healthy");
  }
}

// A deploy that fails partway (services roll in name order: api, then web): what is
// deployed for each service is what runs for it, the same in GET /v1/services, GET
// /v1/services/NAME and `mill services`: after a first deploy (api 2/2, never 2/0)
// and after a later one whose failure rolls web back (api at its new spec, web at its
// old one).
TEST_F(Deploy, APartlyFailedDeployShowsWhatRunsForEachService) {
  const std::string good = "health = { path = \"/health\", interval = \"100ms\" }\n";
  const std::string bad =
      "health = { path = \"/nope\", interval = \"100ms\", deadline = \"2s\" }\n";
  const std::map<std::string, std::string> env{{"MILL_CONFIG", dir_.file("client.toml")},
                                               {"MILL_ADDR", server_->address()}};
  // Every view of `name` says `replicas` (healthy/desired) of `tag`, matching what runs.
  auto expect_shown = [&](const std::string& name, const std::string& tag, int healthy,
                          int desired) {
    const std::string image = registry_->host() + "/probe:" + tag;
    auto listed = service_json(name);
    ASSERT_FALSE(listed.empty());
    auto one = call("GET", "/v1/services/" + name);
    ASSERT_EQ(one.status, 200) << one.body;
    EXPECT_EQ(json::parse(one.body).as_object(), listed);
    EXPECT_EQ(listed.at("image").as_string(), image) << json::serialize(listed);
    const auto& replicas = listed.at("replicas").as_object();
    EXPECT_EQ(replicas.at("healthy").as_int64(), healthy) << json::serialize(listed);
    EXPECT_EQ(replicas.at("desired").as_int64(), desired) << json::serialize(listed);
    int running = 0;
    for (auto& a : listed.at("allocations").as_array()) {
      std::string at(a.as_object().at("address").as_string());
      running += get(at, "/env").find("VERSION=" + tag.substr(1)) != std::string::npos;
    }
    EXPECT_EQ(running, desired) << "allocations serving " << tag << ": " << json::serialize(listed);
    auto cli = run_mill({"services"}, env);
    EXPECT_EQ(cli.exit_code, 0) << cli.err;
    std::regex row("(^|\n)" + name + " +" + std::regex_replace(image, std::regex("[.]"), "\\.") +
                   " +" + std::to_string(healthy) + "/" + std::to_string(desired) + " *\n");
    EXPECT_TRUE(std::regex_search(cli.out, row)) << cli.out;
  };

  auto first = deploy(service("api", 2, good) + service("web", 1, bad));
  ASSERT_EQ(first.back().event, "failed") << server_->log();
  EXPECT_EQ(first.back().data.at("service").as_string(), "web");
  ASSERT_NO_FATAL_FAILURE(expect_shown("api", "v1", 2, 2));
  EXPECT_EQ(call("GET", "/v1/services/web").status, 404) << "web runs nothing, and never did";

  ASSERT_EQ(deploy(service("api", 2, good) + service("web", 1, good)).back().event, "done")
      << server_->log();
  auto web_before = alloc_ids("web");
  auto second = deploy(service("api", 1, good, "v2") + service("web", 1, bad, "v2"));
  ASSERT_EQ(second.back().event, "failed") << server_->log();
  EXPECT_EQ(second.back().data.at("service").as_string(), "web");
  EXPECT_EQ(alloc_ids("web"), web_before);
  ASSERT_NO_FATAL_FAILURE(expect_shown("api", "v2", 1, 1));
  ASSERT_NO_FATAL_FAILURE(expect_shown("web", "v1", 1, 1));
}

// POST /v1/restart/:service: every allocation replaced, one at a time, each old one
// stopped only after its replacement is healthy.
TEST_F(Deploy, RestartReplacesEveryAllocationOneAtATime) {
  const std::string health = "health = { path = \"/health\", interval = \"100ms\" }\n";
  ASSERT_EQ(deploy(service("web", 2, health)).back().event, "done") << server_->log();
  auto before = alloc_ids("web");
  auto events = deploy("", nullptr, nullptr, "/v1/restart/web");
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().event, "done") << server_->log();
  EXPECT_EQ(sorted_phases(events, "web"),
            "healthy healthy scheduled scheduled starting starting stopped stopped ");
  EXPECT_TRUE(stops_follow_health(events, "web")) << phases(events, "web");
  auto after = alloc_ids("web");
  ASSERT_EQ(after.size(), 2u);
  for (const auto& id : after) EXPECT_FALSE(before.contains(id)) << id;
  int status = 0;
  deploy("", &status, nullptr, "/v1/restart/nope");
  EXPECT_EQ(status, 404);
}

// GET /v1/logs/:service: every allocation's lines, in time order, each tagged with
// the allocation it comes from; tail counts over the merged log.
TEST_F(Deploy, AServicesLogMergesItsAllocationsInTimeOrder) {
  auto events = deploy(
      service("web", 2, "command = [\"/bin/sh\", \"-c\", \"echo one; echo two; exec /probe\"]"));
  ASSERT_EQ(events.back().event, "done") << server_->log();
  auto ids = alloc_ids("web");
  ASSERT_EQ(ids.size(), 2u);
  auto res = call("GET", "/v1/logs/web");
  ASSERT_EQ(res.status, 200) << res.body;
  net::SseParser parser;
  std::map<std::string, std::vector<std::string>> by_alloc;
  std::string last_ts;
  for (auto& e : parser.feed(res.body)) {
    auto o = json::parse(e.data).as_object();
    std::string alloc(o.at("alloc").as_string());
    EXPECT_TRUE(ids.contains(alloc)) << alloc;
    std::string ts(o.at("ts").as_string());
    EXPECT_LE(last_ts, ts) << "lines out of time order";
    last_ts = ts;
    by_alloc[alloc].push_back(std::string(o.at("line").as_string()));
  }
  ASSERT_EQ(by_alloc.size(), 2u) << res.body;
  for (auto& [alloc, lines] : by_alloc) {
    ASSERT_GE(lines.size(), 2u) << alloc;
    EXPECT_EQ(lines[0], "one");
    EXPECT_EQ(lines[1], "two");
  }
  auto tail = call("GET", "/v1/logs/web?tail=1");
  ASSERT_EQ(tail.status, 200);
  EXPECT_EQ(parser.feed(tail.body).size(), 1u) << tail.body;
  EXPECT_EQ(call("GET", "/v1/logs/nope").status, 404);
}

// Surge 1: a new allocation starts, becomes healthy, and only then an old one stops,
// so a 3-replica service has 3 healthy allocations throughout its rollout.
TEST_F(Deploy, ARollingUpdateNeverDropsBelowTheReplicaCount) {
  const std::string health = "health = { path = \"/health\", interval = \"100ms\" }\n";
  ASSERT_EQ(deploy(service("web", 3, health)).back().event, "done") << server_->log();
  std::atomic<bool> rolling{true};
  std::atomic<int> least{3}, samples{0};
  std::mutex mu;
  std::string problem;  // what the watcher could not read, for the failure message
  // The watcher thread only records: a throw or an assertion there would not be the
  // test's. Healthy means serving, so each healthy allocation is asked (twice before
  // it counts as down: one lost request on a loaded machine is not an outage).
  std::atomic<int> during{0};  // samples that saw the rollout under way
  auto healthy_now = [&]() -> std::optional<int> {
    net::ClientRequest req;
    req.target = "/v1/services";
    req.headers.push_back({"Authorization", "Bearer " + token_});
    req.timeout = 10s;
    auto res = net::http_request(server_->address(), req);
    boost::system::error_code ec;
    json::value list = res ? json::parse(res->body, ec) : json::value();
    if (!res || ec || !list.is_array()) {
      std::lock_guard lock(mu);
      problem = res ? "not JSON: " + res->body : res.error().to_string();
      return std::nullopt;
    }
    int healthy = 0, total = 0, marked_healthy = 0;
    for (auto& s : list.as_array()) {
      auto* allocs = s.is_object() ? s.as_object().if_contains("allocations") : nullptr;
      if (!allocs || !allocs->is_array()) continue;
      for (auto& a : allocs->as_array()) {
        ++total;
        auto* status = a.as_object().if_contains("status");
        auto* address = a.as_object().if_contains("address");
        if (!status || *status != "healthy" || !address || !address->is_string()) continue;
        ++marked_healthy;
        std::string at(address->as_string());
        if (get(at, "/health") == "ok" || get(at, "/health") == "ok") ++healthy;
      }
    }
    // A replacement on its way: four allocations, or one not (yet, or no longer) healthy.
    if (total != 3 || marked_healthy != total) ++during;
    return healthy;
  };
  std::thread watcher([&] {
    while (rolling) {
      if (auto healthy = healthy_now()) {
        least = std::min(least.load(), *healthy);
        ++samples;
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  struct Join {
    std::atomic<bool>& rolling;
    std::thread& t;
    ~Join() {
      rolling = false;
      if (t.joinable()) t.join();
    }
  } join{rolling, watcher};
  auto events = deploy(service("web", 3, health + "env = { V = \"2\" }"));
  rolling = false;
  watcher.join();
  ASSERT_EQ(events.back().event, "done") << server_->log();
  EXPECT_EQ(sorted_phases(events, "web"),
            "healthy healthy healthy scheduled scheduled scheduled starting starting starting "
            "stopped stopped stopped ");
  EXPECT_TRUE(stops_follow_health(events, "web")) << phases(events, "web");
  // Only worth something if it looked while replacements were on their way.
  EXPECT_GE(during.load(), 1) << "no sample saw the rollout under way (" << samples.load()
                              << " samples): " << problem;
  EXPECT_EQ(least.load(), 3) << "fewer healthy allocations than replicas during the rollout";
}

// The deploy runs on the server: the client that started it may leave; a second
// deploy meanwhile is refused with 409 naming the running one, whose record tells
// afterwards how it ended.
TEST_F(Deploy, ADeployOutlivesItsClientAndASecondOneIsRefused) {
  ASSERT_EQ(deploy(service("web", 1)).back().event, "done") << server_->log();
  auto slow = service("web", 1,
                      "health = { path = \"/nope\", interval = \"100ms\", deadline = \"15s\" }\n");
  auto cut = call("POST", "/v1/deploy", slow, "text/plain", 500ms);  // gives up mid-stream
  // The server has the deploy once it is listed, whatever the client did meanwhile.
  json::array list;
  ASSERT_TRUE(eventually(
      [&] {
        list = json::parse(call("GET", "/v1/deploys").body).as_array();
        return list.size() == 2u;
      },
      30s))
      << json::serialize(list);
  auto second = call("POST", "/v1/deploy", service("web", 2), "text/plain");
  ASSERT_EQ(second.status, 409) << second.body;
  std::string running(list[0].as_object().at("id").as_string());
  EXPECT_EQ(list[0].as_object().at("status").as_string(), "running");
  EXPECT_EQ(json::parse(second.body).as_object().at("deploy").as_string(), running);
  // It goes on without its client, to its end.
  json::object record;
  EXPECT_TRUE(eventually(
      [&] {
        record = json::parse(call("GET", "/v1/deploys/" + running).body).as_object();
        return record.at("status").as_string() != "running";
      },
      60s));
  EXPECT_EQ(record.at("status").as_string(), "failed");
  EXPECT_EQ(record.at("reason").as_string(), "health check GET /nope: 404 after 15s");
}

// kill -9 of the server in the middle of a 3-replica rolling update, at the `nth`
// event of phase `cut` on the deploy's stream; a new server on the same data dir
// carries the deploy on from its record and finishes it, without placing again what
// was placed, and a client re-attaches with GET /v1/deploys/:id?follow=true.
class DeployCut : public Deploy {
 protected:
  // `stage`: where the record says the deploy was (deploy_record.h).
  void cut_and_carry_on(const std::string& cut, int nth, const std::string& stage);
};

void DeployCut::cut_and_carry_on(const std::string& cut, int nth, const std::string& stage) {
  // New allocations take 2 s to serve: the rollout spends its time in `starting`.
  auto web = [&](const std::string& tag) {
    return service("web", 3,
                   "health = { path = \"/health\", interval = \"100ms\" }\n"
                   "command = [\"/bin/sh\", \"-c\", \"sleep 2; exec /probe\"]\n",
                   tag);
  };
  ASSERT_EQ(deploy(web("v1")).back().event, "done") << server_->log();
  const auto before = alloc_ids("web");
  ASSERT_EQ(before.size(), 3u);

  std::string id, seen;
  int count = 0;
  net::SseParser parser;
  net::ClientRequest req;
  req.method = "POST";
  req.target = "/v1/deploy?file=test.toml";
  req.body = web("v2");
  req.content_type = "text/plain";
  req.headers.push_back({"Authorization", "Bearer " + token_});
  req.timeout = 60s;
  req.body_sink = [&](std::string_view chunk) -> Result<void> {
    for (auto& e : parser.feed(chunk)) {
      boost::system::error_code ec;
      auto v = json::parse(e.data, ec);
      if (ec || !v.is_object()) continue;
      const auto& o = v.as_object();
      std::string phase = o.contains("phase") ? std::string(o.at("phase").as_string()) : "";
      if (phase == "started") id = std::string(o.at("deploy").as_string());
      seen += e.event + ":" + phase + " ";
      if (phase == cut && ++count == nth) {
        (void)server_->stop(SIGKILL);
        return make_error(ErrorCode::kInternal, "cut");
      }
    }
    return {};
  };
  (void)net::http_request(server_->address(), req);
  ASSERT_FALSE(id.empty()) << seen;
  ASSERT_EQ(count, nth) << "the stream ended before the cut: " << seen;
  server_.reset();

  server_ = MillServer::start(
      dir_, {"--bridge", bridge_, "--cluster-network", cluster_, "--stop-grace", "2s",
             "--proxy-http", "127.0.0.1:0", "--proxy-https", "127.0.0.1:0"});
  ASSERT_TRUE(server_) << read_file_text(dir_.file("server.log"));
  auto follow = call("GET", "/v1/deploys/" + id + "?follow=true");
  ASSERT_EQ(follow.status, 200) << follow.body;
  auto events = read_events(follow.body);
  ASSERT_EQ(events.back().event, "done") << follow.body << "\n" << server_->log();
  EXPECT_NE(
      server_->log().find("deploy " + id + ": carrying on after a server restart (" + stage + ")"),
      std::string::npos)
      << server_->log();
  // Every replacement happened once: nothing placed twice, nothing lost.
  EXPECT_EQ(sorted_phases(events, "web"),
            "healthy healthy healthy scheduled scheduled scheduled starting starting starting "
            "stopped stopped stopped ")
      << "cut at " << seen;
  auto record = json::parse(call("GET", "/v1/deploys/" + id).body).as_object();
  EXPECT_EQ(record.at("status").as_string(), "done");
  auto now = service_json("web");
  ASSERT_FALSE(now.empty());
  int healthy = 0;
  for (auto& a : now.at("allocations").as_array()) {
    const auto& o = a.as_object();
    EXPECT_FALSE(before.contains(std::string(o.at("id").as_string()))) << json::serialize(o);
    healthy += o.at("status").as_string() == "healthy";
  }
  EXPECT_EQ(healthy, 3) << json::serialize(now);
  EXPECT_EQ(now.at("allocations").as_array().size(), 3u) << json::serialize(now);
}

TEST_F(DeployCut, KilledDuringThePullTheNextServerFinishesTheDeploy) {
  cut_and_carry_on("pulling", 1, "pulling");
}

TEST_F(DeployCut, KilledWhileANewAllocationStartsTheNextServerFinishesTheDeploy) {
  cut_and_carry_on("scheduled", 1, "rolling");
}

TEST_F(DeployCut, KilledBetweenReplacementsTheNextServerFinishesTheDeploy) {
  cut_and_carry_on("stopped", 1, "rolling");
}

// The README's quick start with the CLI, as a new user runs it (a task, deploy v1,
// roll to v2, a v3 that fails its check and rolls back), then the server stops with a
// task and two replicas still running and `mill cleanup` leaves nothing: no netns
// file or mount, nothing mounted under the data dir, which `rm -rf` removes. On a
// machine whose /run is no mount of its own (this one, CI's), cleanup used to fail
// with "remove /run/netns/...: Device or resource busy" (issue 15 item 14).
TEST_F(Deploy, TheQuickStartThenCleanupLeavesNothingBehind) {
  const std::map<std::string, std::string> env{{"MILL_CONFIG", dir_.file("client.toml")},
                                               {"MILL_ADDR", server_->address()}};
  auto spawned = run_mill(
      {"spawn", "--image", registry_->host() + "/probe:v1", "--port", "8080", "--timeout", "30m"},
      env);
  ASSERT_EQ(spawned.exit_code, 0) << spawned.out << spawned.err;
  const std::string health = "health = { path = \"/health\", interval = \"100ms\" }\n";
  const std::string file = dir_.file("mill.toml");
  auto deploy_cli = [&](const std::string& text) {
    std::ofstream(file) << text;
    return run_mill({"deploy", "--plain", file}, env);
  };
  auto v1 = deploy_cli(service("hello", 2, health, "v1"));
  ASSERT_EQ(v1.exit_code, 0) << v1.out << v1.err;
  auto v2 = deploy_cli(service("hello", 2, health, "v2"));
  ASSERT_EQ(v2.exit_code, 0) << v2.out << v2.err;
  auto v3 = deploy_cli(
      service("hello", 2,
              "health = { path = \"/nope\", interval = \"100ms\", deadline = \"2s\" }\n", "v1"));
  ASSERT_EQ(v3.exit_code, 1) << v3.out << v3.err;
  auto ps = run_mill({"services"}, env);
  EXPECT_NE(ps.out.find("2/2"), std::string::npos) << ps.out;

  server_->stop(SIGTERM);
  server_.reset();
  auto cleaned = run_mill({"cleanup", "--data-dir", dir_.file("data")});
  EXPECT_EQ(cleaned.exit_code, 0) << cleaned.out << cleaned.err;
  EXPECT_EQ((cleaned.out + cleaned.err).find("busy"), std::string::npos) << cleaned.err;
  const std::string data = dir_.file("data");
  std::istringstream mounts(read_file_text("/proc/self/mountinfo"));
  for (std::string line; std::getline(mounts, line);) {
    EXPECT_EQ(line.find(" " + data + "/"), std::string::npos) << "still mounted: " << line;
    EXPECT_EQ(line.find("/run/mill/" + bridge_ + "/"), std::string::npos)
        << "still mounted: " << line;
    EXPECT_EQ(line.find("/run/netns/" + bridge_), std::string::npos) << "still mounted: " << line;
  }
  EXPECT_FALSE(std::filesystem::exists("/run/mill/" + bridge_));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
    EXPECT_FALSE(entry.path().filename().string().starts_with(bridge_)) << entry.path();
  }
  std::filesystem::remove_all(data, ec);
  EXPECT_FALSE(ec) << "rm -rf " << data << ": " << ec.message();
}

// `mill deploy FILE`: exit 0 on done, 1 on failed (with the reason), 2 for a config
// the server refuses (with line and column).
TEST_F(Deploy, TheCliReportsTheOutcomeInItsExitCode) {
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir_.file(name)) << text;
    return dir_.file(name);
  };
  const std::map<std::string, std::string> env{{"MILL_CONFIG", dir_.file("client.toml")},
                                               {"MILL_ADDR", server_->address()}};
  auto ok = run_mill({"deploy", "--plain", write("ok.toml", service("web", 1))}, env);
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("web"), std::string::npos) << ok.out;
  auto bad = run_mill({"deploy", "--plain", write("bad.toml", service("web", 1, "", "nope"))}, env);
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE((bad.out + bad.err).find("probe:nope"), std::string::npos) << bad.out << bad.err;
  auto invalid =
      run_mill({"deploy", write("invalid.toml", "[service.web]\nreplicas = \"x\"\n")}, env);
  EXPECT_EQ(invalid.exit_code, 2) << invalid.out << invalid.err;
  EXPECT_NE((invalid.out + invalid.err).find("invalid.toml:2:"), std::string::npos)
      << invalid.out << invalid.err;
  auto ps = run_mill({"services"}, env);
  EXPECT_EQ(ps.exit_code, 0) << ps.err;
  EXPECT_NE(ps.out.find("healthy"), std::string::npos) << ps.out;
}

// A volume is made on the node where its service lands, keeps its data across a
// redeploy, cannot be deleted while a service mounts it, and goes (from disk too)
// when deleted after the service is gone.
TEST_F(Deploy, AVolumeKeepsItsDataAcrossARedeployAndIsDeletedOnlyWhenUnused) {
  auto db = [&](const std::string& v) {
    return service("db", 1,
                   "volumes = [\"data:/data\"]\nenv = { V = \"" + v +
                       "\" }\ncommand = [\"/bin/sh\", \"-c\", "
                       "\"echo v$V >> /data/log; cat /data/log; exec /probe\"]\n") +
           "[volume.data]\nsize = \"16M\"\n";
  };
  ASSERT_EQ(deploy(db("1")).back().event, "done") << server_->log();
  // A service that writes its volume rolls stop-first: the old container has stopped
  // (ended) before the new one is even scheduled, and the events say so.
  auto second = deploy(db("2"));
  ASSERT_EQ(second.back().event, "done") << server_->log();
  std::vector<std::string> phases;
  for (const auto& e : second) {
    const auto* phase = e.data.if_contains("phase");
    if (!phase || !e.data.contains("service")) continue;
    phases.emplace_back(phase->as_string());
    if (phases.back() == "scheduled") {
      ASSERT_TRUE(e.data.contains("order")) << json::serialize(e.data);
      EXPECT_EQ(e.data.at("order").as_string(), "stop-first");
    }
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"stopped", "scheduled", "starting", "healthy"}));
  auto ids = alloc_ids("db");
  ASSERT_EQ(ids.size(), 1u);
  // The second container saw what the first wrote.
  auto log = call("GET", "/v1/logs/" + *ids.begin());
  EXPECT_NE(log.body.find("\"line\":\"v1\""), std::string::npos) << log.body;
  EXPECT_NE(log.body.find("\"line\":\"v2\""), std::string::npos) << log.body;

  auto list = call("GET", "/v1/volumes");
  ASSERT_EQ(list.status, 200) << list.body;
  auto volumes = json::parse(list.body).as_array();
  ASSERT_EQ(volumes.size(), 1u) << list.body;
  auto vol = volumes[0].as_object();
  EXPECT_EQ(vol.at("name").as_string(), "data");
  EXPECT_EQ(vol.at("node").as_string(), "node-1");
  EXPECT_EQ(vol.at("size").as_int64(), 16 << 20);
  EXPECT_EQ(vol.at("service").as_string(), "db");
  EXPECT_TRUE(std::filesystem::exists(dir_.file("data/volumes/data/disk.img")));
  const std::map<std::string, std::string> env{{"MILL_CONFIG", dir_.file("client.toml")},
                                               {"MILL_ADDR", server_->address()}};
  auto cli = run_mill({"volumes"}, env);
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("data"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("node-1"), std::string::npos) << cli.out;
  auto rm = run_mill({"volume", "rm", "data"}, env);
  EXPECT_EQ(rm.exit_code, 1) << rm.out;
  EXPECT_NE((rm.out + rm.err).find("db"), std::string::npos) << rm.out << rm.err;

  auto busy = call("DELETE", "/v1/volumes/data");
  EXPECT_EQ(busy.status, 409) << busy.body;
  EXPECT_EQ(json::parse(busy.body).as_object().at("service").as_string(), "db");

  // db leaves the config (the volume stays declared, unused): now it may go.
  ASSERT_EQ(deploy(service("web", 1) + "[volume.data]\nsize = \"16M\"\n").back().event, "done")
      << server_->log();
  auto gone = call("DELETE", "/v1/volumes/data");
  EXPECT_EQ(gone.status, 200) << gone.body;
  EXPECT_FALSE(std::filesystem::exists(dir_.file("data/volumes/data/disk.img")));
  EXPECT_EQ(call("DELETE", "/v1/volumes/data").status, 404);
  EXPECT_EQ(call("DELETE", "/v1/volumes/nope").status, 404);
}

// The deployed config, the volume and its data outlive the server: after `mill
// cleanup` (which unmounts volumes) and a new server on the same data dir, a redeploy
// finds what the first container wrote, and the deploy records are still there.
TEST_F(Deploy, AVolumeAndTheDeployedConfigSurviveAServerRestart) {
  auto db = [&](const std::string& v) {
    return service("db", 1,
                   "volumes = [\"data:/data\"]\nenv = { V = \"" + v +
                       "\" }\ncommand = [\"/bin/sh\", \"-c\", "
                       "\"echo v$V >> /data/log; cat /data/log; exec /probe\"]\n") +
           "[volume.data]\nsize = \"16M\"\n";
  };
  ASSERT_EQ(deploy(db("1")).back().event, "done") << server_->log();
  ASSERT_EQ(server_->stop(SIGTERM), 0) << server_->log();
  server_.reset();
  auto cleaned = run_mill({"cleanup", "--data-dir", dir_.file("data")});
  ASSERT_EQ(cleaned.exit_code, 0) << cleaned.err;
  server_ = MillServer::start(
      dir_, {"--bridge", bridge_, "--cluster-network", cluster_, "--stop-grace", "2s"});
  ASSERT_TRUE(server_);
  // The deployed config came back: deploying it again changes nothing.
  auto same = deploy(db("1"));
  ASSERT_FALSE(same.empty());
  EXPECT_EQ(same.back().event, "done") << server_->log();
  EXPECT_EQ(phases(same, "db"), "") << "the allocation came back with the server";
  EXPECT_EQ(json::parse(call("GET", "/v1/deploys").body).as_array().size(), 2u);
  auto volumes = json::parse(call("GET", "/v1/volumes").body).as_array();
  ASSERT_EQ(volumes.size(), 1u);
  EXPECT_EQ(volumes[0].as_object().at("node").as_string(), "node-1");
  ASSERT_EQ(deploy(db("2")).back().event, "done") << server_->log();
  auto ids = alloc_ids("db");
  ASSERT_EQ(ids.size(), 1u);
  auto log = call("GET", "/v1/logs/" + *ids.begin());
  EXPECT_NE(log.body.find("\"line\":\"v1\""), std::string::npos) << log.body;
  EXPECT_NE(log.body.find("\"line\":\"v2\""), std::string::npos) << log.body;
  // The container that ended with the cleanup was started again by the new agent with
  // its env (which the agent's record does not keep), not with blank values.
  EXPECT_EQ(log.body.find("\"line\":\"v\""), std::string::npos) << log.body;
}

// A secret's value reaches the container's environment and nothing else: not the
// server's log, the deploy's events or record, the services list, nor the data dir
// once the allocation has stopped.
TEST_F(Deploy, ASecretsValueIsOnlyInTheContainersEnvironment) {
  const std::string value = "s3cr3t-" + std::to_string(std::random_device{}());
  ASSERT_EQ(call("PUT", "/v1/secrets/db_pass", "{\"value\": \"" + value + "\"}").status, 200);
  int status = 0;
  std::string body;
  auto events =
      deploy(service("web", 1, "env = { DB_PASS = \"${secret:db_pass}\" }"), &status, &body);
  ASSERT_FALSE(events.empty()) << body;
  ASSERT_EQ(events.back().event, "done") << server_->log();
  EXPECT_EQ(body.find(value), std::string::npos);
  auto web = service_json("web");
  auto address =
      std::string(web.at("allocations").as_array().at(0).as_object().at("address").as_string());
  EXPECT_NE(get(address, "/env").find("DB_PASS=" + value), std::string::npos);
  EXPECT_EQ(call("GET", "/v1/services").body.find(value), std::string::npos);
  EXPECT_EQ(call("GET", "/v1/deploys").body.find(value), std::string::npos);
  std::string id(events.front().data.at("deploy").as_string());
  EXPECT_EQ(call("GET", "/v1/deploys/" + id).body.find(value), std::string::npos);
  std::string alloc(web.at("allocations").as_array().at(0).as_object().at("id").as_string());
  EXPECT_EQ(call("GET", "/v1/logs/" + alloc).body.find(value), std::string::npos);

  // Removed from the config: its allocation stops.
  ASSERT_EQ(deploy(service("api", 1)).back().event, "done") << server_->log();
  for (auto& s : services()) EXPECT_NE(s.as_object().at("name").as_string(), "web");
  EXPECT_EQ(server_->log().find(value), std::string::npos);
  std::string tree = read_tree(dir_.path());
  ASSERT_GT(tree.size(), 0u) << "nothing read under " << dir_.path();
  EXPECT_EQ(tree.find(value), std::string::npos) << "the secret's value is on disk";
}

// The lines of a Prometheus exposition that are samples of `name` (not its _sum or
// _bucket series, and not its HELP/TYPE comments).
std::vector<std::string> samples_of(const std::string& exposition, const std::string& name) {
  std::vector<std::string> out;
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(name + "{") || line.starts_with(name + " ")) out.push_back(line);
  }
  return out;
}

double value_of(const std::string& sample) {
  return std::atof(sample.c_str() + sample.rfind(' ') + 1);
}

// What the spec promises about a running service and task, seen through the API: the
// overview and the node list count them, allocations carry live usage (not zeros), a
// task names its node, /v1/metrics has the spec's families with the spec's labels, and
// a service's log is an SSE stream that follows as lines are written.
TEST_F(Deploy, StatusNodesUsageMetricsAndLogsShowWhatRuns) {
  const std::string health = "health = { path = \"/health\", interval = \"100ms\" }\n";
  ASSERT_EQ(deploy(service("web", 2, health)).back().event, "done") << server_->log();
  // Fresh replicas show what they use from their first report on (issue 15 item 15):
  // memory is read as the container starts, never a 0B that means "not yet".
  const auto fresh = service_json("web");
  for (const auto& a : fresh.at("allocations").as_array()) {
    const auto* memory = a.as_object().if_contains("memory");
    EXPECT_TRUE(memory && memory->is_number() && memory->to_number<double>() > 0)
        << json::serialize(a);
  }
  auto listed = run_mill({"services"}, {{"MILL_ADDR", server_->address()}, {"MILL_TOKEN", token_}});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out.find(" 0B "), std::string::npos) << listed.out;
  auto spawned = call(
      "POST", "/v1/tasks/spawn",
      R"({"image":")" + registry_->host() + R"(/probe:v1","port":8080,"cpu":0.1,"memory":"32M"})",
      "application/json");
  ASSERT_EQ(spawned.status, 201) << spawned.body;
  std::string task(json::parse(spawned.body).as_object().at("id").as_string());

  // GET /v1/status: the service with its replicas, the task, the node's count.
  auto status = json::parse(call("GET", "/v1/status").body).as_object();
  const auto& services = status.at("services").as_array();
  ASSERT_EQ(services.size(), 1u) << json::serialize(status);
  const auto& web = services.at(0).as_object();
  EXPECT_EQ(web.at("name").as_string(), "web");
  EXPECT_EQ(web.at("replicas").as_object().at("desired").as_int64(), 2);
  EXPECT_EQ(web.at("replicas").as_object().at("healthy").as_int64(), 2);
  EXPECT_EQ(web.at("allocations").as_int64(), 2);
  const auto& tasks = status.at("tasks").as_array();
  ASSERT_EQ(tasks.size(), 1u) << json::serialize(status);
  EXPECT_EQ(tasks.at(0).as_object().at("id").as_string(), task);
  EXPECT_EQ(tasks.at(0).as_object().at("node").as_string(), "node-1");
  EXPECT_EQ(status.at("nodes").as_array().at(0).as_object().at("allocations").as_int64(), 3)
      << "two service allocations and a task";
  // GET /v1/nodes counts the same; GET /v1/tasks/:id names the node.
  auto nodes = json::parse(call("GET", "/v1/nodes").body).as_array();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes.at(0).as_object().at("allocations").as_int64(), 3);
  auto one = json::parse(call("GET", "/v1/tasks/" + task).body).as_object();
  EXPECT_EQ(one.at("node").as_string(), "node-1");
  // A running task's usage is measured too: its memory shows once a report carries it.
  EXPECT_TRUE(eventually(
      [&] {
        one = json::parse(call("GET", "/v1/tasks/" + task).body).as_object();
        auto* usage = one.if_contains("usage");
        return usage && usage->is_object() &&
               usage->as_object().at("memory_bytes").to_number<double>() > 0;
      },
      60s))
      << json::serialize(one);
  // The CLI shows the same counts.
  auto cli = run_mill({"status"}, {{"MILL_ADDR", server_->address()}, {"MILL_TOKEN", token_}});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("Services: 1"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("Tasks:    1"), std::string::npos) << cli.out;

  // Usage is measured: keep one allocation busy until its cpu shows, with its memory.
  auto allocs = service_json("web").at("allocations").as_array();
  ASSERT_EQ(allocs.size(), 2u);
  std::string busy_id(allocs.at(0).as_object().at("id").as_string());
  std::string busy_at(allocs.at(0).as_object().at("address").as_string());
  std::atomic<bool> spinning{true};
  std::jthread spinner([&] {
    while (spinning) get(busy_at, "/spin?ms=1000");
  });
  json::object busy;
  bool measured = eventually(
      [&] {
        auto now = service_json("web");
        for (auto& a : now.at("allocations").as_array()) {
          if (a.as_object().at("id").as_string() == busy_id) busy = a.as_object();
        }
        return busy.contains("cpu") && busy.at("cpu").to_number<double>() > 0.05 &&
               busy.at("memory").to_number<double>() > 0;
      },
      60s);
  spinning = false;
  EXPECT_TRUE(measured) << "usage never showed: " << json::serialize(busy);

  // /v1/metrics: every family of the spec that has samples now, with its labels.
  auto metrics = call("GET", "/v1/metrics").body;
  auto has_sample = [&](const std::string& name, const std::vector<std::string>& labels,
                        bool positive) {
    for (const auto& line : samples_of(metrics, name)) {
      bool all = std::all_of(labels.begin(), labels.end(), [&](const std::string& l) {
        return line.find(l) != std::string::npos;
      });
      if (all && (!positive || value_of(line) > 0)) return true;
    }
    return false;
  };
  const std::vector<std::string> web_labels{"service=\"web\"", "node=\"node-1\""};
  EXPECT_TRUE(has_sample("mill_alloc_cpu_usage", web_labels, true)) << metrics;
  EXPECT_TRUE(has_sample("mill_alloc_memory_bytes", web_labels, true)) << metrics;
  EXPECT_TRUE(has_sample("mill_alloc_restarts_total", web_labels, false)) << metrics;
  EXPECT_TRUE(has_sample("mill_node_cpu_available", {"node=\"node-1\""}, false)) << metrics;
  EXPECT_TRUE(has_sample("mill_node_memory_available_bytes", {"node=\"node-1\""}, true)) << metrics;
  EXPECT_TRUE(has_sample("mill_tasks_spawned_total", {"task=\"inline\""}, true)) << metrics;

  // A service's log: SSE, and with follow=true new lines arrive as they are written.
  auto logs = call("GET", "/v1/logs/web");
  ASSERT_EQ(logs.status, 200) << logs.body;
  const std::string* type = logs.header("Content-Type");
  EXPECT_TRUE(type && type->starts_with("text/event-stream")) << (type ? *type : "(none)");
  const std::string marker = "followed-" + std::to_string(std::random_device{}());
  std::atomic<bool> seen{false};
  std::jthread follower([&] {
    net::SseParser parser;
    net::ClientRequest req;
    req.target = "/v1/logs/web?follow=true&tail=0";
    req.headers.push_back({"Authorization", "Bearer " + token_});
    req.timeout = 30s;
    req.body_sink = [&](std::string_view chunk) -> Result<void> {
      for (auto& e : parser.feed(chunk)) {
        if (e.data.find(marker) != std::string::npos) seen = true;
      }
      if (seen) return make_error(ErrorCode::kUnavailable, "seen");  // ends the stream
      return {};
    };
    (void)net::http_request(server_->address(), req);
  });
  std::string other_at(allocs.at(1).as_object().at("address").as_string());
  EXPECT_TRUE(eventually(
      [&] {
        get(other_at, "/log?line=" + marker);
        return seen.load();
      },
      30s))
      << "a line written to a service's allocation did not reach its follower";
  follower.join();

  // The task ends: its duration is in the histogram, and the counts drop.
  ASSERT_EQ(call("DELETE", "/v1/tasks/" + task).status, 200);
  metrics = call("GET", "/v1/metrics").body;
  EXPECT_TRUE(has_sample("mill_tasks_duration_seconds_count", {"task=\"inline\""}, true))
      << metrics;
  status = json::parse(call("GET", "/v1/status").body).as_object();
  EXPECT_TRUE(status.at("tasks").as_array().empty()) << json::serialize(status);
  EXPECT_EQ(status.at("nodes").as_array().at(0).as_object().at("allocations").as_int64(), 2);
}

}  // namespace
}  // namespace mill::testing
