#include "health/attempt.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <system_error>

#include "model/units.h"

namespace mill::health {

namespace {

// Longest status line we wait for; anything longer is not an HTTP server.
constexpr size_t kMaxStatusLine = 4096;
// What we read and drop after the verdict, so closing does not reset the connection
// on a server that has already sent its whole (small) answer.
constexpr size_t kMaxDrain = 64 * 1024;

// "connection refused", as a person reads it in a status line.
std::string describe(int err) {
  std::string text = std::generic_category().message(err);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

Unexpected bad_address(std::string_view address) {
  return make_error(ErrorCode::kInvalidArgument,
                    "invalid address \"" + std::string(address) + "\": want IP:PORT");
}

bool parse_port(std::string_view text, uint16_t& port) {
  if (text.empty() || text.size() > 5) return false;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

// The status code of "HTTP/1.1 200 OK", or -1.
int parse_status_line(std::string_view line) {
  if (!line.starts_with("HTTP/")) return -1;
  size_t space = line.find(' ');
  if (space == std::string_view::npos || line.size() < space + 4) return -1;
  std::string_view code = line.substr(space + 1, 3);
  for (char c : code) {
    if (c < '0' || c > '9') return -1;
  }
  if (line.size() > space + 4 && line[space + 4] != ' ') return -1;
  return (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
}

}  // namespace

Result<Endpoint> parse_endpoint(std::string_view address) {
  std::string host;
  std::string_view port_text;
  if (address.starts_with('[')) {
    size_t close = address.find(']');
    if (close == std::string_view::npos || address.substr(close + 1, 1) != ":") {
      return bad_address(address);
    }
    host = address.substr(1, close - 1);
    port_text = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return bad_address(address);
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
    if (host.find(':') != std::string::npos) return bad_address(address);  // IPv6 needs []
  }
  uint16_t port = 0;
  if (!parse_port(port_text, port)) return bad_address(address);
  Endpoint out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out.length = sizeof(sockaddr_in6);
  } else {
    return bad_address(address);
  }
  return out;
}

int poll_timeout(SteadyTime now, SteadyTime until) {
  if (until <= now) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

void Attempt::on_time(SteadyTime now) {
  if (!done_ && now >= deadline_) fail("timed out after " + model::format_duration(timeout_));
}

void Attempt::abort(int err) {
  if (!done_) fail(describe(err));
}

void Attempt::fail(std::string_view why) { finish(false, label_ + ": " + std::string(why)); }

void Attempt::finish(bool ok, std::string error) {
  done_ = true;
  result_ = ProbeResult{.ok = ok, .error = std::move(error)};
}

namespace {

// An HTTP GET or a TCP connect on a non-blocking socket.
class SocketAttempt final : public Attempt {
 public:
  SocketAttempt(const Probe& probe, const Endpoint& endpoint, SteadyTime now);

  int fd() const override { return fd_.get(); }
  short events() const override { return phase_ == Phase::kReading ? POLLIN : POLLOUT; }
  void on_ready(short revents) override;

 private:
  enum class Phase { kConnecting, kSending, kReading };

  void connected();
  void send_some();
  void read_some();
  void finish(bool ok, std::string error) override;

  std::string request_;  // empty in TCP mode
  UniqueFd fd_;
  Phase phase_ = Phase::kConnecting;
  size_t sent_ = 0;
  std::string received_;
};

SocketAttempt::SocketAttempt(const Probe& probe, const Endpoint& endpoint, SteadyTime now)
    : Attempt(probe.path.empty() ? "tcp " + probe.address : "GET " + probe.path, probe.timeout,
              now) {
  if (!probe.path.empty()) {
    // HTTP/1.1 with Connection: close; we only ever read the status line.
    request_ = "GET " + probe.path + " HTTP/1.1\r\nHost: " + probe.address +
               "\r\nUser-Agent: mill-health\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  }
  int fd = ::socket(endpoint.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    abort(errno);
    return;
  }
  fd_ = UniqueFd(fd);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&endpoint.addr), endpoint.length) == 0) {
    connected();
  } else if (errno != EINPROGRESS) {
    abort(errno);
  }
}

void SocketAttempt::on_ready(short revents) {
  if (done_ || revents == 0) return;
  switch (phase_) {
    case Phase::kConnecting: {
      int err = 0;
      socklen_t len = sizeof(err);
      if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) return abort(err);
      return connected();
    }
    case Phase::kSending:
      return send_some();
    case Phase::kReading:
      return read_some();
  }
}

void SocketAttempt::connected() {
  if (request_.empty()) return finish(true, "");  // TCP mode: connecting is the check
  phase_ = Phase::kSending;
  send_some();
}

void SocketAttempt::send_some() {
  while (sent_ < request_.size()) {
    ssize_t n = ::send(fd_.get(), request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // poll for POLLOUT again
      return abort(errno);
    }
    sent_ += static_cast<size_t>(n);
  }
  phase_ = Phase::kReading;
  read_some();
}

void SocketAttempt::read_some() {
  char buffer[1024];
  while (true) {
    ssize_t n = ::recv(fd_.get(), buffer, sizeof(buffer), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // poll for POLLIN again
      return abort(errno);
    }
    if (n == 0) return fail("connection closed before a response");
    received_.append(buffer, static_cast<size_t>(n));
    size_t end = received_.find('\n');
    if (end == std::string::npos) {
      if (received_.size() > kMaxStatusLine) return fail("not an HTTP response");
      continue;
    }
    std::string_view line(received_.data(), end);
    if (line.ends_with('\r')) line.remove_suffix(1);
    int status = parse_status_line(line);
    if (status < 0) return fail("not an HTTP response");
    if (status >= 200 && status < 400) return finish(true, "");
    return finish(false, label_ + ": " + std::to_string(status));
  }
}

void SocketAttempt::finish(bool ok, std::string error) {
  Attempt::finish(ok, std::move(error));
  if (phase_ == Phase::kReading && fd_.valid()) {
    char buffer[4096];
    size_t drained = 0;
    while (drained < kMaxDrain) {
      ssize_t n = ::recv(fd_.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n <= 0) break;
      drained += static_cast<size_t>(n);
    }
  }
  fd_ = UniqueFd();
}

// A child process, in its own process group, with stdin on /dev/null and its output in
// a memory file (never a pipe: a command that prints a lot, or leaves a child holding
// the pipe, must not stall). fd() is a pidfd, readable once the process has exited.
class CommandAttempt final : public Attempt {
 public:
  CommandAttempt(const Probe& probe, SteadyTime now);
  ~CommandAttempt() override { kill_and_reap(); }

