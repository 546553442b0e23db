#pragma once

// How much a container's environment and command may hold, wherever they come from:
// a spawn's JSON body (api), a task template or service in mill.toml (config), and the
// spec a spawn resolves to (server). One check for all of them, so a config cannot
// say what a spawn may not, and the other way round. docs/api.md and docs/config.md
// ("Limits") list the same values.
//
// Why: everything a spec holds is kept by the control plane per allocation (in
// memory, in the store, in the node protocol) until the allocation is forgotten, an
// hour after it ends. Docker and Kubernetes users rarely pass more than a few dozen
// variables; the limits leave room for a hundred times that. Pure.

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace mill::model {

inline constexpr std::size_t kMaxEnvEntries = 1000;
inline constexpr std::size_t kMaxEnvNameBytes = 256;
inline constexpr std::size_t kMaxEnvValueBytes = 32 * 1024;  // 32 KiB
inline constexpr std::size_t kMaxEnvBytes = 256 * 1024;      // every NAME=VALUE, 256 KiB
inline constexpr std::size_t kMaxCommandArgs = 256;
inline constexpr std::size_t kMaxCommandBytes = 128 * 1024;  // every argument, 128 KiB

// At most kMaxEnvEntries variables (for a caller that counts before it copies).
Result<void> check_env_count(std::size_t entries);
// One variable: its name at most kMaxEnvNameBytes, its value at most
// kMaxEnvValueBytes. kInvalidArgument naming the limit.
Result<void> check_env_entry(std::string_view name, std::string_view value);
// The whole environment: at most kMaxEnvEntries variables and kMaxEnvBytes (names and
// values, as "NAME=VALUE\0") in all; and each entry as check_env_entry.
Result<void> check_env(const std::map<std::string, std::string>& env);
// At most kMaxCommandArgs arguments.
Result<void> check_command_count(std::size_t args);
// At most kMaxCommandArgs arguments of kMaxCommandBytes (with their NULs) in all.
Result<void> check_command(const std::vector<std::string>& command);

}  // namespace mill::model
