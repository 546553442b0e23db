// Volumes (issue 4; beyond the spec's list of resources, documented in docs/api.md):
// GET /v1/volumes lists the config's volumes and where each lives; DELETE destroys
// one through its node, refused while a service uses it.

#include <boost/json.hpp>
#include <set>

#include "api/api.h"
#include "api/responses.h"
#include "server/deploy.h"

namespace mill::api {
namespace {

namespace json = boost::json;

// The service that mounts `name`: in the deployed config, or with a live allocation.
std::string user_of(const ApiContext& ctx, const model::Config& deployed, const std::string& name) {
  for (const auto& [service, spec] : deployed.services) {
    for (const auto& m : spec.volumes) {
      if (m.volume == name) return service;
    }
  }
  for (const auto& service : ctx.tasks->live_groups(model::kKindService)) {
    for (const auto& v : ctx.tasks->group(model::kKindService, service)) {
      if (model::is_terminal(v.status()) || v.alloc->desired != model::DesiredState::kRun) continue;
      for (const auto& vol : v.alloc->spec.volumes) {
        if (vol.name == name) return service;
      }
    }
  }
  return "";
}

}  // namespace

void add_volume_routes(Router& router, const ApiContext& ctx) {
  router.add("GET", "/v1/volumes", [&ctx](const net::HttpRequest&, const Params&) {
    model::Config deployed = ctx.deploys ? ctx.deploys->deployed() : model::Config{};
    std::map<std::string, json::object> out;
    for (const auto& [name, spec] : deployed.volumes) {
      out[name] = json::object{{"name", name}, {"node", nullptr}, {"size", spec.size}, {"used", 0}};
    }
    for (const auto& b : ctx.tasks->volumes()) {
      auto& o = out[b.name];
      o["name"] = b.name;
      o["node"] = b.node;
      if (!o.contains("size")) o["size"] = b.size;
      o["used"] = b.used;
    }
    json::array list;
    for (auto& [name, o] : out) {
      std::string service = user_of(ctx, deployed, name);
      o["service"] = service.empty() ? json::value(nullptr) : json::value(service);
      list.push_back(std::move(o));
    }
    return json_response(200, list);
  });

  router.add("DELETE", "/v1/volumes/:name", [&ctx](const net::HttpRequest&, const Params& p) {
    const std::string& name = p.find("name")->second;
    model::Config deployed = ctx.deploys ? ctx.deploys->deployed() : model::Config{};
    if (std::string service = user_of(ctx, deployed, name); !service.empty()) {
      return json_response(
          409, json::object{{"error", "volume '" + name + "' is used by service '" + service +
                                          "': remove it from the service and deploy first"},
                            {"service", service}});
    }
    if (auto asked = ctx.tasks->remove_volume(name); !asked) return error_response(asked.error());
    net::HttpResponse res;
    res.async = [&ctx, name](std::shared_ptr<net::ResponseWriter> writer) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      ctx.tasks->when_volume_removed(name, deadline, [writer, name](Result<void> done) {
        if (!done) return writer->respond(error_response(done.error()));
        writer->respond(json_response(200, json::object{{"name", name}, {"removed", true}}));
      });
    };
    return res;
  });
}

}  // namespace mill::api
