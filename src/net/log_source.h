#pragma once

// Where GET /v1/logs reads an allocation's log from. Logs stay on the node that ran
// the container; the API hands the request to the node's log source. The in-process
// agent serves its own node (cli/server_command.cc wires it); a remote node's agent
// will serve the same interface over the node protocol when several nodes arrive.
//
// It lives in net, below both its caller (api) and its implementation (agent), because
// neither of those links the other (scripts/check-edges.sh); net is the lowest module
// with the ResponseWriter it streams to.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "net/http.h"

namespace mill::net {

struct LogQuery {
  std::string alloc_id;        // one allocation (a task) ...
  std::string service;         // ... or every allocation of a service, merged in time order
  std::optional<size_t> tail;  // last N lines only
  bool follow = false;         // then stream new lines until the allocation ends
};

class LogSource {
 public:
  virtual ~LogSource() = default;
  // Streams the allocation's lines as SSE `data: {"ts","stream","line"}` events on
  // `writer` (begin_stream, write, close). With follow, it keeps the stream open until
  // the client leaves or the allocation ends, and then sends a final event saying so.
  // A service's lines carry "alloc" (the allocation they come from), and its follow
  // picks up allocations that start later (a deploy) until the client leaves.
  // kNotFound when the node has no log for it.
  virtual void stream(const LogQuery& query, std::shared_ptr<ResponseWriter> writer) = 0;
  // Whether this source serves the allocation's node.
  virtual bool serves(const std::string& node) const = 0;
};

}  // namespace mill::net
