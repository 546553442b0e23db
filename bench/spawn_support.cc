#include "spawn_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "net/http_client.h"

namespace mill::bench {

double percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(samples.size())));
  return samples[std::clamp<size_t>(rank, 1, samples.size()) - 1];
}

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& err_path) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    dup2(out[1], 1);
    if (err_path.empty()) {
      dup2(out[1], 2);
    } else {
      int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(err, 2);
    }
    close_range(3, ~0U, 0);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  ProcessResult r;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    r.out.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

int run_logged(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY);
    int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(null_fd, 0);
    dup2(log, 1);
    dup2(log, 2);
    close_range(3, ~0U, 0);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

long proc_status_kb(pid_t pid, const std::string& key) {
  std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::atol(line.c_str() + key.size() + 1);
  }
  return -1;
}

long proc_pss_kb(pid_t pid) {
  std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/smaps_rollup"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Pss:", 0) == 0) return std::atol(line.c_str() + 4);
  }
  return -1;
}

std::vector<pid_t> find_processes(const std::vector<std::string>& parts) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (auto* e = readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::string cmdline = read_text("/proc/" + std::to_string(pid) + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    bool all = !cmdline.empty();
    for (const auto& p : parts) all = all && cmdline.find(p) != std::string::npos;
    if (all) out.push_back(pid);
  }
  closedir(d);
  return out;
}

bool wait_http_200(const std::string& address, const std::string& path,
                   std::chrono::milliseconds timeout, std::chrono::microseconds interval) {
  auto deadline = Clock::now() + timeout;
  net::ClientRequest req;
  req.target = path;
  req.timeout = std::chrono::milliseconds(2000);
  while (Clock::now() < deadline) {
    auto res = net::http_request(address, req);
    if (res && res->status == 200) return true;
    std::this_thread::sleep_for(interval);
  }
  return false;
}

MillServer::MillServer(Options options) : options_(std::move(options)) {
  const std::string& d = options_.dir;
  auto init = run_process({"env", "MILL_CONFIG=" + d + "/client.toml", options_.mill, "init",
                           "--data-dir", data_dir()});
  if (init.exit_code != 0) throw std::runtime_error("mill init failed: " + init.out);
  token_ = read_text(data_dir() + "/api.token");
  while (!token_.empty() && token_.back() == '\n') token_.pop_back();

  std::vector<std::string> argv{options_.mill,       "server",        "--data-dir", data_dir(),
                                "--listen",          "127.0.0.1:0",   "--bridge",   options_.bridge,
                                "--cluster-network", options_.cluster};
  argv.insert(argv.end(), options_.extra.begin(), options_.extra.end());
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::string log = d + "/server.log";
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    setpgid(0, 0);  // a Ctrl-C of the bench reaches it only through our cleanup
    execv(args[0], args.data());
    _exit(127);
  }
  if (pid_ < 0) throw std::runtime_error("fork failed");
  write_text(d + "/server.pid", std::to_string(pid_) + "\n");
  const std::string marker = "API listening on http://";
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    std::string text = read_text(log);
    if (auto at = text.find(marker); at != std::string::npos && address_.empty()) {
      size_t start = at + marker.size();
      address_ = text.substr(start, text.find_first_of(" \n", start) - start);
    }
    if (!address_.empty() && text.find("this node runs containers") != std::string::npos) return;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("mill server exited:\n" + text);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop();
  throw std::runtime_error("mill server did not come up:\n" + read_text(log));
}

MillServer::~MillServer() {
  stop();
  if (!cleaned_) {
    cleaned_ = true;
    auto r = run_process({options_.mill, "cleanup", "--data-dir", data_dir()});
    if (r.exit_code != 0) std::fprintf(stderr, "mill cleanup failed: %s\n", r.out.c_str());
  }
}

void MillServer::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  int status = 0;
  while (Clock::now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

ApiResponse MillServer::call(const std::string& method, const std::string& target,
                             const std::string& body) const {
  net::ClientRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  if (!body.empty()) req.content_type = "application/json";
  req.headers.push_back({"Authorization", "Bearer " + token_});
  req.timeout = std::chrono::seconds(300);
  auto res = net::http_request(address_, req);
  if (!res) throw std::runtime_error(method + " " + target + ": " + res.error().message);
  return {res->status, res->body};
}

}  // namespace mill::bench
