#pragma once

// Internal to the config module: the TOML walker behind parse_config. Included only by
// src/config/*.cc, so toml++ stays out of the module's public headers.

#include <toml++/toml.h>

#include <array>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace mill::config::internal {

using std::chrono::milliseconds;

struct Pos {
  int line = 0;
  int column = 0;
  auto operator<=>(const Pos&) const = default;
};

inline Pos pos_of(const toml::source_region& region) {
  return {static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

inline constexpr auto kSections =
    std::to_array<std::string_view>({"service", "volume", "task", "registry"});
inline constexpr auto kServiceKeys =
    std::to_array<std::string_view>({"image", "replicas", "port", "cpu", "memory", "command", "env",
                                     "volumes", "health", "route", "update", "init", "disk"});
inline constexpr auto kTaskKeys = std::to_array<std::string_view>(
    {"image", "cpu", "memory", "timeout", "port", "command", "env", "init", "disk"});
inline constexpr auto kVolumeKeys = std::to_array<std::string_view>({"size"});
inline constexpr auto kRegistryKeys =
    std::to_array<std::string_view>({"username", "password", "insecure"});
inline constexpr auto kHealthKeys = std::to_array<std::string_view>(
    {"path", "command", "interval", "timeout", "deadline", "passes"});
inline constexpr auto kRouteKeys =
    std::to_array<std::string_view>({"host", "path", "tls", "https_redirect"});
inline constexpr auto kTlsKeys = std::to_array<std::string_view>({"cert", "key"});
inline constexpr auto kUpdateKeys = std::to_array<std::string_view>({"parallel", "order"});

std::string_view type_name(toml::node_type type);

// "service.web", or "service.\"Web App\"" when the name is not a bare TOML key.
std::string section_label(std::string_view section, std::string_view name);

// Facts about a service kept for the checks that span sections.
struct ServiceFacts {
  std::string label;
  bool has_port = false;  // "port" present, valid or not, so a bad port is reported once
  std::optional<Pos> replicas;
  std::optional<Pos> health;
  std::optional<Pos> route;
  std::optional<Pos> update;
  std::vector<std::pair<std::string, Pos>> mounts;  // volume name, entry position
};

// Walks a parsed TOML document once, collecting a model::Config and every error.
class Parser {
 public:
  explicit Parser(std::string_view file) : file_(file) {}

  ParseOutcome run(const toml::table& root);

 private:
  void error(Pos pos, std::string message) {
    errors_.push_back({file_, pos.line, pos.column, std::move(message)});
  }
  void error(const toml::node& node, const std::string& ctx, std::string_view message) {
    error(pos_of(node.source()), ctx + ": " + std::string(message));
  }
  void type_error(const toml::node& node, const std::string& ctx, std::string_view key,
                  std::string_view expected) {
    error(node, ctx,
          std::string(key) + " must be " + std::string(expected) + ", got " +
              std::string(type_name(node.type())));
  }
  void unknown_key(const toml::key& key, const std::string& ctx, std::string_view prefix,
                   std::span<const std::string_view> allowed);

  std::optional<std::string> read_string(const toml::node& node, const std::string& ctx,
                                         std::string_view key);
  std::optional<std::int64_t> read_integer(const toml::node& node, const std::string& ctx,
                                           std::string_view key, std::int64_t min,
                                           std::int64_t max);
  std::optional<bool> read_bool(const toml::node& node, const std::string& ctx,
                                std::string_view key);
  std::optional<double> read_cpu(const toml::node& node, const std::string& ctx);
  std::optional<std::int64_t> read_size(const toml::node& node, const std::string& ctx,
                                        std::string_view key, std::int64_t min);
  std::optional<milliseconds> read_duration(const toml::node& node, const std::string& ctx,
                                            std::string_view key);
  // An array of strings, not empty, whose first element (the program) is not empty.
  // `if_empty` says what to do instead of an empty array.
  std::optional<std::vector<std::string>> read_command(
      const toml::node& node, const std::string& ctx, std::string_view key = "command",
      std::string_view if_empty = "leave it out to use the image's");
  std::optional<std::map<std::string, std::string>> read_env(const toml::node& node,
                                                             const std::string& ctx);
  void check_secrets(const toml::node& node, const std::string& ctx, std::string_view key,
                     std::string_view text);
  const toml::table* read_table(const toml::node& node, const std::string& ctx,
                                std::string_view key);

  template <class Spec>
  bool read_common_field(std::string_view key, const toml::node& node, const std::string& ctx,
                         Spec& spec);
  std::optional<model::HealthCheck> read_health(const toml::node& node, const std::string& ctx);
  std::optional<model::Route> read_route(const toml::node& node, const std::string& ctx);
  std::optional<model::RouteTls> read_route_tls(const toml::node& node, const std::string& ctx);
  // The `update` table into the spec's update_parallel and update_order.
  void read_update(const toml::node& node, const std::string& ctx, model::ServiceSpec& spec);
  std::vector<model::VolumeMount> read_mounts(const toml::node& node, const std::string& ctx,
                                              ServiceFacts& facts);

  void parse_section(std::string_view section, const toml::table& items);
  void parse_service(const std::string& name, const toml::table& table);
  void parse_task(const std::string& name, const toml::table& table);
  void parse_volume(const std::string& name, const toml::table& table);
  void parse_registry(const std::string& host, const toml::table& table);

  void check_volume_use();
  void check_services();
  void check_routes();

  std::string file_;
  std::vector<ConfigError> errors_;
  std::vector<ConfigError> warnings_;
  std::vector<SecretReference> secrets_;
  model::Config config_;
  std::map<std::string, ServiceFacts> service_facts_;
  std::map<std::string, Pos> task_positions_;
  std::set<std::string> declared_volumes_;  // every [volume.X], valid or not
};

}  // namespace mill::config::internal
