// mill init: make the data dir, tokens, secrets key and cluster CA; write the client
// config. mill join-token: what another machine joins with.

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "server/data_dir.h"

namespace mill::cli {

void add_init_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string data_dir = "/var/lib/mill";
    std::string address = "https://127.0.0.1:4400";
    bool force = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "init", "Create the data dir, API token, join token, secrets key and cluster CA");
  cmd->add_option("--data-dir", opts->data_dir, "Data directory")->capture_default_str();
  cmd->add_option("--address", opts->address, "API address the client config points at")
      ->capture_default_str();
  cmd->add_flag("--force", opts->force,
                "Re-initialise: new API and join tokens (secrets key and state are kept)");
  cmd->callback([opts, &exit_code] {
    server::DataDir dir{opts->data_dir};
    auto creds = server::init_data_dir(
        dir, opts->force ? server::InitMode::kForce : server::InitMode::kFresh);
    if (!creds) {
      exit_code = fail(creds.error().message);
      return;
    }
    ClientConfig client{opts->address, creds->api_token, {}, dir.ca_cert_path()};
    std::string path = client_config_path();
    if (auto w = write_client_config(path, client); !w) {
      exit_code = fail("cannot write the client config: " + w.error().message);
      return;
    }
    std::cout << "Initialised " << opts->data_dir << "\n"
              << "API token (shown once; also in " << dir.api_token_path() << "):\n  "
              << creds->api_token << "\n"
              << "Cluster CA: " << dir.ca_cert_path() << "\n"
              << "Join token for more nodes: mill join-token --data-dir " << opts->data_dir << "\n"
              << "Client config (address + token) written to " << path << "\n"
              << "Next: mill server --data-dir " << opts->data_dir << "\n";
  });
}

void add_join_token_command(CLI::App& app, int& exit_code) {
  auto data_dir = std::make_shared<std::string>("/var/lib/mill");
  auto* cmd = app.add_subcommand(
      "join-token", "Print the token another machine joins with (mill agent --join ... --token)");
  cmd->add_option("--data-dir", *data_dir, "Data directory")->capture_default_str();
  cmd->callback([data_dir, &exit_code] {
    auto token = server::join_token(server::DataDir{*data_dir});
    if (!token) {
      exit_code = fail(token.error().message);
      return;
    }
    std::cout << *token << "\n";
  });
}

}  // namespace mill::cli
