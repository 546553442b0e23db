#include "server/spawn_templates.h"

#include "model/limits.h"

namespace mill::server {

namespace {

bool valid_env_key(std::string_view k) {
  if (k.empty() || k.size() > 256) return false;
  for (size_t i = 0; i < k.size(); ++i) {
    char c = k[i];
    bool ok = c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

Result<void> check_spec(const model::AllocSpec& s) {
  auto bad = [](std::string m) { return make_error(ErrorCode::kInvalidArgument, std::move(m)); };
  if (s.image.empty()) return bad("'image' is required");
  if (s.image.size() > 512 || s.image.find_first_of(" \t\r\n\"\\") != std::string::npos) {
    return bad("'image' is not an image reference");
  }
  if (!(s.cpu > 0) || s.cpu > 1024) return bad("'cpu' must be more than 0 cores");
  if (s.memory < model::kMinMemory) return bad("'memory' must be at least 4M");
  if (s.timeout && s.timeout->count() <= 0) return bad("'timeout' must be positive");
  if (s.port && (*s.port < 1 || *s.port > 65535)) return bad("'port' must be 1-65535");
  // A template's env with the spawn's added may pass the limits that each passed alone.
  MILL_TRY(model::check_env(s.env));
  MILL_TRY(model::check_command(s.command));
  for (const auto& [k, v] : s.env) {
    if (!valid_env_key(k)) return bad("env name '" + k + "' is not a valid variable name");
    if (v.find('\0') != std::string::npos) return bad("env value of '" + k + "' has a NUL");
  }
  for (const auto& c : s.command) {
    if (c.find('\0') != std::string::npos) return bad("'command' has a NUL");
  }
  return {};
}

}  // namespace

void SpawnTemplates::set_config(model::Config config) {
  std::lock_guard lock(mutex_);
  config_ = std::move(config);
}

model::Config SpawnTemplates::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

Result<model::AllocSpec> SpawnTemplates::resolve(const SpawnRequest& request,
                                                 std::string& group) const {
  if (request.template_name.empty()) {
    group.clear();
    MILL_TRY(check_spec(request.spec));
    return request.spec;
  }
  model::AllocSpec spec;
  std::string name;
  {
    std::lock_guard lock(mutex_);
    auto it = config_.tasks.find(request.template_name);
    if (it == config_.tasks.end()) {
      return make_error(ErrorCode::kNotFound,
                        "no task template '" + request.template_name + "' in the config");
    }
    const auto& t = it->second;
    spec = model::AllocSpec{.image = t.image,
                            .cpu = t.cpu,
                            .memory = t.memory,
                            .timeout = t.timeout,
                            .port = t.port,
                            .command = t.command,
                            .env = t.env,
                            .init = t.init,
                            // Tasks have no health check, volumes or route.
                            .health = std::nullopt,
                            .volumes = {},
                            .route = std::nullopt,
                            .disk = t.disk};
    name = t.name;
  }
  for (const auto& [k, v] : request.spec.env) spec.env[k] = v;
  MILL_TRY(check_spec(spec));
  group = std::move(name);
  return spec;
}

}  // namespace mill::server
