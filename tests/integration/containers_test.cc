// Tasks end to end, for real: images built here and pushed to a real registry
// (Debian's docker-registry on loopback), `mill server` running them under runc on a
// bridge of the test's own, reached at their addresses from the host. Needs root. The
// fixture is containers_fixture.h; issue 16's hostile tasks and the regression tests of
// its defects run on it in the chaos suite (tests/chaos/hostile_test.cc).

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "common/command.h"
#include "containers_fixture.h"
#include "harness.h"
#include "net/sse.h"
#include "support/cluster_lease.h"
#include "support/eventually.h"
#include "support/files.h"
#include "support/oci_image.h"
#include "support/probe_image.h"
#include "support/require.h"
#include "support/test_registry.h"

namespace mill::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

TEST_F(Containers, InlineTaskRunsIsolatedAsAskedAndAnswersAtItsAddress) {
  auto t = spawn(R"({"image":")" + registry_->host() +
                 R"(/probe:v1","port":8080,"memory":"48M","cpu":0.5,"env":{"GREETING":"hi"}})");
  ASSERT_FALSE(t.empty());
  std::string id = id_of(t);
  EXPECT_TRUE(id.starts_with("task-")) << id;
  EXPECT_EQ(t.at("status").as_string(), "running");
  EXPECT_EQ(t.at("address").as_string(), id + ".mill:8080");
  EXPECT_TRUE(std::string(t.at("ip").as_string()).starts_with(subnet_prefix_));
  EXPECT_EQ(probe(t, "/health"), "ok");
  EXPECT_EQ(probe(t, "/hostname"), id);
  EXPECT_EQ(probe(t, "/init"), "mill-init");  // tini, as Docker's --init
  EXPECT_NE(probe(t, "/pid"), "1");
  std::string env = probe(t, "/env");
  EXPECT_NE(env.find("GREETING=hi\n"), std::string::npos) << env;
  EXPECT_NE(env.find("FROM_IMAGE=yes\n"), std::string::npos) << env;
  EXPECT_NE(env.find("PORT=8080\n"), std::string::npos) << env;
  std::string cg = probe(t, "/cgroup");
  EXPECT_NE(cg.find("memory_max=" + std::to_string(48 << 20)), std::string::npos) << cg;
  EXPECT_NE(cg.find("cpu_quota=50000"), std::string::npos) << cg;
  // The pull and start durations are on the task.
  EXPECT_TRUE(t.contains("pull_ms") && t.contains("start_ms"));
  // <id>.mill resolves through the node's DNS server on the bridge.
  std::string bridge_ip = subnet_prefix_ + "1";
  std::string dig = "dig +short +time=2 +tries=5 @" + bridge_ip + " " + id + ".mill";
  FILE* p = ::popen(dig.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[128] = {};
  size_t n = std::fread(buf, 1, sizeof buf - 1, p);
  ::pclose(p);
  EXPECT_EQ(std::string(buf, n), std::string(t.at("ip").as_string()) + "\n");
}

