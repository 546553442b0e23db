// Sections and the checks that span them.
#include "config/parser.h"

#include <algorithm>
#include <tuple>

#include "config/checks.h"

namespace mill::config::internal {

// Handles the keys services and tasks share; false when `key` is not one of them.
template <class Spec>
bool Parser::read_common_field(std::string_view key, const toml::node& node, const std::string& ctx,
                               Spec& spec) {
  if (key == "image") {
    auto image = read_string(node, ctx, key);
    if (!image) return true;
    if (auto valid = check_image(*image); !valid) error(node, ctx, valid.error().message);
    spec.image = *image;
  } else if (key == "port") {
    if (auto port = read_integer(node, ctx, key, 1, 65535)) spec.port = static_cast<int>(*port);
  } else if (key == "cpu") {
    if (auto cpu = read_cpu(node, ctx)) spec.cpu = *cpu;
  } else if (key == "memory") {
    if (auto memory = read_size(node, ctx, key, model::kMinMemory)) spec.memory = *memory;
  } else if (key == "command") {
    if (auto command = read_command(node, ctx)) spec.command = std::move(*command);
  } else if (key == "env") {
    if (auto env = read_env(node, ctx)) spec.env = std::move(*env);
  } else if (key == "init") {
    if (auto init = read_bool(node, ctx, key)) spec.init = *init;
  } else if (key == "disk") {
    if (auto disk = read_size(node, ctx, key, model::kMinDisk)) spec.disk = *disk;
  } else {
    return false;
  }
  return true;
}

void Parser::parse_service(const std::string& name, const toml::table& table) {
  ServiceFacts& facts = service_facts_[name];
  facts.label = section_label("service", name);
  const std::string& ctx = facts.label;
  model::ServiceSpec spec;
  spec.name = name;
  for (auto&& [key, node] : table) {
    std::string_view k = key.str();
    if (read_common_field(k, node, ctx, spec)) {
      facts.has_port = facts.has_port || k == "port";
    } else if (k == "replicas") {
      facts.replicas = pos_of(node.source());
      if (auto n = read_integer(node, ctx, k, 0, 1000)) spec.replicas = static_cast<int>(*n);
    } else if (k == "volumes") {
      spec.volumes = read_mounts(node, ctx, facts);
    } else if (k == "health") {
      facts.health = pos_of(node.source());
      spec.health = read_health(node, ctx);
    } else if (k == "route") {
      facts.route = pos_of(node.source());
      spec.route = read_route(node, ctx);
    } else if (k == "update") {
      facts.update = pos_of(node.source());
      read_update(node, ctx, spec);
    } else {
      unknown_key(key, ctx, "", kServiceKeys);
    }
  }
  if (!table.contains("image")) error(table, ctx, "image is required");
  if (spec.update_order == model::UpdateOrder::kStartFirst && model::writes_a_volume(spec)) {
    Pos at = facts.update.value_or(pos_of(table.source()));
    warnings_.push_back({file_, at.line, at.column,
                         ctx + ": update.order = \"start-first\" with a writable volume: old and "
                               "new allocations run on the same data during a deploy (a "
                               "database corrupts it); the default for such a service is "
                               "stop-first"});
  }
  config_.services[name] = std::move(spec);
}

void Parser::parse_task(const std::string& name, const toml::table& table) {
  std::string ctx = section_label("task", name);
  task_positions_[name] = pos_of(table.source());
  model::TaskTemplate task;
  task.name = name;
  for (auto&& [key, node] : table) {
    std::string_view k = key.str();
    if (read_common_field(k, node, ctx, task)) continue;
    if (k == "timeout") {
      task.timeout = read_duration(node, ctx, k);
    } else {
      unknown_key(key, ctx, "", kTaskKeys);
    }
  }
  if (!table.contains("image")) error(table, ctx, "image is required");
  config_.tasks[name] = std::move(task);
}

void Parser::parse_volume(const std::string& name, const toml::table& table) {
  std::string ctx = section_label("volume", name);
  declared_volumes_.insert(name);
  model::VolumeSpec volume;
  volume.name = name;
  for (auto&& [key, node] : table) {
    if (key.str() == "size") {
      if (auto size = read_size(node, ctx, "size", std::int64_t{1} << 20)) volume.size = *size;
    } else {
      unknown_key(key, ctx, "", kVolumeKeys);
    }
  }
  if (!table.contains("size")) error(table, ctx, "size is required (like size = \"10G\")");
  config_.volumes[name] = std::move(volume);
}

void Parser::parse_registry(const std::string& host, const toml::table& table) {
  std::string ctx = "registry.\"" + host + "\"";
  model::RegistryConfig registry;
  registry.host = host;
  for (auto&& [key, node] : table) {
    std::string_view k = key.str();
    if (k == "username" || k == "password") {
      auto text = read_string(node, ctx, k);
      if (!text) continue;
      check_secrets(node, ctx, k, *text);
      (k == "username" ? registry.username : registry.password) = *text;
    } else if (k == "insecure") {
      if (auto insecure = read_bool(node, ctx, k)) registry.insecure = *insecure;
    } else {
      unknown_key(key, ctx, "", kRegistryKeys);
    }
  }
  if (table.contains("username") != table.contains("password")) {
    error(table, ctx, "username and password must be given together");
  }
  config_.registries[host] = std::move(registry);
}

void Parser::parse_section(std::string_view section, const toml::table& items) {
  for (auto&& [name_key, node] : items) {
    std::string name(name_key.str());
    std::string label = section_label(section, name);
    const toml::table* table = node.as_table();
    if (!table) {
      error(node, label, "must be a table, like [" + label + "]");
      continue;
    }
    Pos name_pos = pos_of(name_key.source());
    if (section == "service" || section == "task") {
      if (auto valid = check_workload_name(name, section); !valid) {
        error(name_pos, label + ": " + valid.error().message);
      }
      section == "service" ? parse_service(name, *table) : parse_task(name, *table);
    } else if (section == "volume") {
      if (auto valid = check_name(name, section); !valid) {
        error(name_pos, label + ": " + valid.error().message);
      }
      parse_volume(name, *table);
    } else {
      if (auto valid = check_registry_host(name); !valid) {
        error(name_pos, section_label(section, name) + ": " + valid.error().message);
      }
      parse_registry(name, *table);
    }
  }
}

// Each volume is declared and mounted by at most one service, once.
void Parser::check_volume_use() {
  struct Use {
    Pos pos;
    std::string volume;
    std::string service;
  };
  std::vector<Use> uses;
  for (const auto& [service, facts] : service_facts_) {
    for (const auto& [volume, pos] : facts.mounts) uses.push_back({pos, volume, service});
  }
  // In file order, so the later mount is the one reported.
  std::sort(uses.begin(), uses.end(), [](const Use& a, const Use& b) { return a.pos < b.pos; });
  std::map<std::string, std::string> owners;
  for (const Use& use : uses) {
    std::string ctx = service_facts_[use.service].label + ": volume \"" + use.volume + "\"";
    if (!declared_volumes_.contains(use.volume)) {
      error(use.pos, ctx + " is not declared (add a [volume." + use.volume + "] section)");
      continue;
    }
    auto [owner, inserted] = owners.emplace(use.volume, use.service);
    if (inserted) continue;
    if (owner->second == use.service) {
      error(use.pos, ctx + " is mounted twice");
    } else {
      error(use.pos, ctx + " is already mounted by service \"" + owner->second +
                         "\" (a volume belongs to one service)");
    }
  }
}

void Parser::check_services() {
  for (const auto& [name, facts] : service_facts_) {
    const model::ServiceSpec& spec = config_.services[name];
    if (!facts.mounts.empty() && spec.replicas > 1 && facts.replicas) {
      error(*facts.replicas, facts.label +
                                 ": replicas must be 0 or 1 for a service with volumes: a volume "
                                 "lives on one node and is bound to one allocation");
    }
    if (!facts.has_port && facts.route) {
      error(*facts.route, facts.label + ": route needs a port (the container port to proxy to)");
    }
    if (!facts.has_port && facts.health && spec.health && spec.health->command.empty()) {
      error(*facts.health, facts.label +
                               ": health needs a port (the container port to check), or a "
                               "command to run in the container");
    }
    if (task_positions_.contains(name)) {
      error(task_positions_[name], section_label("task", name) + ": \"" + name +
                                       "\" is also a service; services and tasks share the "
                                       "\"<name>.mill\" host names, so names must differ");
    }
  }
}

// No two services may claim the same host and path.
void Parser::check_routes() {
  std::vector<std::pair<Pos, std::string>> routed;  // route position, service
  for (const auto& [name, facts] : service_facts_) {
    if (facts.route && config_.services[name].route) routed.emplace_back(*facts.route, name);
  }
  std::sort(routed.begin(), routed.end());
  std::map<std::pair<std::string, std::string>, std::string> owners;
  for (const auto& [pos, name] : routed) {
    const model::Route& route = *config_.services[name].route;
    auto [owner, inserted] = owners.emplace(std::pair(route.host, route.path), name);
    if (!inserted) {
      error(pos, service_facts_[name].label + ": route host \"" + route.host + "\" path \"" +
                     route.path + "\" is already used by service \"" + owner->second + "\"");
    }
  }
}

ParseOutcome Parser::run(const toml::table& root) {
  for (auto&& [key, node] : root) {
    std::string_view section = key.str();
    if (std::find(kSections.begin(), kSections.end(), section) == kSections.end()) {
      std::string message = "unknown section \"" + std::string(section) +
                            "\" (expected service, volume, task or registry)";
      std::string suggestion = closest_key(section, kSections);
      if (!suggestion.empty()) message += "; did you mean \"" + suggestion + "\"?";
      error(pos_of(key.source()), std::move(message));
      continue;
    }
    const toml::table* items = node.as_table();
    if (!items) {
      error(node, std::string(section),
            "must be a table of named sections, like [" + std::string(section) + ".NAME]");
      continue;
    }
    parse_section(section, *items);
  }
  check_volume_use();
  check_services();
  check_routes();
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  // toml++ tables iterate by key, not in file order.
  std::stable_sort(secrets_.begin(), secrets_.end(),
                   [](const SecretReference& a, const SecretReference& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  if (!errors_.empty()) return {std::nullopt, std::move(errors_), {}, std::move(secrets_)};
  return {std::move(config_), {}, std::move(warnings_), std::move(secrets_)};
}

}  // namespace mill::config::internal
