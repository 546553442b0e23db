// The cold pull benchmark (Mill vs skopeo) and the agent memory benchmark (RSS of
// `mill server` and of the mill-shims with N tasks running).

#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "spawn_bench.h"

namespace mill::bench {

namespace fs = std::filesystem;

void pull_bench(const Args& a, const std::string& image) {
  std::printf("== cold pull: %d runs each, alternating which goes first\n", a.pulls);
  std::vector<double> skopeo, mill_pull, mill_spawn, mill_start;
  std::string dest = a.work + "/skopeo-dir";
  for (int r = 0; r < a.pulls; ++r) {
    auto run_skopeo = [&] {
      fs::remove_all(dest);
      auto t0 = Clock::now();
      auto p = run_process({"skopeo", "copy", "--quiet", "--src-tls-verify=false",
                            "docker://" + image, "dir:" + dest});
      double d = ms_since(t0);
      if (p.exit_code != 0) throw std::runtime_error("skopeo copy: " + p.out);
      skopeo.push_back(d);
      fs::remove_all(dest);
    };
    auto run_mill = [&] {
      // A fresh server and data dir: nothing of the image is in its store.
      std::string name = "pull-" + std::to_string(r);
      {
        MillServer s(server_options(a, 2 + r, name));
        auto t0 = Clock::now();
        std::string id = field_str(
            spawn(s, R"({"image":")" + image + R"(","port":8080,"cpu":0.05,"memory":"16M"})"),
            "id");
        double d = ms_since(t0);
        auto t = task(s, id);
        mill_spawn.push_back(d);
        mill_pull.push_back(field_num(t, "pull_ms"));
        mill_start.push_back(field_num(t, "start_ms"));
        kill_task(s, id);
      }  // stopped and cleaned up
      fs::remove_all(a.work + "/" + name);
    };
    if (r % 2 == 0) {
      run_skopeo();
      run_mill();
    } else {
      run_mill();
      run_skopeo();
    }
    std::printf("  run %d: skopeo copy %.0f ms, mill pull_ms %.0f (spawn -> 201 %.0f ms)\n", r,
                skopeo.back(), mill_pull.back(), mill_spawn.back());
    std::fflush(stdout);
  }
  print_series("skopeo copy (download only)", skopeo);
  print_series("mill pull_ms (download + unpack)", mill_pull);
  print_series("mill start_ms", mill_start);
  print_series("mill spawn -> 201 (cold)", mill_spawn);
  add_row("cold pull median vs skopeo", percentile(mill_pull, 50), percentile(skopeo, 50), "ms",
          1.5, "<= 1.5x");
}

namespace {

struct Rss {
  long rss_kb = 0, anon_kb = 0, pss_kb = 0;
};

Rss rss_of(pid_t pid) {
  return {proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "RssAnon"), proc_pss_kb(pid)};
}

}  // namespace

void memory_bench(const Args& a, const std::string& image) {
  std::printf("\n== memory: %d running tasks (cpu 0.01, memory %s each)\n", a.tasks,
              a.task_memory.c_str());
  MillServer s(server_options(a, 1, "memory"));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  Rss idle = rss_of(s.pid());
  std::string body =
      R"({"image":")" + image + R"(","port":8080,"cpu":0.01,"memory":")" + a.task_memory + R"("})";
  std::vector<std::string> ids;
  for (int i = 0; i < a.tasks; ++i) ids.push_back(field_str(spawn(s, body), "id"));
  // Past one agent heartbeat (5 s) and usage report with everything running.
  std::this_thread::sleep_for(std::chrono::seconds(6));
  int running = 0;
  for (const auto& id : ids) running += field_str(task(s, id), "status") == "running";
  Rss server = rss_of(s.pid());
  long threads = proc_status_kb(s.pid(), "Threads");
  auto shims = find_processes({"mill-shim", s.data_dir() + "/"});
  Rss shim_sum;
  for (pid_t p : shims) {
    Rss r = rss_of(p);
    shim_sum.rss_kb += r.rss_kb;
    shim_sum.anon_kb += r.anon_kb;
    shim_sum.pss_kb += r.pss_kb;
  }
  for (const auto& id : ids) kill_task(s, id);
  if (running != a.tasks || static_cast<int>(shims.size()) != a.tasks) {
    throw std::runtime_error(std::to_string(running) + " tasks running and " +
                             std::to_string(shims.size()) + " shims, expected " +
                             std::to_string(a.tasks));
  }
  double n = static_cast<double>(shims.size());
  std::printf("  mill server idle:      VmRSS %6ld kB, RssAnon %6ld kB, Pss %6ld kB\n", idle.rss_kb,
              idle.anon_kb, idle.pss_kb);
  std::printf("  mill server %d tasks:  VmRSS %6ld kB, RssAnon %6ld kB, Pss %6ld kB, %ld threads\n",
              a.tasks, server.rss_kb, server.anon_kb, server.pss_kb, threads);
  std::printf("  mill-shim x %zu:        VmRSS %6.0f kB, RssAnon %6.0f kB, Pss %6.0f kB (mean)\n",
              shims.size(), shim_sum.rss_kb / n, shim_sum.anon_kb / n, shim_sum.pss_kb / n);
  add_row("server VmRSS, " + std::to_string(a.tasks) + " tasks", server.rss_kb / 1024.0, 40, "MB",
          0.9999, "< 40 MB");
  add_row("mill-shim VmRSS (sum / " + std::to_string(shims.size()) + ")",
          shim_sum.rss_kb / n / 1024.0, 2, "MB", 0.9999, "< 2 MB");
}

}  // namespace mill::bench