  int fd() const override { return pidfd_.get(); }
  short events() const override { return POLLIN; }
  void on_ready(short revents) override;

 private:
  void finish(bool ok, std::string error) override;
  // Kills what still runs (the process group, and the process the pid file names),
  // then reaps the child. Idempotent.
  void kill_and_reap();
  // The last line the command printed, trimmed and at most kMaxOutputLine long.
  std::string last_line() const;

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd output_;
  std::string pid_file_;
};

// Of a failing command's output, what the error shows.
constexpr size_t kMaxOutputLine = 200;

std::string command_label(const Probe& probe) {
  if (!probe.label.empty()) return "command " + probe.label;
  std::string label = "command";
  for (const auto& arg : probe.command) label += " " + arg;
  return label;
}

CommandAttempt::CommandAttempt(const Probe& probe, SteadyTime now)
    : Attempt(command_label(probe), probe.timeout, now), pid_file_(probe.pid_file) {
  // A pid file left by an earlier attempt must never name the process to kill.
  if (!pid_file_.empty()) ::unlink(pid_file_.c_str());
  output_ = UniqueFd(::memfd_create("mill-health", MFD_CLOEXEC));
  if (!output_.valid()) {
    abort(errno);
    return;
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, output_.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, output_.get(), 2);
  // Its own group, so a timeout kills what it started too; no signal blocked or
  // ignored, whatever the agent's threads do with theirs.
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> argv;
  for (const auto& arg : probe.command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  int err = ::posix_spawnp(&pid_, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    pid_ = -1;
    abort(err);
    return;
  }
  pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  if (!pidfd_.valid()) {
    int open_errno = errno;
    kill_and_reap();
    abort(open_errno);
  }
}

void CommandAttempt::on_ready(short revents) {
  if (done_ || revents == 0 || pid_ < 0) return;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return;  // not yet
  pid_ = -1;
  if (r < 0) return abort(errno);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return finish(true, "");
  std::string why = WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                      : "killed by signal " + std::to_string(WTERMSIG(status));
  std::string line = last_line();
  fail(line.empty() ? why : why + ": " + line);
}

void CommandAttempt::finish(bool ok, std::string error) {
  Attempt::finish(ok, std::move(error));
  kill_and_reap();
  pidfd_ = UniqueFd();
  output_ = UniqueFd();
}

void CommandAttempt::kill_and_reap() {
  if (pid_ < 0) return;
  if (!pid_file_.empty()) {
    std::ifstream in(pid_file_);
    long inner = 0;
    if (in >> inner && inner > 1) ::kill(static_cast<pid_t>(inner), SIGKILL);
  }
  ::kill(-pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string CommandAttempt::last_line() const {
  off_t size = ::lseek(output_.get(), 0, SEEK_END);
  if (size <= 0) return "";
  char buffer[1024];
  off_t from = size > static_cast<off_t>(sizeof(buffer)) ? size - sizeof(buffer) : 0;
  ssize_t n = ::pread(output_.get(), buffer, sizeof(buffer), from);
  if (n <= 0) return "";
  std::string_view text(buffer, static_cast<size_t>(n));
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  if (size_t nl = text.rfind('\n'); nl != std::string_view::npos) text.remove_prefix(nl + 1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  std::string line;
  for (char c : text.substr(0, kMaxOutputLine)) {
    line += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
  }
  return line;
}

}  // namespace

std::unique_ptr<Attempt> start_attempt(const Probe& probe, const Endpoint& endpoint,
                                       SteadyTime now) {
  if (!probe.command.empty()) return std::make_unique<CommandAttempt>(probe, now);
  return std::make_unique<SocketAttempt>(probe, endpoint, now);
}

}  // namespace mill::health
