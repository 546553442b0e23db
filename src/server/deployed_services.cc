#include "server/deployed_services.h"

#include <boost/json.hpp>
#include <set>

namespace mill::server {

namespace json = boost::json;

namespace {

void drop_unnamed(DeployedServices& d) {
  std::set<std::string> named;
  for (const auto& [name, id] : d.services) named.insert(id);
  std::erase_if(d.sources, [&](const auto& kv) { return !named.contains(kv.first); });
}

}  // namespace

void DeployedServices::set(const std::string& service, const std::string& id,
                           const Source& source) {
  services[service] = id;
  sources[id] = source;
  drop_unnamed(*this);
}

void DeployedServices::remove(const std::string& service) {
  services.erase(service);
  drop_unnamed(*this);
}

std::string encode(const DeployedServices& d) {
  json::object services;
  for (const auto& [name, id] : d.services) services[name] = id;
  json::object sources;
  for (const auto& [id, s] : d.sources) {
    sources[id] = json::object{{"file", s.file}, {"text", s.text}};
  }
  return json::serialize(json::object{{"services", services}, {"sources", sources}});
}

std::optional<DeployedServices> decode_deployed_services(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto* services = v.as_object().if_contains("services");
  const auto* sources = v.as_object().if_contains("sources");
  if (!services || !services->is_object() || !sources || !sources->is_object()) {
    return std::nullopt;
  }
  DeployedServices d;
  for (const auto& [id, s] : sources->as_object()) {
    const auto* o = s.if_object();
    const auto* file = o ? o->if_contains("file") : nullptr;
    const auto* body = o ? o->if_contains("text") : nullptr;
    if (!file || !file->is_string() || !body || !body->is_string()) return std::nullopt;
    d.sources[std::string(id)] = {std::string(file->as_string()), std::string(body->as_string())};
  }
  for (const auto& [name, id] : services->as_object()) {
    if (!id.is_string() || !d.sources.contains(std::string(id.as_string()))) return std::nullopt;
    d.services[std::string(name)] = std::string(id.as_string());
  }
  return d;
}

model::Config compose_deployed(const model::Config& last_full, const DeployedServices& deployed,
                               const std::map<std::string, model::Config>& parsed) {
  model::Config out = last_full;
  out.services.clear();
  for (const auto& [name, id] : deployed.services) {
    auto source = parsed.find(id);
    if (source == parsed.end()) continue;
    auto service = source->second.services.find(name);
    if (service == source->second.services.end()) continue;
    out.services[name] = service->second;
    for (const auto& mount : service->second.volumes) {
      if (auto v = source->second.volumes.find(mount.volume); v != source->second.volumes.end()) {
        out.volumes[mount.volume] = v->second;
      }
    }
    for (const auto& [host, registry] : source->second.registries) {
      out.registries.try_emplace(host, registry);
    }
  }
  return out;
}

}  // namespace mill::server
