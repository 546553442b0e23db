// mill validate FILE: the checks POST /v1/deploy runs, secrets included. The file is
// checked here; whether each "${secret:NAME}" exists is asked of the server the client
// config points at (GET /v1/secrets: names, never values). Without one (--offline, no
// client config, unreachable, refused), the references are listed as not checked and
// the exit code is that of the rest of the file: a file that is otherwise valid exits 0.

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <optional>
#include <set>

#include "cli/client.h"
#include "cli/commands.h"
#include "config/config_file.h"

namespace mill::cli {
namespace {

constexpr std::chrono::milliseconds kSecretsTimeout{5000};

// The names of the server's secrets, or nullopt with `why` it could not tell.
std::optional<std::set<std::string>> server_secret_names(std::string* why, std::string* where) {
  ClientConfig client = load_client_config();
  if (client.token.empty()) {
    *why = "no server to ask (no client config at " + client_config_path() +
           " and no MILL_TOKEN; `mill init` or `mill login` writes one)";
    return std::nullopt;
  }
  *where = net::normalize_address(client.address);
  auto listed = call_api_json(client, "GET", "/v1/secrets", {}, kSecretsTimeout);
  if (!listed) {
    std::string message = listed.error().message;
    *why = "could not ask the server at " + *where + ": " + message.substr(0, message.find('\n'));
    return std::nullopt;
  }
  std::set<std::string> names;
  if (listed->is_array()) {
    for (const auto& s : listed->as_array()) {
      const auto* name = s.is_object() ? s.as_object().if_contains("name") : nullptr;
      if (name && name->is_string()) names.emplace(name->as_string());
    }
  }
  return names;
}

std::string plural(size_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace

void add_validate_command(CLI::App& app, int& exit_code) {
  auto file = std::make_shared<std::string>();
  auto offline = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(
      "validate", "Check a config file (secrets against the server); print file:line:col errors");
  cmd->add_option("file", *file, "Config file (TOML)")->required();
  cmd->add_flag("--offline", *offline,
                "Do not ask the server which secrets exist (the references are listed as not "
                "checked)");
  cmd->callback([file, offline, &exit_code] {
    auto outcome = config::parse_config_file(*file);
    std::string unchecked;  // why the secret references were not checked
    std::string where;      // the server they were checked against
    if (!outcome.secrets.empty()) {
      if (*offline) {
        unchecked = "--offline";
      } else if (auto names = server_secret_names(&unchecked, &where)) {
        config::require_secrets(outcome, *names);
      }
    }
    if (!unchecked.empty()) {
      for (const auto& ref : outcome.secrets) {
        std::cerr << "note: " << ref.file << ":" << ref.line << ":" << ref.column << ": "
                  << ref.context << ": secret \"" << ref.name << "\" not checked\n";
      }
      std::cerr << "note: " << plural(outcome.secrets.size(), "secret reference")
                << " not checked: " << unchecked << "\n";
    }
    if (!outcome.ok()) {
      for (const auto& e : outcome.errors) std::cerr << e.to_string() << "\n";
      std::cerr << plural(outcome.errors.size(), "error") << " in " << *file << "\n";
      exit_code = 1;
      return;
    }
    for (const auto& w : outcome.warnings) std::cerr << "warning: " << w.to_string() << "\n";
    const auto& c = *outcome.config;
    std::cout << *file << ": ok (" << c.services.size() << " services, " << c.tasks.size()
              << " task templates, " << c.volumes.size() << " volumes, " << c.registries.size()
              << " registries";
    if (!outcome.secrets.empty()) {
      std::cout << "; " << plural(outcome.secrets.size(), "secret reference")
                << (unchecked.empty() ? " checked against " + where : " not checked");
    }
    std::cout << ")\n";
  });
}

}  // namespace mill::cli
