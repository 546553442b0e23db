#pragma once

// Helpers for bench/spawn_bench.cc: processes, timing, percentiles, a `mill server`
// run for the benchmark, and polling a task's HTTP endpoint. Benchmark code, not part
// of Mill: failures throw std::runtime_error and end the run with a message.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace mill::bench {

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The p-th percentile (0..100) of samples by nearest rank; 0 when empty.
double percentile(std::vector<double> samples, double p);

struct ProcessResult {
  int exit_code = -1;
  std::string out;  // stdout (stderr goes to err_path, or is merged when it is empty)
};

// Runs argv to completion; stdout is captured, stderr appended to err_path ("" =
// merged into stdout). No shell.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& err_path = "");

// Runs argv to completion with stdin /dev/null and stdout+stderr appended to log_path:
// for commands that hand their stdio to a detached child (runc run -d).
int run_logged(const std::vector<std::string>& argv, const std::string& log_path);

std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& text);

// VmRSS (or another "Key:" of /proc/PID/status) in kB; -1 when unreadable.
long proc_status_kb(pid_t pid, const std::string& key);
// Sum of the "Pss:" lines of /proc/PID/smaps_rollup in kB; -1 when unreadable.
long proc_pss_kb(pid_t pid);
// Processes whose command line contains every one of parts.
std::vector<pid_t> find_processes(const std::vector<std::string>& parts);

// Polls GET http://address/path until it answers 200; returns false after timeout.
// Sleeps `interval` between failed attempts (connection refused while the app starts).
bool wait_http_200(const std::string& address, const std::string& path,
                   std::chrono::milliseconds timeout,
                   std::chrono::microseconds interval = std::chrono::microseconds(1000));

struct ApiResponse {
  int status = 0;
  std::string body;
};

// A `mill server` with containers on a bridge of its own, in dir (made by `mill init`).
// Writes dir/server.pid so a driver script can kill it if this program dies.
class MillServer {
 public:
  struct Options {
    std::string mill;     // path to the mill binary
    std::string dir;      // work dir: data/, server.log, client.toml, mill.toml
    std::string bridge;   // --bridge
    std::string cluster;  // --cluster-network
    std::vector<std::string> extra;
  };
  explicit MillServer(Options options);
  ~MillServer();  // stop() + `mill cleanup`
  MillServer(const MillServer&) = delete;
  MillServer& operator=(const MillServer&) = delete;

  void stop();
  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }
  std::string data_dir() const { return options_.dir + "/data"; }
  ApiResponse call(const std::string& method, const std::string& target,
                   const std::string& body = "") const;

 private:
  Options options_;
  pid_t pid_ = -1;
  std::string address_;
  std::string token_;
  bool cleaned_ = false;
};

}  // namespace mill::bench
