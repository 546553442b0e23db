#pragma once

// One health probe of one target: an HTTP GET (healthy on 2xx and 3xx), without a
// path a TCP connect, or a command (healthy when it exits 0). Plain values and a
// blocking probe_once(); Checker (checker.h) runs many probes on one thread. No Asio or
// Beast here: probes are non-blocking sockets and pidfds driven by poll(2)
// (attempt.h), so mill_health links only model and common.

#include <chrono>
#include <string>
#include <vector>

#include "common/result.h"
#include "model/config.h"

namespace mill::health {

// Probes closer together than this are spaced out to it by Checker.
inline constexpr std::chrono::milliseconds kMinInterval{100};

using SteadyTime = std::chrono::steady_clock::time_point;

struct Probe {
  // "10.1.1.2:3000" or "[fd00::2]:3000": an IP literal and a port. Host names are
  // refused (resolving would block the probing thread); allocations have addresses.
  std::string address{};
  // HTTP GET path, starting with "/". Empty: a TCP connect to `address`.
  std::string path{};
  // A command probe, when set (address and path are then unused): the program and
  // arguments to run on this host, e.g. `runc exec CONTAINER pg_isready -q`. Exit 0
  // passes; any other exit fails with the last line it printed. At the timeout the
  // process, and the one whose pid `pid_file` holds (if set: the command runc started
  // in the container), are killed.
  std::vector<std::string> command{};
  std::string pid_file{};
  // How the command is named in errors ("command pg_isready -q: exit 1"); argv when
  // empty.
  std::string label{};
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
// address ("container-ip:port"). For a command check the caller fills in `command`
// (how to run check.command inside the container) and `pid_file`; `label` is set
// from check.command.
Probe probe_for(const model::HealthCheck& check, std::string address);

struct ProbeResult {
  bool ok = false;
  // Why not, for a person: "GET /healthz: 500", "GET /healthz: connection refused",
  // "GET /healthz: timed out after 1s", "tcp 10.1.1.2:3000: connection refused",
  // "command pg_isready -q: exit 2: no response".
  std::string error;
};

// kInvalidArgument when the address is not IP:PORT (socket probes), the path does not
// start with "/" or holds whitespace or control characters, the command's program is
// empty, or the timeout is not positive.
Result<void> validate(const Probe& probe);

// Probes once on the calling thread, returning within probe.timeout (plus scheduling
// noise). An invalid probe (see validate) fails with the validation message.
// Thread-safe: independent calls share nothing.
ProbeResult probe_once(const Probe& probe);

}  // namespace mill::health
