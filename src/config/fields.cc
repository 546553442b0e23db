// Value readers: one TOML node -> one typed value, reporting type and range errors.
#include <algorithm>

#include "config/checks.h"
#include "config/parser.h"
#include "model/limits.h"
#include "model/units.h"

namespace mill::config::internal {

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    default:
      return "nothing";
  }
}

std::string section_label(std::string_view section, std::string_view name) {
  bool bare = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  std::string label(section);
  return bare ? label + "." + std::string(name) : label + ".\"" + std::string(name) + "\"";
}

void Parser::unknown_key(const toml::key& key, const std::string& ctx, std::string_view prefix,
                         std::span<const std::string_view> allowed) {
  std::string message =
      ctx + ": unknown key \"" + std::string(prefix) + std::string(key.str()) + "\"";
  std::string suggestion = closest_key(key.str(), allowed);
  if (!suggestion.empty()) message += " (did you mean \"" + suggestion + "\"?)";
  error(pos_of(key.source()), std::move(message));
}

std::optional<std::string> Parser::read_string(const toml::node& node, const std::string& ctx,
                                               std::string_view key) {
  if (const auto* value = node.as_string()) return value->get();
  type_error(node, ctx, key, "a string");
  return std::nullopt;
}

std::optional<std::int64_t> Parser::read_integer(const toml::node& node, const std::string& ctx,
                                                 std::string_view key, std::int64_t min,
                                                 std::int64_t max) {
  const auto* value = node.as_integer();
  if (!value) {
    type_error(node, ctx, key, "an integer");
    return std::nullopt;
  }
  if (value->get() < min || value->get() > max) {
    error(node, ctx,
          std::string(key) + " must be between " + std::to_string(min) + " and " +
              std::to_string(max) + ", got " + std::to_string(value->get()));
    return std::nullopt;
  }
  return value->get();
}

std::optional<bool> Parser::read_bool(const toml::node& node, const std::string& ctx,
                                      std::string_view key) {
  if (const auto* value = node.as_boolean()) return value->get();
  type_error(node, ctx, key, "true or false");
  return std::nullopt;
}

std::optional<double> Parser::read_cpu(const toml::node& node, const std::string& ctx) {
  double cpu = 0;
  if (const auto* integer = node.as_integer()) {
    cpu = static_cast<double>(integer->get());
  } else if (const auto* floating = node.as_floating_point()) {
    cpu = floating->get();
  } else {
    type_error(node, ctx, "cpu", "a number of cores (integer or float)");
    return std::nullopt;
  }
  if (!(cpu > 0 && cpu <= 1024)) {  // also rejects nan
    error(node, ctx, "cpu must be greater than 0 and at most 1024 cores");
    return std::nullopt;
  }
  return cpu;
}

std::optional<std::int64_t> Parser::read_size(const toml::node& node, const std::string& ctx,
                                              std::string_view key, std::int64_t min) {
  std::int64_t bytes = 0;
  if (const auto* integer = node.as_integer()) {
    bytes = integer->get();
  } else if (const auto* text = node.as_string()) {
    auto parsed = model::parse_size(text->get());
    if (!parsed) {
      error(node, ctx, std::string(key) + ": " + parsed.error().message);
      return std::nullopt;
    }
    bytes = *parsed;
  } else {
    type_error(node, ctx, key, "a size like \"512M\" or an integer number of bytes");
    return std::nullopt;
  }
  if (bytes < min) {
    error(node, ctx, std::string(key) + " must be at least " + model::format_size(min));
    return std::nullopt;
  }
  return bytes;
}

std::optional<milliseconds> Parser::read_duration(const toml::node& node, const std::string& ctx,
                                                  std::string_view key) {
  const auto* text = node.as_string();
  if (!text) {
    type_error(node, ctx, key, "a duration string like \"2s\"");
    return std::nullopt;
  }
  auto parsed = model::parse_duration(text->get());
  if (!parsed) {
    error(node, ctx, std::string(key) + ": " + parsed.error().message);
    return std::nullopt;
  }
  if (parsed->count() <= 0) {
    error(node, ctx, std::string(key) + " must be greater than 0");
    return std::nullopt;
  }
  return *parsed;
}

