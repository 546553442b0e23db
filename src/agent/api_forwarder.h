#pragma once

// Every node answers the API (spec: "other nodes proxy requests to the current
// leader"): a node's agent listens on :4400 too and forwards each /v1 request to the
// server it joined, as it came (method, target, body, the headers that matter: the
// caller's bearer token is checked by the server), and passes the answer back: status,
// headers and body, and a stream (a deploy's or restart's SSE, `logs?follow=true`) as
// it comes, piece by piece, until either side ends it. `mill` pointed at any node works
// the same. The node protocol (/v1/agent/) is not forwarded: agents talk to the server.
//
// One thread per request in flight (a forward blocks on the server's answer); stop()
// ends the ones in flight at once and waits for their threads.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "net/http_server.h"

namespace mill::agent {

struct ApiForwarderOptions {
  std::string listen;                       // "10.0.0.2:4400"
  std::string leader;                       // the server's API: "https://10.0.0.1:4400"
  std::string ca_pem;                       // trusted for an https leader (the cluster CA)
  std::optional<net::TlsServerConfig> tls;  // serve HTTPS (the node's certificate)
  std::chrono::milliseconds timeout{std::chrono::minutes(15)};  // longest wait for a piece
};

class ApiForwarder {
 public:
  static Result<std::unique_ptr<ApiForwarder>> start(ApiForwarderOptions options);
  ~ApiForwarder();
  std::string address() const;
  void stop();

  struct State;

 private:
  explicit ApiForwarder(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace mill::agent
