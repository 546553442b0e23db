#include "cli/get_command.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <memory>

#include "cli/client.h"
#include "model/json.h"

namespace mill::cli {

CLI::App* add_get_command(CLI::App& app, int& exit_code, const std::string& name,
                          const std::string& description, std::function<std::string()> target,
                          std::function<void(const boost::json::value&)> print) {
  auto as_json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(name, description);
  cmd->add_flag("--json", *as_json, "Print the API's JSON");
  cmd->callback([as_json, target = std::move(target), print = std::move(print), &exit_code] {
    auto v = call_api_json(load_client_config(), "GET", target());
    if (!v) {
      exit_code = fail(v.error().message);
      return;
    }
    if (*as_json) {
      std::cout << model::serialize(*v) << "\n";
      return;
    }
    print(*v);
  });
  return cmd;
}

}  // namespace mill::cli
