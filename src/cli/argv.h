#pragma once

// Argument handling that CLI11 cannot express: a task's command after `--command` or
// `--`, taken whole (as `docker run IMAGE CMD…` does) so that its own options (`-h`,
// `-c`, `--port`) are never read as mill's.

#include <optional>
#include <string>
#include <vector>

namespace mill::cli {

struct SplitArgs {
  std::vector<std::string> args;                    // for CLI11, without the command
  std::optional<std::vector<std::string>> command;  // none: no `--command`/`--` given
};

// PURE. args[0] is the program. For `mill spawn …`: everything after the first bare
// `--command` or `--` that follows the `spawn` subcommand is the command (it may be empty only for
// `--`, an error for `--command`: CLI11 then reports the missing value). `--command=ARG` stays an
// ordinary, repeatable option. Other subcommands' arguments are returned as given.
SplitArgs split_spawn_command(std::vector<std::string> args);

}  // namespace mill::cli
