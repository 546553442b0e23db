// kill -9 of `mill server` 20 times under mixed load (issue 16's chaos suite): while
// clients spawn and kill tasks, write secrets and deploy a service, the server is
// SIGKILLed at random moments and started again on the same data dir. Nothing a
// client was told is done may be lost: every acknowledged secret write and spawn is
// there, no two live allocations share an address, every container on the node
// belongs to an allocation the server knows, deploys cut by a kill are finished, and
// `mill cleanup` leaves nothing of the node on the host.

#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <thread>

#include "chaos_fixture.h"
#include "net/sse.h"

namespace mill::testing {
namespace {

constexpr int kKills = 20;
constexpr int kSecrets = 5;

class ServerKill : public Chaos {
 protected:
  // The server's address, "" while it is down: the load's threads call whichever
  // server runs.
  std::string address() {
    std::lock_guard lock(address_mu_);
    return address_;
  }
  void set_address(std::string a) {
    std::lock_guard lock(address_mu_);
    address_ = std::move(a);
  }

  std::string web_config(int generation) const {
    return "[service.web]\nimage = \"" + image() +
           "\"\nreplicas = 1\nport = 8080\ncpu = 0.1\nmemory = \"32M\"\n"
           "env = { GEN = \"" +
           std::to_string(generation) + "\" }\n";
  }

  // POSTs a deploy of generation `generation` and reads its stream: true when it
  // ended with `done` (acknowledged), false on a refusal, a failure or a cut stream.
  bool deploy(const std::string& addr, int generation) {
    auto res =
        try_call(addr, "POST", "/v1/deploy?file=chaos.toml", web_config(generation), "text/plain");
    if (!res || res->status != 200) return false;
    net::SseParser parser;
    auto events = parser.feed(res->body);
    return !events.empty() && events.back().event == "done";
  }

  // The GEN of the service's one allocation, from the probe's /env at its address;
  // -1 while there is not exactly one answering.
  int running_generation() {
    auto services = get_json("/v1/services");
    if (!services.is_array() || services.as_array().size() != 1) return -1;
    const auto& allocs = services.as_array()[0].as_object().at("allocations").as_array();
    if (allocs.size() != 1 || str(allocs[0].as_object(), "status") != "healthy") return -1;
    std::string address = str(allocs[0].as_object(), "address");
    net::ClientRequest req;
    req.target = "/env";
    req.timeout = 2s;
    auto env = net::http_request(address, req);
    if (!env || env->status != 200) return -1;
    auto at = env->body.find("\nGEN=");
    return at == std::string::npos ? -1 : std::atoi(env->body.c_str() + at + 5);
  }

  // Two live allocations with one address, as "IP: id id; "; "" when there are none.
  std::string duplicate_addresses() {
    std::map<std::string, std::vector<std::string>> by_ip;
    for (const auto& [id, ip] : live_allocations()) {
      if (!ip.empty()) by_ip[ip].push_back(id);
    }
    std::string out;
    for (const auto& [ip, ids] : by_ip) {
      if (ids.size() < 2) continue;
      out += ip + ":";
      for (const auto& id : ids) out += " " + id;
      out += "; ";
    }
    return out;
  }

