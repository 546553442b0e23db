#pragma once

// Internal to mill_health: one probe in flight. The owner polls fd() for events() and
// feeds readiness and time in until done(), then reads result(). A socket attempt
// moves through connect -> send request -> read status line; a command attempt is a
// child process, its fd a pidfd that is readable once it has exited. probe_once
// drives one attempt; Checker's thread drives many with a single poll(2).
//
// Not thread-safe: one thread drives an attempt at a time.

#include <sys/socket.h>

#include <chrono>
#include <memory>
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
  virtual ~Attempt() = default;

  bool done() const { return done_; }
  const ProbeResult& result() const { return result_; }
  virtual int fd() const = 0;
  virtual short events() const = 0;
  SteadyTime deadline() const { return deadline_; }

  // poll(2) reported `revents` on fd().
  virtual void on_ready(short revents) = 0;
  // Fails the attempt with "timed out after ..." once `now` is past the deadline.
  void on_time(SteadyTime now);
  // Fails the attempt with errno `err` (e.g. when poll itself fails).
  void abort(int err);

 protected:
  Attempt(std::string label, std::chrono::milliseconds timeout, SteadyTime now)
      : label_(std::move(label)), timeout_(timeout), deadline_(now + timeout) {}
  void fail(std::string_view why);
  virtual void finish(bool ok, std::string error);

  std::string label_;  // "GET /healthz", "tcp 10.1.1.2:3000", "command pg_isready"
  std::chrono::milliseconds timeout_;
  SteadyTime deadline_;
  bool done_ = false;
  ProbeResult result_;
};

// Starts the probe: a command when probe.command is set, else a socket to `endpoint`
// (parsed from probe.address by the caller). May be done at once (e.g. refused).
std::unique_ptr<Attempt> start_attempt(const Probe& probe, const Endpoint& endpoint,
                                       SteadyTime now);

}  // namespace mill::health
