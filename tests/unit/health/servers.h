#pragma once

// Loopback servers for the health tests, on port 0: a tiny HTTP server whose answer
// the test changes while it runs, a listener that never accepts (so it never
// answers), and a port that refuses connections.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/fd.h"

namespace mill::health::testing {

// A TCP socket bound to 127.0.0.1 on a free port; listening when asked.
inline UniqueFd bound_socket(bool listening) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return UniqueFd();
  if (listening && ::listen(fd.get(), 512) != 0) return UniqueFd();
  return fd;
}

inline std::string address_of(const UniqueFd& fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  return "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
}

// Bound but not listening: connecting is refused, and the port stays ours.
class RefusingPort {
 public:
  RefusingPort() : fd_(bound_socket(false)) {}
  std::string address() const { return address_of(fd_); }

 private:
  UniqueFd fd_;
};

// Listening but never accepting: the kernel completes the handshake and takes the
// request, and no answer ever comes.
class SilentServer {
 public:
  SilentServer() : fd_(bound_socket(true)) {}
  std::string address() const { return address_of(fd_); }
  // True once a client's connection waits in the backlog (it is never accepted).
  bool wait_pending(std::chrono::milliseconds limit) const {
    pollfd p{fd_.get(), POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(limit.count())) == 1;
  }

 private:
  UniqueFd fd_;
};

// Answers every request with `status` (302s carry a Location), or with raw bytes
// when set_raw() was called. One thread, one connection at a time.
class HttpServer {
 public:
  HttpServer() : fd_(bound_socket(true)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~HttpServer() { stop(); }

  std::string address() const { return address_of(fd_); }
  void set_status(int status) { status_ = status; }
  void set_raw(std::string raw) {
    std::lock_guard lock(mutex_);
    raw_ = std::move(raw);
    use_raw_ = true;
  }
  // Requests answered, in all or with one status.
  int served() const { return served_; }
  int served_with(int status) const {
    std::lock_guard lock(mutex_);
    auto it = by_status_.find(status);
    return it == by_status_.end() ? 0 : it->second;
  }
  std::string last_request_line() const {
    std::lock_guard lock(mutex_);
    return last_request_line_;
  }
  // Closes the listener: later connections are refused.
  void stop() {
    if (stopping_.exchange(true)) return;
    thread_.join();
    fd_ = UniqueFd();
  }

 private:
  void serve() {
    while (!stopping_) {
      pollfd pfd{.fd = fd_.get(), .events = POLLIN, .revents = 0};
      if (::poll(&pfd, 1, 20) <= 0) continue;
      UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (conn.valid()) answer(conn);
    }
  }

  void answer(const UniqueFd& conn) {
    std::string request;
    char buffer[2048];
    while (request.find("\r\n\r\n") == std::string::npos) {
      pollfd pfd{.fd = conn.get(), .events = POLLIN, .revents = 0};
      if (::poll(&pfd, 1, 1000) <= 0) return;
      ssize_t n = ::recv(conn.get(), buffer, sizeof(buffer), 0);
      if (n <= 0) return;
      request.append(buffer, static_cast<size_t>(n));
    }
    int status = status_;
    std::string reply;
    {
      std::lock_guard lock(mutex_);
      last_request_line_ = request.substr(0, request.find("\r\n"));
      if (use_raw_) {
        reply = raw_;
      } else {
        reply = "HTTP/1.1 " + std::to_string(status) + " Whatever\r\n" +
                (status == 302 ? "Location: /elsewhere\r\n" : "") +
                "Content-Length: 2\r\nConnection: close\r\n\r\nok";
        ++by_status_[status];
      }
    }
    ++served_;  // before the answer, so a client that has it sees the count
    ::send(conn.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
  }

  UniqueFd fd_;
  std::atomic<int> status_{200};
  std::atomic<int> served_{0};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::map<int, int> by_status_;
  std::string last_request_line_;
  std::string raw_;
  bool use_raw_ = false;
  std::thread thread_;
};

// Polls `done` every few milliseconds until it holds or `limit` passes.
template <class Pred>
bool wait_for(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

inline int thread_count() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/self/task")) {
    ++n;
  }
  return n;
}

}  // namespace mill::health::testing
