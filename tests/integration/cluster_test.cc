// Several machines, simulated on one host (cluster.h): `mill server` on one, `mill
// agent --join` on the others, each in a network namespace of its own. Needs root.

#include "cluster.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "crypto/cluster_ca.h"
#include "model/node_protocol.h"
#include "routes.h"
#include "support/eventually.h"
#include "support/probe_image.h"
#include "support/require.h"
#include "support/test_registry.h"

namespace mill::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

class ClusterTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { registry_.stop(); }

  static void start_registry() {
    registry_.start([] {
      return std::vector<SuiteRegistry::Image>{
          {"probe", "v1",
           probe_image(MILL_PROBE_PATH, {"VERSION=1"}, LayerCompression::kZstd,
                       /*probe_as_cmd=*/true)}};
    });
  }

  void start(ClusterOptions options = {}) {
    MILL_REQUIRE(::geteuid() == 0, "several nodes on one host need root (namespaces, runc)");
    ASSERT_NO_FATAL_FAILURE(start_registry());
    cluster_ = std::make_unique<Cluster>(options);
    ASSERT_TRUE(cluster_->ok());
    ASSERT_TRUE(cluster_->serve_registry(*registry_));
  }

  json::value get_json(const std::string& target) {
    auto res = cluster_->call("GET", target);
    EXPECT_EQ(res.status, 200) << target << ": " << res.body;
    boost::system::error_code ec;
    auto v = json::parse(res.body, ec);
    return ec ? json::value() : v;
  }

  std::map<std::string, std::string> node_status() { return cluster_->node_statuses(); }

  std::string config(int replicas) { return cluster_->service_config("web", replicas); }

  // Deploys and returns the stream's last event's name and data.
  std::string deploy(const std::string& text) {
    auto res = cluster_->call("POST", "/v1/deploy?file=cluster.toml", text, "text/plain");
    EXPECT_EQ(res.status, 200) << res.body;
    return res.body;
  }

  // web's allocations: id -> node.
  std::map<std::string, std::string> web_allocations() {
    std::map<std::string, std::string> out;
    for (const auto& [id, placed] : cluster_->allocations_of("web")) out[id] = placed.node;
    return out;
  }

  // Spawns tasks until one lands on a node other than the server's; returns that
  // node's index (-1 if none did) and the task's id.
  int spawn_off_the_server(std::string& task) {
    for (int attempt = 0; attempt < 6; ++attempt) {
      auto res = cluster_->call(
          "POST", "/v1/tasks/spawn",
          R"({"image":")" + cluster_->registry_host() + R"(/probe:v1","cpu":0.1,"memory":"32M"})",
          "application/json");
      EXPECT_EQ(res.status, 201) << res.body;
      if (res.status != 201) return -1;
      auto v = json::parse(res.body);
      for (int i = 1; i < cluster_->size(); ++i) {
        if (cluster_->node_id(i) == v.at("node").as_string()) {
          task = std::string(v.at("id").as_string());
          return i;
        }
      }
    }
    return -1;
  }

  static SuiteRegistry registry_;
  std::unique_ptr<Cluster> cluster_;
};

SuiteRegistry ClusterTest::registry_;

