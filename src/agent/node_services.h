#pragma once

// Everything that makes this machine a node that runs containers, wired together:
// the bridge network and its DNS server, the image store, the OCI runtime, the
// containers on top of them, the allocation runner, and the log service with its
// uplink (logs reach the control plane over the node protocol). `mill server`
// starts one for its in-process agent; `mill agent` will start the same.

#include <chrono>
#include <memory>
#include <string>

#include "agent/node_client.h"
#include "common/clock.h"
#include "common/result.h"
#include "network/host_port.h"
#include "proxy/proxy.h"

namespace mill::agent {

struct NodeOptions {
  std::string data_dir;          // images/, containers/, allocs/, agent/ live here
  std::string bridge = "mill0";  // also names the nftables table and the cgroup parent
  std::string runtime_path = "/usr/sbin/runc";
  std::string shim_path;  // empty: mill-shim beside this executable
  std::string init_path = "/usr/bin/tini-static";
  uint64_t image_budget_bytes = 0;                 // 0: unlimited
  std::chrono::milliseconds image_tag_ttl{10000};  // see image::ImageStoreOptions::tag_ttl
  int dns_port = 53;                               // on the bridge address
  // Ports on this machine its containers may reach; the rest of the machine refuses
  // them (network/firewall.h), but for the DNS server.
  std::vector<network::HostPort> allow_host_ports;
  std::chrono::milliseconds grace{10000};
  std::string registry_ca_file;  // extra CAs for registries (tests)
  // The ingress proxy: plain HTTP and HTTPS listen addresses ("" for none).
  std::string proxy_http = "0.0.0.0:80";
  std::string proxy_https = "0.0.0.0:443";
  int proxy_threads = 2;
  // How long a stopping allocation's requests in flight may take before SIGTERM.
  std::chrono::milliseconds drain_timeout{30000};
};

class NodeServices {
 public:
  // Sets up the network for the node's subnet (from its registration), re-adopts
  // the containers that kept running, and starts following the control plane.
  static Result<std::unique_ptr<NodeServices>> start(const NodeOptions& options, NodeClient& client,
                                                     const std::string& node_id,
                                                     const model::RegisterResponse& registration,
                                                     const Clock& clock);
  ~NodeServices();

  // Stops every container this data dir runs and removes the node's network (bridge,
  // firewall rules, guard route, namespaces) and mounts: `mill cleanup`. Idempotent.
  static Result<void> cleanup(const std::string& data_dir);

  // The proxy's totals per route (empty when it is not running).
  std::vector<proxy::RouteStats> proxy_stats() const;
  // Stops following and serving; containers keep running for the next start.
  void stop();

  struct Parts;

 private:
  explicit NodeServices(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace mill::agent
