#include "cluster.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "support/eventually.h"
#include "support/test_registry.h"

namespace mill::testing {

namespace {

using namespace std::chrono_literals;

// Runs a shell command; a failure is a test failure naming it.
bool sh(const std::string& command) {
  int rc = std::system((command + " 2>&1").c_str());
  if (rc != 0) ADD_FAILURE() << command << ": exit status " << rc;
  return rc == 0;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Waits for pid to exit (up to `limit`); false if it still runs.
bool reap(pid_t pid, std::chrono::milliseconds limit) {
  int status = 0;
  return eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit);
}

}  // namespace

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {
  lease_ = ClusterLease::take(200, 229);
  if (lease_.octet() < 0) {
    ADD_FAILURE() << "no free 10.x.0.0/16 for the cluster";
    return;
  }
  tag_ = random_name("mc", 4);
  const std::string net = "172.31." + std::to_string(lease_.octet()) + ".";
  underlay_ = tag_ + "u";
  underlay_ip_ = net + "254";
  std::string undo;  // what a crash of the test must undo, as one shell line
  for (int i = 0; i < options_.nodes; ++i) {
    Node n;
    n.netns = tag_ + "n" + std::to_string(i);
    n.ip = net + std::to_string(i + 1);
    n.bridge = tag_ + "b" + std::to_string(i);
    std::filesystem::create_directories(dir_.file("n" + std::to_string(i)));
    n.data = dir_.file("n" + std::to_string(i)) + "/data";
    n.log = dir_.file("n" + std::to_string(i) + ".log");
    n.link = "ul0";
    undo += "nsenter --net=/run/netns/" + n.netns + " '" + mill_binary() +
            "' cleanup --data-dir '" + n.data + "'; ip netns del " + n.netns + "; ";
    nodes_.push_back(std::move(n));
  }
  undo += "ip netns del " + underlay_ + "; rm -rf '" + dir_.path() + "'";
  crash_cleanup_ = std::make_unique<OnCrash>(std::vector<std::string>{"/bin/sh", "-c", undo});
  if (!make_namespaces()) return;

  auto init =
      run_mill({"init", "--data-dir", nodes_[0].data}, {{"MILL_CONFIG", dir_.file("client.toml")}});
  if (init.exit_code != 0) {
    ADD_FAILURE() << "mill init: " << init.err;
    return;
  }
  token_ = trimmed(read_file_text(nodes_[0].data + "/api.token"));
  auto join_token = run_mill({"join-token", "--data-dir", nodes_[0].data});
  if (join_token.exit_code != 0) {
    ADD_FAILURE() << "mill join-token: " << join_token.err;
    return;
  }
  join_token_ = trimmed(join_token.out);
  ca_pem_ = read_file_text(nodes_[0].data + "/ca.pem");
  api_ = nodes_[0].ip + ":4400";
  for (int i = 0; i < std::min(options_.start, size()); ++i) {
    if (!start_node(i)) return;
  }
  ok_ = true;
}

bool Cluster::make_namespaces() {
  // The underlay: one bridge every node's link plugs into, in a namespace of its own.
  const std::string u = "ip -n " + underlay_ + " ";
  if (!sh("ip netns add " + underlay_) || !sh(u + "link set lo up") ||
      !sh(u + "link add ub0 type bridge") || !sh(u + "addr add " + underlay_ip_ + "/24 dev ub0") ||
      !sh(u + "link set ub0 up")) {
    return false;
  }
  for (int i = 0; i < size(); ++i) {
    const Node& n = nodes_[i];
    const std::string host_end = tag_ + "h" + std::to_string(i);
    const std::string in = "ip -n " + n.netns + " ";
    // The veth is made in the underlay with its peer in the node: it never appears in
    // the host's namespace.
    if (!sh("ip netns add " + n.netns) || !sh(in + "link set lo up") ||
        !sh(u + "link add " + host_end + " type veth peer name " + n.link + " netns " + n.netns) ||
        !sh(u + "link set " + host_end + " master ub0 up") ||
        !sh(in + "addr add " + n.ip + "/24 dev " + n.link) ||
        !sh(in + "link set " + n.link + " up")) {
      return false;
    }
  }
  return true;
}

bool Cluster::start_node(int i) {
  Node& n = nodes_[i];
  std::vector<std::string> args;
  std::string ready;
  if (i == 0) {
    args = {"server",      "--data-dir",     n.data, "--listen", api_, "--cluster-network",
            lease_.cidr(), "--heartbeat-ms", "1000"};
    args.insert(args.end(), options_.server_flags.begin(), options_.server_flags.end());
    const auto& f = options_.server_flags;
    // With --no-agent node 0 is the control plane alone (its machine runs no node).
    ready = std::find(f.begin(), f.end(), "--no-agent") != f.end() ? "API listening"
                                                                   : "this node runs containers";
  } else {
    args = {"agent", "--join", "https://" + api_, "--token", join_token_, "--data-dir", n.data};
    ready = "joined ";
  }
  const std::vector<std::string> common{
      "--advertise",  n.ip,         "--name",        tag_ + "-" + std::to_string(i),
      "--bridge",     n.bridge,     "--stop-grace",  "2s",
      "--proxy-http", n.ip + ":80", "--proxy-https", ""};
  args.insert(args.end(), common.begin(), common.end());
  const size_t before = read_file_text(n.log).size();
  n.pid = start_mill_in(n.netns, args, n.log);
  if (n.pid <= 0) {
    ADD_FAILURE() << "cannot start node " << i;
    return false;
  }
  kill_on_crash(n.pid, true);
  bool up = eventually(
      [&] {
        int status = 0;
        if (::waitpid(n.pid, &status, WNOHANG) == n.pid) {
          n.pid = -1;
          return true;
        }
        return read_file_text(n.log).find(ready, before) != std::string::npos;
      },
      60s);
  if (!up || n.pid < 0) {
    ADD_FAILURE() << "node " << i << " did not come up:\n" << read_file_text(n.log).substr(before);
    return false;
  }
  return true;
}

void Cluster::stop_node(int i, int sig) {
  Node& n = nodes_[i];
  if (n.pid <= 0) return;
  ::kill(n.pid, sig);
  if (!reap(n.pid, 20s)) {
    ::kill(n.pid, SIGKILL);
    reap(n.pid, 10s);
    if (sig != SIGKILL) ADD_FAILURE() << "node " << i << " did not stop on signal " << sig;
  }
  kill_on_crash(n.pid, false);
  n.pid = -1;
}

Cluster::~Cluster() {
  // Agents first, the server last, so none of them waits on a server that is gone.
  for (int i = size() - 1; i >= 0; --i) stop_node(i, SIGTERM);
  if (registry_pid_ > 0) {
    ::kill(registry_pid_, SIGKILL);
    reap(registry_pid_, 10s);
    kill_on_crash(registry_pid_, false);
  }
  for (const auto& n : nodes_) {
    if (!std::filesystem::exists("/run/netns/" + n.netns)) continue;
    if (std::filesystem::exists(n.data)) {
      auto cleaned = run_mill_in(n.netns, {"cleanup", "--data-dir", n.data});
      EXPECT_EQ(cleaned.exit_code, 0) << n.netns << ": " << cleaned.err;
    }
    sh("ip netns del " + n.netns);
  }
  if (!underlay_.empty() && std::filesystem::exists("/run/netns/" + underlay_)) {
    sh("ip netns del " + underlay_);
  }
}

std::string Cluster::node_id(int i) const {
  return trimmed(read_file_text(nodes_.at(i).data + "/node.id"));
}

std::string Cluster::log(int i) const { return read_file_text(nodes_.at(i).log); }

net::ClientResponse Cluster::call(const std::string& method, const std::string& target,
                                  const std::string& body, const std::string& content_type,
                                  std::chrono::milliseconds timeout) const {
  net::ClientRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  req.content_type = content_type;
  req.timeout = timeout;
  req.headers.push_back({"Authorization", "Bearer " + token_});
  return call_as(req, {}, {});
}

net::ClientResponse Cluster::call_via(int node, net::ClientRequest req) const {
  req.ca_pem = ca_pem_;
  req.headers.push_back({"Authorization", "Bearer " + token_});
  const std::string address = "https://" + (node == 0 ? api_ : nodes_.at(node).ip + ":4400");
  net::ClientResponse res;
  run_in_netns(underlay_, [&] {
    auto got = net::http_request(address, req);
    if (got) {
      res = std::move(*got);
    } else {
      res.body = got.error().message;  // status 0
    }
  });
  return res;
}

net::ClientResponse Cluster::call_as(net::ClientRequest req, const std::string& cert_pem,
                                     const std::string& key_pem) const {
  req.ca_pem = ca_pem_;
  req.client_cert_pem = cert_pem;
  req.client_key_pem = key_pem;
  net::ClientResponse res;
  run_in_netns(underlay_, [&] { res = api_request("https://" + api_, req); });
  return res;
}

namespace {

boost::json::value json_of(const net::ClientResponse& res) {
  boost::system::error_code ec;
  auto v = boost::json::parse(res.body, ec);
  return ec ? boost::json::value() : v;
}

std::string text(const boost::json::value& v) { return std::string(v.as_string()); }

}  // namespace

std::map<std::string, std::string> Cluster::node_statuses() const {
  std::map<std::string, std::string> out;
  auto v = json_of(call("GET", "/v1/nodes"));
  if (!v.is_array()) return out;
  for (const auto& n : v.as_array()) out[text(n.at("id"))] = text(n.at("status"));
  return out;
}

std::map<std::string, Cluster::Placed> Cluster::allocations_of(const std::string& service) const {
  std::map<std::string, Placed> out;
  auto v = json_of(call("GET", "/v1/services"));
  if (!v.is_array()) return out;
  for (const auto& s : v.as_array()) {
    if (s.at("name") != service.c_str()) continue;
    for (const auto& a : s.at("allocations").as_array()) {
      out[text(a.at("id"))] = Placed{text(a.at("node")), text(a.at("status"))};
    }
  }
  return out;
}

std::string Cluster::service_config(const std::string& name, int replicas) const {
  return "[registry.\"" + registry_host() + "\"]\ninsecure = true\n\n[service." + name +
         "]\nimage = \"" + registry_host() + "/probe:v1\"\nreplicas = " + std::to_string(replicas) +
         "\nport = 8080\ncpu = 0.1\nmemory = \"32M\"\n";
}

CommandResult Cluster::cli(const std::vector<std::string>& args) const {
  return run_mill_in(underlay_, args,
                     {{"MILL_ADDR", "https://" + api_},
                      {"MILL_TOKEN", token_},
                      {"MILL_CA", nodes_[0].data + "/ca.pem"},
                      {"MILL_CONFIG", dir_.file("client.toml")}});
}

CommandResult Cluster::cli_with_config(const std::vector<std::string>& args,
                                       const std::string& config) const {
  return run_mill_in(
      underlay_, args,
      {{"MILL_ADDR", ""}, {"MILL_TOKEN", ""}, {"MILL_CA", ""}, {"MILL_CONFIG", config}});
}

bool Cluster::serve_registry(const TestRegistry& registry) {
  std::string config = "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n";
  config += "storage:\n  filesystem:\n    rootdirectory: " + registry.storage_dir() + "\n";
  config += "http:\n  addr: " + registry_host() + "\n  secret: test-secret\n";
  std::ofstream(dir_.file("registry.yml")) << config;
  const std::string ns = "/run/netns/" + underlay_;
  const std::string cfg = dir_.file("registry.yml");
  const std::string log = dir_.file("registry.log");
  registry_pid_ = ::fork();
  if (registry_pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(ns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) ::_exit(126);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execl("/usr/bin/docker-registry", "docker-registry", "serve", cfg.c_str(), nullptr);
    ::_exit(127);
  }
  if (registry_pid_ < 0) return false;
  kill_on_crash(registry_pid_, true);
  bool up = eventually([&] {
    bool ready = false;
    run_in_netns(underlay_, [&] {
      net::ClientRequest req;
      req.target = "/v2/";
      req.timeout = 1s;
      auto res = net::http_request(registry_host(), req);
      ready = res && res->status == 200;
    });
    return ready;
  });
  if (!up) ADD_FAILURE() << "the underlay registry did not come up:\n" << read_file_text(log);
  return up;
}

void Cluster::kill_node(int i) {
  stop_node(i, SIGKILL);
  sh("ip -n " + nodes_.at(i).netns + " link set " + nodes_.at(i).link + " down");
}

bool Cluster::join(int i) { return nodes_.at(i).pid <= 0 && start_node(i); }

bool Cluster::restart_node(int i) {
  stop_node(i, SIGTERM);
  return start_node(i);
}

bool Cluster::revive_node(int i) {
  if (!sh("ip -n " + nodes_.at(i).netns + " link set " + nodes_.at(i).link + " up")) return false;
  return start_node(i);
}

}  // namespace mill::testing
