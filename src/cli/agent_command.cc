// mill agent: this machine as a node of a cluster whose control plane runs elsewhere
// (another machine, or a `mill server --no-agent` on this one). It joins with the join
// token and from then on runs what the control plane places here, exactly as the
// server's in-process agent does: the same node protocol, only another address.

#include <signal.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "agent/node_client.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/local_node.h"
#include "common/files.h"
#include "common/log.h"

namespace mill::cli {
namespace {

struct AgentCommandOptions {
  std::string join;  // the server's API address
  std::string token;
  std::string token_file;
  std::string data_dir = "/var/lib/mill";
  NodeFlags node;
};

int run_agent(const AgentCommandOptions& o) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

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
        "keeps it in <data-dir>/join.token)");
  }
  auto options = node_options(o.node, o.data_dir);
  if (!options) return fail(options.error().message);
  if (::mkdir(o.data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail("cannot make " + o.data_dir + ": " + std::strerror(errno));
  }

  SystemClock clock;
  agent::HttpNodeClient client(o.join, token);
  auto node = LocalNode::start(client, *options, o.data_dir + "/node.id", o.node, clock);
  if (!node) return fail(node.error().message);
  log::info("joined " + o.join + " as " + (*node)->id());

  int sig = 0;
  sigwait(&signals, &sig);
  log::info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", shutting down");
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
  cmd->add_option("--join", opts->join, "The server's API address, e.g. http://10.0.0.1:4400")
      ->required();
  cmd->add_option("--token", opts->token, "The join token (the server's <data-dir>/join.token)");
  cmd->add_option("--token-file", opts->token_file, "A file holding the join token");
  cmd->add_option("--data-dir", opts->data_dir,
                  "Where this node keeps its id, images, containers and logs")
      ->capture_default_str();
  add_node_flags(cmd, opts->node);
  cmd->callback([opts, &exit_code] { exit_code = run_agent(*opts); });
}

}  // namespace mill::cli
