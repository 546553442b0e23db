#include "model/config.h"

#include <algorithm>

#include "model/names.h"

namespace mill::model {
namespace {

constexpr std::string_view kSecretOpen = "${secret:";

void collect(std::string_view text, std::set<std::string>& out) {
  auto names = find_secret_references(text);
  if (!names) return;
  out.insert(names->begin(), names->end());
}

}  // namespace

Result<std::vector<std::string>> find_secret_references(std::string_view text) {
  std::vector<std::string> names;
  std::size_t pos = 0;
  while ((pos = text.find(kSecretOpen, pos)) != std::string_view::npos) {
    std::size_t start = pos + kSecretOpen.size();
    std::size_t end = text.find('}', start);
    if (end == std::string_view::npos) {
      return make_error(ErrorCode::kInvalidArgument,
                        "unterminated secret reference (expected \"${secret:NAME}\")");
    }
    std::string_view name = text.substr(start, end - start);
    if (!is_valid_name(name)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "invalid secret name \"" + std::string(name) +
                            "\" in \"${secret:...}\" (use 1-128 of A-Z a-z 0-9 _ . -)");
    }
    names.emplace_back(name);
    pos = end + 1;
  }
  return names;
}

std::set<std::string> secret_references(const Config& config) {
  std::set<std::string> out;
  for (const auto& [name, service] : config.services) {
    for (const auto& [key, value] : service.env) collect(value, out);
    if (service.route && service.route->tls) {
      collect(service.route->tls->cert, out);
      collect(service.route->tls->key, out);
    }
  }
  for (const auto& [name, task] : config.tasks) {
    for (const auto& [key, value] : task.env) collect(value, out);
  }
  for (const auto& [host, registry] : config.registries) {
    collect(registry.username, out);
    collect(registry.password, out);
  }
  return out;
}

bool writes_a_volume(const ServiceSpec& service) {
  return std::any_of(service.volumes.begin(), service.volumes.end(),
                     [](const VolumeMount& m) { return !m.read_only; });
}

bool rolls_stop_first(const ServiceSpec& service) {
  if (service.update_order != UpdateOrder::kDefault) {
    return service.update_order == UpdateOrder::kStopFirst;
  }
  return writes_a_volume(service);
}

}  // namespace mill::model