// `mill login ADDR TOKEN` points another machine's `mill` at the cluster with the one
// string `mill login-token` prints on the server. The token pins the cluster CA: a token
// for another CA is refused, as is a wrong API token, and neither writes anything; a
// good one writes a client config that `mill nodes` then uses with no MILL_* settings.
// It logs in through a node that is not the server: any node answers the API.
TEST_F(ClusterTest, LoginPointsAnotherMachinesMillAtTheCluster) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 2}));
  auto printed = cluster_->cli({"login-token", "--data-dir", cluster_->data_dir(0)});
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  auto token = crypto::parse_login_token(printed.out);
  ASSERT_TRUE(token) << printed.out;
  EXPECT_EQ(token->secret, cluster_->token());
  const std::string dir = "/tmp/mill-test-login-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  const std::string config = dir + "/client.toml";
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  const std::string host = cluster_->node_ip(1);  // no scheme, no port: https, :4400

  auto other_ca = crypto::format_login_token(std::string(64, 'a'), token->secret);
  auto refused = cluster_->cli_with_config({"login", host, *other_ca}, config);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("does not match"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find(token->secret), std::string::npos) << "never shows the token";
  EXPECT_FALSE(std::filesystem::exists(config));

  auto wrong = crypto::format_login_token(token->ca_fingerprint, std::string(64, 'b'));
  auto unauthorised = cluster_->cli_with_config({"login", host, *wrong}, config);
  EXPECT_NE(unauthorised.exit_code, 0);
  EXPECT_NE(unauthorised.err.find("token"), std::string::npos) << unauthorised.err;
  EXPECT_FALSE(std::filesystem::exists(config));
  EXPECT_FALSE(std::filesystem::exists(dir + "/cluster-ca.pem"));

  auto before = cluster_->cli_with_config({"nodes"}, config);
  EXPECT_NE(before.exit_code, 0) << "no config yet: " << before.out;

  auto good = cluster_->cli_with_config({"login", host, printed.out}, config);
  ASSERT_EQ(good.exit_code, 0) << good.err;
  EXPECT_NE(good.out.find("Logged in to https://" + host + ":4400"), std::string::npos) << good.out;
  EXPECT_EQ(read_file_text(dir + "/cluster-ca.pem"), cluster_->ca_pem());
  auto nodes = cluster_->cli_with_config({"nodes"}, config);
  ASSERT_EQ(nodes.exit_code, 0) << nodes.err;
  for (int i = 0; i < 2; ++i) {
    EXPECT_NE(nodes.out.find(cluster_->node_id(i)), std::string::npos) << nodes.out;
  }
  EXPECT_NE(nodes.out.find("ready"), std::string::npos) << nodes.out;
}

TEST_F(ClusterTest, EveryNodeJoinsAndAServicesReplicasSpreadOnePerNode) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 4, .start = 3}));
  auto listed = get_json("/v1/nodes");
  ASSERT_TRUE(listed.is_array());
  ASSERT_EQ(listed.as_array().size(), 3u) << json::serialize(listed);
  std::set<std::string> addresses;
  for (const auto& n : listed.as_array()) {
    EXPECT_EQ(n.at("status").as_string(), "ready");
    addresses.insert(std::string(n.at("address").as_string()));
  }
  EXPECT_EQ(addresses, (std::set<std::string>{cluster_->node_ip(0), cluster_->node_ip(1),
                                              cluster_->node_ip(2)}))
      << "each node registers the address it advertises";

  std::string stream = deploy(config(3));
  EXPECT_NE(stream.find("event: done"), std::string::npos) << stream << cluster_->log(0);
  auto allocs = web_allocations();
  ASSERT_EQ(allocs.size(), 3u) << json::serialize(get_json("/v1/services"));
  std::set<std::string> used;
  for (const auto& [id, node] : allocs) used.insert(node);
  EXPECT_EQ(used, (std::set<std::string>{cluster_->node_id(0), cluster_->node_id(1),
                                         cluster_->node_id(2)}))
      << "three replicas, one per node";

  // Logs come from the node that keeps them, also a remote agent's.
  for (const auto& [id, node] : allocs) {
    auto log = cluster_->call("GET", "/v1/logs/" + id + "?tail=5");
    EXPECT_EQ(log.status, 200) << node << ": " << log.body;
    EXPECT_NE(log.body.find("data: "), std::string::npos) << node << ": " << log.body;
  }
  // The service's log is every replica's, from all three nodes, merged in time order.
  auto merged = cluster_->call("GET", "/v1/logs/web");
  EXPECT_EQ(merged.status, 200) << merged.body;
  std::vector<std::string> times;
  for (const auto& [id, node] : allocs) {
    EXPECT_NE(merged.body.find(R"("alloc":")" + id + "\""), std::string::npos)
        << id << " on " << node << " is missing:\n"
        << merged.body;
  }
  for (size_t at = merged.body.find(R"("ts":")"); at != std::string::npos;
       at = merged.body.find(R"("ts":")", at + 1)) {
    times.push_back(merged.body.substr(at + 6, 24));
  }
  EXPECT_TRUE(std::is_sorted(times.begin(), times.end())) << merged.body;

  // A fourth machine joining changes nothing that runs.
  ASSERT_TRUE(cluster_->join(3));
  EXPECT_TRUE(eventually([&] { return node_status().size() == 4; }));
  EXPECT_EQ(web_allocations(), allocs);
  EXPECT_EQ(node_status().at(cluster_->node_id(3)), "ready");
}

