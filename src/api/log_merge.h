#pragma once

// A service's log when its allocations are on several nodes (GET /v1/logs/:service):
// the relay asks each node for its part, each part answers through one of the writers
// split() returns, and the client hears one SSE stream.
//
// - Without follow, every part is read to its end, then the events are merged by their
//   timestamps (RFC 3339 UTC of fixed width: text order is time order) and `tail`
//   keeps the last N of the merged log.
// - With follow, events go to the client as they arrive from any node, whole (a part's
//   chunk may end mid-event; the rest waits for its next chunk). The stream ends when
//   the client leaves, or when every node's part has ended.
// A node that cannot give its part (its agent is not connected, it has no log) is
// named in an SSE comment (": node-2: ..."), which clients skip; the client hears an
// error only when no node gives a part, and then the first node's error.
//
// Thread-safety: the part writers may be called from any thread; they call the client
// writer with a mutex held, and call the parts' client-gone callbacks without it.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/http.h"

namespace mill::api {

// `nodes` names the parts, in order (ties in time keep this order). Before the first
// part is used, the client's client-gone callback is taken over: it runs each part's.
std::vector<std::shared_ptr<net::ResponseWriter>> split_log(
    std::shared_ptr<net::ResponseWriter> client, const std::vector<std::string>& nodes, bool follow,
    std::optional<int64_t> tail);

}  // namespace mill::api
