#include "cli/local_node.h"

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "model/units.h"
#include "network/host_port.h"

namespace mill::cli {

void add_node_flags(CLI::App* cmd, NodeFlags& f) {
  cmd->add_option("--advertise", f.advertise,
                  "This node's address for other nodes (default: first non-loopback IPv4)");
  cmd->add_option("--name", f.name, "This node's name (default: host name)");
  cmd->add_flag("--no-containers", f.no_containers,
                "Register this machine as a node but run no containers (tests, dev)");
  cmd->add_option("--bridge", f.node.bridge,
                  "This node's container bridge (also names its firewall table)")
      ->capture_default_str();
  cmd->add_option("--runtime", f.node.runtime_path, "The OCI runtime binary (runc or crun)")
      ->capture_default_str();
  cmd->add_option("--image-budget", f.image_budget,
                  "Disk the image cache may use, e.g. 20G (default: unlimited)");
  cmd->add_option("--image-tag-ttl", f.image_tag_ttl,
                  "How long a tag resolved by the registry is reused without asking again "
                  "(0s: ask on every spawn)")
      ->capture_default_str();
  cmd->add_option("--stop-grace", f.stop_grace, "Time between SIGTERM and SIGKILL")
      ->capture_default_str();
  cmd->add_option("--dns-port", f.node.dns_port, "Port of the .mill DNS server on the bridge")
      ->capture_default_str();
  cmd->add_option("--allow-host-port", f.allow_host_ports,
                  "A port on this machine its containers may reach, as PORT/tcp, PORT/udp or "
                  "FIRST-LAST/tcp (repeatable). Otherwise containers reach nothing on this "
                  "machine but the .mill DNS server");
  cmd->add_option("--proxy-http", f.node.proxy_http,
                  "Ingress proxy listen address for HTTP (\"\" for none)")
      ->capture_default_str();
  cmd->add_option("--proxy-https", f.node.proxy_https,
                  "Ingress proxy listen address for HTTPS, bound once a route has TLS "
                  "(\"\" for none)")
      ->capture_default_str();
  cmd->add_option("--drain-timeout", f.drain_timeout,
                  "How long a stopping allocation's requests in flight may take before it "
                  "gets SIGTERM")
      ->capture_default_str();
  cmd->add_option("--registry-ca", f.node.registry_ca_file,
                  "A PEM file of extra CAs to trust for registries");
}

sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return signals;
}

void wait_for_stop_signal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  log::info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", shutting down");
}

Result<agent::NodeOptions> node_options(const NodeFlags& f, const std::string& data_dir) {
  agent::NodeOptions o = f.node;
  o.data_dir = data_dir;
  auto bad = [](const std::string& flag, const Error& e) {
    return make_error(ErrorCode::kInvalidArgument, flag + ": " + e.message);
  };
  if (!f.image_budget.empty()) {
    auto budget = model::parse_size(f.image_budget);
    if (!budget) return bad("--image-budget", budget.error());
    o.image_budget_bytes = static_cast<uint64_t>(*budget);
  }
  auto grace = model::parse_duration(f.stop_grace);
  if (!grace) return bad("--stop-grace", grace.error());
  o.grace = *grace;
  auto ttl = model::parse_duration(f.image_tag_ttl);
  if (!ttl) return bad("--image-tag-ttl", ttl.error());
  o.image_tag_ttl = *ttl;
  auto drain = model::parse_duration(f.drain_timeout);
  if (!drain) return bad("--drain-timeout", drain.error());
  o.drain_timeout = *drain;
  for (const auto& text : f.allow_host_ports) {
    auto port = network::parse_host_port(text);
    if (!port) return bad("--allow-host-port", port.error());
    o.allow_host_ports.push_back(*port);
  }
  return o;
}

Result<std::unique_ptr<LocalNode>> LocalNode::start(agent::NodeClient& client,
                                                    const agent::NodeOptions& options,
                                                    const std::string& node_id_path,
                                                    const NodeFlags& flags, const Clock& clock) {
  std::unique_ptr<LocalNode> node(new LocalNode());
  node->client_ = &client;
  node->agent_ = std::make_unique<agent::Agent>(
      agent::AgentOptions{node_id_path, flags.name, flags.advertise, options.data_dir}, client,
      clock);
  auto id = node->agent_->register_now();
  if (!id) {
    return make_error(id.error().code, "this node could not register: " + id.error().message);
  }
  node->id_ = *id;
  log::info("registered this machine as " + *id);
  node->agent_->start();
  if (flags.no_containers) return node;
  auto services =
      agent::NodeServices::start(options, client, *id, node->agent_->registration(), clock);
  if (!services) {
    node->agent_->stop();
    std::string why = "cannot run containers on this machine: " + services.error().message;
    if (::geteuid() != 0) {
      why += "\n  Mill's agent needs root (namespaces, cgroups, mounts, netlink).";
    }
    return make_error(services.error().code, why);
  }
  node->services_ = std::move(*services);
  log::info("this node runs containers on bridge " + options.bridge + " (" +
            node->agent_->registration().subnet + ")");
  return node;
}

LocalNode::~LocalNode() { stop(); }

void LocalNode::stop() {
  // Long polls in flight end now rather than when the server answers them.
  if (client_) client_->cancel();
  if (services_) services_->stop();
  if (agent_) agent_->stop();
}

}  // namespace mill::cli
