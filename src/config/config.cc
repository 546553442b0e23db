#include "config/config.h"

// toml++ is built with exceptions in Debian's shared library (symbols in toml::v3::ex),
// so we use its exception API and stop toml::parse_error here, at the adapter.
#include <algorithm>
#include <tuple>

#include "config/checks.h"
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

void require_secrets(ParseOutcome& outcome, const std::set<std::string>& known) {
  std::vector<std::string_view> names(known.begin(), known.end());
  std::vector<ConfigError> missing;
  for (const SecretReference& ref : outcome.secrets) {
    if (known.contains(ref.name)) continue;
    std::string message =
        ref.context + ": secret \"" + ref.name + "\" is not set (mill secret set " + ref.name + ")";
    std::string suggestion = closest_key(ref.name, names);
    if (!suggestion.empty()) message += "; did you mean \"" + suggestion + "\"?";
    missing.push_back({ref.file, ref.line, ref.column, std::move(message)});
  }
  if (missing.empty()) return;
  outcome.config.reset();
  outcome.warnings.clear();  // as for any config with errors
  outcome.errors.insert(outcome.errors.end(), missing.begin(), missing.end());
  std::stable_sort(outcome.errors.begin(), outcome.errors.end(),
                   [](const ConfigError& a, const ConfigError& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
}

}  // namespace mill::config
