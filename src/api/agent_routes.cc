// The node protocol, authenticated by the join token: agents register, heartbeat,
// fetch their desired allocations with a blocking query (as Nomad's clients do) and
// report what runs.

#include <boost/json.hpp>

#include "api/api.h"
#include "api/responses.h"
#include "common/log.h"
#include "model/json.h"

namespace mill::api {

namespace json = boost::json;

namespace {

Result<std::string> node_subnet_text(const ApiContext& ctx, std::string_view id) {
  int index = 0;
  if (id.starts_with("node-")) index = std::atoi(std::string(id.substr(5)).c_str());
  auto subnet = model::node_subnet(ctx.cluster_network, index);
  if (!subnet) {
    return make_error(ErrorCode::kConflict, "the cluster network " + ctx.cluster_network.str() +
                                                " has no /24 left for " + std::string(id));
  }
  return subnet->str();
}

// An allocation as the agent gets it: secrets in env expanded (the join token
// guards this route), so the agent never needs the secrets key.
json::value deliverable(const ApiContext& ctx, const model::Allocation& a) {
  json::value v = json::parse(model::encode(a));
  if (a.desired != model::DesiredState::kRun) return v;
  auto& env = v.as_object()["spec"].as_object()["env"].as_object();
  for (auto& [k, val] : env) {
    auto expanded = ctx.secrets->expand(val.as_string());
    if (!expanded) {
      // Checked at spawn; if the secret was deleted since, start without it and say so.
      log::warn("allocation " + a.id + ": env " + std::string(k) + ": " + expanded.error().message);
      val = "";
      continue;
    }
    val = *expanded;
  }
  return v;
}

json::object registries(const ApiContext& ctx) {
  json::object out;
  for (const auto& [host, r] : ctx.tasks->config().registries) {
    auto user = ctx.secrets->expand(r.username);
    auto pass = ctx.secrets->expand(r.password);
    if (!user || !pass) {
      log::warn("registry " + host + ": credentials refer to a missing secret");
      continue;
    }
    out[host] = json::object{{"username", *user}, {"password", *pass}, {"insecure", r.insecure}};
  }
  return out;
}

net::HttpResponse allocations_response(const ApiContext& ctx, const std::string& node) {
  auto list = ctx.tasks->allocations_for(node);
  json::array allocs;
  for (const auto& v : list.allocations) {
    allocs.push_back(json::object{{"alloc", deliverable(ctx, v.alloc)},
                                  {"status", model::to_string(v.status())}});
  }
  json::object out{
      {"index", list.index}, {"allocations", std::move(allocs)}, {"registries", registries(ctx)}};
  if (!list.remove_volumes.empty()) {
    json::array names;
    for (const auto& n : list.remove_volumes) names.emplace_back(n);
    out["remove_volumes"] = std::move(names);
  }
  json::array routes;
  for (auto r : list.routes) {
    if (r.route.tls) {
      auto cert = ctx.secrets->expand(r.route.tls->cert);
      auto key = ctx.secrets->expand(r.route.tls->key);
      if (!cert || !key) {
        log::warn("service " + r.service + ": TLS refers to a missing secret; serving it without");
        r.route.tls.reset();
        r.route.https_redirect = false;
      } else {
        r.route.tls = model::RouteTls{*cert, *key};
      }
    }
    routes.push_back(json::parse(model::encode(r)));
  }
  out["routes"] = std::move(routes);
  if (list.pulls) {
    json::array images;
    for (const auto& i : list.pulls->images) images.emplace_back(i);
    out["pulls"] = json::object{{"deploy", list.pulls->deploy}, {"images", std::move(images)}};
  }
  return json_response(200, out);
}

}  // namespace

void add_agent_routes(Router& router, const ApiContext& ctx) {
  router.add("POST", "/v1/agent/register", [&ctx](const net::HttpRequest& req, const Params&) {
    auto body = model::parse_object(req.body, {"id", "name", "address", "resources"});
    if (!body) return error_response(body.error());
    server::NodeRegistration reg;
    auto id = model::get_string(*body, "id", false);
    auto name = model::get_string(*body, "name", true);
    auto address = model::get_string(*body, "address", true);
    if (!id) return error_response(id.error());
    if (!name) return error_response(name.error());
    if (!address) return error_response(address.error());
    auto* res = body->if_contains("resources");
    if (!res) return error_response(400, "missing field 'resources'");
    auto resources = model::resources_from_json(*res);
    if (!resources) return error_response(resources.error());
    reg.id = *id;
    reg.name = *name;
    reg.address = *address;
    reg.resources = *resources;
    auto node = ctx.nodes->register_node(reg);
    if (!node) return error_response(node.error());
    auto subnet = node_subnet_text(ctx, node->id);
    if (!subnet) return error_response(subnet.error());
    return json_response(200,
                         json::object{{"id", node->id},
                                      {"heartbeat_interval_ms", ctx.heartbeat_interval.count()},
                                      {"subnet", *subnet},
                                      {"cluster_network", ctx.cluster_network.str()}});
  });

  router.add("POST", "/v1/agent/heartbeat", [&ctx](const net::HttpRequest& req, const Params&) {
    auto body = model::parse_object(req.body, {"id", "resources"});
    if (!body) return error_response(body.error());
    auto id = model::get_string(*body, "id", true);
    if (!id) return error_response(id.error());
    auto* res = body->if_contains("resources");
    if (!res) return error_response(400, "missing field 'resources'");
    auto resources = model::resources_from_json(*res);
    if (!resources) return error_response(resources.error());
    if (auto hb = ctx.nodes->heartbeat(*id, *resources); !hb) return error_response(hb.error());
    return json_response(200, json::object{});
  });

  // Blocking query: answers at once when anything changed after `index`, else when
  // something does or `wait_ms` passes (then with the same list and index).
  router.add("GET", "/v1/agent/allocations", [&ctx](const net::HttpRequest& req, const Params&) {
    std::string node = req.query_param("node");
    if (node.empty()) return error_response(400, "missing query parameter 'node'");
    int64_t index = 0;
    int64_t wait_ms = 0;
    try {
      if (req.has_query_param("index")) index = std::stoll(req.query_param("index"));
      if (req.has_query_param("wait_ms")) wait_ms = std::stoll(req.query_param("wait_ms"));
    } catch (const std::exception&) {
      return error_response(400, "'index' and 'wait_ms' must be integers");
    }
    wait_ms = std::clamp<int64_t>(wait_ms, 0, ctx.max_poll_wait.count());
    if (wait_ms == 0 || index < ctx.tasks->allocations_for(node).index) {
      return allocations_response(ctx, node);
    }
    net::HttpResponse res;
    res.async = [&ctx, node, index, wait_ms](std::shared_ptr<net::ResponseWriter> writer) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
      ctx.tasks->wait_allocations(index, deadline, [&ctx, node, writer](bool) {
        writer->respond(allocations_response(ctx, node));
      });
    };
    return res;
  });

