#pragma once

#include <string>

#include "config/config.h"

namespace mill::config {

// Reads `path` and parses it with parse_config, labelling errors with `path`.
// An unreadable file gives one error with line 0.
ParseOutcome parse_config_file(const std::string& path);

}  // namespace mill::config
