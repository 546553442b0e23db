#include "api/service_views.h"

#include <boost/json.hpp>
#include <set>

#include "server/deploy.h"

namespace mill::api {

namespace json = boost::json;

json::array services_json(const ApiContext& ctx) {
  json::array out;
  if (!ctx.deploys) return out;
  auto config = ctx.deploys->deployed();
  std::set<std::string> names;
  for (const auto& [name, s] : config.services) names.insert(name);
  for (const auto& name : ctx.tasks->live_groups(model::kKindService)) names.insert(name);
  for (const auto& name : names) {
    auto it = config.services.find(name);
    json::array allocs;
    int healthy = 0;
    std::string image = it != config.services.end() ? it->second.image : "";
    for (const auto& v : ctx.tasks->group(model::kKindService, name)) {
      if (model::is_terminal(v.status())) continue;
      if (v.status() == model::AllocStatus::kHealthy) ++healthy;
      if (image.empty()) image = v.alloc->spec.image;
      json::object a{
          {"id", v.alloc->id},
          {"node", v.alloc->node},
          {"status", model::to_string(v.status())},
          {"address", v.alloc->spec.port ? v.alloc->ip + ":" + std::to_string(*v.alloc->spec.port)
                                         : v.alloc->ip}};
      // Usage only once measured, never a 0 that means "not yet": memory from the
      // running report on (the agent reads it as the container starts), cpu once two
      // reports give a rate.
      if (auto cpu = ctx.tasks->cpu_usage(v.alloc->id)) a["cpu"] = *cpu;
      if (v.state && v.state->started_at) {
        a["memory"] = v.state->memory_bytes;
        a["started_at"] = format_rfc3339(*v.state->started_at);
      }
      if (v.state && v.state->restarts) a["restarts"] = v.state->restarts;
      if (v.state && !v.state->message.empty()) a["message"] = v.state->message;
      allocs.push_back(std::move(a));
    }
    int desired = it != config.services.end() ? it->second.replicas : 0;
    out.push_back(
        json::object{{"name", name},
                     {"image", image},
                     {"replicas", json::object{{"desired", desired}, {"healthy", healthy}}},
                     {"allocations", std::move(allocs)}});
  }
  return out;
}

}  // namespace mill::api
