#pragma once

// What every client subcommand shares: where the API is and the token (client config
// written by `mill init`, overridden by MILL_ADDR / MILL_TOKEN), calling the API, and
// turning failures into messages a person can act on.

#include <boost/json/value.hpp>
#include <chrono>
#include <string>

#include "common/result.h"
#include "net/http_client.h"

namespace mill::cli {

struct ClientConfig {
  std::string address = "127.0.0.1:4400";
  std::string token;
  std::string source;  // where it came from, for messages
  // PEM file of the CA an https:// address must chain to (the cluster CA, made by
  // `mill init`); empty: the system's CAs. Set by `ca = PATH` or $MILL_CA.
  std::string ca;
};

// $MILL_CONFIG, else $XDG_CONFIG_HOME/mill/client.toml, else ~/.config/mill/client.toml.
std::string client_config_path();
// Creates the directories above `path` that are missing (mode 0700), as a client
// config's ~/.config/mill.
void make_parent_dirs(const std::string& path);
Result<void> write_client_config(const std::string& path, const ClientConfig& config);
// Reads the file (if present) then applies MILL_ADDR / MILL_TOKEN / MILL_CA.
ClientConfig load_client_config();

// Calls the API. On a non-2xx answer returns an error whose message is what to print
// (the server's {"error"} text, or advice for 401 / unreachable).
inline constexpr std::chrono::milliseconds kApiTimeout{10000};
Result<std::string> call_api(const ClientConfig& config, const std::string& method,
                             const std::string& target, const std::string& body = {},
                             std::chrono::milliseconds timeout = kApiTimeout);
Result<boost::json::value> call_api_json(const ClientConfig& config, const std::string& method,
                                         const std::string& target, const std::string& body = {},
                                         std::chrono::milliseconds timeout = kApiTimeout);

// Sends `req` with the token. Unreachable servers and 401 become errors (with advice);
// any other answer, 2xx or not, is returned for the caller to interpret (deploy reads
// the "errors" of a 400 and the running deploy of a 409).
Result<net::ClientResponse> call_api_raw(const ClientConfig& config, net::ClientRequest req);
// The server's {"error"} text of a non-2xx answer, or the body itself.
std::string error_text(const net::ClientResponse& res);

// GET whose 2xx body is handed to `sink` as it arrives (SSE streams); the call ends
// when the server ends the body. idle_timeout bounds the wait for each piece.
Result<void> call_api_stream(const ClientConfig& config, const std::string& target,
                             net::BodySink sink, std::chrono::milliseconds idle_timeout);

// Whether an address ("host:port", with or without "http(s)://") names this machine's
// loopback: 127.0.0.0/8, ::1 or localhost.
bool is_loopback_address(std::string_view address);
// Its host: "10.0.0.1:4400" -> "10.0.0.1", "[::1]:4400" -> "::1".
std::string address_host(std::string_view address);

// Prints "mill: <message>" to stderr and returns 1, for `return fail(...)`.
int fail(const std::string& message);

}  // namespace mill::cli
