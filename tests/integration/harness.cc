#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "support/crash_cleanup.h"
#include "support/eventually.h"
#include "support/files.h"

namespace mill::testing {

namespace fs = std::filesystem;

namespace {

int wait_status_to_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// fork + exec of the mill binary with stdout/stderr redirected to files (truncated, or
// appended to when append is set).
pid_t spawn_mill(const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env, const std::string& stdin_path,
                 const std::string& out_path, const std::string& err_path, bool append = false,
                 const std::string& binary = MILL_BINARY, const std::string& netns = {}) {
  const int mode = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
  std::vector<std::string> argv_s{binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  pid_t pid = fork();
  if (pid == 0) {
    // A test that dies without its destructors (an abort, a crash) must not leave a
    // server behind holding ports, addresses and bridges the next tests want.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!netns.empty()) {
      int fd = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(126);
      close(fd);
    }
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    int in = open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), mode, 0600);
    int err = err_path == out_path ? out : open(err_path.c_str(), mode, 0600);
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

std::unique_ptr<OnCrash> clean_up_on_crash(const std::string& data_dir) {
  // The test's temp dir (the data dir's parent) goes too, once nothing is mounted there.
  std::string temp = fs::path(data_dir).parent_path().string();
  return std::make_unique<OnCrash>(std::vector<std::string>{
      "/bin/sh", "-c",
      "'" MILL_BINARY "' cleanup --data-dir '" + data_dir + "' && rm -rf '" + temp + "'"});
}

namespace {

// `mill args...` to completion, in network namespace `netns` ("" = this one).
CommandResult run_to_end(const std::string& netns, const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& env,
                         const std::string& stdin_text) {
  TempDir io;
  std::string in_path;
  if (!stdin_text.empty()) {
    in_path = io.file("stdin");
    std::ofstream(in_path, std::ios::binary) << stdin_text;
  }
  pid_t pid =
      spawn_mill(args, env, in_path, io.file("out"), io.file("err"), false, MILL_BINARY, netns);
  CommandResult r;
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid) r.exit_code = wait_status_to_code(status);
  r.out = slurp(io.file("out"));
  r.err = slurp(io.file("err"));
  return r;
}

}  // namespace

CommandResult run_mill(const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env,
                       const std::string& stdin_text) {
  return run_to_end("", args, env, stdin_text);
}

std::string mill_binary() { return MILL_BINARY; }

pid_t start_mill_in(const std::string& netns, const std::vector<std::string>& args,
                    const std::string& log_path, const std::map<std::string, std::string>& env) {
  return spawn_mill(args, env, "", log_path, log_path, true, MILL_BINARY, netns);
}

CommandResult run_mill_in(const std::string& netns, const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env) {
  return run_to_end(netns, args, env, "");
}

void run_in_netns(const std::string& netns, const std::function<void()>& fn) {
  std::thread t([&] {
    // setns moves only this thread; sockets it opens stay in that namespace.
    int fd = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "cannot enter the network namespace " << netns << ": "
                    << std::strerror(errno);
      if (fd >= 0) close(fd);
      return;
    }
    close(fd);
    fn();
  });
  t.join();
}

