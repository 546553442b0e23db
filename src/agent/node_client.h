#pragma once

// The agent's side of the node protocol. The agent only ever talks to the control
// plane through this interface, so an agent in the server's process and one on
// another machine differ only in the address they are given.

#include <chrono>
#include <string>

#include "common/result.h"
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
};

class NodeClient {
 public:
  virtual ~NodeClient() = default;
  virtual Result<RegisterResponse> register_node(const RegisterRequest& request) = 0;
  // kNotFound when the control plane does not know the node (register again).
  virtual Result<void> heartbeat(const std::string& id, const model::Resources& resources) = 0;
};

// The node protocol over HTTP with the join token.
class HttpNodeClient final : public NodeClient {
 public:
  HttpNodeClient(std::string server_address, std::string join_token);
  Result<RegisterResponse> register_node(const RegisterRequest& request) override;
  Result<void> heartbeat(const std::string& id, const model::Resources& resources) override;

 private:
  Result<std::string> post(const std::string& path, const std::string& body);
  std::string address_;
  std::string join_token_;
};

}  // namespace mill::agent
