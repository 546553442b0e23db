// mill restart SERVICE (spec: POST /v1/restart/:service): new containers from the
// current image, shown like a deploy.

#include <CLI/CLI.hpp>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/deploy_stream.h"
#include "net/http.h"

namespace mill::cli {

void add_restart_command(CLI::App& app, int& exit_code) {
  auto service = std::make_shared<std::string>();
  auto plain = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("restart", "Restart a service's replicas and show progress");
  cmd->add_option("service", *service, "Service name")->required();
  cmd->add_flag("--plain", *plain, "One line per event, even on a terminal");
  cmd->callback([service, plain, &exit_code] {
    net::ClientRequest req;
    req.method = "POST";
    req.target = "/v1/restart/" + net::percent_encode(*service);
    exit_code = run_deploy_stream(load_client_config(), std::move(req), "restart " + *service,
                                  choose_style(*plain));
  });
}

}  // namespace mill::cli
