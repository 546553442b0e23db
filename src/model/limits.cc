#include "model/limits.h"

namespace mill::model {
namespace {

Unexpected over(const std::string& what, std::size_t have, std::size_t limit, std::string_view unit,
                std::string_view name) {
  return make_error(ErrorCode::kInvalidArgument, what + " " + std::to_string(have) + " " +
                                                     std::string(unit) + ", over the limit of " +
                                                     std::to_string(limit) + " (" +
                                                     std::string(name) + ")");
}

std::string shown(std::string_view name) {
  constexpr std::size_t kShown = 40;
  if (name.size() <= kShown) return std::string(name);
  return std::string(name.substr(0, kShown)) + "...";
}

}  // namespace

Result<void> check_env_count(std::size_t entries) {
  if (entries > kMaxEnvEntries) {
    return over("env has", entries, kMaxEnvEntries, "entries", "env entries");
  }
  return {};
}

Result<void> check_env_entry(std::string_view name, std::string_view value) {
  if (name.size() > kMaxEnvNameBytes) {
    return over("env name '" + shown(name) + "' has", name.size(), kMaxEnvNameBytes, "bytes",
                "env name bytes");
  }
  if (value.size() > kMaxEnvValueBytes) {
    return over("env value of '" + shown(name) + "' has", value.size(), kMaxEnvValueBytes, "bytes",
                "env value bytes");
  }
  return {};
}

Result<void> check_env(const std::map<std::string, std::string>& env) {
  MILL_TRY(check_env_count(env.size()));
  std::size_t bytes = 0;
  for (const auto& [name, value] : env) {
    MILL_TRY(check_env_entry(name, value));
    bytes += name.size() + value.size() + 2;  // "NAME=VALUE\0"
  }
  if (bytes > kMaxEnvBytes) return over("env has", bytes, kMaxEnvBytes, "bytes", "env bytes");
  return {};
}

Result<void> check_command_count(std::size_t args) {
  if (args > kMaxCommandArgs) {
    return over("command has", args, kMaxCommandArgs, "arguments", "command arguments");
  }
  return {};
}

Result<void> check_command(const std::vector<std::string>& command) {
  MILL_TRY(check_command_count(command.size()));
  std::size_t bytes = 0;
  for (const auto& arg : command) bytes += arg.size() + 1;
  if (bytes > kMaxCommandBytes) {
    return over("command has", bytes, kMaxCommandBytes, "bytes", "command bytes");
  }
  return {};
}

}  // namespace mill::model
