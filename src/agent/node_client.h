#pragma once

// The agent's side of the node protocol (its messages: model/node_protocol.h). The
// agent only ever talks to the control plane through this interface, so an agent in
// the server's process and one on another machine differ only in the address they are
// given.

#include <chrono>
#include <string>
#include <vector>

#include "common/result.h"
#include "model/allocation.h"
#include "model/node.h"
#include "model/node_protocol.h"
#include "net/http_client.h"

namespace mill::agent {

class NodeClient {
 public:
  virtual ~NodeClient() = default;
  virtual Result<model::RegisterResponse> register_node(const model::RegisterRequest& request) = 0;
  // kNotFound when the control plane does not know the node (register again).
  virtual Result<void> heartbeat(const std::string& id, const model::Resources& resources) = 0;
  // Blocking query: returns when the allocations changed after `index`, or after
  // about `wait` with the same ones.
  virtual Result<model::DesiredAllocations> allocations(const std::string& node, int64_t index,
                                                        std::chrono::milliseconds wait) = 0;
  virtual Result<void> report(const std::string& node,
                              const std::vector<model::AllocState>& states) = 0;
  // How the images of a deploy's ImagePulls went on this node.
  virtual Result<void> report_pulls(const std::string& node, const std::string& deploy,
                                    const std::vector<model::PullReport>& reports) = 0;
  // How the removals in remove_volumes went.
  virtual Result<void> report_volumes(const std::string& node,
                                      const std::vector<model::VolumeReport>& reports) = 0;
  // Blocking query: what the control plane asks of the node (logs to send, streams to
  // stop), at once when something is asked, else after about query.wait with nothing.
  virtual Result<model::NodeRequests> requests(const model::RequestsQuery& query) = 0;
  // One piece of a log the control plane asked for.
  virtual Result<model::LogChunkAnswer> send_log(const model::LogChunk& chunk) = 0;
  // The agent is stopping: calls in flight (a blocking query) end at once and later
  // ones fail, so its threads can be joined without waiting out a long poll.
  virtual void cancel() {}
};

// How an agent's calls are trusted over HTTPS: the cluster CA the server's certificate
// must chain to and, once joined, the node's certificate (CN = its node id) and key.
struct NodeTls {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
};

// The node protocol over HTTP: with the join secret as the bearer token (the server's
// own agent), or over mTLS with the node's certificate (an agent that joined), or both.
class HttpNodeClient final : public NodeClient {
 public:
  // join_token "": no bearer token (the node certificate authenticates).
  HttpNodeClient(std::string server_address, std::string join_token, NodeTls tls = {});
  Result<model::RegisterResponse> register_node(const model::RegisterRequest& request) override;
  Result<void> heartbeat(const std::string& id, const model::Resources& resources) override;
  Result<model::DesiredAllocations> allocations(const std::string& node, int64_t index,
                                                std::chrono::milliseconds wait) override;
  Result<void> report(const std::string& node,
                      const std::vector<model::AllocState>& states) override;
  Result<void> report_pulls(const std::string& node, const std::string& deploy,
                            const std::vector<model::PullReport>& reports) override;
  Result<void> report_volumes(const std::string& node,
                              const std::vector<model::VolumeReport>& reports) override;
  Result<model::NodeRequests> requests(const model::RequestsQuery& query) override;
  Result<model::LogChunkAnswer> send_log(const model::LogChunk& chunk) override;
  void cancel() override { cancel_->cancel(); }

 private:
  Result<std::string> call(const std::string& method, const std::string& path,
                           const std::string& body, std::chrono::milliseconds timeout);
  Result<std::string> post(const std::string& path, const std::string& body);
  std::string address_;
  std::string join_token_;
  NodeTls tls_;
  std::shared_ptr<net::CancelToken> cancel_ = std::make_shared<net::CancelToken>();
};

}  // namespace mill::agent