// `mill agent` on node 1 with this join token and address; node 1 is not started.
CommandResult join_with(const Cluster& c, const std::string& address, const std::string& token) {
  return run_mill_in(c.netns(1), {"agent", "--join", address, "--token", token, "--data-dir",
                                  c.data_dir(1), "--bridge", c.bridge(1), "--advertise",
                                  c.node_ip(1), "--proxy-http", "", "--proxy-https", ""});
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_F(ClusterTest, AJoinTokenWithAWrongSecretRegistersNothing) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 2, .start = 1}));
  std::string token = cluster_->join_token();
  token = token.substr(0, token.rfind('.') + 1) + std::string(64, 'f');
  auto r = join_with(*cluster_, "https://" + cluster_->api(), token);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("401"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(std::string(64, 'f')), std::string::npos) << "the secret in a message";
  EXPECT_EQ(node_status().size(), 1u) << "nothing registered";
  EXPECT_FALSE(std::filesystem::exists(cluster_->data_dir(1) + "/node.id"));
  EXPECT_FALSE(std::filesystem::exists(cluster_->data_dir(1) + "/node.pem"));
  EXPECT_EQ(count_of(cluster_->log(0), "POST /v1/agent/join 401"), 1u) << cluster_->log(0);
}

TEST_F(ClusterTest, AJoinTokenPinningAnotherCaIsRefusedBeforeTheSecretIsSent) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 2, .start = 1}));
  auto other = crypto::make_cluster_ca();
  ASSERT_TRUE(other);
  const std::string pin = *crypto::ca_fingerprint(other->cert_pem);
  auto ours_token = crypto::parse_join_token(cluster_->join_token());
  ASSERT_TRUE(ours_token) << ours_token.error().to_string();
  const std::string secret = ours_token->secret;
  auto r =
      join_with(*cluster_, "https://" + cluster_->api(), *crypto::format_join_token(pin, secret));
  EXPECT_NE(r.exit_code, 0);
  const std::string ours = *crypto::ca_fingerprint(cluster_->ca_pem());
  EXPECT_NE(r.err.find("the server's CA does not match the join token (expected sha256 " + pin +
                       ", the server presented "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(ours), std::string::npos) << "names the CA the server showed: " << r.err;
  EXPECT_EQ(r.err.find(secret), std::string::npos) << "the secret in a message";
  // Not a request reached the API: the check happens on the TLS handshake alone.
  EXPECT_EQ(cluster_->log(0).find("/v1/agent/join"), std::string::npos) << cluster_->log(0);
  EXPECT_EQ(node_status().size(), 1u) << "nothing registered";
  EXPECT_FALSE(std::filesystem::exists(cluster_->data_dir(1) + "/node.pem"));

  // Plain HTTP to a server on another machine is refused before anything is sent.
  auto plain = join_with(*cluster_, "http://" + cluster_->api(), cluster_->join_token());
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_NE(plain.err.find("over HTTPS"), std::string::npos) << plain.err;
  // So is a bare secret, the join token of before the CA.
  auto bare = join_with(*cluster_, "https://" + cluster_->api(), secret);
  EXPECT_NE(bare.exit_code, 0);
  EXPECT_NE(bare.err.find("mill join-token"), std::string::npos) << bare.err;
  EXPECT_EQ(cluster_->log(0).find("/v1/agent/join"), std::string::npos) << cluster_->log(0);
}

