#pragma once

// One function per subcommand (like Nomad's command/): each adds itself to the app and
// sets `exit_code` when it runs.

#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace mill::cli {

// Parses argv and runs the chosen subcommand; returns the process exit code.
int run(int argc, char** argv);

void add_init_command(CLI::App& app, int& exit_code);
void add_join_token_command(CLI::App& app, int& exit_code);
void add_login_commands(CLI::App& app, int& exit_code);  // login, login-token
void add_server_command(CLI::App& app, int& exit_code);
void add_agent_command(CLI::App& app, int& exit_code);
void add_drain_command(CLI::App& app, int& exit_code);    // drain, node rm
void add_status_commands(CLI::App& app, int& exit_code);  // status, nodes
void add_secret_command(CLI::App& app, int& exit_code);
void add_validate_command(CLI::App& app, int& exit_code);
// spawn, tasks, task, kill; `command`: what followed `spawn … --command` (cli/argv.h)
void add_task_commands(CLI::App& app, int& exit_code,
                       const std::optional<std::vector<std::string>>& command);
void add_logs_command(CLI::App& app, int& exit_code);
void add_cleanup_command(CLI::App& app, int& exit_code);
void add_deploy_command(CLI::App& app, int& exit_code);  // deploy, deploys
void add_restart_command(CLI::App& app, int& exit_code);
void add_services_command(CLI::App& app, int& exit_code);  // services (ps)
void add_volume_commands(CLI::App& app, int& exit_code);   // volumes, volume rm

}  // namespace mill::cli
