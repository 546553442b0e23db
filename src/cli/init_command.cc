// mill init: make the data dir, tokens, secrets key and cluster CA; write the client
// config. mill join-token: what another machine joins with.

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "common/files.h"
#include "net/http.h"
#include "server/data_dir.h"

namespace mill::cli {

namespace {

// How a CLI on this machine reaches an API listening on `listen`: a wildcard address
// through loopback; plain HTTP on loopback (the server serves it so), HTTPS beyond.
std::string reach(const net::HostPort& listen) {
  std::string host = listen.host;
  if (host.empty() || host == "0.0.0.0") return "https://127.0.0.1:" + std::to_string(listen.port);
  if (host == "::") return "https://[::1]:" + std::to_string(listen.port);
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::string address = host + ":" + std::to_string(listen.port);
  return (is_loopback_address(address) ? "http://" : "https://") + address;
}

}  // namespace

void add_init_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string data_dir = "/var/lib/mill";
    std::string listen = "0.0.0.0:4400";
    std::string address;  // empty: where --listen is reached from this machine
    bool force = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "init", "Create the data dir, API token, join token, secrets key and cluster CA");
  cmd->add_option("--data-dir", opts->data_dir, "Data directory")->capture_default_str();
  cmd->add_option("--listen", opts->listen,
                  "Where `mill server` on this data dir listens (unless given --listen)")
      ->capture_default_str();
  cmd->add_option("--address", opts->address,
                  "API address the client config points at (default: where --listen is)");
  cmd->add_flag("--force", opts->force,
                "Re-initialise: new API and join tokens (secrets key and state are kept)");
  cmd->callback([opts, cmd, &exit_code] {
    server::DataDir dir{opts->data_dir};
    // Given: recorded for `mill server`. Not given: what an earlier init recorded, if any.
    const bool given = cmd->count("--listen") > 0;
    if (!given) {
      if (auto kept = read_file(dir.listen_path())) opts->listen = trim(*kept);
    }
    net::HostPort listen;
    if (!net::parse_host_port(opts->listen, listen) || listen.port == 0) {
      exit_code = fail("--listen must be HOST:PORT, like 0.0.0.0:4400 or 127.0.0.1:4401");
      return;
    }
    auto creds = server::init_data_dir(
        dir, opts->force ? server::InitMode::kForce : server::InitMode::kFresh);
    if (!creds) {
      exit_code = fail(creds.error().message);
      return;
    }
    if (auto w = given ? write_file_atomic(dir.listen_path(), opts->listen + "\n", 0600)
                       : Result<void>{};
        !w) {
      exit_code = fail(w.error().message);
      return;
    }
    std::string address = opts->address.empty() ? reach(listen) : opts->address;
    ClientConfig client{address, creds->api_token, {}, dir.ca_cert_path()};
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
              << "Client config written to " << path << ": mill on this machine talks to "
              << address << "\n"
              << "  (elsewhere: mill login-token here, then mill login ADDRESS TOKEN there;\n"
              << "   or MILL_ADDR, MILL_TOKEN and MILL_CA for one command)\n"
              << "Next: mill server --data-dir " << opts->data_dir << " (listens on "
              << opts->listen << ")\n";
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
