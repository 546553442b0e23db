#pragma once

// Whole-file helpers for the few small files Mill keeps beside its store (tokens,
// keys, ids, client config). The one place outside logging where common/ does I/O.

#include <string>
#include <string_view>

#include "common/result.h"

namespace mill {

// kNotFound when the file does not exist.
Result<std::string> read_file(const std::string& path);
// Writes via a temp file, fsync and rename, with exactly `mode` (umask ignored).
Result<void> write_file_atomic(const std::string& path, std::string_view content, int mode);
std::string trim(std::string_view s);

}  // namespace mill