std::optional<std::vector<std::string>> Parser::read_command(const toml::node& node,
                                                             const std::string& ctx,
                                                             std::string_view key,
                                                             std::string_view if_empty) {
  const auto* array = node.as_array();
  const std::string name(key);
  if (!array) {
    type_error(node, ctx, name, "an array of strings");
    return std::nullopt;
  }
  if (array->empty()) {
    error(node, ctx, name + " must not be empty (" + std::string(if_empty) + ")");
    return std::nullopt;
  }
  std::vector<std::string> command;
  bool ok = true;
  for (const toml::node& element : *array) {
    auto arg = read_string(element, ctx, name + " element");
    ok = ok && arg.has_value();
    if (arg) command.push_back(*arg);
  }
  if (ok && command.front().empty()) {
    error(array->front(), ctx, name + "[0] (the program) must not be empty");
    ok = false;
  }
  if (auto fits = model::check_command(command); ok && !fits) {
    error(node, ctx, name + ": " + fits.error().message);
    ok = false;
  }
  return ok ? std::optional(std::move(command)) : std::nullopt;
}

void Parser::check_secrets(const toml::node& node, const std::string& ctx, std::string_view key,
                           std::string_view text) {
  auto refs = model::find_secret_references(text);
  if (!refs) {
    error(node, ctx, std::string(key) + ": " + refs.error().message);
    return;
  }
  Pos at = pos_of(node.source());
  for (auto& name : *refs) {
    secrets_.push_back({std::move(name), ctx + ": " + std::string(key), file_, at.line, at.column});
  }
}

std::optional<std::map<std::string, std::string>> Parser::read_env(const toml::node& node,
                                                                   const std::string& ctx) {
  const toml::table* table = read_table(node, ctx, "env");
  if (!table) return std::nullopt;
  std::map<std::string, std::string> env;
  for (auto&& [key, value] : *table) {
    std::string name(key.str());
    if (auto valid = check_env_name(name); !valid) {
      error(pos_of(key.source()), ctx + ": env: " + valid.error().message);
      continue;
    }
    if (auto fits = model::check_env_entry(name, ""); !fits) {
      error(pos_of(key.source()), ctx + ": env: " + fits.error().message);
      continue;
    }
    auto text = read_string(value, ctx, "env." + name);
    if (!text) continue;
    if (auto fits = model::check_env_entry(name, *text); !fits) {
      error(value, ctx, "env." + name + ": " + fits.error().message);
      continue;
    }
    check_secrets(value, ctx, "env." + name, *text);
    env[name] = *text;
  }
  if (auto fits = model::check_env(env); !fits) {
    error(node, ctx, "env: " + fits.error().message);
    return std::nullopt;
  }
  return env;
}

const toml::table* Parser::read_table(const toml::node& node, const std::string& ctx,
                                      std::string_view key) {
  if (const auto* table = node.as_table()) return table;
  type_error(node, ctx, key, "a table");
  return nullptr;
}

std::optional<model::HealthCheck> Parser::read_health(const toml::node& node,
                                                      const std::string& ctx) {
  const toml::table* table = read_table(node, ctx, "health");
  if (!table) return std::nullopt;
  model::HealthCheck health;
  for (auto&& [key, value] : *table) {
    std::string_view k = key.str();
    std::string full = "health." + std::string(k);
    if (k == "path") {
      auto path = read_string(value, ctx, full);
      if (!path) continue;
      if (auto valid = check_http_path(*path); !valid) {
        error(value, ctx, full + ": " + valid.error().message);
      }
      health.path = *path;
    } else if (k == "command") {
      auto command = read_command(value, ctx, full, "leave it out for an HTTP or TCP check");
      if (command) health.command = std::move(*command);
    } else if (k == "interval" || k == "timeout" || k == "deadline") {
      auto duration = read_duration(value, ctx, full);
      if (!duration) continue;
      (k == "interval"  ? health.interval
       : k == "timeout" ? health.timeout
                        : health.deadline) = *duration;
    } else if (k == "passes") {
      if (auto passes = read_integer(value, ctx, full, 1, 100)) {
        health.passes = static_cast<int>(*passes);
      }
    } else {
      unknown_key(key, ctx, "health.", kHealthKeys);
    }
  }
  if (!health.path.empty() && !health.command.empty()) {
    error(node, ctx,
          "health: path (an HTTP check) and command (run in the container) exclude each "
          "other; choose one");
  }
  return health;
}