  router.add("POST", "/v1/agent/status", [&ctx](const net::HttpRequest& req, const Params&) {
    auto body = model::parse_object(req.body, {"node", "allocations"});
    if (!body) return error_response(body.error());
    auto node = model::get_string(*body, "node", true);
    if (!node) return error_response(node.error());
    auto* list = body->if_contains("allocations");
    if (!list || !list->is_array()) return error_response(400, "'allocations' must be an array");
    std::vector<model::AllocState> states;
    for (const auto& item : list->as_array()) {
      auto state = model::decode_alloc_state(model::serialize(item));
      if (!state) return error_response(state.error());
      states.push_back(std::move(*state));
    }
    if (auto ok = ctx.tasks->report(*node, states); !ok) return error_response(ok.error());
    return json_response(200, json::object{});
  });

  router.add("POST", "/v1/agent/volumes", [&ctx](const net::HttpRequest& req, const Params&) {
    auto body = model::parse_object(req.body, {"node", "volumes"});
    if (!body) return error_response(body.error());
    auto node = model::get_string(*body, "node", true);
    if (!node) return error_response(node.error());
    auto* list = body->if_contains("volumes");
    if (!list || !list->is_array()) return error_response(400, "'volumes' must be an array");
    std::vector<model::VolumeReport> reports;
    for (const auto& item : list->as_array()) {
      if (!item.is_object()) return error_response(400, "'volumes' items must be objects");
      auto name = model::get_string(item.as_object(), "name", true);
      if (!name) return error_response(name.error());
      auto error = model::get_string(item.as_object(), "error", false);
      if (!error) return error_response(error.error());
      reports.push_back({*name, *error});
    }
    ctx.tasks->volumes_removed(*node, reports);
    return json_response(200, json::object{});
  });

  router.add("POST", "/v1/agent/pulls", [&ctx](const net::HttpRequest& req, const Params&) {
    auto body = model::parse_object(req.body, {"node", "deploy", "images"});
    if (!body) return error_response(body.error());
    auto node = model::get_string(*body, "node", true);
    if (!node) return error_response(node.error());
    auto deploy = model::get_string(*body, "deploy", true);
    if (!deploy) return error_response(deploy.error());
    auto* list = body->if_contains("images");
    if (!list || !list->is_array()) return error_response(400, "'images' must be an array");
    std::vector<model::PullReport> reports;
    for (const auto& item : list->as_array()) {
      if (!item.is_object()) return error_response(400, "'images' items must be objects");
      auto image = model::get_string(item.as_object(), "image", true);
      if (!image) return error_response(image.error());
      auto error = model::get_string(item.as_object(), "error", false);
      if (!error) return error_response(error.error());
      reports.push_back({*image, *error});
    }
    ctx.tasks->pulled(*node, *deploy, reports);
    return json_response(200, json::object{});
  });
}

}  // namespace mill::api