// After the join a node speaks with its certificate (mTLS), for itself only.
TEST_F(ClusterTest, ANodeCertificateActsForItsOwnNodeOnly) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 3}));
  const std::string one = cluster_->node_id(1);
  const std::string two = cluster_->node_id(2);
  const std::string cert = read_file_text(cluster_->data_dir(1) + "/node.pem");
  const std::string key = read_file_text(cluster_->data_dir(1) + "/node.key");
  ASSERT_FALSE(cert.empty());
  auto info = crypto::certificate_info(cert);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->common_name, one);
  EXPECT_TRUE(crypto::verify_certificate(cluster_->ca_pem(), cert, crypto::CertUsage::kClient));
  EXPECT_EQ(read_file_text(cluster_->data_dir(1) + "/ca.pem"), cluster_->ca_pem());

  auto heartbeat = [&](const std::string& id, const std::string& c, const std::string& k) {
    net::ClientRequest req;
    req.method = "POST";
    req.target = "/v1/agent/heartbeat";
    req.content_type = "application/json";
    req.body = model::encode(model::Heartbeat{id,
                                              {.cpu_total = 1,
                                               .cpu_available = 1,
                                               .memory_total = 1 << 30,
                                               .memory_available = 1 << 30}});
    return cluster_->call_as(req, c, k);
  };
  EXPECT_EQ(heartbeat(one, cert, key).status, 200) << heartbeat(one, cert, key).body;
  auto as_other = heartbeat(two, cert, key);
  EXPECT_EQ(as_other.status, 403) << as_other.body;
  EXPECT_EQ(heartbeat(two, "", "").status, 401) << "neither a secret nor a certificate";
  net::ClientRequest allocations;
  allocations.target = "/v1/agent/allocations?node=" + two + "&index=0&wait_ms=0";
  EXPECT_EQ(cluster_->call_as(allocations, cert, key).status, 403);
  allocations.target = "/v1/agent/allocations?node=" + one + "&index=0&wait_ms=0";
  EXPECT_EQ(cluster_->call_as(allocations, cert, key).status, 200);
  net::ClientRequest status;
  status.target = "/v1/status";
  EXPECT_EQ(cluster_->call_as(status, cert, key).status, 401) << "the API needs its token";

  // A restart finds its certificate and does not join again.
  EXPECT_EQ(count_of(cluster_->log(0), "POST /v1/agent/join 200"), 2u) << cluster_->log(0);
  cluster_->kill_node(1);
  ASSERT_TRUE(cluster_->revive_node(1));
  EXPECT_NE(cluster_->log(1).find("using this node's certificate"), std::string::npos)
      << cluster_->log(1);
  EXPECT_EQ(cluster_->node_id(1), one);
  EXPECT_TRUE(eventually([&] { return node_status()[one] == "ready"; }, 20s));
  EXPECT_EQ(count_of(cluster_->log(0), "POST /v1/agent/join"), 2u) << cluster_->log(0);
  auto cli = cluster_->cli({"nodes"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find(one), std::string::npos) << cli.out;
}

