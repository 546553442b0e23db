// GET /v1/status and GET /v1/nodes.

#include <boost/json.hpp>

#include "api/api.h"
#include "api/responses.h"
#include "model/json.h"

namespace mill::api {

namespace json = boost::json;

namespace {

json::object utilization(const std::vector<model::Node>& nodes) {
  model::Resources sum;
  for (const auto& n : nodes) {
    if (n.status == model::NodeStatus::kDown) continue;
    sum.cpu_total += n.resources.cpu_total;
    sum.cpu_available += n.resources.cpu_available;
    sum.memory_total += n.resources.memory_total;
    sum.memory_available += n.resources.memory_available;
  }
  json::object o = model::to_json(sum);
  o["cpu"].as_object()["used"] = sum.cpu_total - sum.cpu_available;
  o["memory"].as_object()["used"] = sum.memory_total - sum.memory_available;
  return o;
}

}  // namespace

void add_cluster_routes(Router& router, const ApiContext& ctx) {
  router.add("GET", "/v1/nodes", [&ctx](const net::HttpRequest&, const Params&) {
    auto nodes = ctx.nodes->list();
    if (!nodes) return error_response(nodes.error());
    json::array out;
    for (const auto& n : *nodes) out.push_back(model::to_json(n));
    return json_response(200, out);
  });

  router.add("GET", "/v1/status", [&ctx](const net::HttpRequest&, const Params&) {
    auto nodes = ctx.nodes->list();
    if (!nodes) return error_response(nodes.error());
    json::array node_list;
    for (const auto& n : *nodes) node_list.push_back(model::to_json(n));
    json::object out;
    out["nodes"] = std::move(node_list);
    out["services"] = json::array();  // filled by the services issue
    out["tasks"] = json::array();     // filled by the tasks issue
    out["utilization"] = utilization(*nodes);
    return json_response(200, out);
  });
}

}  // namespace mill::api
