// Deploys and services (spec: Deploy, Services): POST /v1/deploy and
// POST /v1/restart/:service stream a deploy's progress as SSE; GET /v1/services shows
// what runs. Beyond the spec, GET /v1/deploys[/:id] tells how a deploy went after its
// stream was gone, and GET /v1/deploys/:id?follow=true streams it again (docs/api.md).

#include <boost/json.hpp>

#include "api/api.h"
#include "api/responses.h"
#include "api/service_views.h"
#include "server/deploy.h"

namespace mill::api {
namespace {

namespace json = boost::json;

// Streams deploy `id` to the client; the deploy runs on whether or not anyone reads.
net::HttpResponse stream_deploy(const ApiContext& ctx, const std::string& id) {
  net::HttpResponse res;
  res.async = [&ctx, id](std::shared_ptr<net::ResponseWriter> writer) {
    writer->begin_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
    ctx.deploys->subscribe(id, [writer](const server::DeployEvent& e) {
      if (e.event.empty()) return writer->write(": keep-alive\n\n");
      bool ok = writer->write("event: " + e.event + "\ndata: " + e.data + "\n\n");
      if (e.event != "progress") writer->close();
      return ok;
    });
  };
  return res;
}

net::HttpResponse start_error(const ApiContext& ctx, const Error& e) {
  if (e.code == ErrorCode::kConflict) {
    json::object body{{"error", e.message}};
    auto records = ctx.deploys->records();
    for (const auto& r : records) {
      if (r.status == "running") body["deploy"] = r.id;
    }
    return json_response(409, body);
  }
  return error_response(e);
}

json::object record_json(const server::DeployRecord& r, bool with_events) {
  json::object o{{"id", r.id},
                 {"kind", r.kind},
                 {"status", r.status},
                 {"started_at", format_rfc3339(r.started_at)}};
  if (r.finished_at) {
    o["finished_at"] = format_rfc3339(*r.finished_at);
    o["elapsed"] = std::chrono::duration<double>(*r.finished_at - r.started_at).count();
  }
  if (r.status == "failed") {
    o["service"] = r.service;
    o["reason"] = r.reason;
  }
  if (with_events) {
    json::array events;
    for (const auto& e : r.events) {
      boost::system::error_code ec;
      events.push_back(json::object{{"event", e.event}, {"data", json::parse(e.data, ec)}});
    }
    o["events"] = std::move(events);
  }
  return o;
}

// "office.toml" from ?file=: only a plain file name, for the messages.
std::string file_name(const net::HttpRequest& req) {
  std::string f = req.query_param("file");
  if (f.empty() || f.size() > 128 || f.find_first_of("/\\\r\n\"") != std::string::npos) {
    return "mill.toml";
  }
  return f;
}

}  // namespace

void add_deploy_routes(Router& router, const ApiContext& ctx) {
  router.add("POST", "/v1/deploy", [&ctx](const net::HttpRequest& req, const Params&) {
    if (!ctx.deploys) return error_response(503, "this server does not run deploys");
    server::DeployRejection rejection;
    auto id = ctx.deploys->deploy(req.body, file_name(req), &rejection);
    if (!id && id.error().code == ErrorCode::kInvalidArgument && !rejection.errors.empty()) {
      json::array errors;
      for (const auto& e : rejection.errors) errors.emplace_back(e);
      return json_response(
          400, json::object{{"error", rejection.message}, {"errors", std::move(errors)}});
    }
    if (!id) return start_error(ctx, id.error());
    return stream_deploy(ctx, *id);
  });

  router.add("POST", "/v1/restart/:service", [&ctx](const net::HttpRequest&, const Params& p) {
    if (!ctx.deploys) return error_response(503, "this server does not run deploys");
    auto id = ctx.deploys->restart(p.find("service")->second);
    if (!id) return start_error(ctx, id.error());
    return stream_deploy(ctx, *id);
  });

  router.add("GET", "/v1/deploys", [&ctx](const net::HttpRequest&, const Params&) {
    if (!ctx.deploys) return error_response(503, "this server does not run deploys");
    json::array out;
    for (const auto& r : ctx.deploys->records()) out.push_back(record_json(r, false));
    return json_response(200, out);
  });

  router.add("GET", "/v1/deploys/:id", [&ctx](const net::HttpRequest& req, const Params& p) {
    if (!ctx.deploys) return error_response(503, "this server does not run deploys");
    auto r = ctx.deploys->record(p.find("id")->second);
    if (!r) return error_response(404, "no deploy '" + p.find("id")->second + "'");
    // ?follow=true: the deploy's stream again, from its first event (as POST /v1/deploy).
    std::string follow = req.query_param("follow");
    if (follow == "true" || follow == "1") return stream_deploy(ctx, r->id);
    if (!follow.empty() && follow != "false" && follow != "0") {
      return error_response(400, "follow must be true or false");
    }
    return json_response(200, record_json(*r, true));
  });

  router.add("GET", "/v1/services", [&ctx](const net::HttpRequest&, const Params&) {
    return json_response(200, services_json(ctx));
  });

  router.add("GET", "/v1/services/:name", [&ctx](const net::HttpRequest&, const Params& p) {
    const std::string& name = p.find("name")->second;
    for (auto& s : services_json(ctx)) {
      if (s.as_object().at("name").as_string() == name) return json_response(200, s);
    }
    return error_response(404, "no service '" + name + "'");
  });
}

}  // namespace mill::api