CommandResult run_binary(const std::string& binary, const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& env,
                         std::chrono::seconds limit) {
  TempDir io;
  pid_t pid = spawn_mill(args, env, "", io.file("out"), io.file("err"), false, binary);
  CommandResult r;
  int status = 0;
  bool done = pid > 0 && eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, limit);
  if (done) {
    r.exit_code = wait_status_to_code(status);
  } else if (pid > 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    ADD_FAILURE() << binary << " still ran after " << limit.count() << " s; killed";
  }
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
  std::vector<std::string> args{"server", "--data-dir", dir.file("data")};
  // A data dir given a listen address of its own (`mill init --listen`) is started
  // without one, as its user would; any other on a loopback port of its own choosing.
  if (!std::filesystem::exists(dir.file("data/listen"))) {
    args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  }
  args.insert(args.end(), extra.begin(), extra.end());
  // Only tests that run containers give the node a bridge of its own (--bridge); the
  // rest keep the host's network untouched.
  const bool containers = std::find(extra.begin(), extra.end(), "--bridge") != extra.end();
  const bool agent = std::find(extra.begin(), extra.end(), "--no-agent") == extra.end();
  if (agent && !containers) args.push_back("--no-containers");
  // A node's ingress proxy listens on loopback only, on ports it picks (read back with
  // proxy_port()), unless the test says otherwise: never on the host's :80 and :443.
  if (containers && std::find(extra.begin(), extra.end(), "--proxy-http") == extra.end()) {
    args.insert(args.end(), {"--proxy-http", "127.0.0.1:0", "--proxy-https", "127.0.0.1:0"});
  }
  const std::string ready = containers ? "this node runs containers" : "registered this machine as";
  // Append, so a restarted server's log follows the first one's (and log() covers
  // every run on this dir); look for this run's start-up lines only past the old end.
  const size_t prior_size = slurp(server->log_path_).size();
  server->log_start_ = prior_size;
  server->pid_ = spawn_mill(args, {}, "", server->log_path_, server->log_path_, true);
  kill_on_crash(server->pid_, true);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string marker = "API listening on http://";
  bool registered = std::find(extra.begin(), extra.end(), "--no-agent") != extra.end();
  while (std::chrono::steady_clock::now() < deadline) {
    std::string full = server->log();
    std::string log = full.size() > prior_size ? full.substr(prior_size) : std::string();
    size_t at = log.find(marker);
    if (at != std::string::npos && server->address_.empty()) {
      size_t start = at + marker.size();
      server->address_ = log.substr(start, log.find_first_of(" \n", start) - start);
    }
    registered = registered || log.find(ready) != std::string::npos;
    if (!server->address_.empty() && registered) {
      return server;
    }
    int status = 0;
    if (waitpid(server->pid_, &status, WNOHANG) == server->pid_) {
      kill_on_crash(server->pid_, false);
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

uint16_t MillServer::proxy_port(std::chrono::seconds limit) const {
  const std::string marker = "agent: ingress proxy on port ";
  auto deadline = std::chrono::steady_clock::now() + limit;
  do {
    std::string full = log();
    size_t at = full.size() > log_start_ ? full.find(marker, log_start_) : std::string::npos;
    if (at != std::string::npos) return static_cast<uint16_t>(std::atoi(&full[at + marker.size()]));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  return 0;
}

int MillServer::stop(int sig, std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      kill_on_crash(pid_, false);
      pid_ = -1;
      return wait_status_to_code(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  kill_on_crash(pid_, false);
  pid_ = -1;
  return -1;
}

std::string random_name(const std::string& prefix, int hex_digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string out = prefix;
  for (int i = 0; i < hex_digits; ++i) out += kHex[rd() & 0xf];
  return out;
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

net::ClientResponse api_request(const std::string& address, const net::ClientRequest& request) {
  auto res = net::http_request(address, request);
  if (!res) {
    ADD_FAILURE() << request.method << " " << request.target << ": " << res.error().to_string();
    return {};
  }
  return std::move(*res);
}

std::string read_file_text(const std::string& path) { return slurp(path); }

namespace {

// "127.0.0.1:PORT" -> sockaddr; only loopback IPv4 is accepted (tests stay on lo).
bool loopback_sockaddr(const std::string& address, sockaddr_in& sa) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || address.substr(0, colon) != "127.0.0.1") return false;
  std::memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return true;
}

}  // namespace

RawConnection::RawConnection(const std::string& address) {
  sockaddr_in sa{};
  if (!loopback_sockaddr(address, sa)) {
    ADD_FAILURE() << "RawConnection only dials 127.0.0.1, not " << address;
    return;
  }
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ADD_FAILURE() << "connect " << address << ": " << std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
  }
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawConnection::peer_has_read_everything() const {
  // Everything sent has reached the peer (acknowledged)...
  int unacknowledged = 0;
  if (fd_ < 0 || ::ioctl(fd_, SIOCOUTQ, &unacknowledged) != 0 || unacknowledged != 0) return false;
  // ...and the peer has read it.
  sockaddr_in local{}, peer{};
  socklen_t len = sizeof local;
  if (fd_ < 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) != 0) return false;
  len = sizeof peer;
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return false;
  // The peer's socket is the line whose local end is our peer and whose remote end is
  // us; its rx_queue counts the bytes it has received and not yet read.
  char want_local[32], want_remote[32];
  std::snprintf(want_local, sizeof want_local, "%08X:%04X", peer.sin_addr.s_addr,
                ntohs(peer.sin_port));
  std::snprintf(want_remote, sizeof want_remote, "%08X:%04X", local.sin_addr.s_addr,
                ntohs(local.sin_port));
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  while (std::getline(tcp, line)) {
    std::istringstream in(line);
    std::string slot, local_address, remote_address, state, queues;
    in >> slot >> local_address >> remote_address >> state >> queues;
    if (local_address != want_local || remote_address != want_remote) continue;
    return queues.substr(queues.find(':') + 1) == "00000000";
  }
  return false;
}

bool RawConnection::send(std::string_view bytes) {
  while (fd_ >= 0 && !bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return fd_ >= 0;
}

namespace {

// Reads what is available within the deadline into buf; false on EOF, error or timeout.
bool read_more(int fd, std::string& buf, std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
  char chunk[16384];
  ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
  if (n <= 0) return false;
  buf.append(chunk, static_cast<size_t>(n));
  return true;
}

}  // namespace

net::ClientResponse RawConnection::read_response(std::chrono::milliseconds timeout) {
  net::ClientResponse res;
  if (fd_ < 0) return res;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!read_more(fd_, buffer_, deadline)) return res;
  }
  std::string head = buffer_.substr(0, head_end);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  // "HTTP/1.1 200 OK"
  size_t sp = status_line.find(' ');
  int status = sp == std::string::npos ? 0 : std::atoi(status_line.c_str() + sp + 1);
  size_t content_length = 0;
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(pos, end - pos);
    pos = end + 2;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    if (net::iequals(name, "Content-Length")) content_length = std::stoul(value);
    res.headers.push_back({name, value});
  }
  size_t body_start = head_end + 4;
  while (buffer_.size() < body_start + content_length) {
    if (!read_more(fd_, buffer_, deadline)) return net::ClientResponse{};
  }
  res.body = buffer_.substr(body_start, content_length);
  buffer_.erase(0, body_start + content_length);
  res.status = status;
  return res;
}

