#pragma once

// mill.toml -> model::Config, validated in full. Pure: no I/O (see config_file.h for
// reading from disk). The format is documented in docs/config.md.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace mill::config {

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the error has no position (e.g. unreadable file)
  int column = 0;  // 1-based
  std::string message;

  // "file:line:col: message", or "file: message" when line is 0.
  std::string to_string() const;

  bool operator==(const ConfigError&) const = default;
};

// Either a config (and no errors) or every error found, sorted by position. Warnings
// (a valid config that is probably a mistake) come with a config.
struct ParseOutcome {
  std::optional<model::Config> config;
  std::vector<ConfigError> errors;
  std::vector<ConfigError> warnings = {};

  bool ok() const { return config.has_value(); }
};

// Parses and validates `text`; `file_name` only labels errors. Reports every
// validation error it finds, except that a TOML syntax error stops parsing and is the
// only error reported. Never throws.
ParseOutcome parse_config(std::string_view text, std::string_view file_name);

}  // namespace mill::config
