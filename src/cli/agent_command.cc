// mill agent: this machine as a node of a cluster whose control plane runs elsewhere
// (another machine, or a `mill server --no-agent` on this one). It joins with the join
// token and from then on runs what the control plane places here, exactly as the
// server's in-process agent does: the same node protocol, only another address.
//
// Joining over HTTPS (issue 14, as k3s does it): the join token pins the cluster CA.
// The agent takes the certificates the server presents, without sending a byte, and
// goes on only if the pinned CA is among them; from then on it trusts that CA alone.
// It sends the join secret with its public key (POST /v1/agent/join), gets back its
// node id and a certificate for it, keeps them in its data dir (node.key 0600,
// node.pem, ca.pem, node.id) and runs the node protocol over mTLS with them. A restart
// with node.pem present skips the join.

#include <signal.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "agent/api_forwarder.h"
#include "agent/machine.h"
#include "agent/node_client.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/local_node.h"
#include "common/files.h"
#include "common/log.h"
#include "crypto/cluster_ca.h"
#include "model/json.h"
#include "net/http_client.h"

namespace mill::cli {
namespace {

struct AgentCommandOptions {
  std::string join;                 // the server's API address
  std::string api_listen = "auto";  // where this node answers the API (forwarded)
  std::string token;
  std::string token_file;
  std::string data_dir = "/var/lib/mill";
  NodeFlags node;
};

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// This node's certificate, key and the cluster CA: from the data dir when it joined
// before, else by joining now.
Result<agent::NodeTls> node_credentials(const AgentCommandOptions& o,
                                        const crypto::JoinToken& token) {
  const std::string key_path = o.data_dir + "/node.key";
  const std::string cert_path = o.data_dir + "/node.pem";
  const std::string ca_path = o.data_dir + "/ca.pem";
  const std::string id_path = o.data_dir + "/node.id";
  agent::NodeTls tls;
  if (exists(cert_path) && exists(key_path) && exists(ca_path) && exists(id_path)) {
    tls.cert_pem = MILL_TRY(read_file(cert_path));
    tls.key_pem = MILL_TRY(read_file(key_path));
    tls.ca_pem = MILL_TRY(read_file(ca_path));
    log::info("using this node's certificate " + cert_path);
    return tls;
  }
  // The pin check: nothing is sent before the server has shown the pinned CA.
  auto chain = MILL_TRY(net::fetch_peer_chain_pem(o.join));
  tls.ca_pem = MILL_TRY(crypto::find_pinned_ca(chain, token.ca_fingerprint));
  if (exists(key_path)) {
    tls.key_pem = MILL_TRY(read_file(key_path));
  } else {
    tls.key_pem = MILL_TRY(crypto::make_key());
    MILL_TRY(write_file_atomic(key_path, tls.key_pem, 0600));
  }
  model::json::object body;
  body["secret"] = token.secret;
  body["name"] = o.node.name.empty() ? agent::host_name() : o.node.name;
  body["address"] = o.node.advertise.empty() ? agent::primary_address() : o.node.advertise;
  body["public_key"] = MILL_TRY(crypto::public_key_pem(tls.key_pem));
  if (auto kept = read_file(id_path)) body["id"] = trim(*kept);
  auto req =
      net::json_request("POST", "/v1/agent/join", model::serialize(body), std::chrono::seconds(30));
  req.ca_pem = tls.ca_pem;  // only the pinned CA from now on
  auto res = MILL_TRY(net::http_request(o.join, req));
  if (res.status != 200) {
    return make_error(
        res.status == 401 ? ErrorCode::kUnauthenticated : ErrorCode::kUnavailable,
        "the server refused the join: " + std::to_string(res.status) + " " + error_text(res));
  }
  auto answer = MILL_TRY(model::parse_object(res.body, {"id", "certificate", "ca"}));
  std::string id = MILL_TRY(model::get_string(answer, "id", true));
  tls.cert_pem = MILL_TRY(model::get_string(answer, "certificate", true));
  auto info = MILL_TRY(crypto::certificate_info(tls.cert_pem));
  if (info.common_name != id) {
    return make_error(ErrorCode::kInvalidArgument,
                      "the server's certificate for " + id + " names " + info.common_name);
  }
  MILL_TRY(crypto::verify_certificate(tls.ca_pem, tls.cert_pem, crypto::CertUsage::kClient));
  MILL_TRY(write_file_atomic(ca_path, tls.ca_pem, 0644));
  MILL_TRY(write_file_atomic(id_path, id + "\n", 0600));
  MILL_TRY(write_file_atomic(cert_path, tls.cert_pem, 0644));
  log::info("this node is " + id + " (its certificate: " + cert_path + ")");
  return tls;
}

int run_agent(const AgentCommandOptions& o) {
  const sigset_t signals = block_stop_signals();

  std::string token = o.token;
  if (token.empty() && !o.token_file.empty()) {
    auto text = read_file(o.token_file);
    if (!text) return fail("--token-file: " + text.error().message);
    token = trim(*text);
  }
  if (token.empty()) {
    if (const char* env = std::getenv("MILL_JOIN_TOKEN")) token = env;
  }
  if (token.empty()) {
    return fail(
        "a join token is needed: --token, --token-file or MILL_JOIN_TOKEN (the server "
        "prints it: mill join-token)");
  }
  auto parsed = crypto::parse_join_token(token);
  if (!parsed) return fail("the join token: " + parsed.error().message);
  const bool https = o.join.starts_with("https://");
  if (!https && !is_loopback_address(o.join)) {
    return fail("--join " + o.join +
                ": a server on another machine is joined over HTTPS (https://HOST:PORT); "
                "plain HTTP only to one on this machine (loopback)");
  }
  auto options = node_options(o.node, o.data_dir);
  if (!options) return fail(options.error().message);
  if (::mkdir(o.data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail("cannot make " + o.data_dir + ": " + std::strerror(errno));
  }

  // Over HTTPS the node's certificate authenticates it; over loopback, the join secret.
  std::string bearer = parsed->secret;
  agent::NodeTls tls;
  if (https) {
    auto credentials = node_credentials(o, *parsed);
    if (!credentials) return fail("cannot join " + o.join + ": " + credentials.error().message);
    tls = std::move(*credentials);
    bearer.clear();
  }

  // Every node answers the API, forwarded to the server; by default not on the
  // server's own machine (the server has the port there).
  std::string api_listen = o.api_listen;
  if (api_listen == "auto") api_listen = is_loopback_address(o.join) ? "" : "0.0.0.0:4400";
  agent::ApiForwarderOptions forward;
  forward.listen = api_listen;
  forward.leader = o.join;
  forward.ca_pem = tls.ca_pem;
  if (https) forward.tls = net::TlsServerConfig{tls.cert_pem + tls.ca_pem, tls.key_pem, "", false};

  SystemClock clock;
  agent::HttpNodeClient client(o.join, bearer, std::move(tls));
  auto node = LocalNode::start(client, *options, o.data_dir + "/node.id", o.node, clock);
  if (!node) return fail(node.error().message);
  log::info("joined " + o.join + " as " + (*node)->id());
  std::unique_ptr<agent::ApiForwarder> forwarder;
  if (!api_listen.empty()) {
    auto started = agent::ApiForwarder::start(forward);
    if (!started) {
      (*node)->stop();
      return fail("--api-listen " + api_listen + ": " + started.error().message);
    }
    forwarder = std::move(*started);
  }

  wait_for_stop_signal(signals);
  if (forwarder) forwarder->stop();
  // Containers keep running under their shims; the next start re-adopts them.
  (*node)->stop();
  log::info("stopped");
  return 0;
}

}  // namespace

void add_agent_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<AgentCommandOptions>();
  auto* cmd = app.add_subcommand(
      "agent",
      "Run this machine's agent only, joined to a server (another machine's, or a "
      "`mill server --no-agent`)");
  cmd->add_option("--join", opts->join,
                  "The server's API address, e.g. https://10.0.0.1:4400 (http:// only for a "
                  "server on this machine)")
      ->required();
  cmd->add_option("--api-listen", opts->api_listen,
                  "Where this node answers the API, forwarding every request to the server "
                  "(\"\" for nowhere; default 0.0.0.0:4400, or nowhere when the server is on "
                  "this machine)")
      ->capture_default_str();
  cmd->add_option("--token", opts->token, "The join token (`mill join-token` on the server)");
  cmd->add_option("--token-file", opts->token_file, "A file holding the join token");
  cmd->add_option("--data-dir", opts->data_dir,
                  "Where this node keeps its id, images, containers and logs")
      ->capture_default_str();
  add_node_flags(cmd, opts->node);
  cmd->callback([opts, &exit_code] { exit_code = run_agent(*opts); });
}

}  // namespace mill::cli