// A machine fails: it is down within the TTL, its service replicas run healthy
// elsewhere within 15 s of that, its task is lost; when it comes back, what it still
// ran is stopped and the service has exactly its replicas. Default settings.
TEST_F(ClusterTest, ALostNodesReplicasComeBackElsewhereItsTaskIsLostAndItsReturnStopsDuplicates) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 3}));
  std::string stream = deploy(config(3));
  ASSERT_NE(stream.find("event: done"), std::string::npos) << stream << cluster_->log(0);
  // A task on a node other than the server's (that one we keep).
  std::string task;
  int victim = spawn_off_the_server(task);
  ASSERT_GE(victim, 1) << "no task landed off the server's node";
  const std::string victim_id = cluster_->node_id(victim);
  std::string old_replica;
  for (const auto& [id, node] : web_allocations()) {
    if (node == victim_id) old_replica = id;
  }
  ASSERT_FALSE(old_replica.empty());

  const auto killed = std::chrono::steady_clock::now();
  cluster_->kill_node(victim);
  ASSERT_TRUE(eventually([&] { return node_status()[victim_id] == "down"; }, 20s));
  const auto down = std::chrono::steady_clock::now();
  EXPECT_LE(down - killed, 12s) << "down later than the 10 s TTL (and a look) after it went silent";

  // Three healthy replicas again, none on the dead node, within 15 s of it going down.
  auto healthy_elsewhere = [&] {
    auto v = get_json("/v1/services");
    if (!v.is_array()) return false;
    int healthy = 0;
    for (const auto& s : v.as_array()) {
      if (s.at("name") != "web") continue;
      for (const auto& a : s.at("allocations").as_array()) {
        if (a.at("status") == "healthy" && a.at("node") != victim_id.c_str()) ++healthy;
      }
    }
    return healthy == 3;
  };
  ASSERT_TRUE(eventually(healthy_elsewhere, 30s)) << json::serialize(get_json("/v1/services"));
  const auto replaced = std::chrono::steady_clock::now();
  EXPECT_LE(replaced - down, 15s);
  using ms = std::chrono::milliseconds;
  std::cout << "node silent -> down: " << std::chrono::duration_cast<ms>(down - killed).count()
            << " ms; down -> replicas healthy elsewhere: "
            << std::chrono::duration_cast<ms>(replaced - down).count() << " ms\n";

  auto t = get_json("/v1/tasks/" + task);
  ASSERT_TRUE(t.is_object()) << json::serialize(t);
  EXPECT_EQ(t.at("status"), "lost") << json::serialize(t);
  EXPECT_NE(json::serialize(t).find("is down"), std::string::npos) << json::serialize(t);

  // The machine comes back: what it still ran is stopped there; no duplicate.
  ASSERT_TRUE(cluster_->revive_node(victim));
  EXPECT_TRUE(eventually([&] { return node_status()[victim_id] == "ready"; }, 20s));
  auto running_there = [&](const std::string& alloc) {
    std::string out;
    FILE* p = ::popen(
        ("runc --root '" + cluster_->data_dir(victim) + "/runc' list -q 2>/dev/null").c_str(), "r");
    char buf[256];
    while (p && std::fgets(buf, sizeof buf, p)) out += buf;
    if (p) ::pclose(p);
    return out.find(alloc) != std::string::npos;
  };
  EXPECT_TRUE(eventually([&] { return !running_there(old_replica); }, 30s))
      << "the lost replica still runs on the node that came back";
  EXPECT_FALSE(running_there(task)) << "the lost task still runs on the node that came back";
  int live = 0;
  for (const auto& [id, node] : web_allocations()) {
    if (id != old_replica) ++live;
  }
  EXPECT_EQ(live, 3);
  auto services = get_json("/v1/services");
  for (const auto& s : services.as_array()) {
    if (s.at("name") == "web") {
      EXPECT_EQ(s.at("replicas").at("healthy").as_int64(), 3) << json::serialize(s);
    }
  }
}

