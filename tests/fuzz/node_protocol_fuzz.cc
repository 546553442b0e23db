// Fuzzes the node protocol's codec (model/node_protocol.h), whose decoders read what
// nodes and the control plane send each other. The first byte picks the message ('0'
// register, '1' its answer, '2' heartbeat, '3' desired allocations, '4' status,
// '5' pulls, '6' volumes, '7' the allocations query as "node\nindex\nwait_ms", '8' node
// requests, '9' a log chunk, ':' its answer, ';' the requests query as
// "node\nsession\nwait_ms"; other bytes pick nothing).
// Invariants: no crash; an error has a message; whatever decodes encodes to text that
// decodes to the same message (doubles within the parser's last-digit rounding: Boost
// 1.81 does not always read back the shortest form exactly).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "model/node_protocol.h"

namespace {

using namespace mill::model;

// Takes a's value for b when the two differ only by the parser's rounding.
void align(double a, double& b) {
  double diff = std::fabs(a - b);
  if (diff <= 1e-12 * std::max(std::fabs(a), std::fabs(b)) || diff < 1e-300) b = a;
}

void align(const Resources& a, Resources& b) {
  align(a.cpu_total, b.cpu_total);
  align(a.cpu_available, b.cpu_available);
}

void align(const RegisterRequest& a, RegisterRequest& b) { align(a.resources, b.resources); }
void align(const Heartbeat& a, Heartbeat& b) { align(a.resources, b.resources); }
void align(const RegisterResponse&, RegisterResponse&) {}
void align(const PullsReport&, PullsReport&) {}
void align(const VolumesReport&, VolumesReport&) {}
void align(const NodeRequests&, NodeRequests&) {}
void align(const LogChunk&, LogChunk&) {}
void align(const LogChunkAnswer&, LogChunkAnswer&) {}

void align(const DesiredAllocations& a, DesiredAllocations& b) {
  if (a.allocations.size() != b.allocations.size()) return;
  for (size_t i = 0; i < a.allocations.size(); ++i) {
    align(a.allocations[i].alloc.spec.cpu, b.allocations[i].alloc.spec.cpu);
  }
}

void align(const StatusReport& a, StatusReport& b) {
  if (a.allocations.size() != b.allocations.size()) return;
  for (size_t i = 0; i < a.allocations.size(); ++i) {
    align(a.allocations[i].cpu_seconds, b.allocations[i].cpu_seconds);
  }
}

template <auto decode>
void check(std::string_view input) {
  auto message = decode(input);
  if (!message) {
    if (message.error().message.empty()) std::abort();
    return;
  }
  auto again = decode(encode(*message));
  if (!again) std::abort();
  align(*message, *again);
  if (!(*again == *message)) std::abort();
}

// A query's three parameters, one per line.
struct Parts {
  std::string_view p[3];
};
Parts split_lines(std::string_view input) {
  Parts parts;
  for (auto& part : parts.p) {
    size_t nl = input.find('\n');
    part = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
  }
  return parts;
}

// "node\nindex\nwait_ms".
void check_query(std::string_view input) {
  auto [parts] = split_lines(input);
  auto q = decode_allocations_query(parts[0], parts[1], parts[2]);
  if (!q) {
    if (q.error().message.empty()) std::abort();
    return;
  }
  std::string text = encode(*q);
  std::string index = std::to_string(q->index);
  std::string wait = std::to_string(q->wait.count());
  if (text != "node=" + q->node + "&index=" + index + "&wait_ms=" + wait) std::abort();
  auto again = decode_allocations_query(q->node, index, wait);
  if (!again || !(*again == *q)) std::abort();
}

// "node\nsession\nwait_ms".
void check_requests_query(std::string_view input) {
  auto [parts] = split_lines(input);
  auto q = decode_requests_query(parts[0], parts[1], parts[2]);
  if (!q) {
    if (q.error().message.empty()) std::abort();
    return;
  }
  std::string wait = std::to_string(q->wait.count());
  if (encode(*q) != "node=" + q->node + "&session=" + q->session + "&wait_ms=" + wait) {
    std::abort();
  }
  auto again = decode_requests_query(q->node, q->session, wait);
  if (!again || !(*again == *q)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using Check = void (*)(std::string_view);
  static constexpr Check kChecks[] = {
      check<decode_register_request>, check<decode_register_response>,
      check<decode_heartbeat>,        check<decode_desired_allocations>,
      check<decode_status_report>,    check<decode_pulls_report>,
      check<decode_volumes_report>,   check_query,
      check<decode_node_requests>,    check<decode_log_chunk>,
      check<decode_log_chunk_answer>, check_requests_query};
  constexpr size_t kCount = sizeof kChecks / sizeof kChecks[0];
  if (size == 0 || data[0] % 16 >= kCount) return 0;
  kChecks[data[0] % 16](std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  return 0;
}