// A task's usage is true whenever it is asked for (issue 15 item 15): measured as it
// starts (the running report carries it, so a spawn's first GET shows its memory, not
// 0B), kept fresh while it runs (a second of work shows within a couple of seconds),
// and read once more as it ends (an ended task's CPU time includes its last second).
// `mill task` prints them like the rest of the CLI: "1.52 s", "712K".
TEST_F(Containers, TaskUsageIsTrueFromItsStartToItsEnd) {
  auto t = spawn(R"({"image":")" + registry_->host() +
                 R"(/probe:v1","port":8080,"cpu":1,"memory":"64M"})");
  ASSERT_FALSE(t.empty());
  const std::string id = id_of(t);
  auto usage = [](const json::object& task) {
    const auto* u = task.if_contains("usage");
    return u && u->is_object() ? u->as_object() : json::object{};
  };
  auto number = [](const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    return v && v->is_number() ? v->to_number<double>() : -1.0;
  };
  // The spawn answered once the task ran: its usage is there already.
  EXPECT_GT(number(usage(t), "memory_bytes"), 0) << json::serialize(t);
  EXPECT_GE(number(usage(t), "cpu_seconds"), 0) << json::serialize(t);

  // A second and a half of work shows within a few seconds of its end (it used at
  // least the CPU time the probe says it had; on a busy machine less than 1.5 s).
  auto spun_cpu = [](const std::string& answer) {
    auto at = answer.find("cpu_ms ");
    return at == std::string::npos ? -1.0 : std::atof(answer.c_str() + at + 7) / 1000;
  };
  const double worked = spun_cpu(probe(t, "/spin?ms=1500"));
  ASSERT_GT(worked, 0.1);
  const auto spun_at = std::chrono::steady_clock::now();
  json::object now;
  EXPECT_TRUE(eventually(
      [&] {
        now = task(id);
        return number(usage(now), "cpu_seconds") >= worked;
      },
      3s))
      << "the probe had used " << worked << " s; after "
      << std::chrono::duration<double>(std::chrono::steady_clock::now() - spun_at).count()
      << " s: " << json::serialize(now);

  // mill task shows it like the rest of the CLI.
  const std::map<std::string, std::string> env{{"MILL_ADDR", server_->address()},
                                               {"MILL_TOKEN", token_},
                                               {"MILL_CONFIG", dir_.file("none.toml")}};
  auto shown = run_mill({"task", id}, env);
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  auto line_of = [&](const std::string& key) {
    std::istringstream lines(shown.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with(key + " ")) return line.substr(12);
    }
    return std::string("(none)");
  };
  std::string cpu = line_of("CPU time");
  EXPECT_TRUE(cpu.size() >= 6 && cpu.ends_with(" s") && cpu[cpu.size() - 5] == '.' &&
              std::atof(cpu.c_str()) >= worked - 0.01)
      << shown.out;
  std::string memory = line_of("Memory");
  EXPECT_TRUE(memory != "0B" && memory.find_first_of("KMG") != std::string::npos &&
              memory.find(".0") == std::string::npos)
      << shown.out;

  // Another second of work, then a kill at once: the ended task's CPU time counts it
  // (all the probe used, which the last sample, a second old at most, may not).
  const double total = spun_cpu(probe(t, "/spin?ms=1000"));
  double before = number(usage(task(id)), "cpu_seconds");
  auto killed = call("DELETE", "/v1/tasks/" + id);
  ASSERT_EQ(killed.status, 200) << killed.body;
  auto ended = json::parse(killed.body).as_object();
  EXPECT_EQ(ended.at("status").as_string(), "killed");
  EXPECT_GE(number(usage(ended), "cpu_seconds"), total)
      << "read " << before << " s just before the kill; " << json::serialize(ended);
  EXPECT_GT(number(usage(ended), "memory_bytes"), 0) << json::serialize(ended);
}

TEST_F(Containers, TemplateSpawnAndInitCanBeTurnedOff) {
  auto t = spawn(R"({"task":"probe","env":{"SESSION_ID":"abc123"}})");
  ASSERT_FALSE(t.empty());
  EXPECT_TRUE(id_of(t).starts_with("probe-"));
  std::string env = probe(t, "/env");
  EXPECT_NE(env.find("SESSION_ID=abc123\n"), std::string::npos) << env;
  EXPECT_NE(env.find("FROM_TEMPLATE=1\n"), std::string::npos) << env;

  auto bare =
      spawn(R"({"image":")" + registry_->host() + R"(/probe:v1","port":8080,"init":false})");
  ASSERT_FALSE(bare.empty());
  EXPECT_EQ(probe(bare, "/pid"), "1");
}