// Drain a node with two services and a task: each replacement is healthy elsewhere
// before the old allocation stops (no service ever has fewer healthy replicas than it
// wants), the task runs on until the deadline, the node is `drained` only then, and it
// can be removed only once drained; its agent may not come back.
TEST_F(ClusterTest, ADrainMovesServicesSurgeFirstLetsTheTaskRunToTheDeadlineThenTheNodeGoes) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 3}));
  std::string two = config(3) + "\n[service.api]\nimage = \"" + cluster_->registry_host() +
                    "/probe:v1\"\nreplicas = 3\nport = 8080\ncpu = 0.1\nmemory = \"32M\"\n";
  ASSERT_NE(deploy(two).find("event: done"), std::string::npos) << cluster_->log(0);
  std::string task;
  int victim = spawn_off_the_server(task);
  ASSERT_GE(victim, 1) << "no task landed off the server's node";
  const std::string id = cluster_->node_id(victim);

  // Not removable while it runs anything: 409 with what it runs.
  auto refused = cluster_->call("DELETE", "/v1/nodes/" + id);
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_NE(refused.body.find(task), std::string::npos) << refused.body;

  // `mill drain` follows it to the end while this thread watches the services.
  CommandResult drained;
  const auto began = std::chrono::steady_clock::now();
  std::thread cli([&] { drained = cluster_->cli({"drain", id, "--deadline", "6s"}); });
  int min_healthy = 99;
  bool saw_draining_with_task = false;
  std::string status;
  while (std::chrono::steady_clock::now() - began < 60s) {
    auto services = get_json("/v1/services");
    for (const auto& s : services.as_array()) {
      min_healthy = std::min<int>(min_healthy, s.at("replicas").at("healthy").as_int64());
    }
    status = node_status()[id];
    auto t = get_json("/v1/tasks/" + task);
    if (status == "draining" && t.at("status") == "running") saw_draining_with_task = true;
    if (status == "drained") break;
    std::this_thread::sleep_for(100ms);
  }
  cli.join();
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_EQ(status, "drained");
  EXPECT_EQ(drained.exit_code, 0) << drained.out << drained.err;
  EXPECT_NE(drained.out.find(id + " is drained"), std::string::npos) << drained.out;
  EXPECT_GE(min_healthy, 3) << "a service had fewer healthy replicas than it wants mid-drain";
  EXPECT_TRUE(saw_draining_with_task) << "the task should run on while the node drains";
  EXPECT_GE(took, 6s) << "drained before the task's deadline";
  EXPECT_EQ(get_json("/v1/tasks/" + task).at("status"), "killed");
  for (const auto& [alloc, node] : web_allocations()) EXPECT_NE(node, id) << alloc;

  // Drained: it may go now, and its agent may not register again.
  auto removed = cluster_->call("DELETE", "/v1/nodes/" + id);
  EXPECT_EQ(removed.status, 200) << removed.body;
  EXPECT_EQ(node_status().count(id), 0u);
  EXPECT_TRUE(eventually(
      [&] {
        return cluster_->log(victim).find("was removed from the cluster") != std::string::npos;
      },
      20s))
      << cluster_->log(victim);
  EXPECT_EQ(node_status().count(id), 0u) << "the removed node's agent registered again";
}

