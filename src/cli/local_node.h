#pragma once

// What `mill server` (for its in-process agent) and `mill agent` share: the flags that
// make this machine a node, and starting its agent (registration, heartbeats) and its
// node services (containers, network, proxy, logs). Both reach the control plane only
// through the NodeClient they are given.

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/node_client.h"
#include "agent/node_services.h"
#include "common/clock.h"
#include "common/result.h"

namespace CLI {
class App;
}

namespace mill::cli {

struct NodeFlags {
  std::string advertise;  // node address; default: primary interface
  std::string name;       // node name; default: host name
  bool no_containers = false;
  agent::NodeOptions node;
  std::string image_budget;
  std::string stop_grace = "10s";
  std::string drain_timeout = "30s";
  std::string image_tag_ttl = "10s";
  std::vector<std::string> allow_host_ports;  // --allow-host-port, repeated
};

void add_node_flags(CLI::App* cmd, NodeFlags& flags);

// For the long-running commands (server, agent): SIGTERM and SIGINT are taken
// synchronously by the main thread. Call before any thread starts, so every thread
// inherits the mask (SIGPIPE is ignored too); then wait_for_stop_signal() blocks until
// one comes and logs which.
sigset_t block_stop_signals();
void wait_for_stop_signal(const sigset_t& signals);
// The node options the flags say (kInvalidArgument naming a bad flag), before anything
// starts.
Result<agent::NodeOptions> node_options(const NodeFlags& flags, const std::string& data_dir);

class LocalNode {
 public:
  // Registers (keeping the node id in node_id_path), starts heartbeats and, unless
  // flags.no_containers, the node services.
  static Result<std::unique_ptr<LocalNode>> start(agent::NodeClient& client,
                                                  const agent::NodeOptions& options,
                                                  const std::string& node_id_path,
                                                  const NodeFlags& flags, const Clock& clock);
  ~LocalNode();
  const std::string& id() const { return id_; }
  agent::NodeServices* services() { return services_.get(); }
  // Stops following the control plane; containers keep running for the next start.
  void stop();

 private:
  LocalNode() = default;
  agent::NodeClient* client_ = nullptr;
  std::string id_;
  std::unique_ptr<agent::Agent> agent_;
  std::unique_ptr<agent::NodeServices> services_;
};

}  // namespace mill::cli