std::optional<model::Route> Parser::read_route(const toml::node& node, const std::string& ctx) {
  const toml::table* table = read_table(node, ctx, "route");
  if (!table) return std::nullopt;
  model::Route route{.host = "", .path = "/"};
  bool has_host = false;
  for (auto&& [key, value] : *table) {
    std::string_view k = key.str();
    std::string full = "route." + std::string(k);
    if (k == "host") {
      has_host = true;
      auto host = read_string(value, ctx, full);
      if (!host) continue;
      if (auto valid = check_route_host(*host); !valid) error(value, ctx, valid.error().message);
      route.host = *host;
    } else if (k == "path") {
      auto path = read_string(value, ctx, full);
      if (!path) continue;
      if (auto valid = check_http_path(*path); !valid) {
        error(value, ctx, full + ": " + valid.error().message);
      }
      route.path = *path;
    } else if (k == "https_redirect") {
      if (auto b = read_bool(value, ctx, full)) route.https_redirect = *b;
    } else if (k == "tls") {
      route.tls = read_route_tls(value, ctx);
    } else {
      unknown_key(key, ctx, "route.", kRouteKeys);
    }
  }
  if (!has_host) error(node, ctx, "route.host is required");
  if (route.https_redirect && !route.tls) {
    error(node, ctx, "route.https_redirect needs route.tls (a certificate to redirect to)");
  }
  return route;
}

std::optional<model::RouteTls> Parser::read_route_tls(const toml::node& node,
                                                      const std::string& ctx) {
  const toml::table* table = read_table(node, ctx, "route.tls");
  if (!table) return std::nullopt;
  model::RouteTls tls;
  bool has_cert = false;
  bool has_key = false;
  for (auto&& [key, value] : *table) {
    std::string_view k = key.str();
    std::string full = "route.tls." + std::string(k);
    if (k == "cert" || k == "key") {
      auto text = read_string(value, ctx, full);
      if (!text) continue;
      check_secrets(value, ctx, full, *text);
      (k == "cert" ? tls.cert : tls.key) = *text;
      (k == "cert" ? has_cert : has_key) = true;
    } else {
      unknown_key(key, ctx, "route.tls.", kTlsKeys);
    }
  }
  if (!has_cert || !has_key) {
    error(node, ctx, "route.tls needs both cert and key (PEM text or \"${secret:NAME}\")");
    return std::nullopt;
  }
  return tls;
}

void Parser::read_update(const toml::node& node, const std::string& ctx, model::ServiceSpec& spec) {
  const toml::table* table = read_table(node, ctx, "update");
  if (!table) return;
  for (auto&& [key, value] : *table) {
    if (key.str() == "parallel") {
      if (auto n = read_integer(value, ctx, "update.parallel", 1, 1000)) {
        spec.update_parallel = static_cast<int>(*n);
      }
    } else if (key.str() == "order") {
      auto order = read_string(value, ctx, "update.order");
      if (!order) continue;
      if (*order == "start-first") {
        spec.update_order = model::UpdateOrder::kStartFirst;
      } else if (*order == "stop-first") {
        spec.update_order = model::UpdateOrder::kStopFirst;
      } else {
        error(value, ctx, "update.order must be \"start-first\" or \"stop-first\"");
      }
    } else {
      unknown_key(key, ctx, "update.", kUpdateKeys);
    }
  }
}

std::vector<model::VolumeMount> Parser::read_mounts(const toml::node& node, const std::string& ctx,
                                                    ServiceFacts& facts) {
  std::vector<model::VolumeMount> mounts;
  const auto* array = node.as_array();
  if (!array) {
    type_error(node, ctx, "volumes", "an array of \"NAME:/absolute/path\" strings");
    return mounts;
  }
  for (const toml::node& element : *array) {
    auto text = read_string(element, ctx, "volumes element");
    if (!text) continue;
    auto mount = parse_volume_mount(*text);
    if (!mount) {
      error(element, ctx, mount.error().message);
      continue;
    }
    facts.mounts.emplace_back(mount->volume, pos_of(element.source()));
    mounts.push_back(std::move(*mount));
  }
  return mounts;
}

}  // namespace mill::config::internal