  std::mutex address_mu_;
  std::string address_;
};

TEST_F(ServerKill, TwentyKillsUnderLoadLoseNoAcknowledgedWriteAndLeakNothing) {
  const auto began = std::chrono::steady_clock::now();
  const unsigned seed = std::random_device{}();
  std::cout << "seed " << seed << "\n";
  std::mt19937 random(seed);
  set_address(server_->address());
  std::atomic<bool> done{false};

  // What the clients were told (acknowledged) and tried, for the checks at the end.
  std::mutex spawns_mu;
  std::vector<std::string> acked_spawns;
  std::map<int, int> spawn_answers;  // status (0: no answer) -> count
  std::mutex secrets_mu;
  std::array<int, kSecrets> acked{}, attempted{};  // per secret: value numbers
  acked.fill(-1);
  attempted.fill(-1);
  int secret_acks = 0;
  std::atomic<int> last_acked_generation{-1}, generations{0}, deploy_acks{0};
  // The load's threads end with the test, also when an assertion returns early.
  std::vector<std::thread> load;
  struct Join {
    std::atomic<bool>& done;
    std::vector<std::thread>& threads;
    ~Join() {
      done = true;
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } join{done, load};

  // Spawns: half end by their 1 s timeout, half are killed by DELETE two spawns on.
  load.emplace_back([&] {
    std::vector<std::string> running;
    for (int n = 0; !done; ++n) {
      const std::string addr = address();
      if (addr.empty()) {
        std::this_thread::sleep_for(20ms);
        continue;
      }
      const bool timed = n % 2 == 0;
      auto res = try_call(addr, "POST", "/v1/tasks/spawn",
                          R"({"image":")" + image() + R"(","port":8080,"cpu":0.05,"memory":"32M")" +
                              (timed ? R"(,"timeout":"1s"})" : "}"),
                          "application/json", 30s);
      {
        std::lock_guard lock(spawns_mu);
        ++spawn_answers[res ? res->status : 0];
        if (res && res->status == 201) {
          std::string id = str(json::parse(res->body).as_object(), "id");
          acked_spawns.push_back(id);
          if (!timed) running.push_back(id);
        }
      }
      while (running.size() > 2) {
        auto killed = try_call(address(), "DELETE", "/v1/tasks/" + running.front());
        if (!killed || killed->status != 200) break;  // again next time round
        running.erase(running.begin());
      }
      std::this_thread::sleep_for(30ms);
    }
  });

  // Secret writes: values numbered per name; a write is acknowledged by its 2xx.
  load.emplace_back([&] {
    for (int n = 0; !done; ++n) {
      const std::string addr = address();
      if (addr.empty()) {
        std::this_thread::sleep_for(20ms);
        continue;
      }
      const int k = n % kSecrets;
      {
        std::lock_guard lock(secrets_mu);
        attempted[k] = n;
      }
      auto res = try_call(addr, "PUT", "/v1/secrets/chaos" + std::to_string(k),
                          R"({"value":"value-)" + std::to_string(n) + R"("})");
      if (res && res->status / 100 == 2) {
        std::lock_guard lock(secrets_mu);
        acked[k] = n;
        ++secret_acks;
      }
      std::this_thread::sleep_for(10ms);
    }
  });

  // Deploys of the service `web`, a new generation each time, now and then.
  load.emplace_back([&] {
    while (!done) {
      const std::string addr = address();
      if (!addr.empty()) {
        const int generation = generations++;
        if (deploy(addr, generation)) {
          last_acked_generation = generation;
          ++deploy_acks;
        }
      }
      for (int i = 0; i < 50 && !done; ++i) std::this_thread::sleep_for(20ms);
    }
  });

  // Every acknowledged secret write is there: the last acknowledged value, or one
  // written after it whose answer a kill cut off.
  auto problems_with_secrets = [&](const std::string& when, std::vector<std::string>& out) {
    std::array<int, kSecrets> acked_now, attempted_now;
    {
      std::lock_guard lock(secrets_mu);
      acked_now = acked;
      attempted_now = attempted;
    }
    for (int k = 0; k < kSecrets; ++k) {
      if (acked_now[k] < 0) continue;
      const std::string name = "chaos" + std::to_string(k);
      auto res = call("GET", "/v1/secrets/" + name);
      std::string value =
          res.status == 200 ? str(json::parse(res.body).as_object(), "value") : res.body;
      int n = value.starts_with("value-") ? std::atoi(value.c_str() + 6) : -1;
      if (n < acked_now[k] || n > attempted_now[k]) {
        out.push_back(when + name + " is " + value + " (" + std::to_string(res.status) +
                      "), acknowledged value-" + std::to_string(acked_now[k]) +
                      ", last written value-" + std::to_string(attempted_now[k]));
      }
    }
  };
  // Every acknowledged spawn is a task the server knows.
  auto problems_with_spawns = [&](const std::string& when, std::vector<std::string>& out) {
    std::vector<std::string> acked_now;
    {
      std::lock_guard lock(spawns_mu);
      acked_now = acked_spawns;
    }
    std::set<std::string> known;
    auto all = get_json("/v1/tasks?all=true");
    if (all.is_array()) {
      for (auto& t : all.as_array()) known.insert(str(t.as_object(), "id"));
    }
    for (const auto& id : acked_now) {
      if (!known.contains(id)) out.push_back(when + "the acknowledged spawn " + id + " is lost");
    }
  };

  // The kills, at random moments: 0.3 to 4 s of load on each server.
  std::vector<std::string> problems;
  for (int kill = 1; kill <= kKills && problems.empty(); ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + random() % 3700));
    set_address("");
    ASSERT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
    server_.reset();
    ASSERT_NO_FATAL_FAILURE(start());
    if (::testing::Test::HasFatalFailure()) break;
    // Cheap checks on the fresh server before the load reaches it again: what was
    // acknowledged before the kill is there, and no address is given twice.
    const std::string after = "after kill " + std::to_string(kill) + ": ";
    if (auto dups = duplicate_addresses(); !dups.empty()) {
      problems.push_back(after + "one address, two live allocations: " + dups);
    }
    problems_with_secrets(after, problems);
    problems_with_spawns(after, problems);
    set_address(server_->address());
  }
  done = true;
  for (auto& t : load) t.join();
  const auto load_ended = std::chrono::steady_clock::now();
  ASSERT_TRUE(server_);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems) << "\n" << server_->log();

  std::cout << "spawn answers:";
  for (auto [status, count] : spawn_answers) std::cout << " " << status << "×" << count;
  std::cout << "\nacknowledged: " << acked_spawns.size() << " spawns, " << secret_acks
            << " secret writes, " << deploy_acks << " of " << generations << " deploys\n";
  // The load was real: every kind of write got through between kills.
  EXPECT_GE(acked_spawns.size(), 10u);
  EXPECT_GE(secret_acks, 100);

