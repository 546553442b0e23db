// mill_spawn_bench: the container benchmarks of issue 3, each against its baseline in
// the same run. Run it through bench/spawn.sh, which prepares the runc floor's netns
// and a private dockerd and cleans up after a crash; figures in bench/RESULTS.md.
//
//   spawn   POST /v1/tasks/spawn -> 201 and -> first 200 from the task's /health, image
//           cached, vs `runc run -d` of the bundle Mill wrote (same rootfs content and
//           config, in a netns of its own) and `docker run -d --init` of the same image.
//   pull    cold pull of a ~100 MB multi-layer image: Mill's pull_ms with an empty image
//           store (a fresh server per run) vs `skopeo copy docker://... dir:...`.
//   memory  RSS of `mill server` and of each mill-shim with N tasks running.
//
// Prints a table with ratio and PASS/MISS per target; exit 1 if a target is missed.

#include "spawn_bench.h"

#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "bench_images.h"
#include "support/test_registry.h"

namespace mill::bench {
namespace {

namespace json = boost::json;

struct Row {
  std::string what, measured, baseline;
  double ratio;
  std::string target;
  bool pass;
};
std::vector<Row> rows;

}  // namespace

void add_row(std::string what, double measured, double baseline, const std::string& unit,
             double limit, std::string target) {
  double ratio = baseline > 0 ? measured / baseline : 0;
  char m[64], b[64];
  std::snprintf(m, sizeof m, "%.1f %s", measured, unit.c_str());
  std::snprintf(b, sizeof b, "%.1f %s", baseline, unit.c_str());
  rows.push_back({std::move(what), m, b, ratio, std::move(target), baseline > 0 && ratio <= limit});
}

std::string field_str(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

double field_num(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_number() ? v->to_number<double>() : -1;
}

MillServer::Options server_options(const Args& a, int k, const std::string& name) {
  std::string dir = a.work + "/" + name;
  std::filesystem::create_directories(dir);
  return {a.mill,
          dir,
          a.bridge_prefix + std::to_string(k),
          "10." + std::to_string(a.net_octet + k) + ".0.0/16",
          {"--task-retention", "2s", "--stop-grace", "5s"}};
}

json::object spawn(const MillServer& s, const std::string& body) {
  auto r = s.call("POST", "/v1/tasks/spawn", body);
  if (r.status != 201)
    throw std::runtime_error("spawn: " + std::to_string(r.status) + " " + r.body);
  return json::parse(r.body).as_object();
}

json::object task(const MillServer& s, const std::string& id) {
  auto r = s.call("GET", "/v1/tasks/" + id);
  if (r.status != 200) throw std::runtime_error("GET task: " + r.body);
  return json::parse(r.body).as_object();
}

void kill_task(const MillServer& s, const std::string& id) {
  auto r = s.call("DELETE", "/v1/tasks/" + id);
  if (r.status != 200) throw std::runtime_error("DELETE task: " + r.body);
}

void print_series(const char* name, const std::vector<double>& v) {
  std::printf("  %-36s n=%zu  p50 %8.1f  p90 %8.1f  p99 %8.1f  max %8.1f ms\n", name, v.size(),
              percentile(v, 50), percentile(v, 90), percentile(v, 99), percentile(v, 100));
  std::fflush(stdout);
}

}  // namespace mill::bench

namespace {

using mill::bench::Args;

void usage() {
  std::fprintf(stderr,
               "usage: mill_spawn_bench --mill PATH --probe PATH --work DIR --bridge-prefix P\n"
               "  [--net-octet N] [--only spawn,pull,memory] [--runs N] [--pulls N] [--tasks N]\n"
               "  [--task-memory 4M] [--layers N] [--layer-mb N]\n"
               "  [--runc-netns PATH --runc-ip IP] [--docker-host URL --docker-root DIR]\n"
               "Run it through bench/spawn.sh.\n");
}

bool parse(int argc, char** argv, Args& a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--mill")
      a.mill = v;
    else if (k == "--probe")
      a.probe = v;
    else if (k == "--work")
      a.work = v;
    else if (k == "--bridge-prefix")
      a.bridge_prefix = v;
    else if (k == "--net-octet")
      a.net_octet = std::stoi(v);
    else if (k == "--only")
      a.only = v;
    else if (k == "--runs")
      a.runs = std::stoi(v);
    else if (k == "--pulls")
      a.pulls = std::stoi(v);
    else if (k == "--tasks")
      a.tasks = std::stoi(v);
    else if (k == "--task-memory")
      a.task_memory = v;
    else if (k == "--layers")
      a.layers = std::stoi(v);
    else if (k == "--layer-mb")
      a.layer_mb = std::stoul(v);
    else if (k == "--runc-netns")
      a.runc_netns = v;
    else if (k == "--runc-ip")
      a.runc_ip = v;
    else if (k == "--docker-host")
      a.docker_host = v;
    else if (k == "--docker-root")
      a.docker_root = v;
    else
      return false;
  }
  return argc % 2 == 1 && !a.mill.empty() && !a.probe.empty() && !a.work.empty() &&
         !a.bridge_prefix.empty();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mill::bench;
  Args a;
  if (!parse(argc, argv, a)) {
    usage();
    return 2;
  }
  auto wants = [&](const char* what) { return a.only.find(what) != std::string::npos; };
  try {
    mill::testing::TestRegistry registry;
    if (!registry.ok()) throw std::runtime_error("docker-registry did not start");
    // gzip only: Docker 20.10 (Debian 12) is the baseline and must pull the same image.
    auto probe = mill::testing::probe_image(a.probe, {}, mill::testing::LayerCompression::kGzip);
    if (!registry.push("probe", "v1", probe)) throw std::runtime_error("push probe failed");
    std::string probe_ref = registry.host() + "/probe:v1";
    std::printf("== registry %s: probe:v1 %zu bytes, %zu layers\n", registry.host().c_str(),
                image_bytes(probe), probe.layers.size());
    if (wants("spawn")) {
      if (a.runc_netns.empty() || a.runc_ip.empty()) throw std::runtime_error("--runc-netns/-ip");
      spawn_bench(a, probe_ref);
    }
    if (wants("pull")) {
      auto big = big_image(a.probe, a.layers, a.layer_mb << 20);
      if (!registry.push("big", "v1", big)) throw std::runtime_error("push big failed");
      std::printf("\n== registry: big:v1 %.1f MB, %zu layers (%d x %zu MB random, gzip)\n",
                  static_cast<double>(image_bytes(big)) / (1 << 20), big.layers.size(), a.layers,
                  a.layer_mb);
      pull_bench(a, registry.host() + "/big:v1");
    }
    if (wants("memory")) memory_bench(a, probe_ref);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mill_spawn_bench: %s\n", e.what());
    return 2;
  }
  std::printf("\n== summary (ratio = measured / baseline)\n");
  std::printf("| %-36s | %12s | %12s | %6s | %-20s | %-4s |\n", "figure", "measured", "baseline",
              "ratio", "target", "");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(38, '-').c_str(), std::string(14, '-').c_str(),
              std::string(14, '-').c_str(), std::string(8, '-').c_str(),
              std::string(22, '-').c_str(), std::string(6, '-').c_str());
  bool all = true;
  for (const auto& r : rows) {
    std::printf("| %-36s | %12s | %12s | %5.2fx | %-20s | %-4s |\n", r.what.c_str(),
                r.measured.c_str(), r.baseline.c_str(), r.ratio, r.target.c_str(),
                r.pass ? "PASS" : "MISS");
    all = all && r.pass;
  }
  std::printf("RESULT: %s\n", all ? "all targets met" : "a target was missed");
  return all ? 0 : 1;
}
