// mill deploy FILE, mill deploy --status ID, mill deploys (spec: Deploy).

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/deploy_stream.h"
#include "cli/get_command.h"
#include "cli/listings.h"
#include "common/files.h"
#include "model/json.h"
#include "net/http.h"

namespace mill::cli {

namespace {

struct DeployOptions {
  std::string file;
  std::string status_id;
  bool plain = false;
  bool as_json = false;
};

int deploy_file(const DeployOptions& opts) {
  auto text = read_file(opts.file);
  if (!text) return fail("cannot read " + opts.file + ": " + text.error().message);
  std::string name = opts.file.substr(opts.file.rfind('/') + 1);
  net::ClientRequest req;
  req.method = "POST";
  req.target = "/v1/deploy?file=" + net::percent_encode(name);
  req.body = std::move(*text);
  req.content_type = "text/plain";
  return run_deploy_stream(load_client_config(), std::move(req), "deploy " + name,
                           choose_style(opts.plain));
}

int show_deploy(const DeployOptions& opts) {
  auto v = call_api_json(load_client_config(), "GET", "/v1/deploys/" + opts.status_id);
  if (!v) return fail(v.error().message);
  if (opts.as_json) {
    std::cout << model::serialize(*v) << "\n";
  } else {
    print_deploy_record(*v, SystemClock().now(), std::cout);
  }
  return 0;
}

}  // namespace

void add_deploy_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<DeployOptions>();
  auto* cmd = app.add_subcommand(
      "deploy", "Deploy a config file and show its progress (or --status ID of a past one)");
  auto* file = cmd->add_option("file", opts->file, "Config file (TOML)");
  auto* status = cmd->add_option("--status", opts->status_id, "Show deploy ID instead");
  file->excludes(status);
  cmd->add_flag("--plain", opts->plain, "One line per event, even on a terminal");
  cmd->add_flag("--json", opts->as_json, "With --status: print the API's JSON");
  cmd->callback([opts, &exit_code] {
    if (!opts->status_id.empty()) {
      exit_code = show_deploy(*opts);
    } else if (!opts->file.empty()) {
      exit_code = deploy_file(*opts);
    } else {
      exit_code = fail("give a config FILE to deploy, or --status ID");
    }
  });

  add_get_command(
      app, exit_code, "deploys", "List recent deploys and how they ended",
      [] { return std::string("/v1/deploys"); },
      [](const boost::json::value& v) { print_deploys(v, SystemClock().now(), std::cout); });
}

}  // namespace mill::cli