TEST_F(Containers, TimeoutExitAndKillEndTasksWithTheRightStatus) {
  std::string image = registry_->host() + "/probe:v1";
  auto timed = spawn(R"({"image":")" + image + R"(","port":8080,"timeout":"1s"})");
  auto exiting = spawn(R"({"image":")" + image + R"(","port":8080})");
  auto stubborn = spawn(R"({"image":")" + image + R"(","port":8080,"env":{"IGNORE_SIGTERM":"1"}})");
  ASSERT_FALSE(timed.empty() || exiting.empty() || stubborn.empty());

  probe(exiting, "/exit?code=3");
  auto exited = wait_status(id_of(exiting), "exited");
  EXPECT_EQ(exited.at("exit_code").as_int64(), 3);

  auto killed = call("DELETE", "/v1/tasks/" + id_of(stubborn));
  ASSERT_EQ(killed.status, 200) << killed.body;
  auto k = json::parse(killed.body).as_object();
  EXPECT_EQ(k.at("status").as_string(), "killed");
  EXPECT_EQ(k.at("exit_code").as_int64(), 137);  // it ignored SIGTERM: SIGKILL after grace

  auto t = wait_status(id_of(timed), "timeout");
  // Ended at its 1 s timeout: never before it, and (a generous bound) not long after.
  EXPECT_GE(t.at("elapsed_seconds").as_double(), 1.0);
  EXPECT_LT(t.at("elapsed_seconds").as_double(), 15.0);

  // Ended tasks are listed with ?all=true only, and keep their logs.
  auto running = json::parse(call("GET", "/v1/tasks").body).as_array();
  EXPECT_TRUE(running.empty()) << json::serialize(running);
  EXPECT_EQ(json::parse(call("GET", "/v1/tasks?all=true").body).as_array().size(), 3u);
  auto logs = call("GET", "/v1/logs/" + id_of(exiting));
  EXPECT_EQ(logs.status, 200);
  EXPECT_NE(logs.body.find("listening on :8080"), std::string::npos) << logs.body;
}

TEST_F(Containers, LogsTailAndFollowUntilTheTaskEnds) {
  auto t = spawn(R"({"image":")" + registry_->host() + R"(/probe:v1","port":8080})");
  ASSERT_FALSE(t.empty());
  std::string id = id_of(t);
  probe(t, "/log?line=hello&count=3");
  probe(t, "/log?line=oops&stream=stderr");
  // The shim writes the lines to the log as they come: wait until the last is there.
  net::ClientResponse tail;
  std::vector<net::SseEvent> events;
  ASSERT_TRUE(eventually(
      [&] {
        tail = call("GET", "/v1/logs/" + id + "?tail=2");
        net::SseParser parser;
        events = parser.feed(tail.body);
        return tail.status == 200 && events.size() == 2u &&
               events[1].data.find("oops") != std::string::npos;
      },
      20s))
      << tail.status << " " << tail.body;
  auto first = json::parse(events[0].data).as_object();
  EXPECT_EQ(first.at("line").as_string(), "hello");
  EXPECT_EQ(first.at("stream").as_string(), "stdout");
  EXPECT_TRUE(first.contains("ts"));
  auto second = json::parse(events[1].data).as_object();
  EXPECT_EQ(second.at("line").as_string(), "oops");
  EXPECT_EQ(second.at("stream").as_string(), "stderr");

  // Follow: new lines arrive as written (before the task ends), and the stream ends
  // when the task does.
  std::mutex mu;
  std::vector<net::SseEvent> followed;
  auto has = [&](const std::string& text) {
    std::lock_guard lock(mu);
    for (const auto& e : followed) {
      if (e.data.find(text) != std::string::npos) return true;
    }
    return false;
  };
  std::thread follower([&] {
    net::SseParser p;
    net::ClientRequest req;
    req.target = "/v1/logs/" + id + "?follow=true&tail=0";
    req.headers.push_back({"Authorization", "Bearer " + token_});
    req.timeout = 30s;
    req.body_sink = [&](std::string_view chunk) -> Result<void> {
      std::lock_guard lock(mu);
      for (auto& e : p.feed(chunk)) followed.push_back(std::move(e));
      return {};
    };
    auto res = net::http_request(server_->address(), req);
    EXPECT_TRUE(res.has_value()) << res.error().message;
  });
  bool live = false;
  for (int i = 0; i < 50 && !live; ++i) {
    probe(t, "/log?line=later");
    std::this_thread::sleep_for(100ms);
    live = has("\"later\"");
  }
  EXPECT_TRUE(live) << "a followed line did not arrive while the task ran";
  probe(t, "/exit?code=0");
  follower.join();
  ASSERT_GE(followed.size(), 2u);
  EXPECT_FALSE(has("\"hello\""));  // tail=0: only what came after
  EXPECT_EQ(followed.back().event, "end");
  EXPECT_NE(followed.back().data.find("\"exited\""), std::string::npos) << followed.back().data;

  // The CLI prints the same lines.
  auto cli = run_mill({"logs", id}, {{"MILL_ADDR", server_->address()}, {"MILL_TOKEN", token_}});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("hello\nhello\nhello\n"), std::string::npos) << cli.out;
  EXPECT_NE(cli.err.find("oops"), std::string::npos) << cli.err;
}

