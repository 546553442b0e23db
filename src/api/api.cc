#include "api/api.h"

#include "api/responses.h"
#include "crypto/crypto.h"

namespace mill::api {

std::string_view bearer_token(const net::HttpRequest& request) {
  const std::string* h = request.header("Authorization");
  if (!h) return {};
  std::string_view v = *h;
  if (v.size() < 7 || !net::iequals(v.substr(0, 7), "Bearer ")) return {};
  v.remove_prefix(7);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

namespace {

constexpr std::string_view kAgentPrefix = "/v1/agent/";

net::HttpResponse unauthorized(std::string_view message) {
  auto r = error_response(401, message);
  r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"mill\""});
  return r;
}

}  // namespace

Api::Api(ApiContext context) : ctx_(std::move(context)) {
  add_cluster_routes(router_, ctx_);
  add_secret_routes(router_, ctx_);
  add_metrics_routes(router_, ctx_);
  add_agent_routes(router_, ctx_);
  add_task_routes(router_, ctx_);
  add_log_routes(router_, ctx_);
  add_deploy_routes(router_, ctx_);
  add_volume_routes(router_, ctx_);
}

net::HttpResponse Api::handle(const net::HttpRequest& request) const {
  // Every route needs a token, checked before routing so that an unauthenticated
  // caller learns nothing, not even which routes exist. The node protocol takes the
  // join secret or a node certificate; everything else the API token.
  if (request.method == "POST" && request.path == "/v1/agent/join") {
    return handle_join(ctx_, request);  // the join secret is in the body
  }
  bool agent_route = request.path.starts_with(kAgentPrefix);
  std::string_view presented = bearer_token(request);
  if (agent_route && presented.empty() && !request.peer_identity.empty()) {
    // A node certificate the TLS layer verified against the cluster CA: the node
    // protocol's handlers let it speak for its own node only.
    return router_.dispatch(request);
  }
  if (presented.empty()) {
    return unauthorized("missing bearer token: send 'Authorization: Bearer <token>'");
  }
  const std::string& expected = agent_route ? ctx_.join_token : ctx_.api_token;
  if (!crypto::token_matches(presented, expected)) {
    return unauthorized(agent_route ? "wrong join token" : "wrong API token");
  }
  return router_.dispatch(request);
}

}  // namespace mill::api
