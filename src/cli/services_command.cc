// mill services (alias mill ps): services with their allocations (spec: Services).

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/listings.h"
#include "model/json.h"

namespace mill::cli {

void add_services_command(CLI::App& app, int& exit_code) {
  auto as_json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("services", "List services, their replicas and allocations");
  cmd->alias("ps");
  cmd->add_flag("--json", *as_json, "Print the API's JSON");
  cmd->callback([as_json, &exit_code] {
    auto v = call_api_json(load_client_config(), "GET", "/v1/services");
    if (!v) {
      exit_code = fail(v.error().message);
      return;
    }
    if (*as_json) {
      std::cout << model::serialize(*v) << "\n";
      return;
    }
    print_services(*v, SystemClock().now(), std::cout);
  });
}

}  // namespace mill::cli
