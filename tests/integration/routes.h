#pragma once

// Every route of the HTTP API, as the tests call them: the spec's (spec/http-api.md in
// the shared design docs, in its order), Mill's own beyond it (docs/api.md), and the
// node protocol's. Path parameters are filled with "x"; the API routes' bodies are
// ones the route refuses with a 4xx, so calling one with the right token changes
// nothing.

#include <string>
#include <vector>

namespace mill::testing {

struct Route {
  std::string method;
  std::string target;
  std::string body;
  std::string spec = {};  // as the spec writes it ("POST /v1/nodes/{id}/drain"); "" if not in it
};

// The spec's routes, every one.
inline const std::vector<Route>& spec_routes() {
  static const std::vector<Route> routes{
      {"GET", "/v1/status", "", "GET /v1/status"},
      {"GET", "/v1/nodes", "", "GET /v1/nodes"},
      {"POST", "/v1/nodes/x/drain", "", "POST /v1/nodes/{id}/drain"},
      {"DELETE", "/v1/nodes/x", "", "DELETE /v1/nodes/{id}"},
      {"POST", "/v1/deploy", "[service.web", "POST /v1/deploy"},
      {"POST", "/v1/restart/x", "", "POST /v1/restart/:service"},
      {"GET", "/v1/services", "", "GET /v1/services"},
      {"POST", "/v1/tasks/spawn", "{}", "POST /v1/tasks/spawn"},
      {"GET", "/v1/tasks", "", "GET /v1/tasks"},
      {"GET", "/v1/tasks/x", "", "GET /v1/tasks/:id"},
      {"DELETE", "/v1/tasks/x", "", "DELETE /v1/tasks/:id"},
      {"GET", "/v1/logs/x", "", "GET /v1/logs/:name"},
      {"GET", "/v1/secrets", "", "GET /v1/secrets"},
      {"PUT", "/v1/secrets/x", "{}", "PUT /v1/secrets/:name"},
      {"GET", "/v1/secrets/x", "", "GET /v1/secrets/:name"},
      {"DELETE", "/v1/secrets/x", "", "DELETE /v1/secrets/:name"},
      {"GET", "/v1/volumes", "", "GET /v1/volumes"},
      {"DELETE", "/v1/volumes/x", "", "DELETE /v1/volumes/:name"},
      {"GET", "/v1/metrics", "", "GET /v1/metrics"},
  };
  return routes;
}

// Every API route: the spec's and Mill's own (the API token opens them).
inline const std::vector<Route>& api_routes() {
  static const std::vector<Route> routes = [] {
    std::vector<Route> all = spec_routes();
    all.push_back({"GET", "/v1/deploys", "", ""});
    all.push_back({"GET", "/v1/deploys/x", "", ""});
    return all;
  }();
  return routes;
}

// The node protocol (the join token opens them).
inline const std::vector<Route>& agent_routes() {
  static const std::vector<Route> routes{
      // register and heartbeat with bodies they would accept: only the token stops them.
      {"POST", "/v1/agent/register",
       R"({"name":"intruder","address":"127.0.0.1","resources":{"cpu":{"total":1,"available":1},)"
       R"("memory":{"total":1024,"available":1024}}})",
       ""},
      {"POST", "/v1/agent/heartbeat",
       R"({"id":"node-1","resources":{"cpu":{"total":1,"available":1},)"
       R"("memory":{"total":1024,"available":1024}}})",
       ""},
      {"GET", "/v1/agent/allocations?node=x&index=0&wait_ms=0", "", ""},
      {"POST", "/v1/agent/status", "{}", ""},
      {"POST", "/v1/agent/pulls", "{}", ""},
      {"POST", "/v1/agent/volumes", "{}", ""},
  };
  return routes;
}

}  // namespace mill::testing
