#pragma once

// The HTTP API (spec/http-api.md) as one plain function from request to response:
// authentication, routing, then thin handlers that decode, call the server's
// components and encode. No Beast here; net/ carries the bytes.
//
// Thread-safety: handle() is called concurrently from the server's I/O threads.

#include <string>

#include "api/router.h"
#include "common/clock.h"
#include "crypto/cluster_ca.h"
#include "metrics/registry.h"
#include "net/http.h"
#include "server/node_registry.h"
#include "server/secrets.h"
#include "server/tasks.h"

namespace mill::server {
class DeployManager;
class NodeMonitor;
}  // namespace mill::server

namespace mill::api {

class LogRelay;

struct ApiContext {
  std::string api_token;   // for every route but the node protocol
  std::string join_token;  // the join secret: /v1/agent/join, and /v1/agent/* as a bearer
  // Signs the node certificates POST /v1/agent/join hands out; after the join a node
  // calls /v1/agent/* with that certificate (mTLS), as the node its CN names.
  crypto::ClusterCa ca;
  server::Secrets* secrets = nullptr;
  server::NodeRegistry* nodes = nullptr;
  metrics::Registry* metrics = nullptr;
  const Clock* clock = nullptr;
  std::chrono::milliseconds heartbeat_interval{5000};
  server::TaskManager* tasks = nullptr;
  server::DeployManager* deploys = nullptr;     // null: this server runs no deploys
  server::NodeMonitor* node_monitor = nullptr;  // drains and removals; null: refused (503)
  LogRelay* logs = nullptr;  // asks nodes for logs; null: GET /v1/logs answers 503
  model::Ipv4Net cluster_network{0x0a630000, 16};
  // How long POST /v1/tasks/spawn waits for the task to run (pulls included).
  std::chrono::milliseconds spawn_wait{std::chrono::minutes(10)};
  // The longest blocking query the node protocol allows.
  std::chrono::milliseconds max_poll_wait{std::chrono::seconds(60)};
};

class Api {
 public:
  explicit Api(ApiContext context);
  net::HttpResponse handle(const net::HttpRequest& request) const;

 private:
  ApiContext ctx_;
  Router router_;
};

// The token from "Authorization: Bearer <token>", or "" when absent or malformed.
std::string_view bearer_token(const net::HttpRequest& request);

// POST /v1/agent/join (agent_routes.cc): authenticated by the join secret in its body,
// so Api::handle sends it here before the bearer-token check.
net::HttpResponse handle_join(const ApiContext& ctx, const net::HttpRequest& request);

// Route groups, one file each.
void add_cluster_routes(Router& router, const ApiContext& ctx);
void add_secret_routes(Router& router, const ApiContext& ctx);
void add_metrics_routes(Router& router, const ApiContext& ctx);
void add_agent_routes(Router& router, const ApiContext& ctx);
void add_task_routes(Router& router, const ApiContext& ctx);
void add_log_routes(Router& router, const ApiContext& ctx);
void add_deploy_routes(Router& router, const ApiContext& ctx);
void add_volume_routes(Router& router, const ApiContext& ctx);

}  // namespace mill::api
