#include "health/attempt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
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

Attempt::Attempt(const Probe& probe, const Endpoint& endpoint, SteadyTime now)
    : label_(probe.path.empty() ? "tcp " + probe.address : "GET " + probe.path),
      timeout_(probe.timeout),
      deadline_(now + probe.timeout) {
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

short Attempt::events() const { return phase_ == Phase::kReading ? POLLIN : POLLOUT; }

void Attempt::on_ready(short revents) {
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

void Attempt::on_time(SteadyTime now) {
  if (!done_ && now >= deadline_) fail("timed out after " + model::format_duration(timeout_));
}

void Attempt::abort(int err) {
  if (!done_) fail(describe(err));
}

void Attempt::connected() {
  if (request_.empty()) return finish(true, "");  // TCP mode: connecting is the check
  phase_ = Phase::kSending;
  send_some();
}

void Attempt::send_some() {
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

void Attempt::read_some() {
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

void Attempt::fail(std::string_view why) { finish(false, label_ + ": " + std::string(why)); }

void Attempt::finish(bool ok, std::string error) {
  done_ = true;
  result_ = ProbeResult{.ok = ok, .error = std::move(error)};
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

}  // namespace mill::health
