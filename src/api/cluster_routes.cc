// GET /v1/status and GET /v1/nodes.

#include <algorithm>
#include <boost/json.hpp>

#include "api/api.h"
#include "api/responses.h"
#include "api/service_views.h"
#include "model/json.h"
#include "model/units.h"
#include "server/node_monitor.h"

namespace mill::api {

namespace json = boost::json;

namespace {

// The nodes that are not down, summed: each figure as the node listing has it.
json::object utilization(const std::vector<model::Node>& nodes) {
  double cpu_total = 0, cpu_available = 0, cpu_used = 0, cpu_reserved = 0, cpu_allocatable = 0;
  int64_t mem_total = 0, mem_available = 0, mem_used = 0, mem_reserved = 0, mem_allocatable = 0;
  for (const auto& n : nodes) {
    if (n.status == model::NodeStatus::kDown) continue;
    cpu_total += n.resources.cpu_total;
    cpu_available += n.resources.cpu_available;
    cpu_used += model::used_cpu(n);
    cpu_reserved += n.load.cpu;
    cpu_allocatable += model::allocatable_cpu(n);
    mem_total += n.resources.memory_total;
    mem_available += n.resources.memory_available;
    mem_used += model::used_memory(n);
    mem_reserved += n.load.memory;
    mem_allocatable += model::allocatable_memory(n);
  }
  return json::object{{"cpu", json::object{{"total", cpu_total},
                                           {"available", cpu_available},
                                           {"used", model::round_cores(cpu_used)},
                                           {"reserved", model::round_cores(cpu_reserved)},
                                           {"allocatable", model::round_cores(cpu_allocatable)}}},
                      {"memory", json::object{{"total", mem_total},
                                              {"available", mem_available},
                                              {"used", mem_used},
                                              {"reserved", mem_reserved},
                                              {"allocatable", mem_allocatable}}}};
}

// Live allocations (services' and tasks') per node and what they reserve, from the
// leader's allocation table (the sums placement uses); for a draining node also what
// is left of each kind, and `drained` once nothing is.
void add_load(const ApiContext& ctx, std::vector<model::Node>& nodes) {
  if (!ctx.tasks) return;
  ctx.tasks->add_load(nodes);
  for (auto& n : nodes) {
    if (!n.draining || !ctx.node_monitor) continue;
    for (const auto& v : ctx.node_monitor->left_on(n.id)) {
      ++(v.alloc->kind == model::kKindService ? n.drain_services : n.drain_tasks);
    }
    if (n.load.allocations == 0 && n.status == model::NodeStatus::kDraining) {
      n.status = model::NodeStatus::kDrained;
    }
  }
}

net::HttpResponse node_response(const ApiContext& ctx, Result<model::Node> node) {
  if (!node) return error_response(node.error());
  std::vector<model::Node> one{std::move(*node)};
  add_load(ctx, one);
  return json_response(200, model::to_json(one[0]));
}

// A drain's body: empty, or {"deadline": "1h", "force": true}: how long its tasks may
// still run; whether to drain even when its services cannot all move.
struct DrainBody {
  std::chrono::milliseconds deadline = std::chrono::hours(1);
  bool force = false;
};
Result<DrainBody> drain_body(const std::string& body) {
  DrainBody out;
  if (body.empty()) return out;
  auto o = MILL_TRY(model::parse_object(body, {"deadline", "force"}));
  if (const auto* f = o.if_contains("force")) {
    if (!f->is_bool()) {
      return make_error(ErrorCode::kInvalidArgument, "'force' must be true or false");
    }
    out.force = f->as_bool();
  }
  std::string text = MILL_TRY(model::get_string(o, "deadline", false));
  if (text.empty()) return out;
  auto parsed = model::parse_duration(text);
  if (!parsed) {
    return make_error(ErrorCode::kInvalidArgument, "'deadline': " + parsed.error().message);
  }
  out.deadline = *parsed;
  return out;
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
  router.add("POST", "/v1/nodes/:id/drain", [&ctx](const net::HttpRequest& req, const Params& p) {
    if (!ctx.node_monitor) return error_response(503, "this server does not manage nodes");
    auto body = drain_body(req.body);
    if (!body) return error_response(body.error());
    return node_response(
        ctx, ctx.node_monitor->drain(p.find("id")->second, body->deadline, body->force));
  });

  router.add("DELETE", "/v1/nodes/:id/drain", [&ctx](const net::HttpRequest&, const Params& p) {
    if (!ctx.node_monitor) return error_response(503, "this server does not manage nodes");
    return node_response(ctx, ctx.node_monitor->undrain(p.find("id")->second));
  });

  router.add("DELETE", "/v1/nodes/:id", [&ctx](const net::HttpRequest&, const Params& p) {
    if (!ctx.node_monitor) return error_response(503, "this server does not manage nodes");
    const std::string& id = p.find("id")->second;
    auto removed = ctx.node_monitor->remove(id);
    if (!removed && removed.error().code == ErrorCode::kConflict) {
      json::array left;
      for (const auto& v : ctx.node_monitor->left_on(id)) {
        left.push_back(json::object{{"id", v.alloc->id},
                                    {"kind", v.alloc->kind},
                                    {"name", v.alloc->group},
                                    {"status", model::to_string(v.status())}});
      }
      return json_response(
          409, json::object{{"error", removed.error().message}, {"allocations", std::move(left)}});
    }
    if (!removed) return error_response(removed.error());
    return json_response(200, json::object{{"id", id}, {"removed", true}});
  });

  router.add("GET", "/v1/nodes", [&ctx](const net::HttpRequest&, const Params&) {
    auto nodes = ctx.nodes->list();
    if (!nodes) return error_response(nodes.error());
    add_load(ctx, *nodes);
    json::array out;
    for (const auto& n : *nodes) out.push_back(model::to_json(n));
    return json_response(200, out);
  });

  router.add("GET", "/v1/status", [&ctx](const net::HttpRequest&, const Params&) {
    auto nodes = ctx.nodes->list();
    if (!nodes) return error_response(nodes.error());
    add_load(ctx, *nodes);
    json::array node_list;
    for (const auto& n : *nodes) node_list.push_back(model::to_json(n));
    json::object out;
    out["nodes"] = std::move(node_list);
    out["services"] = service_summaries(ctx);
    json::array tasks;
    if (ctx.tasks) {
      for (const auto& t : ctx.tasks->list(false)) {
        tasks.push_back(json::object{{"id", t.alloc->id},
                                     {"status", model::to_string(t.status())},
                                     {"node", t.alloc->node}});
      }
    }
    out["tasks"] = std::move(tasks);
    out["utilization"] = utilization(*nodes);
    return json_response(200, out);
  });
}

}  // namespace mill::api
