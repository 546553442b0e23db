// kill -9 of the processes under a running container (issue 16's chaos suite): its
// mill-shim, and its init (the container's PID 1). Each allocation ends with the
// status that says what happened, within seconds, the container does not run on
// unsupervised, nothing of it stays on the host, and its address is given again.

#include <signal.h>

#include "chaos_fixture.h"
#include "net/sse.h"

namespace mill::testing {
namespace {

// The pids the shim recorded in <data>/containers/<id>/state.json.
struct ShimState {
  pid_t pid = 0, shim_pid = 0;
};

ShimState shim_state(const std::string& data, const std::string& id) {
  boost::system::error_code ec;
  auto v = json::parse(read_file_text(data + "/containers/" + id + "/state.json"), ec);
  if (ec || !v.is_object()) return {};
  const auto& o = v.as_object();
  return {static_cast<pid_t>(o.at("pid").to_number<int64_t>()),
          static_cast<pid_t>(o.at("shim_pid").to_number<int64_t>())};
}

// Whether `pid` still runs a process of this container (its cmdline names the probe
// or Mill's init); a pid reused by something else does not count.
bool runs_container_process(pid_t pid) {
  std::string cmdline = read_file_text("/proc/" + std::to_string(pid) + "/cmdline");
  return cmdline.find("probe") != std::string::npos ||
         cmdline.find("mill-init") != std::string::npos;
}

TEST_F(Chaos, AKilledShimOrContainerInitEndsItsTaskAndLeavesNothingBehind) {
  const std::string init_victim = spawn();
  const std::string shim_victim = spawn();
  ASSERT_FALSE(init_victim.empty() || shim_victim.empty());
  const std::string init_victim_ip = str(task(init_victim), "ip");
  const std::string shim_victim_ip = str(task(shim_victim), "ip");
  ASSERT_FALSE(init_victim_ip.empty() || shim_victim_ip.empty());

  const ShimState a = shim_state(data_, init_victim);
  const ShimState b = shim_state(data_, shim_victim);
  ASSERT_GT(a.pid, 0);
  ASSERT_GT(b.pid, 0);
  ASSERT_GT(b.shim_pid, 0);
  // `runc run --detach` returns once it has told `runc init` to exec the command: the
  // exec follows a moment later.
  ASSERT_TRUE(eventually([&] { return runs_container_process(a.pid); }, 5s))
      << read_file_text("/proc/" + std::to_string(a.pid) + "/cmdline");
  ASSERT_TRUE(eventually([&] { return runs_container_process(b.pid); }, 5s))
      << read_file_text("/proc/" + std::to_string(b.pid) + "/cmdline");
  ASSERT_NE(read_file_text("/proc/" + std::to_string(b.shim_pid) + "/cmdline").find("mill-shim"),
            std::string::npos);

  // What a running container has on the host, as leftovers_of sees it (so it would
  // see any of it left behind).
  const std::string running = leftovers_of(init_victim);
  for (const char* kind : {"runc container", "cgroup", "netns", "mount"}) {
    EXPECT_NE(running.find(kind), std::string::npos) << kind << " not seen in: " << running;
  }

  ASSERT_EQ(::kill(a.pid, SIGKILL), 0);
  ASSERT_EQ(::kill(b.shim_pid, SIGKILL), 0);
  const auto killed_at = std::chrono::steady_clock::now();

  // The container whose init was killed exited by that signal, as a user sees it.
  json::object t;
  EXPECT_TRUE(eventually(
      [&] {
        t = task(init_victim);
        return ended(str(t, "status"));
      },
      5s))
      << json::serialize(t) << "\n"
      << server_->log();
  EXPECT_EQ(str(t, "status"), "exited") << json::serialize(t);
  EXPECT_EQ(t.contains("exit_code") ? t.at("exit_code").to_number<int64_t>() : -1, 137)
      << json::serialize(t);
  EXPECT_EQ(str(t, "message"), "killed by signal 9") << json::serialize(t);

  // The one whose shim was killed has nobody left to record its exit: the agent ends
  // it as lost, says why, and kills the container rather than let it run unsupervised.
  json::object u;
  EXPECT_TRUE(eventually(
      [&] {
        u = task(shim_victim);
        return ended(str(u, "status"));
      },
      5s))
      << json::serialize(u) << "\n"
      << server_->log();
  EXPECT_EQ(str(u, "status"), "lost") << json::serialize(u);
  EXPECT_NE(str(u, "message").find("mill-shim"), std::string::npos) << json::serialize(u);
  EXPECT_TRUE(eventually([&] { return !runs_container_process(b.pid); }, 2s))
      << "the container of " << shim_victim << " runs on without its shim";

  // Nothing of either is left on the host (the runner removes a container right
  // after its end: a moment at most).
  std::string left;
  EXPECT_TRUE(eventually(
      [&] {
        left = leftovers_of(init_victim) + leftovers_of(shim_victim);
        return left.empty();
      },
      5s))
      << left;
  std::cout << "init killed: " << json::serialize(t) << "\nshim killed: " << json::serialize(u)
            << "\n";
  std::cout << "both ended and cleaned up in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - killed_at)
                   .count()
            << " ms\n";

  // Their addresses are free again: the next two tasks get them (the lowest free
  // address goes first), and answer there.
  const std::string next1 = spawn();
  const std::string next2 = spawn();
  ASSERT_FALSE(next1.empty() || next2.empty());
  std::set<std::string> freed{init_victim_ip, shim_victim_ip};
  std::set<std::string> given{str(task(next1), "ip"), str(task(next2), "ip")};
  EXPECT_EQ(given, freed);
  for (const auto& ip : given) {
    net::ClientRequest req;
    req.target = "/health";
    req.timeout = 2s;
    std::optional<net::ClientResponse> res;
    EXPECT_TRUE(eventually(
        [&] {
          auto r = net::http_request(ip + ":8080", req);
          if (r) res = *r;
          return r && r->status == 200;
        },
        5s))
        << "no answer at " << ip;
  }
  // And the node is still whole: both new tasks are killed as usual.
  for (const auto& id : {next1, next2}) {
    auto res = call("DELETE", "/v1/tasks/" + id);
    EXPECT_EQ(res.status, 200) << res.body;
  }
}

// The same kills under a service's replicas: the one whose init was killed is
// restarted in place (a crash, counted in `restarts`, with the reason), the one whose
// shim was killed is lost and replaced by a new allocation; the service is back to
// its replicas, all healthy, within seconds, and nothing of the lost one is left.
TEST_F(Chaos, AServiceComesBackWhenAReplicasShimOrInitIsKilled) {
  auto res = call("POST", "/v1/deploy?file=chaos.toml",
                  "[service.web]\nimage = \"" + image() +
                      "\"\nreplicas = 2\nport = 8080\ncpu = 0.05\nmemory = \"32M\"\n");
  ASSERT_EQ(res.status, 200) << res.body;
  net::SseParser parser;
  auto events = parser.feed(res.body);
  ASSERT_FALSE(events.empty());
  ASSERT_EQ(events.back().event, "done") << res.body << "\n" << server_->log();

  // The service's allocations by id: status and restarts.
  auto allocations = [&] {
    std::map<std::string, std::pair<std::string, int64_t>> out;
    auto services = get_json("/v1/services");
    if (!services.is_array()) return out;
    for (auto& s : services.as_array()) {
      for (auto& a : s.as_object().at("allocations").as_array()) {
        const auto& o = a.as_object();
        auto* restarts = o.if_contains("restarts");
        out[str(o, "id")] = {str(o, "status"), restarts ? restarts->to_number<int64_t>() : 0};
      }
    }
    return out;
  };
  const auto before = allocations();
  ASSERT_EQ(before.size(), 2u) << json::serialize(get_json("/v1/services"));
  const std::string init_victim = before.begin()->first;
  const std::string shim_victim = std::next(before.begin())->first;
  const ShimState a = shim_state(data_, init_victim);
  const ShimState b = shim_state(data_, shim_victim);
  ASSERT_GT(a.pid, 0);
  ASSERT_GT(b.shim_pid, 0);

  ASSERT_EQ(::kill(a.pid, SIGKILL), 0);
  ASSERT_EQ(::kill(b.shim_pid, SIGKILL), 0);

  // Back to two healthy replicas: the crashed one restarted in place (a 1 s backoff),
  // the lost one replaced.
  std::map<std::string, std::pair<std::string, int64_t>> now;
  EXPECT_TRUE(eventually(
      [&] {
        now = allocations();
        int healthy = 0;
        for (const auto& [id, state] : now) healthy += state.first == "healthy";
        return now.size() == 2 && healthy == 2 && !now.contains(shim_victim) &&
               now.contains(init_victim) && now.at(init_victim).second >= 1;
      },
      20s))
      << json::serialize(get_json("/v1/services")) << "\n"
      << server_->log();
  EXPECT_FALSE(runs_container_process(b.pid))
      << "the container of " << shim_victim << " runs on without its shim";
  std::string left;
  EXPECT_TRUE(eventually(
      [&] {
        left = leftovers_of(shim_victim);
        return left.empty();
      },
      5s))
      << left;
  // Every container runc lists is one of the two replicas.
  std::set<std::string> replicas;
  for (const auto& [id, state] : now) replicas.insert(id);
  EXPECT_EQ(runc_containers(), replicas);
}

}  // namespace
}  // namespace mill::testing
