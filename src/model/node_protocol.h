#pragma once

// The node protocol's messages and their one JSON codec, used by both ends: the
// agent (agent/node_client.cc) encodes requests and decodes answers, the control plane
// (api/agent_routes.cc) decodes requests and encodes answers. Every route is under
// /v1/agent/ and authenticated by the join token:
//
//   POST /v1/agent/register     RegisterRequest    -> RegisterResponse
//   POST /v1/agent/heartbeat    Heartbeat          -> {}
//   GET  /v1/agent/allocations  AllocationsQuery   -> DesiredAllocations (blocking query)
//   POST /v1/agent/status       StatusReport       -> {}
//   POST /v1/agent/pulls        PullsReport        -> {}
//   POST /v1/agent/volumes      VolumesReport      -> {}
//   GET  /v1/agent/requests     RequestsQuery      -> NodeRequests (blocking query)
//   POST /v1/agent/logs         LogChunk           -> LogChunkAnswer
//
// The last two carry what the control plane asks of a node, the other way round: a
// log (GET /v1/logs) is requested in a NodeRequests, and the node sends it back in
// LogChunks. The node dials the control plane for both, so a node behind a NAT or a
// firewall that only lets it reach the server serves its logs just the same.
//
// Each message has one encode() and one decode_*(). Decoding is strict and total,
// since what a node sends is untrusted: any input that is not exactly what encode()
// writes (malformed JSON, a missing field the encoder always writes, a wrong type, an
// unknown field, a number out of range) is a kInvalidArgument naming the problem,
// never a crash or an exception. decode(encode(m)) == m for every message m.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "model/allocation.h"
#include "model/node.h"

namespace mill::model {

// The answer to a heartbeat and to each report.
inline constexpr std::string_view kEmptyAnswer = "{}";

// Register (or register again): the agent says who it is and what the machine has.
struct RegisterRequest {
  std::string id;  // empty on first registration: the server assigns "node-N"
  std::string name;
  std::string address;
  Resources resources;
  std::string version = {};  // the agent's Mill version; empty from older agents

  bool operator==(const RegisterRequest&) const = default;
};
// POST /v1/agent/register
std::string encode(const RegisterRequest& m);
Result<RegisterRequest> decode_register_request(std::string_view text);

// The register answer.
struct RegisterResponse {
  std::string id;
  std::chrono::milliseconds heartbeat_interval{5000};  // 1 ms to 1 day
  // This node's /24 (its bridge and containers) and the whole cluster network (the
  // guard route).
  std::string subnet;
  std::string cluster_network;

  bool operator==(const RegisterResponse&) const = default;
};
std::string encode(const RegisterResponse& m);
Result<RegisterResponse> decode_register_response(std::string_view text);

struct Heartbeat {
  std::string id;
  Resources resources;

  bool operator==(const Heartbeat&) const = default;
};
// POST /v1/agent/heartbeat; the answer is kEmptyAnswer.
std::string encode(const Heartbeat& m);
Result<Heartbeat> decode_heartbeat(std::string_view text);

// The blocking query's parameters: answer when the allocations changed after `index`,
// or after about `wait` with the same ones.
struct AllocationsQuery {
  std::string node;
  int64_t index = 0;
  std::chrono::milliseconds wait{0};

  bool operator==(const AllocationsQuery&) const = default;
};
// GET /v1/agent/allocations?QUERY: the query string, without the '?'
// ("node=node-1&index=7&wait_ms=30000"). A node id is a valid name (names.h), so
// nothing in it needs escaping.
std::string encode(const AllocationsQuery& m);
// From the query's parameters as the HTTP layer percent-decoded them ("" for one that
// is absent): node is required (a valid name), index and wait_ms are 0 when absent.
Result<AllocationsQuery> decode_allocations_query(std::string_view node, std::string_view index,
                                                  std::string_view wait_ms);

struct RegistryLogin {
  std::string username;
  std::string password;
  bool insecure = false;  // plain HTTP allowed

  bool operator==(const RegistryLogin&) const = default;
};

// A deploy's `pulling` phase: the images a node is asked to have before the deploy
// places anything (with the desired allocations).
struct ImagePulls {
  std::string deploy;  // the deploy asking; reports name it
  std::vector<std::string> images;

  bool operator==(const ImagePulls&) const = default;
};

// What the control plane wants a node to run: every allocation placed on it that has
// not been forgotten yet (ended ones stay, so their logs stay, until retention).
struct DesiredAllocations {
  int64_t index = 0;  // pass back to wait for the next change
  struct Item {
    Allocation alloc;  // secrets in its env already expanded
    // What this node last reported (pending if nothing): after losing its local state,
    // an agent must not start again what already ran.
    AllocStatus reported = AllocStatus::kPending;

