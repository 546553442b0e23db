#pragma once

// Several Mill machines on one host (issue 14's harness). Each node is a network
// namespace of its own with its own data dir, bridge, node /24, DNS and proxy ports,
// all linked through an underlay bridge in another namespace the test made. `mill
// server` (with its in-process agent) runs in node 0's namespace, `mill agent --join`
// in every other's. Every address lives inside those namespaces: the test reaches the
// API from the underlay's namespace (a thread that entered it), never through the
// host's network, and a crash of the test still cleans up (support/crash_cleanup.h).

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "net/http_client.h"
#include "support/cluster_lease.h"
#include "support/temp_dir.h"

namespace mill::testing {

class TestRegistry;

struct ClusterOptions {
  int nodes = 3;
  int start = 1 << 30;  // how many of them start at once (node 0 first)
  std::vector<std::string> server_flags =
      {};  // more flags for `mill server` (--no-agent: no node 0)
};

class Cluster {
 public:
  // Builds the namespaces and starts every node; ok() says whether all came up (test
  // failures say why when not).
  explicit Cluster(ClusterOptions options = {});
  // Stops every node, cleans each one up (`mill cleanup` in its namespace) and
  // deletes the namespaces.
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  bool ok() const { return ok_; }
  int size() const { return static_cast<int>(nodes_.size()); }
  const std::string& api() const { return api_; }  // node 0's "IP:4400"
  const std::string& token() const { return token_; }
  // `mill join-token` on node 0: "mill-join-v1.<CA sha256>.<secret>".
  const std::string& join_token() const { return join_token_; }
  const std::string& ca_pem() const { return ca_pem_; }  // the cluster CA (the API is HTTPS)
  const std::string& underlay_netns() const { return underlay_; }
  std::string node_ip(int i) const { return nodes_.at(i).ip; }
  std::string netns(int i) const { return nodes_.at(i).netns; }
  std::string bridge(int i) const { return nodes_.at(i).bridge; }
  std::string data_dir(int i) const { return nodes_.at(i).data; }
  // The id node i registered as ("node-N"), from its data dir.
  std::string node_id(int i) const;
  // What node i's process has written (all its runs).
  std::string log(int i) const;

  // An API call from the underlay, with the API token.
  net::ClientResponse call(const std::string& method, const std::string& target,
                           const std::string& body = {}, const std::string& content_type = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds(180)) const;
  // A request as it is, from the underlay, over HTTPS trusting the cluster CA, presenting
  // a client certificate when cert_pem is not empty.
  // `req` (with the API token and the CA) sent to node i's API port from the underlay:
  // the server's for node 0, the agent's (which forwards it to the server) for the
  // others. A transport error is status 0 with the error as the body.
  net::ClientResponse call_via(int node, net::ClientRequest req) const;
  net::ClientResponse call_as(net::ClientRequest req, const std::string& cert_pem,
                              const std::string& key_pem) const;
  // What the tests and the benchmark read of the cluster, through the API: each node's
  // status by id; a service's allocations (id -> node and status); a config with a
  // service of the probe image from registry_host().
  std::map<std::string, std::string> node_statuses() const;
  struct Placed {
    std::string node;
    std::string status;
  };
  std::map<std::string, Placed> allocations_of(const std::string& service) const;
  std::string service_config(const std::string& name, int replicas) const;

  // `mill args...` from the underlay, pointed at the API.
  CommandResult cli(const std::vector<std::string>& args) const;
  // `mill args...` from the underlay as on a machine of its own: no MILL_ADDR, MILL_TOKEN
  // or MILL_CA, only the client config at `config` (what `mill login` writes).
  CommandResult cli_with_config(const std::vector<std::string>& args,
                                const std::string& config) const;

  // Serves `registry`'s images to the nodes at registry_host(): a second registry
  // process in the underlay namespace, on the same storage.
  bool serve_registry(const TestRegistry& registry);
  std::string registry_host() const { return underlay_ip_ + ":5000"; }

  // Starts node i (one not started yet) and waits until it has joined.
  bool join(int i);
  // Stops node i's process (SIGTERM: a clean stop, an upgrade) and starts it again.
  bool restart_node(int i);
  // Node i's machine fails: its process is SIGKILLed and its underlay link goes down.
  void kill_node(int i);
  // And comes back: link up, the same process started again on the same data dir.
  bool revive_node(int i);

 private:
  struct Node {
    std::string netns;
    std::string ip;
    std::string bridge;
    std::string data;
    std::string log;
    std::string link;  // its end of the underlay, inside its namespace
    pid_t pid = -1;
  };
  bool make_namespaces();
  bool start_node(int i);
  void stop_node(int i, int sig);

  ClusterOptions options_;
  TempDir dir_;
  ClusterLease lease_;
  std::string tag_;  // makes every name of this cluster unique on the host
  std::string underlay_;
  std::string underlay_ip_;
  std::vector<Node> nodes_;
  std::string api_;
  std::string token_;
  std::string join_token_;
  std::string ca_pem_;
  pid_t registry_pid_ = -1;
  std::unique_ptr<OnCrash> crash_cleanup_;
  bool ok_ = false;
};

}  // namespace mill::testing