TEST_F(Containers, TasksOutliveAKilledAgentAndAreReadopted) {
  auto t = spawn(R"({"image":")" + registry_->host() +
                 R"(/probe:v1","port":8080,"command":["--log-every","50"]})");
  ASSERT_FALSE(t.empty());
  std::string id = id_of(t);
  int64_t pid = t.at("pid").as_int64();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  server_.reset();
  // Still serving with nobody watching it.
  EXPECT_EQ(probe(t, "/health"), "ok");
  EXPECT_EQ(::kill(static_cast<pid_t>(pid), 0), 0);
  ASSERT_NO_FATAL_FAILURE(start());
  auto again = task(id);
  ASSERT_EQ(again.at("status").as_string(), "running") << json::serialize(again) << server_->log();
  EXPECT_EQ(again.at("pid").as_int64(), pid);  // the same process, not a restart
  // Its log kept flowing and still does.
  auto before = call("GET", "/v1/logs/" + id + "?tail=1").body;
  std::string after;
  EXPECT_TRUE(eventually(
      [&] {
        after = call("GET", "/v1/logs/" + id + "?tail=1").body;
        return after != before;
      },
      20s))
      << "no new line after the restart: " << after;
  EXPECT_NE(after.find("tick"), std::string::npos) << after;
  // And it is still supervised: its exit is noticed.
  probe(t, "/exit?code=4");
  EXPECT_EQ(wait_status(id, "exited").at("exit_code").as_int64(), 4);
}

// `mill spawn … --command CMD ARGS…`: everything after --command is the task's command,
// its own options included (as `docker run IMAGE CMD…`), never read as mill's.
TEST_F(Containers, TheCliTakesEverythingAfterCommandAsTheCommand) {
  const std::map<std::string, std::string> env{{"MILL_ADDR", server_->address()},
                                               {"MILL_TOKEN", token_},
                                               {"MILL_CONFIG", dir_.file("none.toml")}};
  auto r = run_mill({"spawn", "--image", registry_->host() + "/probe:cmd", "--json", "--command",
                     "/bin/sh", "-c", "echo \"args: $0 $1\"; exit 3", "-h", "--port"},
                    env);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  boost::system::error_code ec;
  auto spawned = json::parse(r.out, ec);
  ASSERT_FALSE(ec) << r.out;
  std::string id(spawned.as_object().at("id").as_string());
  EXPECT_EQ(wait_status(id, "exited").at("exit_code").as_int64(), 3);
  std::string log;
  EXPECT_TRUE(eventually(
      [&] {
        log = call("GET", "/v1/logs/" + id).body;
        return log.find("args: -h --port") != std::string::npos;
      },
      20s))
      << log;
  // `--` works the same.
  r = run_mill({"spawn", "--image", registry_->host() + "/probe:cmd", "--json", "--", "/bin/sh",
                "-c", "exit 4"},
               env);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  spawned = json::parse(r.out, ec);
  ASSERT_FALSE(ec) << r.out;
  id = std::string(spawned.as_object().at("id").as_string());
  EXPECT_EQ(wait_status(id, "exited").at("exit_code").as_int64(), 4);
}