// A drain whose replacements have no room elsewhere is refused at once, with the
// reason, and changes nothing; with force it goes ahead and stops at the deadline what
// could not move.
TEST_F(ClusterTest, ADrainThatCannotFinishIsRefusedAndStopsNothingUnlessForced) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 2}));
  auto nodes = get_json("/v1/nodes");
  ASSERT_TRUE(nodes.is_array());
  // Each replica takes more than half a node's memory: one per node, no room for two.
  int64_t total = nodes.as_array()[0].at("memory").at("total").as_int64();
  std::string big = "[registry.\"" + cluster_->registry_host() +
                    "\"]\ninsecure = true\n\n[service.big]\nimage = \"" +
                    cluster_->registry_host() + "/probe:v1\"\nreplicas = 2\nport = 8080\n" +
                    "cpu = 0.1\nmemory = \"" + std::to_string(total * 6 / 10 / (1 << 20)) + "M\"\n";
  ASSERT_NE(deploy(big).find("event: done"), std::string::npos) << deploy(big);
  const std::string id = cluster_->node_id(1);
  auto res = cluster_->call("POST", "/v1/nodes/" + id + "/drain", "{}", "application/json");
  EXPECT_EQ(res.status, 409) << res.body;
  EXPECT_NE(res.body.find("do not fit"), std::string::npos) << res.body;
  EXPECT_EQ(node_status()[id], "ready") << "a refused drain leaves the node as it was";
  std::this_thread::sleep_for(1500ms);  // a look of the node monitor
  auto services = get_json("/v1/services");
  EXPECT_EQ(services.as_array()[0].at("replicas").at("healthy").as_int64(), 2);

  // A malformed body is a 400 that changes nothing.
  for (const char* bad :
       {R"({"force":"yes"})", R"({"deadline":"soon"})", R"({"forse":true})", "{"}) {
    auto r = cluster_->call("POST", "/v1/nodes/" + id + "/drain", bad, "application/json");
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
  }
  EXPECT_EQ(node_status()[id], "ready");

  // Forced, it drains anyway: the replica with no room elsewhere runs until the
  // deadline, then stops, and the node is drained (the service runs short of one).
  const auto began = std::chrono::steady_clock::now();
  auto forced = cluster_->cli({"drain", id, "--force", "--deadline", "3s"});
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_EQ(forced.exit_code, 0) << forced.out << forced.err;
  EXPECT_NE(forced.out.find(id + " is drained"), std::string::npos) << forced.out;
  EXPECT_GE(took, 3s) << "stopped before the deadline";
  EXPECT_EQ(node_status()[id], "drained");
  for (const auto& [alloc, placed] : cluster_->allocations_of("big")) {
    if (placed.status == "healthy" || placed.status == "running") {
      EXPECT_NE(placed.node, id) << alloc << " still runs on the drained node";
    }
  }
}

// The data plane outlives the control plane: with the agent as its own process,
// restarting `mill server` (an upgrade) leaves the containers and the ingress proxy
// serving; requests through the proxy keep succeeding while the server is gone.
TEST_F(ClusterTest, RequestsThroughTheProxyKeepSucceedingWhileTheServerRestarts) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 2, .server_flags = {"--no-agent"}}));
  ASSERT_NE(
      deploy(config(1) + "route = { host = \"web.test\", path = \"/\" }\n").find("event: done"),
      std::string::npos)
      << cluster_->log(0);
  const std::string proxy = cluster_->node_ip(1) + ":80";
  auto get_once = [&] {
    net::ClientRequest req;
    req.target = "/health";
    req.headers.push_back({"Host", "web.test"});
    req.timeout = 2s;
    auto res = net::http_request(proxy, req);
    return res && res->status == 200;
  };
  bool first = false;
  run_in_netns(cluster_->underlay_netns(), [&] { first = eventually(get_once, 20s); });
  ASSERT_TRUE(first) << "the route never answered\n" << cluster_->log(1);

  std::atomic<bool> done{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread load([&] {
    run_in_netns(cluster_->underlay_netns(), [&] {
      while (!done) {
        (get_once() ? ok : failed)++;
        std::this_thread::sleep_for(20ms);
      }
    });
  });
  std::this_thread::sleep_for(500ms);
  const int before = ok;
  ASSERT_TRUE(cluster_->restart_node(0)) << cluster_->log(0);
  std::this_thread::sleep_for(500ms);
  done = true;
  load.join();
  EXPECT_EQ(failed, 0) << "requests failed while the server restarted";
  EXPECT_GT(ok - before, 10) << "too few requests made it through the restart to count";
  // The agent finds the new server and the cluster carries on.
  EXPECT_TRUE(eventually([&] { return node_status()[cluster_->node_id(1)] == "ready"; }, 20s));
}

