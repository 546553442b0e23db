// GET /v1/logs/:name (spec: Logs): a task's log, or a service's (every allocation's,
// merged in time order, each line tagged with its allocation) as SSE, from the nodes
// that keep it (api/log_merge.h joins their parts). A task id (or any allocation id)
// wins over a service name.

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>

#include "api/api.h"
#include "api/log_merge.h"
#include "api/log_relay.h"
#include "api/responses.h"

namespace mill::api {

void add_log_routes(Router& router, const ApiContext& ctx) {
  router.add("GET", "/v1/logs/:name", [&ctx](const net::HttpRequest& req, const Params& p) {
    const std::string& name = p.find("name")->second;
    model::LogRequest query;
    query.alloc_id = name;
    std::string follow = req.query_param("follow");
    if (!follow.empty() && follow != "true" && follow != "false" && follow != "1" &&
        follow != "0") {
      return error_response(400, "'follow' must be true or false");
    }
    query.follow = follow == "true" || follow == "1";
    if (req.has_query_param("tail")) {
      std::string tail = req.query_param("tail");
      size_t n = 0;
      auto [ptr, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), n);
      if (ec != std::errc() || ptr != tail.data() + tail.size()) {
        return error_response(400, "'tail' must be a number of lines");
      }
      if (n > static_cast<size_t>(INT64_MAX)) return error_response(400, "'tail' is too large");
      query.tail = static_cast<int64_t>(n);
    }
    // The nodes that keep the log: a task's, or every node a service's allocations
    // are (or were, within the retention period) on.
    std::vector<std::string> nodes;
    if (auto task = ctx.tasks->get(name)) {
      nodes.push_back(task->alloc->node);
    } else {
      auto allocs = ctx.tasks->group(model::kKindService, name);
      if (allocs.empty()) return error_response(404, "no task or service '" + name + "'");
      query.alloc_id.clear();
      query.service = name;
      for (const auto& v : allocs) {
        if (std::find(nodes.begin(), nodes.end(), v.alloc->node) == nodes.end()) {
          nodes.push_back(v.alloc->node);
        }
      }
    }
    if (!ctx.logs) return error_response(503, "this server relays no logs");
    net::HttpResponse res;
    res.async = [&ctx, nodes, query](std::shared_ptr<net::ResponseWriter> writer) {
      if (nodes.size() == 1) return ctx.logs->stream(nodes.front(), query, std::move(writer));
      auto parts = split_log(std::move(writer), nodes, query.follow, query.tail);
      for (size_t i = 0; i < nodes.size(); ++i) ctx.logs->stream(nodes[i], query, parts[i]);
    };
    return res;
  });
}

}  // namespace mill::api
