#pragma once

// mill.toml -> model::Config, validated in full. Pure: no I/O (see config_file.h for
// reading from disk). The format is documented in docs/config.md.

#include <optional>
#include <set>
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

// A well-formed "${secret:NAME}" in the config, at the string value that holds it. Whether
// NAME exists is known only to a server (require_secrets checks it).
struct SecretReference {
  std::string name;
  std::string context;  // what holds it: "service.web: env.DATABASE_URL"
  std::string file;
  int line = 0;
  int column = 0;

  bool operator==(const SecretReference&) const = default;
};

// Either a config (and no errors) or every error found, sorted by position. Warnings
// (a valid config that is probably a mistake) come with a config. `secrets` are the
// well-formed secret references in file order, with or without errors elsewhere (none
// after a TOML syntax error).
struct ParseOutcome {
  std::optional<model::Config> config;
  std::vector<ConfigError> errors;
  std::vector<ConfigError> warnings = {};
  std::vector<SecretReference> secrets = {};

  bool ok() const { return config.has_value(); }
};

// Parses and validates `text`; `file_name` only labels errors. Reports every
// validation error it finds, except that a TOML syntax error stops parsing and is the
// only error reported. Never throws.
ParseOutcome parse_config(std::string_view text, std::string_view file_name);

// Adds an error for every secret reference whose NAME is not in `known` (the names a
// server has: GET /v1/secrets), at the reference's position, with "did you mean" for a
// close name; the errors stay sorted by position and a config with any such error is
// no longer ok(). Used by POST /v1/deploy and `mill validate`, so both report a missing
// secret alongside the other errors.
void require_secrets(ParseOutcome& outcome, const std::set<std::string>& known);

}  // namespace mill::config
