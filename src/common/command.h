#pragma once

// Runs a helper program (nft, iptables, runc delete, mkfs.ext4) and collects what it
// printed. For setup and cleanup steps, never on a hot path.

#include <string>
#include <vector>

#include "common/result.h"

namespace mill {

struct CommandResult {
  int exit_code = -1;  // -1 when it died of a signal
  std::string output;  // stdout and stderr together, at most the first 64 KiB
};

// Runs argv[0] (looked up in PATH) with `input` on its stdin and waits for it.
// kNotFound when the program does not exist; a non-zero exit is not an error here.
Result<CommandResult> run_command(const std::vector<std::string>& argv,
                                  const std::string& input = "");

}  // namespace mill
