#include "config/checks.h"

#include <algorithm>
#include <vector>

#include "model/names.h"

namespace mill::config {
namespace {

Unexpected invalid(std::string message) {
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space_or_control(char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; }

bool has_space_or_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(), is_space_or_control);
}

// One DNS label: [a-z0-9-]{1,63}, not starting or ending with '-'.
bool is_host_label(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  return std::all_of(label.begin(), label.end(),
                     [](char c) { return is_lower(c) || is_digit(c) || c == '-'; });
}

bool is_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = host.find('.', start);
    if (!is_host_label(host.substr(start, dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

Result<void> check_workload_name(std::string_view name, std::string_view kind) {
  bool ok = model::is_valid_name(name) && name.size() <= 63 && is_lower(name.front()) &&
            name.back() != '-' && std::all_of(name.begin(), name.end(), [](char c) {
              return is_lower(c) || is_digit(c) || c == '-';
            });
  if (ok) return {};
  return invalid("invalid " + std::string(kind) + " name \"" + std::string(name) +
                 "\": " + std::string(kind) +
                 " names become \"<name>.mill\" host names, so use lowercase letters, digits "
                 "and '-', start with a letter, do not end with '-', at most 63 characters");
}

Result<void> check_name(std::string_view name, std::string_view kind) {
  if (model::is_valid_name(name)) return {};
  return invalid("invalid " + std::string(kind) + " name \"" + std::string(name) +
                 "\": use 1-128 of A-Z a-z 0-9 _ . - (and not \".\" or \"..\")");
}

Result<void> check_image(std::string_view image) {
  if (image.empty()) return invalid("image must not be empty");
  if (has_space_or_control(image)) {
    return invalid("image \"" + std::string(image) + "\" must not contain whitespace");
  }
  return {};
}

Result<void> check_env_name(std::string_view name) {
  bool ok =
      !name.empty() && !is_digit(name.front()) && std::all_of(name.begin(), name.end(), [](char c) {
        return is_lower(c) || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_';
      });
  if (ok) return {};
  return invalid("invalid environment variable name \"" + std::string(name) +
                 "\": use letters, digits and '_', not starting with a digit");
}

Result<void> check_http_path(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return invalid("path \"" + std::string(path) + "\" must start with \"/\"");
  }
  if (has_space_or_control(path)) {
    return invalid("path \"" + std::string(path) + "\" must not contain whitespace");
  }
  return {};
}

Result<void> check_route_host(std::string_view host) {
  if (host.empty()) return invalid("route host must not be empty");
  std::string_view exact = host.starts_with("*.") ? host.substr(2) : host;
  if (is_host_name(exact)) return {};
  return invalid("invalid route host \"" + std::string(host) +
                 "\": use a lowercase host name like \"app.example.com\" or a wildcard like "
                 "\"*.example.com\" (no port, no scheme)");
}

Result<void> check_registry_host(std::string_view host) {
  if (host.empty()) return invalid("registry host must not be empty");
  if (has_space_or_control(host) || host.find('/') != std::string_view::npos) {
    return invalid("invalid registry host \"" + std::string(host) +
                   "\": use a host name with an optional port, like \"registry.example.com\" "
                   "or \"localhost:5000\" (no scheme, no path)");
  }
  return {};
}

Result<model::VolumeMount> parse_volume_mount(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return invalid("invalid volume mount \"" + std::string(text) + "\": " + std::string(why));
  };
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return bad("expected \"NAME:/absolute/path\"");
  model::VolumeMount mount;
  mount.volume = std::string(text.substr(0, colon));
  std::string_view path = text.substr(colon + 1);
  if (path.ends_with(":ro")) {
    mount.read_only = true;
    path.remove_suffix(3);
  } else if (path.ends_with(":rw")) {
    path.remove_suffix(3);
  }
  if (!model::is_valid_name(mount.volume)) return bad("volume name is not valid");
  if (path.find(':') != std::string_view::npos) {
    return bad("unknown mount option (the only option is \":ro\")");
  }
  if (!path.starts_with('/')) return bad("container path must be absolute");
  if (path == "/") return bad("cannot mount over the container's root");
  if (has_space_or_control(path)) return bad("container path must not contain whitespace");
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t slash = std::min(path.find('/', start), path.size());
    std::string_view part = path.substr(start, slash - start);
    if (part == "." || part == "..") return bad("container path must not contain . or ..");
    start = slash + 1;
  }
  mount.path = std::string(path);
  return mount;
}

std::string closest_key(std::string_view key, std::span<const std::string_view> allowed) {
  std::string best;
  std::size_t best_distance = 3;
  for (std::string_view candidate : allowed) {
    std::size_t distance = edit_distance(key, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = std::string(candidate);
    }
  }
  return best;
}

}  // namespace mill::config
