#pragma once

// One health probe of one target: an HTTP GET (healthy on 2xx and 3xx) or, without a
// path, a TCP connect. Plain values and a blocking probe_once(); Checker (checker.h)
// runs many probes on one thread. No Asio or Beast here: probes are non-blocking
// sockets driven by poll(2) (attempt.h), so mill_health links only model and common.

#include <chrono>
#include <string>

#include "common/result.h"
#include "model/config.h"

namespace mill::health {

// Probes closer together than this are spaced out to it by Checker.
inline constexpr std::chrono::milliseconds kMinInterval{100};

using SteadyTime = std::chrono::steady_clock::time_point;

struct Probe {
  // "10.1.1.2:3000" or "[fd00::2]:3000": an IP literal and a port. Host names are
  // refused (resolving would block the probing thread); allocations have addresses.
  std::string address;
  // HTTP GET path, starting with "/". Empty: a TCP connect to `address`.
  std::string path;
  // Strict: connect, send and the response's status line all within it.
  std::chrono::milliseconds timeout{1000};

  // Used by Checker only; probe_once() ignores them.
  std::chrono::milliseconds interval{2000};  // from the start of one probe to the next
  int passes = 1;                            // in a row: starting/unhealthy -> healthy
  int failures = 3;                          // in a row: healthy -> unhealthy
  // A target still starting this long after add() becomes unhealthy (checked after
  // each probe); zero: it may take forever.
  std::chrono::milliseconds deadline{0};
};

// A service's health check (mill.toml `health = {...}`) aimed at one allocation's
// address ("container-ip:port").
Probe probe_for(const model::HealthCheck& check, std::string address);

struct ProbeResult {
  bool ok = false;
  // Why not, for a person: "GET /healthz: 500", "GET /healthz: connection refused",
  // "GET /healthz: timed out after 1s", "tcp 10.1.1.2:3000: connection refused".
  std::string error;
};

// kInvalidArgument when the address is not IP:PORT, the path does not start with "/"
// or holds whitespace or control characters, or the timeout is not positive.
Result<void> validate(const Probe& probe);

// Probes once on the calling thread, returning within probe.timeout (plus scheduling
// noise). An invalid probe (see validate) fails with the validation message.
// Thread-safe: independent calls share nothing.
ProbeResult probe_once(const Probe& probe);

}  // namespace mill::health