// A server start that must fail: `binary server` (a path in the test's dir, or "" for
// the mill under test) on a fresh data dir (prepare() may spoil it first) with a bridge
// and cluster network of its own and `extra` flags. It must exit non-zero, say each of
// `said` ($DIR: the test's dir), and leave nothing on the host: no bridge, netns dir,
// firewall table or route into the cluster network.
void expect_start_fails_cleanly(const std::string& binary,
                                const std::function<void(const TempDir&)>& prepare,
                                const std::vector<std::string>& extra,
                                const std::vector<std::string>& said) {
  MILL_REQUIRE(::geteuid() == 0, "running containers needs root");
  TempDir dir;
  ASSERT_FALSE(init_data_dir(dir).empty());
  if (prepare) prepare(dir);
  ClusterLease lease = ClusterLease::take(150, 199);
  ASSERT_GE(lease.octet(), 0);
  const std::string bridge = "mf" + std::to_string(std::random_device{}() % 1000000);
  auto crash_cleanup = clean_up_on_crash(dir.file("data"));
  std::vector<std::string> args{"server",   "--data-dir",        dir.file("data"),
                                "--listen", "127.0.0.1:0",       "--bridge",
                                bridge,     "--cluster-network", lease.cidr()};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = run_binary(binary.empty() ? mill_binary() : dir.file(binary), args, {}, 60s);
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  std::string root = dir.file("x");
  root.resize(root.size() - 2);
  for (std::string text : said) {
    if (size_t at = text.find("$DIR"); at != std::string::npos) text.replace(at, 4, root);
    EXPECT_NE((r.out + r.err).find(text), std::string::npos) << text << " in:\n" << r.out << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists("/sys/class/net/" + bridge)) << "a bridge was left";
  EXPECT_FALSE(std::filesystem::exists("/run/mill/" + bridge)) << "a netns dir was left";
  auto tables = run_command({"nft", "list", "tables"});
  ASSERT_TRUE(tables);
  EXPECT_EQ(tables->output.find("mill_" + bridge), std::string::npos) << tables->output;
  auto routes = run_command({"ip", "route", "show", lease.cidr()});
  ASSERT_TRUE(routes);
  EXPECT_EQ(routes->output, "") << "a route into the cluster network was left";
}

// mill-shim must sit next to mill. A server without it says so, and where, before it
// changes anything on the host.
TEST(ContainersWithoutTheShim, TheServerSaysWhereItMustBeAndChangesNothing) {
  expect_start_fails_cleanly(
      "bin/mill",
      [](const TempDir& dir) {
        std::filesystem::create_directories(dir.file("bin"));
        std::filesystem::copy_file(mill_binary(), dir.file("bin/mill"));
      },
      {"--proxy-http", "", "--proxy-https", ""},
      {"mill-shim not found at $DIR/bin/mill-shim", "next to the mill binary"});
}

