#include <CLI/CLI.hpp>

#include "cli/argv.h"
#include "cli/commands.h"
#include "common/version.h"

namespace mill::cli {

int run(int argc, char** argv) {
  // A task's command is taken whole before CLI11 sees the rest (cli/argv.h).
  auto split = split_spawn_command(std::vector<std::string>(argv, argv + argc));
  std::vector<char*> args;
  for (auto& a : split.args) args.push_back(a.data());

  CLI::App app{"Mill: run services and tasks on a few Linux machines as one cluster"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "mill " + std::string(version()));
  int exit_code = 0;
  add_init_command(app, exit_code);
  add_join_token_command(app, exit_code);
  add_login_commands(app, exit_code);
  add_server_command(app, exit_code);
  add_agent_command(app, exit_code);
  add_drain_command(app, exit_code);
  add_status_commands(app, exit_code);
  add_secret_command(app, exit_code);
  add_validate_command(app, exit_code);
  add_task_commands(app, exit_code, split.command);
  add_logs_command(app, exit_code);
  add_cleanup_command(app, exit_code);
  add_deploy_command(app, exit_code);
  add_restart_command(app, exit_code);
  add_services_command(app, exit_code);
  add_volume_commands(app, exit_code);
  // CLI11 reports bad usage by exception; this is its adapter, nothing else escapes.
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}

}  // namespace mill::cli
