#include "config/config.h"

// toml++ is built with exceptions in Debian's shared library (symbols in toml::v3::ex),
// so we use its exception API and stop toml::parse_error here, at the adapter.
#include "config/parser.h"

namespace mill::config {

std::string ConfigError::to_string() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

ParseOutcome parse_config(std::string_view text, std::string_view file_name) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(file_name));
  } catch (const toml::parse_error& e) {
    internal::Pos pos = internal::pos_of(e.source());
    return {std::nullopt,
            {{std::string(file_name), pos.line, pos.column,
              "TOML syntax error: " + std::string(e.description())}}};
  } catch (const std::exception& e) {
    return {std::nullopt,
            {{std::string(file_name), 0, 0, std::string("cannot parse: ") + e.what()}}};
  }
  return internal::Parser(file_name).run(root);
}

}  // namespace mill::config
