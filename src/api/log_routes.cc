// GET /v1/logs/:name (spec: Logs): a task's log, or a service's (every allocation's,
// merged in time order, each line tagged with its allocation) as SSE, from the node
// that keeps it. A task id (or any allocation id) wins over a service name.

#include <boost/json.hpp>
#include <charconv>

#include "api/api.h"
#include "api/responses.h"

namespace mill::api {

void add_log_routes(Router& router, const ApiContext& ctx) {
  router.add("GET", "/v1/logs/:name", [&ctx](const net::HttpRequest& req, const Params& p) {
    const std::string& name = p.find("name")->second;
    net::LogQuery query;
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
      query.tail = n;
    }
    std::string node;
    if (auto task = ctx.tasks->get(name)) {
      node = task->alloc.node;
    } else {
      auto allocs = ctx.tasks->group(model::kKindService, name);
      if (allocs.empty()) return error_response(404, "no task or service '" + name + "'");
      query.alloc_id.clear();
      query.service = name;
      // One node today; with several, each node's source streams its part.
      node = allocs.back().alloc.node;
    }
    if (!ctx.logs || !ctx.logs->serves(node)) {
      return error_response(
          503, "the logs of " + name + " are on " + node + ", which this server cannot reach");
    }
    net::HttpResponse res;
    res.async = [&ctx, query](std::shared_ptr<net::ResponseWriter> writer) {
      ctx.logs->stream(query, std::move(writer));
    };
    return res;
  });
}

}  // namespace mill::api
