// The node protocol, authenticated by the join token: agents register, heartbeat,
// fetch their desired allocations with a blocking query (as Nomad's clients do) and
// report what runs. Every handler decodes with model/node_protocol.h, calls the
// NodeRegistry or the TaskManager, and encodes the answer with the same codec.

#include <algorithm>
#include <type_traits>

#include "api/api.h"
#include "api/log_relay.h"
#include "api/responses.h"
#include "common/log.h"
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

Result<model::RegisterResponse> register_node(const ApiContext& ctx,
                                              const model::RegisterRequest& request) {
  auto node = MILL_TRY(ctx.nodes->register_node(request));
  auto subnet = model::node_subnet(ctx.cluster_network, node.id);
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
    out.allocations.push_back({deliverable(ctx, std::move(v.alloc)), reported});
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

void add_agent_routes(Router& router, const ApiContext& ctx) {
  router.add("POST", "/v1/agent/register", [&ctx](const net::HttpRequest& req, const Params&) {
    return handle(model::decode_register_request(req.body),
                  [&ctx](const model::RegisterRequest& r) { return register_node(ctx, r); });
  });

  router.add("POST", "/v1/agent/heartbeat", [&ctx](const net::HttpRequest& req, const Params&) {
    return handle(model::decode_heartbeat(req.body), [&ctx](const model::Heartbeat& h) {
      return ctx.nodes->heartbeat(h.id, h.resources);
    });
  });

  // Blocking query: answers at once when anything changed after `index`, else when
  // something does or `wait_ms` passes (then with the same list and index).
  router.add("GET", "/v1/agent/allocations", [&ctx](const net::HttpRequest& req, const Params&) {
    auto query = model::decode_allocations_query(req.query_param("node"), req.query_param("index"),
                                                 req.query_param("wait_ms"));
    if (!query) return error_response(query.error());
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
    return handle(model::decode_log_chunk(req.body),
                  [&ctx](const model::LogChunk& c) { return ctx.logs->chunk(c); });
  });

  router.add("POST", "/v1/agent/status", [&ctx](const net::HttpRequest& req, const Params&) {
    return handle(model::decode_status_report(req.body), [&ctx](const model::StatusReport& r) {
      return ctx.tasks->report(r.node, r.allocations);
    });
  });

  router.add("POST", "/v1/agent/volumes", [&ctx](const net::HttpRequest& req, const Params&) {
    return handle(model::decode_volumes_report(req.body), [&ctx](const model::VolumesReport& r) {
      ctx.tasks->volumes_removed(r.node, r.volumes);
      return Result<void>();
    });
  });

  router.add("POST", "/v1/agent/pulls", [&ctx](const net::HttpRequest& req, const Params&) {
    return handle(model::decode_pulls_report(req.body), [&ctx](const model::PullsReport& r) {
      ctx.tasks->pulled(r.node, r.deploy, r.images);
      return Result<void>();
    });
  });
}

}  // namespace mill::api
