#include "health/probe.h"

#include <poll.h>

#include <cerrno>

#include "health/attempt.h"

namespace mill::health {

Probe probe_for(const model::HealthCheck& check, std::string address) {
  std::string label;
  for (const auto& arg : check.command) label += (label.empty() ? "" : " ") + arg;
  return Probe{.address = std::move(address),
               .path = check.path,
               .label = std::move(label),
               .timeout = check.timeout,
               .interval = check.interval,
               .passes = check.passes,
               .deadline = check.deadline};
}

Result<void> validate(const Probe& probe) {
  if (!probe.command.empty()) {
    if (probe.command.front().empty()) {
      return make_error(ErrorCode::kInvalidArgument, "health command needs a program to run");
    }
  } else {
    MILL_TRY(parse_endpoint(probe.address));
  }
  if (!probe.path.empty()) {
    if (probe.path.front() != '/') {
      return make_error(ErrorCode::kInvalidArgument,
                        "health path \"" + probe.path + "\" must start with \"/\"");
    }
    for (char c : probe.path) {
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
        return make_error(ErrorCode::kInvalidArgument,
                          "health path \"" + probe.path + "\" must not contain whitespace");
      }
    }
  }
  if (probe.timeout.count() <= 0) {
    return make_error(ErrorCode::kInvalidArgument, "health timeout must be greater than 0");
  }
  return {};
}

ProbeResult probe_once(const Probe& probe) {
  if (auto valid = validate(probe); !valid)
    return ProbeResult{.ok = false, .error = valid.error().message};
  Endpoint endpoint;
  if (probe.command.empty()) endpoint = *parse_endpoint(probe.address);
  auto attempt = start_attempt(probe, endpoint, std::chrono::steady_clock::now());
  while (!attempt->done()) {
    auto now = std::chrono::steady_clock::now();
    attempt->on_time(now);
    if (attempt->done()) break;
    pollfd pfd{.fd = attempt->fd(), .events = attempt->events(), .revents = 0};
    int n = ::poll(&pfd, 1, poll_timeout(now, attempt->deadline()));
    if (n < 0 && errno != EINTR) attempt->abort(errno);
    if (n > 0) attempt->on_ready(pfd.revents);
  }
  return attempt->result();
}

}  // namespace mill::health
