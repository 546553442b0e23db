// mill cleanup: undo what running containers did to this machine.

#include <CLI/CLI.hpp>
#include <iostream>

#include "agent/node_services.h"
#include "cli/client.h"
#include "cli/commands.h"

namespace mill::cli {

void add_cleanup_command(CLI::App& app, int& exit_code) {
  auto data_dir = std::make_shared<std::string>("/var/lib/mill");
  auto* cmd = app.add_subcommand(
      "cleanup",
      "Stop every container of a data dir and remove its bridge, firewall rules and mounts "
      "(run with the server stopped)");
  cmd->add_option("--data-dir", *data_dir, "Data directory")->capture_default_str();
  cmd->callback([data_dir, &exit_code] {
    if (auto done = agent::NodeServices::cleanup(*data_dir); !done) {
      exit_code = fail(done.error().message);
      return;
    }
    std::cout << "cleaned up " << *data_dir << "\n";
  });
}

}  // namespace mill::cli
