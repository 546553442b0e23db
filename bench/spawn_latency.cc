// The spawn latency benchmark: Mill vs `runc run -d` of the same bundle vs
// `docker run -d` of the same image, interleaved round by round (in an order that
// rotates each round).

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "spawn_bench.h"

namespace mill::bench {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

// The runc floor's bundle: Mill's config.json for a running task, pointed at a copy of
// its rootfs, its hosts/resolv.conf/hostname files, and the bench's own netns.
struct RuncBundle {
  std::string dir, root, log;
  json::object config;

  void write_for(const std::string& id) {
    json::object c = config;
    c["hostname"] = id;
    c["linux"].as_object()["cgroupsPath"] = "/mill-bench-runc/" + id;
    write_text(dir + "/config.json", json::serialize(c));
  }
};

RuncBundle make_runc_bundle(const Args& a, const MillServer& s, const json::object& t) {
  std::string id = field_str(t, "id");
  RuncBundle b;
  b.dir = a.work + "/runc/bundle";
  b.root = a.work + "/runc/state";
  b.log = a.work + "/runc/runc.log";
  fs::create_directories(b.dir);
  fs::create_directories(b.root);
  std::string alloc = s.data_dir() + "/allocs/" + id;
  if (run_process({"cp", "-a", alloc + "/rootfs", b.dir + "/rootfs"}).exit_code != 0) {
    throw std::runtime_error("cannot copy the rootfs of " + id);
  }
  auto text = read_text(s.data_dir() + "/containers/" + id + "/bundle/config.json");
  b.config = json::parse(text).as_object();
  b.config["root"].as_object()["path"] = b.dir + "/rootfs";
  for (auto& m : b.config["mounts"].as_array()) {
    auto& mo = m.as_object();
    std::string src = field_str(mo, "source");
    if (src.rfind(alloc + "/", 0) == 0) {
      std::string copy = b.dir + "/" + fs::path(src).filename().string();
      fs::copy_file(src, copy, fs::copy_options::overwrite_existing);
      mo["source"] = copy;
    }
  }
  for (auto& n : b.config["linux"].as_object()["namespaces"].as_array()) {
    auto& no = n.as_object();
    if (field_str(no, "type") == "network") no["path"] = a.runc_netns;
  }
  return b;
}

std::string docker_ip(const Args& a, const std::string& id) {
  std::string path = a.docker_root + "/containers/" + id + "/config.v2.json";
  for (int i = 0; i < 2000; ++i) {
    boost::system::error_code ec;
    auto v = json::parse(read_text(path), ec);
    if (!ec && v.is_object()) {
      if (auto* nets = v.as_object().at("NetworkSettings").as_object().if_contains("Networks")) {
        for (auto& [name, n] : nets->as_object()) {
          std::string ip = field_str(n.as_object(), "IPAddress");
          if (!ip.empty()) return ip;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  throw std::runtime_error("no IP for docker container " + id);
}

// Removing a container leaves the kernel work to finish in the background (a netns
// is destroyed from a workqueue, cgroups and address spaces are released lazily).
// A pause before each timed start keeps one contender's cleanup out of the next
// one's figure.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(100)); }

}  // namespace

// What every contender's container gets. Half a core: at a twentieth (5 ms of CPU per
// 100 ms CFS period) the probe's own start was throttled past a period boundary, and
// "-> /health" measured the quota, the same ~100 ms for all three, not the start.
constexpr const char* kCpus = "0.5";

void spawn_bench(const Args& a, const std::string& image) {
  std::printf("\n== spawn latency, image cached: %d interleaved rounds (+1 warm-up)\n", a.runs);
  MillServer s(server_options(a, 0, "spawn"));
  std::string body =
      R"({"image":")" + image + R"(","port":8080,"cpu":)" + kCpus + R"(,"memory":"16M"})";
  // Warm-up: pulls the image; its bundle and rootfs become the runc floor's.
  auto first = task(s, field_str(spawn(s, body), "id"));
  if (!wait_http_200(field_str(first, "ip") + ":8080", "/health", std::chrono::seconds(10))) {
    throw std::runtime_error("warm-up task does not answer");
  }
  RuncBundle bundle = make_runc_bundle(a, s, first);
  kill_task(s, field_str(first, "id"));
  const bool docker = !a.docker_host.empty();
  std::vector<std::string> dk{"docker", "-H", a.docker_host};
  if (docker) {
    auto p = run_process({dk[0], dk[1], dk[2], "pull", "-q", image});
    if (p.exit_code != 0) throw std::runtime_error("docker pull: " + p.out);
  }
  std::vector<double> mill_201, mill_health, pull_ms, start_ms, mill_delete;
  std::vector<double> runc_run, runc_health, docker_run, docker_health;
  // Each round runs every contender once, in an order that rotates from round to
  // round: whoever goes first pays for the previous one's clean-up still running in
  // the background (dockerd's, mostly), so no contender may always follow the same one.
  for (int round = -1; round < a.runs; ++round) {
    bool keep = round >= 0;
    auto run_mill = [&] {
      settle();
      auto t0 = Clock::now();
      std::string id = field_str(spawn(s, body), "id");
      double d201 = ms_since(t0);
      auto t = task(s, id);  // a client learns the address's IP here
      if (!wait_http_200(field_str(t, "ip") + ":8080", "/health", std::chrono::seconds(10))) {
        throw std::runtime_error("task " + id + " never answered /health");
      }
      double dh = ms_since(t0);
      auto t1 = Clock::now();
      kill_task(s, id);
      if (keep) {
        mill_201.push_back(d201);
        mill_health.push_back(dh);
        pull_ms.push_back(field_num(t, "pull_ms"));
        start_ms.push_back(field_num(t, "start_ms"));
        mill_delete.push_back(ms_since(t1));
      }
    };
    // runc run -d of the same bundle
    auto run_runc = [&] {
      std::string rid = "mill-bench-" + std::to_string(round + 1);
      bundle.write_for(rid);
      settle();
      auto t0 = Clock::now();
      if (run_logged({"runc", "--root", bundle.root, "run", "-d", "--bundle", bundle.dir, rid},
                     bundle.log) != 0) {
        throw std::runtime_error("runc run failed: " + read_text(bundle.log));
      }
      double rr = ms_since(t0);
      if (!wait_http_200(a.runc_ip + ":8080", "/health", std::chrono::seconds(10))) {
        throw std::runtime_error("runc container never answered /health");
      }
      double rh = ms_since(t0);
      run_logged({"runc", "--root", bundle.root, "delete", "--force", rid}, bundle.log);
      if (keep) {
        runc_run.push_back(rr);
        runc_health.push_back(rh);
      }
    };
    auto run_docker = [&] {
      settle();
      auto t0 = Clock::now();
      auto p = run_process(
          {dk[0], dk[1], dk[2], "run", "-d", "--init", "--cpus", kCpus, "--memory", "16m", image},
          a.work + "/docker-cli.log");
      if (p.exit_code != 0) throw std::runtime_error("docker run: " + p.out);
      double dr = ms_since(t0);
      std::string cid = p.out.substr(0, p.out.find_first_of("\n "));
      if (!wait_http_200(docker_ip(a, cid) + ":8080", "/health", std::chrono::seconds(10))) {
        throw std::runtime_error("docker container never answered /health");
      }
      double dh = ms_since(t0);
      run_process({dk[0], dk[1], dk[2], "rm", "-f", cid});
      if (keep) {
        docker_run.push_back(dr);
        docker_health.push_back(dh);
      }
    };
    std::vector<std::function<void()>> order{run_mill, run_runc};
    if (docker) order.push_back(run_docker);
    std::rotate(order.begin(), order.begin() + (round + 1) % order.size(), order.end());
    for (auto& run : order) run();
  }
  print_series("mill: spawn -> 201", mill_201);
  print_series("mill: spawn -> /health 200", mill_health);
  print_series("mill: pull_ms (task)", pull_ms);
  print_series("mill: start_ms (task)", start_ms);
  print_series("mill: DELETE (not in the figures)", mill_delete);
  print_series("runc run -d -> returned", runc_run);
  print_series("runc run -d -> /health 200", runc_health);
  if (docker) {
    print_series("docker run -d -> returned", docker_run);
    print_series("docker run -d -> /health 200", docker_health);
  }
  for (auto [what, m, r] : {std::tuple{"running", &mill_201, &runc_run},
                            std::tuple{"/health", &mill_health, &runc_health}}) {
    add_row(std::string("spawn->") + what + " p50 vs runc", percentile(*m, 50), percentile(*r, 50),
            "ms", 1.3, "<= 1.3x");
    add_row(std::string("spawn->") + what + " p99 vs runc", percentile(*m, 99), percentile(*r, 99),
            "ms", 2.0, "<= 2x");
    if (docker) {
      auto* d = std::string(what) == "running" ? &docker_run : &docker_health;
      add_row(std::string("spawn->") + what + " p50 vs docker", percentile(*m, 50),
              percentile(*d, 50), "ms", 0.2, "<= 0.2x (5x faster)");
    }
  }
}

}  // namespace mill::bench
