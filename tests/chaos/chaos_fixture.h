#pragma once

// The fixture of the chaos suite (issue 16): a real `mill server` on a bridge and a
// cluster network of the test's own, the probe image in a real registry on loopback,
// and what a test needs to look at the host the way an operator would: runc's list,
// cgroups, network namespaces, mounts. Needs root and runc.

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "net/http_client.h"
#include "support/cluster_lease.h"
#include "support/eventually.h"
#include "support/probe_image.h"
#include "support/require.h"
#include "support/test_registry.h"

namespace mill::testing {

namespace json = boost::json;
using namespace std::chrono_literals;

// The lines `command` prints (popen), each trimmed; empty when it cannot run.
inline std::vector<std::string> output_lines(const std::string& command) {
  std::vector<std::string> out;
  if (FILE* p = ::popen(command.c_str(), "r")) {
    char line[4096];
    while (std::fgets(line, sizeof line, p)) {
      std::string l(line);
      while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.pop_back();
      if (!l.empty()) out.push_back(l);
    }
    ::pclose(p);
  }
  return out;
}

inline std::vector<std::string> dir_entries(const std::string& path) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    while (auto* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") out.push_back(name);
    }
    ::closedir(d);
  }
  return out;
}

class Chaos : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { registry_.stop(); }

  void SetUp() override {
    MILL_REQUIRE(::geteuid() == 0, "running containers needs root");
    MILL_REQUIRE(::access("/usr/sbin/runc", X_OK) == 0 || ::access("/usr/bin/runc", X_OK) == 0,
                 "running containers needs runc");
    ASSERT_NO_FATAL_FAILURE(registry_.start([] {
      return std::vector<SuiteRegistry::Image>{
          {"probe", "v1",
           probe_image(MILL_PROBE_PATH, {"CHAOS=1"}, LayerCompression::kZstd,
                       /*probe_as_cmd=*/true)}};
    }));
    bridge_ = random_name("mx");
    lease_ = ClusterLease::take(150, 199);
    ASSERT_GE(lease_.octet(), 0) << "no free 10.x.0.0/16 for the test";
    token_ = init_data_dir(dir_);
    data_ = dir_.file("data");
    crash_cleanup_ = clean_up_on_crash(data_);
    ASSERT_NO_FATAL_FAILURE(start());
  }

  void TearDown() override {
    if (bridge_.empty()) return;  // SetUp stopped before it made anything
    if (server_) server_->stop(SIGTERM);
    server_.reset();
    auto cleaned = run_mill({"cleanup", "--data-dir", data_});
    EXPECT_EQ(cleaned.exit_code, 0) << cleaned.err;
    EXPECT_EQ(host_leftovers(), "") << "after mill cleanup";
  }

  // `mill server` on the test's bridge and cluster network, ended tasks kept an hour.
  void start() {
    server_ = MillServer::start(dir_, {"--bridge", bridge_, "--cluster-network", lease_.cidr(),
                                       "--stop-grace", "1s", "--task-retention", "1h"});
    ASSERT_TRUE(server_) << read_file_text(dir_.file("server.log"));
  }

  std::string image() const { return registry_->host() + "/probe:v1"; }

  // One API call to `address`; nullopt when it did not get an answer (the server was
  // killed under it, say): no test failure for that.
  std::optional<net::ClientResponse> try_call(const std::string& address, const std::string& method,
                                              const std::string& target,
                                              const std::string& body = {},
                                              const std::string& type = "application/json",
                                              std::chrono::milliseconds timeout = 60s) const {
    if (address.empty()) return std::nullopt;
    net::ClientRequest req;
    req.method = method;
    req.target = target;
    req.body = body;
    if (!body.empty()) req.content_type = type;
    req.headers.push_back({"Authorization", "Bearer " + token_});
    req.timeout = timeout;
    auto res = net::http_request(address, req);
    if (!res) return std::nullopt;
    return *res;
  }

  // One API call to the running server; a transport error fails the test.
  net::ClientResponse call(const std::string& method, const std::string& target,
                           const std::string& body = {}) {
    auto res = try_call(server_->address(), method, target, body);
    EXPECT_TRUE(res) << method << " " << target << ": no answer\n" << server_->log();
    return res ? *res : net::ClientResponse{};
  }

  json::value get_json(const std::string& target) {
    auto res = call("GET", target);
    EXPECT_EQ(res.status, 200) << target << ": " << res.body;
    boost::system::error_code ec;
    auto v = json::parse(res.body, ec);
    return ec ? json::value() : v;
  }

  json::object task(const std::string& id) {
    auto v = get_json("/v1/tasks/" + id);
    return v.is_object() ? v.as_object() : json::object();
  }

  static std::string str(const json::object& o, std::string_view key) {
    auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : "";
  }

  // Spawns the probe (`extra`: more fields of the body) and returns its id, failing
  // the test unless the answer is 201.
  std::string spawn(const std::string& extra = "") {
    auto res = call(
        "POST", "/v1/tasks/spawn",
        R"({"image":")" + image() + R"(","port":8080,"cpu":0.05,"memory":"32M")" + extra + "}");
    EXPECT_EQ(res.status, 201) << res.body << "\n" << server_->log();
    if (res.status != 201) return "";
    return str(json::parse(res.body).as_object(), "id");
  }

  // Live allocations (tasks and service replicas) by id, with their IPs: what the
  // server says runs or is about to.
  std::map<std::string, std::string> live_allocations() {
    std::map<std::string, std::string> out;
    auto tasks = get_json("/v1/tasks?all=true");
    if (tasks.is_array()) {
      for (auto& t : tasks.as_array()) {
        const auto& o = t.as_object();
        if (!ended(str(o, "status"))) out[str(o, "id")] = str(o, "ip");
      }
    }
    auto services = get_json("/v1/services");
    if (services.is_array()) {
      for (auto& s : services.as_array()) {
        for (auto& a : s.as_object().at("allocations").as_array()) {
          std::string address = str(a.as_object(), "address");
          out[str(a.as_object(), "id")] = address.substr(0, address.find(':'));
        }
      }
    }
    return out;
  }

  static bool ended(const std::string& status) {
    return status == "exited" || status == "timeout" || status == "killed" || status == "failed" ||
           status == "lost";
  }

  // The containers runc knows on this node (`runc --root <data>/runc list -q`).
  std::set<std::string> runc_containers() const {
    auto lines = output_lines("runc --root '" + data_ + "/runc' list -q 2>/dev/null");
    return {lines.begin(), lines.end()};
  }

  // Whatever of allocation `id` is still on the host: a runc container, a cgroup, a
  // network namespace, a mount, a process in its cgroup. "" when nothing is.
  std::string leftovers_of(const std::string& id) const {
    std::string out;
    if (runc_containers().contains(id)) out += "runc container; ";
    for (const auto& ctl : dir_entries("/sys/fs/cgroup")) {
      std::string parent = "/sys/fs/cgroup/" + ctl + "/mill-" + bridge_;
      if (std::filesystem::exists(parent + "/" + id)) out += "cgroup " + parent + "/" + id + "; ";
    }
    if (std::filesystem::exists("/sys/fs/cgroup/mill-" + bridge_ + "/" + id)) {
      out += "cgroup mill-" + bridge_ + "/" + id + "; ";
    }
    for (const auto& ns : dir_entries("/run/mill/" + bridge_ + "/netns")) {
      if (ns.ends_with(id)) out += "netns " + ns + "; ";
    }
    std::istringstream mounts(read_file_text("/proc/self/mountinfo"));
    for (std::string line; std::getline(mounts, line);) {
      if (line.find("/" + id + " ") != std::string::npos ||
          line.find("/" + id + "/") != std::string::npos) {
        out += "mount " + line + "; ";
      }
    }
    return out;
  }

  // Whatever of this node is still on the host once it is cleaned up: runc
  // containers, network namespaces, its nftables table, mounts under the data dir or
  // /run/mill/<bridge>, cgroups. "" when nothing is.
  std::string host_leftovers() const {
    std::string out;
    for (const auto& c : runc_containers()) out += "runc container " + c + "; ";
    for (const auto& ns : dir_entries("/run/mill/" + bridge_ + "/netns")) {
      out += "netns " + ns + "; ";
    }
    for (const auto& t : output_lines("nft list tables 2>/dev/null")) {
      if (t.ends_with(" mill_" + bridge_)) out += "nft " + t + "; ";
    }
    std::istringstream mounts(read_file_text("/proc/self/mountinfo"));
    for (std::string line; std::getline(mounts, line);) {
      if (line.find(" " + data_ + "/") != std::string::npos ||
          line.find(" /run/mill/" + bridge_) != std::string::npos) {
        out += "mount " + line + "; ";
      }
    }
    for (const auto& ctl : dir_entries("/sys/fs/cgroup")) {
      if (std::filesystem::exists("/sys/fs/cgroup/" + ctl + "/mill-" + bridge_)) {
        out += "cgroup " + ctl + "/mill-" + bridge_ + "; ";
      }
    }
    if (std::filesystem::exists("/sys/fs/cgroup/mill-" + bridge_)) {
      out += "cgroup mill-" + bridge_ + "; ";
    }
    if (std::filesystem::exists("/sys/class/net/" + bridge_)) out += "bridge " + bridge_ + "; ";
    return out;
  }

  static SuiteRegistry registry_;
  TempDir dir_;
  std::string data_;
  std::unique_ptr<OnCrash> crash_cleanup_;  // a crash still cleans up the node
  ClusterLease lease_;
  std::string bridge_, token_;
  std::unique_ptr<MillServer> server_;
};

inline SuiteRegistry Chaos::registry_;

}  // namespace mill::testing