// Any node answers the API: a non-server node's :4400 forwards every spec route to the
// server and gives the same answers, streams as they happen (a deploy's SSE) and a
// log followed until its task ends.
TEST_F(ClusterTest, EverySpecRouteAnswersTheSameThroughAnotherNodeAndStreamsAsTheyCome) {
  ASSERT_NO_FATAL_FAILURE(start({.nodes = 2}));
  for (const auto& r : spec_routes()) {
    net::ClientRequest req;
    req.method = r.method;
    req.target = r.target;
    req.body = r.body;
    if (!r.body.empty()) {
      req.headers.push_back(
          {"Content-Type", r.target == "/v1/deploy" ? "text/plain" : "application/json"});
    }
    auto direct = cluster_->call_via(0, req);
    auto forwarded = cluster_->call_via(1, req);
    EXPECT_NE(direct.status, 0) << r.spec << ": " << direct.body;
    EXPECT_EQ(forwarded.status, direct.status) << r.spec << ": " << forwarded.body;
    const std::string* a = direct.header("Content-Type");
    const std::string* b = forwarded.header("Content-Type");
    EXPECT_EQ(a ? *a : "", b ? *b : "") << r.spec;
    if (r.method == "GET" && r.target != "/v1/nodes" && r.target != "/v1/status" &&
        r.target != "/v1/metrics") {  // those change by the second (heartbeats, usage)
      EXPECT_EQ(forwarded.body, direct.body) << r.spec;
    }
  }
  // A bad token is the server's to refuse, also through the node.
  net::ClientRequest bad;
  bad.target = "/v1/status";
  bad.headers.push_back({"Authorization", "Bearer nope"});
  bad.ca_pem = cluster_->ca_pem();
  net::ClientResponse refused;
  run_in_netns(cluster_->underlay_netns(), [&] {
    auto got = net::http_request("https://" + cluster_->node_ip(1) + ":4400", bad);
    if (got) refused = *got;
  });
  EXPECT_EQ(refused.status, 401);

  // A deploy through the node: its events arrive as they happen, not all at the end.
  using Clock = std::chrono::steady_clock;
  std::vector<std::pair<Clock::time_point, std::string>> pieces;
  net::ClientRequest deploy_req;
  deploy_req.method = "POST";
  deploy_req.target = "/v1/deploy?file=cluster.toml";
  deploy_req.body = config(2);
  deploy_req.headers.push_back({"Content-Type", "text/plain"});
  deploy_req.timeout = 120s;
  deploy_req.body_sink = [&](std::string_view chunk) -> Result<void> {
    pieces.emplace_back(Clock::now(), std::string(chunk));
    return {};
  };
  auto streamed = cluster_->call_via(1, deploy_req);
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  std::string all;
  for (const auto& [t, text] : pieces) all += text;
  ASSERT_NE(all.find("event: done"), std::string::npos) << all;
  ASSERT_GE(pieces.size(), 2u) << "the stream came in one piece";
  EXPECT_NE(pieces.front().second.find("started"), std::string::npos) << pieces.front().second;
  EXPECT_GE(pieces.back().first - pieces.front().first, 500ms)
      << "the first event came with the last: the stream was held back";

  // A followed log through the node: lines as they come, then the end when the task
  // ends.
  auto spawned = cluster_->call(
      "POST", "/v1/tasks/spawn",
      R"({"image":")" + cluster_->registry_host() + R"(/probe:v1","cpu":0.1,"memory":"32M"})",
      "application/json");
  ASSERT_EQ(spawned.status, 201) << spawned.body;
  std::string task(json::parse(spawned.body).at("id").as_string());
  std::mutex mu;
  std::string followed;
  net::ClientRequest follow;
  follow.target = "/v1/logs/" + task + "?follow=true";
  follow.timeout = 60s;
  follow.body_sink = [&](std::string_view chunk) -> Result<void> {
    std::lock_guard lock(mu);
    followed.append(chunk);
    return {};
  };
  net::ClientResponse follow_res;
  std::thread reader([&] { follow_res = cluster_->call_via(1, follow); });
  EXPECT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return followed.find("data: ") != std::string::npos;
  })) << "no line came through while the task runs";
  auto killed = cluster_->call("DELETE", "/v1/tasks/" + task);
  EXPECT_EQ(killed.status, 200) << killed.body;
  reader.join();
  EXPECT_EQ(follow_res.status, 200) << follow_res.body;
  EXPECT_NE(followed.find("event: end"), std::string::npos) << followed;
}

}  // namespace
}  // namespace mill::testing