// The ingress port taken by another web server: the server refuses to start, says
// which address and what to do, and changes nothing on the host (it used to warn and
// serve on without a proxy, every route silently broken).
TEST(ContainersIngressPortTaken, TheServerRefusesToStartAndChangesNothing) {
  int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(taken, 0);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{taken};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(taken, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string port = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  expect_start_fails_cleanly(
      "", nullptr, {"--proxy-http", port, "--proxy-https", ""},
      {"the ingress proxy cannot listen (--proxy-http " + port, "another web server"});
}

// A start that fails after the node's network was made (here: the image store cannot
// be opened) undoes it.
TEST(ContainersFailedStart, UndoesTheNetworkItMade) {
  expect_start_fails_cleanly("",
                             [](const TempDir& dir) {
                               std::ofstream(dir.file("data/images"))
                                   << "a file where a directory must go\n";
                             },
                             {"--proxy-http", "", "--proxy-https", ""}, {"image store"});
}

TEST_F(Containers, BadImagesFailTheSpawnWithAClearError) {
  // A layer with an entry that would land outside its directory.
  ImageSpec evil;
  evil.entrypoint = {"/probe"};
  evil.layers = {build_layer({LayerEntry::file("../escaped", "x")})};
  ASSERT_TRUE(registry_->push("evil", "v1", build_image(evil)));
  auto res = call("POST", "/v1/tasks/spawn", R"({"image":")" + registry_->host() + R"(/evil:v1"})");
  EXPECT_EQ(res.status, 502) << res.body;
  EXPECT_NE(res.body.find("../escaped"), std::string::npos) << res.body;

  // A blob whose bytes do not match its digest.
  ImageSpec bad;
  bad.entrypoint = {"/probe"};
  bad.layers = {build_layer({LayerEntry::file("data", std::string(4096, 'a'))})};
  auto image = build_image(bad);
  ASSERT_TRUE(registry_->push("tampered", "v1", image));
  registry_->tamper_blob(image.layers[0].digest, std::string(image.layers[0].bytes.size(), 'x'));
  res = call("POST", "/v1/tasks/spawn", R"({"image":")" + registry_->host() + R"(/tampered:v1"})");
  EXPECT_EQ(res.status, 502) << res.body;
  EXPECT_NE(res.body.find("does not match its digest"), std::string::npos) << res.body;

  // An image that is not there.
  res = call("POST", "/v1/tasks/spawn", R"({"image":")" + registry_->host() + R"(/nope:v1"})");
  EXPECT_EQ(res.status, 502) << res.body;
  EXPECT_NE(res.body.find("nope"), std::string::npos) << res.body;

  auto all = json::parse(call("GET", "/v1/tasks?all=true").body).as_array();
  ASSERT_EQ(all.size(), 3u);
  for (const auto& t : all) EXPECT_EQ(t.as_object().at("status").as_string(), "failed");
}

TEST_F(Containers, RegistryCredentialsComeFromTheConfig) {
  TestRegistry locked({.tls = false, .username = "deploy", .password = "s3cret"});
  ASSERT_TRUE(locked.ok());
  ASSERT_TRUE(locked.push("probe", "v1", probe_image()));
  server_->stop(SIGTERM);
  write_config("[registry.\"" + locked.host() +
               "\"]\nusername = \"deploy\"\npassword = \"${secret:registry_password}\"\n");
  ASSERT_NO_FATAL_FAILURE(start());
  auto set = call("PUT", "/v1/secrets/registry_password", R"({"value":"wrong"})");
  ASSERT_EQ(set.status, 200);
  std::string body = R"({"image":")" + locked.host() + R"(/probe:v1","port":8080})";
  auto res = call("POST", "/v1/tasks/spawn", body);
  EXPECT_EQ(res.status, 502) << res.body;
  EXPECT_NE(res.body.find("authentication failed"), std::string::npos) << res.body;
  ASSERT_EQ(call("PUT", "/v1/secrets/registry_password", R"({"value":"s3cret"})").status, 200);
  auto t = spawn(body);
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(probe(t, "/health"), "ok");
}

// What a container leaves on the host, counted where each kind of thing lives.
struct Leftovers {
  int mounts = 0, netns = 0, veths = 0, cgroups = 0, runc_state = 0, shims = 0, alloc_dirs = 0;
  bool operator==(const Leftovers&) const = default;
};

int count_dir(const std::string& path, const std::string& prefix = "") {
  int n = 0;
  if (DIR* d = ::opendir(path.c_str())) {
    while (auto* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != ".." && name.starts_with(prefix)) ++n;
    }
    ::closedir(d);
  }
  return n;
}

Leftovers leftovers(const std::string& data, const std::string& bridge) {
  Leftovers l;
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    // Rootfs overlays and disks; not the spare disks a running node keeps ready.
    if (line.find(data + "/allocs/") != std::string::npos &&
        line.find(data + "/allocs/.spare-") == std::string::npos) {
      ++l.mounts;
    }
  }
  l.netns = count_dir("/run/mill/" + bridge + "/netns", bridge + "-");
  l.veths = count_dir("/sys/class/net/" + bridge + "/brif");
  for (const char* ctl : {"memory", "cpu", "pids", "cpuacct", "unified"}) {
    l.cgroups += count_dir(std::string("/sys/fs/cgroup/") + ctl + "/mill-" + bridge, "task-");
  }
  l.runc_state = count_dir(data + "/runc");
  l.alloc_dirs = count_dir(data + "/allocs") - count_dir(data + "/allocs", ".spare-");
  if (DIR* d = ::opendir("/proc")) {
    while (auto* e = ::readdir(d)) {
      std::string cmdline = read_file_text(std::string("/proc/") + e->d_name + "/cmdline");
      if (cmdline.find("mill-shim") != std::string::npos &&
          cmdline.find(data) != std::string::npos) {
        ++l.shims;
      }
    }
    ::closedir(d);
  }
  return l;
}

std::string describe(const Leftovers& l) {
  return "mounts " + std::to_string(l.mounts) + ", netns " + std::to_string(l.netns) + ", veths " +
         std::to_string(l.veths) + ", cgroups " + std::to_string(l.cgroups) + ", runc state " +
         std::to_string(l.runc_state) + ", shims " + std::to_string(l.shims) + ", alloc dirs " +
         std::to_string(l.alloc_dirs);
}

