// The node protocol, authenticated by the join token: agents register and heartbeat.
// Later issues add fetching desired allocations (a blocking query) and status reports.

#include <boost/json.hpp>

#include "api/api.h"
#include "api/responses.h"
#include "model/json.h"

namespace mill::api {

namespace json = boost::json;

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
    return json_response(
        200,
        json::object{{"id", node->id}, {"heartbeat_interval_ms", ctx.heartbeat_interval.count()}});
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
}

}  // namespace mill::api
