// mill volumes, mill volume rm NAME (spec: Volumes).

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/get_command.h"
#include "cli/listings.h"
#include "model/json.h"

namespace mill::cli {

namespace {

int remove_volume(const std::string& name) {
  net::ClientRequest req;
  req.method = "DELETE";
  req.target = "/v1/volumes/" + name;
  req.timeout = std::chrono::minutes(2);
  auto res = call_api_raw(load_client_config(), std::move(req));
  if (!res) return fail(res.error().message);
  if (res->status == 409) return fail(volume_in_use_text(name, res->body));
  if (res->status < 200 || res->status >= 300) return fail(error_text(*res));
  std::cout << "volume " << name << " removed\n";
  return 0;
}

}  // namespace

void add_volume_commands(CLI::App& app, int& exit_code) {
  add_get_command(
      app, exit_code, "volumes", "List persistent volumes",
      [] { return std::string("/v1/volumes"); },
      [](const boost::json::value& v) { print_volumes(v, std::cout); });

  auto* volume = app.add_subcommand("volume", "Manage persistent volumes");
  volume->require_subcommand(1);
  auto name = std::make_shared<std::string>();
  auto* rm = volume->add_subcommand("rm", "Destroy a volume and its data (not while in use)");
  rm->add_option("name", *name, "Volume name")->required();
  rm->callback([name, &exit_code] { exit_code = remove_volume(*name); });
}

}  // namespace mill::cli