    bool operator==(const Item&) const = default;
  };
  std::vector<Item> allocations;
  std::map<std::string, RegistryLogin> registries;  // by registry host
  std::optional<ImagePulls> pulls;                  // a deploy's `pulling` phase
  std::vector<std::string> remove_volumes;          // this node's volumes to destroy
  std::vector<ServiceRoute> routes;                 // for the proxy (TLS in plain PEM)

  bool operator==(const DesiredAllocations&) const = default;
};
// The allocations query's answer.
std::string encode(const DesiredAllocations& m);
Result<DesiredAllocations> decode_desired_allocations(std::string_view text);

// What runs on a node: the state of each of its allocations.
struct StatusReport {
  std::string node;
  std::vector<AllocState> allocations;

  bool operator==(const StatusReport&) const = default;
};
// POST /v1/agent/status; the answer is kEmptyAnswer.
std::string encode(const StatusReport& m);
Result<StatusReport> decode_status_report(std::string_view text);

// What a node says about one image of an ImagePulls.
struct PullReport {
  std::string image;
  std::string error;  // empty: the image is on the node

  bool operator==(const PullReport&) const = default;
};

struct PullsReport {
  std::string node;
  std::string deploy;
  std::vector<PullReport> images;

  bool operator==(const PullsReport&) const = default;
};
// POST /v1/agent/pulls; the answer is kEmptyAnswer.
std::string encode(const PullsReport& m);
Result<PullsReport> decode_pulls_report(std::string_view text);

// What a node says about a volume it was asked to remove.
struct VolumeReport {
  std::string name;
  std::string error;  // empty: removed (or already gone)

  bool operator==(const VolumeReport&) const = default;
};

struct VolumesReport {
  std::string node;
  std::vector<VolumeReport> volumes;

  bool operator==(const VolumesReport&) const = default;
};
// POST /v1/agent/volumes; the answer is kEmptyAnswer.
std::string encode(const VolumesReport& m);
Result<VolumesReport> decode_volumes_report(std::string_view text);

// A log the control plane asks a node for (GET /v1/logs/:name).
struct LogRequest {
  std::string id;               // the control plane's handle for the stream: chunks name it
  std::string alloc_id;         // one allocation (a task) ...
  std::string service;          // ... or every allocation of a service, merged in time order
  std::optional<int64_t> tail;  // last N lines only (N >= 0)
  bool follow = false;          // then new lines until the allocation ends

  bool operator==(const LogRequest&) const = default;
};

// The requests query's parameters: answer when something is asked of `node`, or
// after about `wait` with nothing. `session` names the agent process polling (random,
// hex): when it changes, the control plane knows the node's agent restarted and that
// the streams the old one took will never come.
struct RequestsQuery {
  std::string node;
  std::string session;
  std::chrono::milliseconds wait{0};

  bool operator==(const RequestsQuery&) const = default;
};
// GET /v1/agent/requests?QUERY: "node=node-1&session=3fa2&wait_ms=30000".
std::string encode(const RequestsQuery& m);
Result<RequestsQuery> decode_requests_query(std::string_view node, std::string_view session,
                                            std::string_view wait_ms);

// What the control plane asks of a node: logs to start sending, and streams whose
// client has left (stop sending them).
struct NodeRequests {
  std::vector<LogRequest> logs;
  std::vector<std::string> cancel;  // LogRequest ids

  bool operator==(const NodeRequests&) const = default;
};
std::string encode(const NodeRequests& m);
Result<NodeRequests> decode_node_requests(std::string_view text);

// One piece of a log stream, in order. The first says how the answer begins: a
// stream (status 200, its content type) or a whole answer (`whole`: an error, with
// its status, its body in data; nothing follows).
struct LogChunk {
  std::string node;
  std::string request;  // LogRequest::id
  int status = 0;       // on the first chunk only: 100..599
  std::string content_type;
  bool whole = false;
  std::string data;
  bool end = false;  // the stream ends after data

  bool operator==(const LogChunk&) const = default;
};
// POST /v1/agent/logs.
std::string encode(const LogChunk& m);
Result<LogChunk> decode_log_chunk(std::string_view text);

// The answer to a LogChunk: false once the stream is over on the control plane's side
// (its client left, or it ended): send no more of it.
struct LogChunkAnswer {
  bool more = true;

  bool operator==(const LogChunkAnswer&) const = default;
};
std::string encode(const LogChunkAnswer& m);
Result<LogChunkAnswer> decode_log_chunk_answer(std::string_view text);

}  // namespace mill::model
