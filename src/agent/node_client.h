#pragma once

// The agent's side of the node protocol. The agent only ever talks to the control
// plane through this interface, so an agent in the server's process and one on
// another machine differ only in the address they are given.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "model/allocation.h"
#include "model/node.h"

namespace mill::agent {

struct RegisterRequest {
  std::string id;  // empty on first registration
  std::string name;
  std::string address;
  model::Resources resources;
};

struct RegisterResponse {
  std::string id;
  std::chrono::milliseconds heartbeat_interval{5000};
  std::string subnet;           // this node's /24: its bridge and containers
  std::string cluster_network;  // the whole cluster network (the guard route)
};

struct RegistryLogin {
  std::string username;
  std::string password;
  bool insecure = false;  // plain HTTP allowed

  bool operator==(const RegistryLogin&) const = default;
};

// What the control plane wants this node to run: every allocation placed on it that
// has not been forgotten yet (ended ones stay, so their logs stay, until retention).
struct DesiredAllocations {
  int64_t index = 0;  // pass back to wait for the next change
  struct Item {
    model::Allocation alloc;
    // What this node last reported (pending if nothing): after losing its local state,
    // an agent must not start again what already ran.
    model::AllocStatus reported = model::AllocStatus::kPending;
  };
  std::vector<Item> allocations;
  std::map<std::string, RegistryLogin> registries;  // by registry host
  std::optional<model::ImagePulls> pulls;           // a deploy's `pulling` phase
  std::vector<std::string> remove_volumes;          // this node's volumes to destroy
  std::vector<model::ServiceRoute> routes;          // for the proxy (TLS in plain PEM)
};

class NodeClient {
 public:
  virtual ~NodeClient() = default;
  virtual Result<RegisterResponse> register_node(const RegisterRequest& request) = 0;
  // kNotFound when the control plane does not know the node (register again).
  virtual Result<void> heartbeat(const std::string& id, const model::Resources& resources) = 0;
  // Blocking query: returns when the allocations changed after `index`, or after
  // about `wait` with the same ones.
  virtual Result<DesiredAllocations> allocations(const std::string& node, int64_t index,
                                                 std::chrono::milliseconds wait) = 0;
  virtual Result<void> report(const std::string& node,
                              const std::vector<model::AllocState>& states) = 0;
  // How the images of a deploy's ImagePulls went on this node.
  virtual Result<void> report_pulls(const std::string& node, const std::string& deploy,
                                    const std::vector<model::PullReport>& reports) = 0;
  // How the removals in remove_volumes went.
  virtual Result<void> report_volumes(const std::string& node,
                                      const std::vector<model::VolumeReport>& reports) = 0;
};

// The node protocol over HTTP with the join token.
class HttpNodeClient final : public NodeClient {
 public:
  HttpNodeClient(std::string server_address, std::string join_token);
  Result<RegisterResponse> register_node(const RegisterRequest& request) override;
  Result<void> heartbeat(const std::string& id, const model::Resources& resources) override;
  Result<DesiredAllocations> allocations(const std::string& node, int64_t index,
                                         std::chrono::milliseconds wait) override;
  Result<void> report(const std::string& node,
                      const std::vector<model::AllocState>& states) override;
  Result<void> report_pulls(const std::string& node, const std::string& deploy,
                            const std::vector<model::PullReport>& reports) override;
  Result<void> report_volumes(const std::string& node,
                              const std::vector<model::VolumeReport>& reports) override;

 private:
  Result<std::string> call(const std::string& method, const std::string& path,
                           const std::string& body, std::chrono::milliseconds timeout);
  Result<std::string> post(const std::string& path, const std::string& body);
  std::string address_;
  std::string join_token_;
};

}  // namespace mill::agent
