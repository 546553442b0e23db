// The node protocol, authenticated by the join secret (as a bearer token) or by a node
// certificate (mTLS; the certificate's CN is the node id, and a call that names a node
// must name that one: 403 otherwise). Agents join, register, heartbeat,
// fetch their desired allocations with a blocking query (as Nomad's clients do) and
// report what runs. Every handler decodes with model/node_protocol.h, calls the
// NodeRegistry or the TaskManager, and encodes the answer with the same codec.

#include <arpa/inet.h>

#include <algorithm>
#include <optional>
#include <type_traits>

#include "api/api.h"
#include "api/log_relay.h"
#include "api/responses.h"
#include "common/log.h"
#include "crypto/cluster_ca.h"
#include "crypto/crypto.h"
#include "model/json.h"
#include "model/node_protocol.h"

namespace mill::api {

namespace {

// Decode, act, encode: an error at either step is the answer.
template <class Request, class Act>
net::HttpResponse handle(Result<Request> request, Act&& act) {
  if (!request) return error_response(request.error());
  auto answer = act(*request);
  if (!answer) return error_response(answer.error());
  if constexpr (std::is_void_v<typename decltype(answer)::value_type>) {
    return json_text_response(200, std::string(model::kEmptyAnswer));
  } else {
    return json_text_response(200, model::encode(*answer));
  }
}

// Who may act for `node`: the holder of the join secret (the server's own agent),
// or the node whose certificate the TLS layer verified. Else a 403 to answer.
std::optional<net::HttpResponse> not_this_node(const ApiContext& ctx, const net::HttpRequest& req,
                                               std::string_view node) {
  std::string_view presented = bearer_token(req);
  if (!presented.empty() && crypto::token_matches(presented, ctx.join_token)) return std::nullopt;
  if (!req.peer_identity.empty() && req.peer_identity == node) return std::nullopt;
  return error_response(403, "the node certificate of " + req.peer_identity +
                                 " cannot act for node '" + std::string(node) + "'");
}

// handle(), once the caller has been found to speak for the node the request names.
template <class Request, class NodeOf, class Act>
net::HttpResponse handle_for_node(const ApiContext& ctx, const net::HttpRequest& req,
                                  Result<Request> request, NodeOf node_of, Act&& act) {
  if (request) {
    if (auto denied = not_this_node(ctx, req, node_of(*request))) return *denied;
  }
  return handle(std::move(request), std::forward<Act>(act));
}

bool is_ip_literal(const std::string& text) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, text.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

// "10.0.0.5:51234" -> "10.0.0.5"; "[fd00::5]:51234" -> "fd00::5".
std::string remote_host(const std::string& remote) {
  size_t colon = remote.rfind(':');
  std::string host = colon == std::string::npos ? remote : remote.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

Result<model::RegisterResponse> register_node(const ApiContext& ctx,
                                              const model::RegisterRequest& request) {
  auto node = MILL_TRY(ctx.nodes->register_node(request));
  auto subnet = model::node_subnet(ctx.cluster_network, node.subnet);
  if (!subnet) {
    return make_error(ErrorCode::kConflict, "the cluster network " + ctx.cluster_network.str() +
                                                " has no /24 left for " + node.id);
  }
  return model::RegisterResponse{node.id, ctx.heartbeat_interval, subnet->str(),
                                 ctx.cluster_network.str()};
}

// An allocation as the agent gets it: secrets in env expanded (the join token
// guards this route), so the agent never needs the secrets key.
model::Allocation deliverable(const ApiContext& ctx, model::Allocation a) {
  if (a.desired != model::DesiredState::kRun) return a;
  for (auto& [k, val] : a.spec.env) {
    auto expanded = ctx.secrets->expand(val);
    if (!expanded) {
      // Checked at spawn; if the secret was deleted since, start without it and say so.
      log::warn("allocation " + a.id + ": env " + k + ": " + expanded.error().message);
      val = "";
      continue;
    }
    val = *expanded;
  }
  return a;
}

// A route as the proxy gets it: TLS cert and key expanded.
model::ServiceRoute deliverable(const ApiContext& ctx, model::ServiceRoute r) {
  if (!r.route.tls) return r;
  auto cert = ctx.secrets->expand(r.route.tls->cert);
  auto key = ctx.secrets->expand(r.route.tls->key);
  if (!cert || !key) {
    log::warn("service " + r.service + ": TLS refers to a missing secret; serving it without");
    r.route.tls.reset();
    r.route.https_redirect = false;
  } else {
    r.route.tls = model::RouteTls{*cert, *key};
  }
  return r;
}

std::map<std::string, model::RegistryLogin> registries(const ApiContext& ctx) {
  std::map<std::string, model::RegistryLogin> out;
  for (const auto& [host, r] : ctx.tasks->config().registries) {
    auto user = ctx.secrets->expand(r.username);
    auto pass = ctx.secrets->expand(r.password);
    if (!user || !pass) {
      log::warn("registry " + host + ": credentials refer to a missing secret");
      continue;
    }
    out[host] = model::RegistryLogin{*user, *pass, r.insecure};
  }
  return out;
}

model::DesiredAllocations desired(const ApiContext& ctx, const std::string& node) {
  auto list = ctx.tasks->allocations_for(node);
  model::DesiredAllocations out;
  out.index = list.index;
  for (auto& v : list.allocations) {
    model::AllocStatus reported = v.status();
    out.allocations.push_back({deliverable(ctx, *v.alloc), reported});
  }
  out.registries = registries(ctx);
  out.pulls = std::move(list.pulls);
  out.remove_volumes = std::move(list.remove_volumes);
  for (auto& r : list.routes) out.routes.push_back(deliverable(ctx, std::move(r)));
  return out;
}

net::HttpResponse allocations_response(const ApiContext& ctx, const std::string& node) {
  return json_text_response(200, model::encode(desired(ctx, node)));
}

}  // namespace

net::HttpResponse handle_join(const ApiContext& ctx, const net::HttpRequest& req) {
  auto body = model::parse_object(req.body, {"secret", "name", "public_key", "id", "address"});
  if (!body) return error_response(body.error());
  auto secret = model::get_string(*body, "secret", true);
  if (!secret) return error_response(secret.error());
  if (!crypto::token_matches(*secret, ctx.join_token)) {
    auto r = error_response(401, "wrong join secret");
    r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"mill\""});
    return r;
  }
  auto name = model::get_string(*body, "name", true);
  auto public_key = model::get_string(*body, "public_key", true);
  auto id = model::get_string(*body, "id", false);
  auto address = model::get_string(*body, "address", false);
  if (!name) return error_response(name.error());
  if (!public_key) return error_response(public_key.error());
  if (!id) return error_response(id.error());
  if (!address) return error_response(address.error());
  if (ctx.ca.cert_pem.empty()) return error_response(503, "this server issues no certificates");
  // The key is checked before anything is registered.
  crypto::SignRequest sign;
  sign.common_name = "node-check";
  sign.public_key_pem = *public_key;
  if (auto checked = crypto::sign_certificate(ctx.ca, sign); !checked) {
    return error_response(400, "public_key: " + checked.error().message);
  }
  model::RegisterRequest reg;
  reg.id = *id;
  reg.name = *name;
  reg.address = address->empty() ? remote_host(req.remote) : *address;
  auto node = ctx.nodes->register_node(reg);
  if (!node) return error_response(node.error());
  sign.common_name = node->id;
  // The node answers the API too (agent/api_forwarder.h): its address names it.
  sign.ip_addresses = {"127.0.0.1"};
  if (is_ip_literal(node->address)) sign.ip_addresses.push_back(node->address);
  auto cert = crypto::sign_certificate(ctx.ca, sign);
  if (!cert)
    return error_response(500, "cannot sign the node certificate: " + cert.error().message);
  log::info(node->id + " joined from " + req.remote + " and got its certificate");
  model::json::object answer;
  answer["id"] = node->id;
  answer["certificate"] = *cert;
  answer["ca"] = ctx.ca.cert_pem;
  return json_text_response(200, model::serialize(answer));
}