bool RawConnection::wait_closed(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return true;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, 50);
    if (r < 0) return false;
    if (r == 0) continue;
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return true;  // EOF or reset
    buffer_.append(chunk, static_cast<size_t>(n));
  }
  return false;
}

ClosedPort::ClosedPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    ADD_FAILURE() << "cannot reserve a loopback port: " << std::strerror(errno);
    return;
  }
  port_ = ntohs(sa.sin_port);
}

ClosedPort::~ClosedPort() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// Every regular file below `dir`. A directory that goes away while the walk runs (a
// container being removed) is passed over, never the end of the walk: a leak search
// must not stop half-way. Links are not followed.
void read_dir(const fs::path& dir, std::string& all) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_symlink(type_ec)) continue;
    if (it->is_directory(type_ec)) {
      read_dir(it->path(), all);
    } else if (it->is_regular_file(type_ec)) {
      all += slurp(it->path().string());
    }
  }
}

}  // namespace

std::string read_tree(const std::string& dir) {
  std::string all;
  if (!fs::is_directory(dir)) ADD_FAILURE() << "read_tree: no directory " << dir;
  read_dir(dir, all);
  return all;
}

std::optional<double> metric_sample(const std::string& exposition, const std::string& series) {
  for (size_t pos = exposition.find(series + " "); pos != std::string::npos;
       pos = exposition.find(series + " ", pos + series.size())) {
    if (pos == 0 || exposition[pos - 1] == '\n') {
      return std::strtod(exposition.c_str() + pos + series.size() + 1, nullptr);
    }
  }
  return std::nullopt;
}

std::string promtool_problems(const std::string& exposition) {
  constexpr const char* kPromtool = "/usr/bin/promtool";
  if (::access(kPromtool, X_OK) != 0) {
    return std::string(kPromtool) +
           " is missing: run scripts/install-deps.sh (Debian package 'prometheus')";
  }
  TempDir dir;
  std::ofstream(dir.file("metrics.txt"), std::ios::binary) << exposition;
  std::string cmd = std::string(kPromtool) + " check metrics < '" + dir.file("metrics.txt") +
                    "' > '" + dir.file("promtool.out") + "' 2>&1";
  int rc = std::system(cmd.c_str());
  std::string out = slurp(dir.file("promtool.out"));
  if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0 || out.find("error") != std::string::npos) {
    return "promtool check metrics failed (" + std::to_string(rc) + "):\n" + out;
  }
  return "";
}

}  // namespace mill::testing
