#pragma once

// Value checks for config fields that need no TOML: each returns an error message
// (without position) or success. Internal to the config module.

#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "model/config.h"

namespace mill::config {

// Service and task names become "<name>.mill" host names: [a-z][a-z0-9-]{0,62},
// not ending in '-'. `kind` is "service" or "task".
Result<void> check_workload_name(std::string_view name, std::string_view kind);

// A model::is_valid_name; `kind` is "volume", "secret", ...
Result<void> check_name(std::string_view name, std::string_view kind);

// Non-empty, no whitespace or control characters.
Result<void> check_image(std::string_view image);

// [A-Za-z_][A-Za-z0-9_]*
Result<void> check_env_name(std::string_view name);

// Starts with "/", no whitespace or control characters.
Result<void> check_http_path(std::string_view path);

// A lowercase host name ("app.example.com") or "*." followed by one.
Result<void> check_route_host(std::string_view host);

// A registry host as in image references: "registry.example.com" or "localhost:5000".
Result<void> check_registry_host(std::string_view host);

// "NAME:/abs/path" or "NAME:/abs/path:ro" (":rw" is accepted and is the default).
Result<model::VolumeMount> parse_volume_mount(std::string_view text);

// The allowed key closest to `key` by edit distance (at most 2), or "".
std::string closest_key(std::string_view key, std::span<const std::string_view> allowed);

}  // namespace mill::config
