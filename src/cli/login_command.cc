// mill login ADDR TOKEN: point this machine's `mill` at a cluster, with the one string
// `mill login-token` prints on the server. The token pins the cluster CA the way a join
// token does: the server's certificate chain is checked against the pin before the API
// token is sent, and the client config then trusts that CA alone.

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "common/files.h"
#include "crypto/cluster_ca.h"
#include "server/data_dir.h"

namespace mill::cli {

namespace {

// "10.0.0.1" -> "https://10.0.0.1:4400"; a given scheme or port is kept.
std::string api_url(std::string address) {
  if (!address.starts_with("http://") && !address.starts_with("https://")) {
    address = "https://" + address;
  }
  while (address.size() > 8 && address.back() == '/') address.pop_back();
  std::string host_port = address.substr(address.find("://") + 3);
  bool has_port = host_port.starts_with('[') ? host_port.find("]:") != std::string::npos
                                             : host_port.find(':') != std::string::npos;
  if (!has_port) address += ":4400";
  return address;
}

// The CA file beside the client config: `cluster-ca.pem` in the same directory.
std::string ca_path_for(const std::string& config_path) {
  size_t slash = config_path.rfind('/');
  return (slash == std::string::npos ? std::string(".") : config_path.substr(0, slash)) +
         "/cluster-ca.pem";
}

Result<std::string> login(const std::string& address, const std::string& token_text) {
  auto token = MILL_TRY(crypto::parse_login_token(token_text));
  ClientConfig config;
  config.address = api_url(address);
  config.token = token.secret;
  if (config.address.starts_with("http://")) {
    if (!is_loopback_address(config.address)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "refusing to send the API token over plain HTTP to " + config.address +
                            ": use https:// (the server's API is HTTPS off loopback)");
    }
  } else {
    // The pin check: nothing is sent before the server has shown the pinned CA.
    auto chain = MILL_TRY(net::fetch_peer_chain_pem(config.address));
    std::string ca_pem = MILL_TRY(crypto::find_pinned_ca(chain, token.ca_fingerprint));
    config.ca = ca_path_for(client_config_path());
    std::string tmp = config.ca + ".new";
    make_parent_dirs(tmp);
    MILL_TRY(write_file_atomic(tmp, ca_pem, 0644));
    // The token must work before anything is kept.
    ClientConfig trial = config;
    trial.ca = tmp;
    auto status = call_api_json(trial, "GET", "/v1/status");
    if (!status) {
      std::remove(tmp.c_str());
      return Unexpected(std::move(status).error());
    }
    if (std::rename(tmp.c_str(), config.ca.c_str()) != 0) {
      return make_error(ErrorCode::kInternal, "cannot keep the CA at " + config.ca);
    }
  }
  if (config.ca.empty()) MILL_TRY(call_api_json(config, "GET", "/v1/status"));
  std::string path = client_config_path();
  MILL_TRY(write_client_config(path, config));
  return "Logged in to " + config.address + " (client config: " + path +
         (config.ca.empty() ? "" : ", cluster CA: " + config.ca) + ")";
}

}  // namespace

void add_login_commands(CLI::App& app, int& exit_code) {
  struct Options {
    std::string address;
    std::string token;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "login",
      "Point this machine's mill at a cluster (the token: mill login-token on the server)");
  cmd->add_option("address", opts->address, "The API of any node: HOST[:PORT], default port 4400")
      ->required();
  cmd->add_option("token", opts->token, "The login token (mill-login-v1.…)")->required();
  cmd->callback([opts, &exit_code] {
    auto done = login(opts->address, opts->token);
    if (!done) {
      exit_code = fail("login failed: " + done.error().message);
      return;
    }
    std::cout << *done << "\n";
  });

  auto data_dir = std::make_shared<std::string>("/var/lib/mill");
  auto* token_cmd = app.add_subcommand(
      "login-token", "Print the token `mill login` takes: the API token, pinned to the cluster CA");
  token_cmd->add_option("--data-dir", *data_dir, "Data directory")->capture_default_str();
  token_cmd->callback([data_dir, &exit_code] {
    auto token = server::login_token(server::DataDir{*data_dir});
    if (!token) {
      exit_code = fail(token.error().message);
      return;
    }
    std::cout << *token << "\n";
  });
}

}  // namespace mill::cli
