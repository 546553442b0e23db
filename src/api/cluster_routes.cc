// GET /v1/status and GET /v1/nodes.

#include <algorithm>
#include <boost/json.hpp>

#include "api/api.h"
#include "api/responses.h"
#include "api/service_views.h"
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

// Live allocations (services' and tasks') per node, from the leader's allocation table.
void count_allocations(const ApiContext& ctx, std::vector<model::Node>& nodes) {
  if (!ctx.tasks) return;
  auto live = ctx.tasks->live_per_node();
  for (auto& n : nodes) {
    auto it = live.find(n.id);
    n.allocations = it == live.end() ? 0 : it->second;
  }
}

// A service in the overview: its name, image and replicas, without the allocations
// (GET /v1/services has those); `allocations` is their count.
json::array service_summaries(const ApiContext& ctx) {
  json::array out;
  for (auto& v : services_json(ctx)) {
    auto& s = v.as_object();
    auto allocs = s["allocations"].as_array().size();
    s["allocations"] = allocs;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

void add_cluster_routes(Router& router, const ApiContext& ctx) {
  router.add("GET", "/v1/nodes", [&ctx](const net::HttpRequest&, const Params&) {
    auto nodes = ctx.nodes->list();
    if (!nodes) return error_response(nodes.error());
    count_allocations(ctx, *nodes);
    json::array out;
    for (const auto& n : *nodes) out.push_back(model::to_json(n));
    return json_response(200, out);
  });

  router.add("GET", "/v1/status", [&ctx](const net::HttpRequest&, const Params&) {
    auto nodes = ctx.nodes->list();
    if (!nodes) return error_response(nodes.error());
    count_allocations(ctx, *nodes);
    json::array node_list;
    for (const auto& n : *nodes) node_list.push_back(model::to_json(n));
    json::object out;
    out["nodes"] = std::move(node_list);
    out["services"] = service_summaries(ctx);
    json::array tasks;
    if (ctx.tasks) {
      for (const auto& t : ctx.tasks->list(false)) {
        tasks.push_back(json::object{
            {"id", t.alloc.id}, {"status", model::to_string(t.status())}, {"node", t.alloc.node}});
      }
    }
    out["tasks"] = std::move(tasks);
    out["utilization"] = utilization(*nodes);
    return json_response(200, out);
  });
}

}  // namespace mill::api