  std::vector<std::string> at_end;
  problems_with_secrets("at the end: ", at_end);
  problems_with_spawns("at the end: ", at_end);
  EXPECT_TRUE(at_end.empty()) << ::testing::PrintToString(at_end);

  // Nothing hangs half-way: every task settles as running or ended, every cut deploy
  // is finished by the server that came after.
  std::string unsettled;
  EXPECT_TRUE(eventually(
      [&] {
        unsettled.clear();
        auto tasks = get_json("/v1/tasks?all=true");
        for (auto& t : tasks.as_array()) {
          std::string status = str(t.as_object(), "status");
          if (status != "running" && !ended(status)) {
            unsettled += str(t.as_object(), "id") + " " + status + "; ";
          }
        }
        auto deploys = get_json("/v1/deploys");
        for (auto& d : deploys.as_array()) {
          if (str(d.as_object(), "status") == "running") {
            unsettled += "deploy " + str(d.as_object(), "id") + "; ";
          }
        }
        return unsettled.empty();
      },
      60s))
      << unsettled << "\n"
      << server_->log();

  // What became of the tasks (for the log).
  std::map<std::string, int> statuses;
  const auto tasks = get_json("/v1/tasks?all=true");
  std::string failures;
  for (auto& t : tasks.as_array()) {
    ++statuses[str(t.as_object(), "status")];
    if (str(t.as_object(), "status") == "failed" || str(t.as_object(), "status") == "lost") {
      failures += "\n  " + str(t.as_object(), "id") + " " + str(t.as_object(), "status") + ": " +
                  str(t.as_object(), "message") +
                  (std::find(acked_spawns.begin(), acked_spawns.end(), str(t.as_object(), "id")) !=
                           acked_spawns.end()
                       ? " (its spawn was answered 201)"
                       : " (its spawn was not answered)");
    }
  }
  std::cout << "tasks by status:";
  for (const auto& [status, count] : statuses) std::cout << " " << status << "×" << count;
  // A running task outlives the server's kill: none the client was told runs ends
  // failed or lost (one whose answer the kill cut off may: it had not started).
  EXPECT_EQ(failures.find("(its spawn was answered 201)"), std::string::npos) << failures;
  std::cout << failures << "\ndeploys by status:";
  const auto deploys = get_json("/v1/deploys");
  std::string deploy_failures;
  statuses.clear();
  for (auto& d : deploys.as_array()) {
    ++statuses[str(d.as_object(), "status")];
    if (str(d.as_object(), "status") == "failed") {
      deploy_failures += "\n  " + str(d.as_object(), "id") + ": " + str(d.as_object(), "reason");
    }
  }
  for (const auto& [status, count] : statuses) std::cout << " " << status << "×" << count;
  std::cout << deploy_failures << "\n";

  // The service runs what the last acknowledged deploy asked for, or a later one.
  if (last_acked_generation >= 0) {
    int running = -1;
    EXPECT_TRUE(eventually(
        [&] {
          running = running_generation();
          return running >= last_acked_generation;
        },
        30s))
        << "web runs generation " << running << ", the last acknowledged deploy was "
        << last_acked_generation << "\n"
        << json::serialize(get_json("/v1/services"));
  }
  // And the server still deploys as before the chaos.
  ASSERT_TRUE(deploy(server_->address(), generations)) << server_->log();
  EXPECT_TRUE(eventually([&] { return running_generation() == generations; }, 20s))
      << json::serialize(get_json("/v1/services"));

  // No orphan: every container runc lists on the node belongs to a live allocation
  // (ended ones are removed a moment after their end), and no address is doubled.
  std::set<std::string> orphans;
  EXPECT_TRUE(eventually(
      [&] {
        auto live = live_allocations();
        orphans.clear();
        for (const auto& c : runc_containers()) {
          if (!live.contains(c)) orphans.insert(c);
        }
        return orphans.empty();
      },
      20s))
      << "containers no live allocation owns: " << ::testing::PrintToString(orphans);
  EXPECT_EQ(duplicate_addresses(), "");

  // A last kill with containers running, then `mill cleanup`: nothing of the node stays
  // (the checks see the node's containers, netns, mounts and cgroups while it runs).
  EXPECT_FALSE(runc_containers().empty());
  ASSERT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  server_.reset();
  const std::string before_cleanup = host_leftovers();
  for (const char* kind : {"runc container", "netns", "mount", "cgroup", "bridge"}) {
    EXPECT_NE(before_cleanup.find(kind), std::string::npos)
        << kind << " not seen in " << before_cleanup;
  }
  auto cleaned = run_mill({"cleanup", "--data-dir", data_});
  EXPECT_EQ(cleaned.exit_code, 0) << cleaned.err;
  EXPECT_EQ(host_leftovers(), "");
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::cout << "load and kills " << ms(load_ended - began) << " ms, checks "
            << ms(std::chrono::steady_clock::now() - load_ended) << " ms\n";
}

}  // namespace
}  // namespace mill::testing
