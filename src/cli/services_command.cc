// mill services (alias mill ps): services with their allocations (spec: Services).

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/get_command.h"
#include "cli/listings.h"
#include "model/json.h"

namespace mill::cli {

void add_services_command(CLI::App& app, int& exit_code) {
  auto* cmd = add_get_command(
      app, exit_code, "services", "List services, their replicas and allocations",
      [] { return std::string("/v1/services"); },
      [](const boost::json::value& v) { print_services(v, SystemClock().now(), std::cout); });
  cmd->alias("ps");
}

}  // namespace mill::cli
