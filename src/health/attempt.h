#pragma once

// Internal to mill_health: one probe in flight on a non-blocking socket. The owner
// polls fd() for events() and feeds readiness and time in; the attempt moves through
// connect -> send request -> read status line and ends with a ProbeResult. probe_once
// drives one attempt; Checker's thread drives many with a single poll(2).
//
// Not thread-safe: one thread drives an attempt at a time.

#include <sys/socket.h>

#include <chrono>
#include <string>
#include <string_view>

#include "common/fd.h"
#include "common/result.h"
#include "health/probe.h"

namespace mill::health {

// A parsed "IP:PORT".
struct Endpoint {
  sockaddr_storage addr{};
  socklen_t length = 0;
};
Result<Endpoint> parse_endpoint(std::string_view address);

// Milliseconds for poll(2) until `until`, rounded up so a wake-up is never early.
int poll_timeout(SteadyTime now, SteadyTime until);

class Attempt {
 public:
  // Opens the socket and starts connecting; may finish at once (e.g. refused).
  Attempt(const Probe& probe, const Endpoint& endpoint, SteadyTime now);

  bool done() const { return done_; }
  const ProbeResult& result() const { return result_; }
  int fd() const { return fd_.get(); }
  short events() const;  // POLLOUT while connecting or sending, else POLLIN
  SteadyTime deadline() const { return deadline_; }

  // poll(2) reported `revents` on fd().
  void on_ready(short revents);
  // Fails the attempt with "timed out after ..." once `now` is past the deadline.
  void on_time(SteadyTime now);
  // Fails the attempt with errno `err` (e.g. when poll itself fails).
  void abort(int err);

 private:
  enum class Phase { kConnecting, kSending, kReading };

  void connected();
  void send_some();
  void read_some();
  void fail(std::string_view why);
  void finish(bool ok, std::string error);

  std::string label_;    // "GET /healthz" or "tcp 10.1.1.2:3000"
  std::string request_;  // empty in TCP mode
  std::chrono::milliseconds timeout_;
  SteadyTime deadline_;
  UniqueFd fd_;
  Phase phase_ = Phase::kConnecting;
  size_t sent_ = 0;
  std::string received_;
  bool done_ = false;
  ProbeResult result_;
};

}  // namespace mill::health
