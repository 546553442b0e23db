#pragma once

// Whole-file helpers for the few small files Mill keeps beside its store (tokens,
// keys, ids, client config). The one place outside logging where common/ does I/O.

#include <string>
#include <string_view>

#include "common/result.h"

namespace mill {

// kNotFound when the file does not exist.
Result<std::string> read_file(const std::string& path);
// Whether a write must survive a power loss (fsync) or only a crash of the process:
// files that describe containers, which a reboot ends anyway, need no fsync, and the
// spawn path writes several of them.
enum class Durability { kPowerLoss, kProcessCrash };

// Writes via a temp file (fsync'd for kPowerLoss) and rename, so readers see the old
// or the new content, never a mix; exactly `mode` (umask ignored).
Result<void> write_file_atomic(const std::string& path, std::string_view content, int mode,
                               Durability durability = Durability::kPowerLoss);
std::string trim(std::string_view s);

}  // namespace mill
