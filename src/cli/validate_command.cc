// mill validate FILE: the exact checks /v1/deploy will run, offline.

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "config/config_file.h"

namespace mill::cli {

void add_validate_command(CLI::App& app, int& exit_code) {
  auto file = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("validate", "Check a config file; print file:line:col errors");
  cmd->add_option("file", *file, "Config file (TOML)")->required();
  cmd->callback([file, &exit_code] {
    auto outcome = config::parse_config_file(*file);
    if (!outcome.ok()) {
      for (const auto& e : outcome.errors) std::cerr << e.to_string() << "\n";
      std::cerr << outcome.errors.size() << (outcome.errors.size() == 1 ? " error" : " errors")
                << " in " << *file << "\n";
      exit_code = 1;
      return;
    }
    for (const auto& w : outcome.warnings) std::cerr << "warning: " << w.to_string() << "\n";
    const auto& c = *outcome.config;
    std::cout << *file << ": ok (" << c.services.size() << " services, " << c.tasks.size()
              << " task templates, " << c.volumes.size() << " volumes, " << c.registries.size()
              << " registries)\n";
  });
}

}  // namespace mill::cli