void add_agent_routes(Router& router, const ApiContext& ctx) {
  router.add("POST", "/v1/agent/register", [&ctx](const net::HttpRequest& req, const Params&) {
    return handle_for_node(
        ctx, req, model::decode_register_request(req.body),
        [](const model::RegisterRequest& r) { return r.id; },
        [&ctx](const model::RegisterRequest& r) { return register_node(ctx, r); });
  });

  router.add("POST", "/v1/agent/heartbeat", [&ctx](const net::HttpRequest& req, const Params&) {
    return handle_for_node(
        ctx, req, model::decode_heartbeat(req.body), [](const model::Heartbeat& h) { return h.id; },
        [&ctx](const model::Heartbeat& h) { return ctx.nodes->heartbeat(h.id, h.resources); });
  });

  // Blocking query: answers at once when anything changed after `index`, else when
  // something does or `wait_ms` passes (then with the same list and index).
  router.add("GET", "/v1/agent/allocations", [&ctx](const net::HttpRequest& req, const Params&) {
    auto query = model::decode_allocations_query(req.query_param("node"), req.query_param("index"),
                                                 req.query_param("wait_ms"));
    if (!query) return error_response(query.error());
    if (auto denied = not_this_node(ctx, req, query->node)) return *denied;
    auto wait = std::clamp(query->wait, std::chrono::milliseconds(0), ctx.max_poll_wait);
    if (wait.count() == 0 || query->index < ctx.tasks->allocations_for(query->node).index) {
      return allocations_response(ctx, query->node);
    }
    net::HttpResponse res;
    res.async = [&ctx, node = query->node, index = query->index,
                 wait](std::shared_ptr<net::ResponseWriter> writer) {
      auto deadline = std::chrono::steady_clock::now() + wait;
      ctx.tasks->wait_allocations(index, deadline, [&ctx, node, writer](bool) {
        writer->respond(allocations_response(ctx, node));
      });
    };
    return res;
  });

  // What the control plane asks of the node (logs), as a blocking query; the logs come
  // back as chunks. See api/log_relay.h.
  router.add("GET", "/v1/agent/requests", [&ctx](const net::HttpRequest& req, const Params&) {
    auto query = model::decode_requests_query(req.query_param("node"), req.query_param("session"),
                                              req.query_param("wait_ms"));
    if (!query) return error_response(query.error());
    if (auto denied = not_this_node(ctx, req, query->node)) return *denied;
    if (!ctx.logs) return error_response(503, "this server relays no logs");
    query->wait = std::clamp(query->wait, std::chrono::milliseconds(0), ctx.max_poll_wait);
    net::HttpResponse res;
    res.async = [&ctx, q = *query](std::shared_ptr<net::ResponseWriter> writer) {
      ctx.logs->poll(q, std::move(writer));
    };
    return res;
  });

  router.add("POST", "/v1/agent/logs", [&ctx](const net::HttpRequest& req, const Params&) {
    if (!ctx.logs) return error_response(503, "this server relays no logs");
    return handle_for_node(
        ctx, req, model::decode_log_chunk(req.body),
        [](const model::LogChunk& c) { return c.node; },
        [&ctx](const model::LogChunk& c) { return ctx.logs->chunk(c); });
  });

  router.add("POST", "/v1/agent/status", [&ctx](const net::HttpRequest& req, const Params&) {
    return handle_for_node(
        ctx, req, model::decode_status_report(req.body),
        [](const model::StatusReport& r) { return r.node; },
        [&ctx](const model::StatusReport& r) { return ctx.tasks->report(r.node, r.allocations); });
  });

  router.add("POST", "/v1/agent/volumes", [&ctx](const net::HttpRequest& req, const Params&) {
    return handle_for_node(
        ctx, req, model::decode_volumes_report(req.body),
        [](const model::VolumesReport& r) { return r.node; },
        [&ctx](const model::VolumesReport& r) {
          ctx.tasks->volumes_removed(r.node, r.volumes);
          return Result<void>();
        });
  });

  router.add("POST", "/v1/agent/pulls", [&ctx](const net::HttpRequest& req, const Params&) {
    return handle_for_node(
        ctx, req, model::decode_pulls_report(req.body),
        [](const model::PullsReport& r) { return r.node; },
        [&ctx](const model::PullsReport& r) {
          ctx.tasks->pulled(r.node, r.deploy, r.images);
          return Result<void>();
        });
  });
}

}  // namespace mill::api
