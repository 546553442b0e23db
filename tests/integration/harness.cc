#include "harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace mill::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  char tmpl[] = "/tmp/mill-test-XXXXXX";
  char* p = mkdtemp(tmpl);
  if (!p) ADD_FAILURE() << "mkdtemp failed";
  path_ = p ? p : "/tmp";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (path_ != "/tmp") fs::remove_all(path_, ec);
}

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int wait_status_to_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// fork + exec of the mill binary with stdout/stderr redirected to files.
pid_t spawn_mill(const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env, const std::string& stdin_path,
                 const std::string& out_path, const std::string& err_path) {
  std::vector<std::string> argv_s{MILL_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  pid_t pid = fork();
  if (pid == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    int in = open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err =
        err_path == out_path ? out : open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

CommandResult run_mill(const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env,
                       const std::string& stdin_text) {
  TempDir io;
  std::string in_path;
  if (!stdin_text.empty()) {
    in_path = io.file("stdin");
    std::ofstream(in_path, std::ios::binary) << stdin_text;
  }
  pid_t pid = spawn_mill(args, env, in_path, io.file("out"), io.file("err"));
  CommandResult r;
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid) r.exit_code = wait_status_to_code(status);
  r.out = slurp(io.file("out"));
  r.err = slurp(io.file("err"));
  return r;
}

std::string init_data_dir(const TempDir& dir) {
  auto r = run_mill({"init", "--data-dir", dir.file("data")},
                    {{"MILL_CONFIG", dir.file("client.toml")}});
  if (r.exit_code != 0) {
    ADD_FAILURE() << "mill init failed: " << r.err;
    return "";
  }
  std::string token = slurp(dir.file("data") + "/api.token");
  while (!token.empty() && token.back() == '\n') token.pop_back();
  return token;
}

std::unique_ptr<MillServer> MillServer::start(const TempDir& dir,
                                              const std::vector<std::string>& extra,
                                              std::chrono::seconds timeout) {
  auto server = std::unique_ptr<MillServer>(new MillServer());
  server->log_path_ = dir.file("server.log");
  std::vector<std::string> args{"server", "--data-dir", dir.file("data"), "--listen",
                                "127.0.0.1:0"};
  args.insert(args.end(), extra.begin(), extra.end());
  // A restarted server's log starts afresh; the earlier runs' logs are appended to
  // server.log.prior. Truncate here, before the fork, so the wait below cannot read the
  // previous run's "listening" and "registered" lines before the child truncates.
  if (std::string prior = slurp(server->log_path_); !prior.empty()) {
    std::ofstream(server->log_path_ + ".prior", std::ios::binary | std::ios::app) << prior;
  }
  std::ofstream(server->log_path_, std::ios::binary | std::ios::trunc);
  server->pid_ = spawn_mill(args, {}, "", server->log_path_, server->log_path_);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string marker = "API listening on http://";
  bool registered = std::find(extra.begin(), extra.end(), "--no-agent") != extra.end();
  while (std::chrono::steady_clock::now() < deadline) {
    std::string log = server->log();
    size_t at = log.find(marker);
    if (at != std::string::npos && server->address_.empty()) {
      size_t start = at + marker.size();
      server->address_ = log.substr(start, log.find_first_of(" \n", start) - start);
    }
    registered = registered || log.find("registered this machine as") != std::string::npos;
    if (!server->address_.empty() && registered) return server;
    int status = 0;
    if (waitpid(server->pid_, &status, WNOHANG) == server->pid_) {
      server->pid_ = -1;
      ADD_FAILURE() << "mill server exited early:\n" << log;
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "mill server did not come up in time:\n" << server->log();
  return nullptr;
}

MillServer::~MillServer() {
  if (pid_ > 0) stop(SIGKILL, std::chrono::seconds(5));
}

std::string MillServer::log() const { return slurp(log_path_); }

int MillServer::stop(int sig, std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return wait_status_to_code(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

net::ClientResponse api(const std::string& address, const std::string& method,
                        const std::string& target, const std::string& token,
                        const std::string& body) {
  net::ClientRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  if (!token.empty()) req.headers.push_back({"Authorization", "Bearer " + token});
  auto res = net::http_request(address, req);
  if (!res) {
    ADD_FAILURE() << method << " " << target << ": " << res.error().to_string();
    return {};
  }
  return std::move(*res);
}

std::string read_tree(const std::string& dir) {
  std::string all;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file()) all += slurp(it->path().string());
  }
  return all;
}

}  // namespace mill::testing