TEST_F(Containers, TwoHundredStartStopCyclesLeaveNothingBehind) {
  server_->stop(SIGTERM);
  ASSERT_NO_FATAL_FAILURE(start("1s"));  // ended tasks are forgotten quickly, logs and all
  std::string body = R"({"image":")" + registry_->host() + R"(/probe:v1","port":8080})";
  const std::string data = dir_.file("data");
  Leftovers none;
  for (int i = 0; i < 200; ++i) {
    auto res = call("POST", "/v1/tasks/spawn", body);
    ASSERT_EQ(res.status, 201) << "cycle " << i << ": " << res.body;
    auto id = std::string(json::parse(res.body).as_object().at("id").as_string());
    if (i == 0) {
      // The counting sees a running container (so it would see a leaked one).
      auto running = leftovers(data, bridge_);
      EXPECT_EQ(running.netns, 1);
      EXPECT_EQ(running.veths, 1);
      EXPECT_EQ(running.shims, 1);
      EXPECT_EQ(running.mounts, 2);  // its rootfs and its disk
      EXPECT_GE(running.cgroups, 3);
    }
    auto killed = call("DELETE", "/v1/tasks/" + id);
    ASSERT_EQ(killed.status, 200) << "cycle " << i << ": " << killed.body;
    ASSERT_EQ(json::parse(killed.body).as_object().at("status").as_string(), "killed");
  }
  Leftovers now;
  for (int i = 0; i < 100; ++i) {  // the last task is forgotten a moment after it ends
    now = leftovers(data, bridge_);
    if (now == none && count_dir(data + "/containers") == 0) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(now, none) << describe(now);
  EXPECT_EQ(count_dir(data + "/containers"), 0) << "runtime dirs (logs) of forgotten tasks";
  EXPECT_TRUE(json::parse(call("GET", "/v1/tasks?all=true").body).as_array().empty());
}

TEST_F(Containers, TwoHundredFollowersAllGetEveryLine) {
  auto t = spawn(R"({"image":")" + registry_->host() + R"(/probe:v1","port":8080})");
  ASSERT_FALSE(t.empty());
  std::string id = id_of(t);
  constexpr int kFollowers = 200;
  std::vector<std::thread> followers;
  std::vector<std::vector<net::SseEvent>> got(kFollowers);
  std::vector<int> status(kFollowers, 0);
  std::atomic<int> connected{0};
  for (int i = 0; i < kFollowers; ++i) {
    followers.emplace_back([&, i] {
      net::SseParser p;
      net::ClientRequest req;
      req.target = "/v1/logs/" + id + "?follow=true&tail=0";
      req.headers.push_back({"Authorization", "Bearer " + token_});
      req.timeout = 60s;
      bool counted = false;
      req.body_sink = [&](std::string_view chunk) -> Result<void> {
        for (auto& e : p.feed(chunk)) got[i].push_back(std::move(e));
        if (!counted && !got[i].empty()) {
          counted = true;
          ++connected;
        }
        return {};
      };
      auto res = net::http_request(server_->address(), req);
      status[i] = res ? res->status : -1;
    });
  }
  // A follower counts as connected once a line reached it: warm-up lines until all are.
  for (int i = 0; i < 100 && connected.load() < kFollowers; ++i) {
    probe(t, "/log?line=warm-up");
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(connected.load(), kFollowers);
  probe(t, "/log?line=to-everyone&count=5");
  probe(t, "/exit?code=0");  // ends every stream
  for (auto& f : followers) f.join();
  for (int i = 0; i < kFollowers; ++i) {
    EXPECT_EQ(status[i], 200) << "follower " << i;
    int lines = 0;
    for (const auto& e : got[i]) lines += e.data.find("\"to-everyone\"") != std::string::npos;
    EXPECT_EQ(lines, 5) << "follower " << i;
    ASSERT_FALSE(got[i].empty());
    EXPECT_EQ(got[i].back().event, "end") << "follower " << i;
  }
}

}  // namespace
}  // namespace mill::testing
