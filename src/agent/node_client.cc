#include "agent/node_client.h"

#include <boost/json.hpp>

#include "model/json.h"
#include "net/http_client.h"

namespace mill::agent {

namespace json = boost::json;

HttpNodeClient::HttpNodeClient(std::string server_address, std::string join_token)
    : address_(std::move(server_address)), join_token_(std::move(join_token)) {}

Result<std::string> HttpNodeClient::post(const std::string& path, const std::string& body) {
  return call("POST", path, body, std::chrono::seconds(10));
}

Result<std::string> HttpNodeClient::call(const std::string& method, const std::string& path,
                                         const std::string& body,
                                         std::chrono::milliseconds timeout) {
  auto req = net::json_request(method, path, body, timeout);
  req.headers.push_back({"Authorization", "Bearer " + join_token_});
  auto res = MILL_TRY(net::http_request(address_, req));
  if (res.status == 200) return std::move(res.body);
  std::string message = res.body;
  if (auto o = model::parse_object(res.body, {"error"})) {
    message = model::get_string(*o, "error", false).value_or(res.body);
  }
  ErrorCode code = res.status == 404   ? ErrorCode::kNotFound
                   : res.status == 401 ? ErrorCode::kUnauthenticated
                   : res.status == 400 ? ErrorCode::kInvalidArgument
                                       : ErrorCode::kUnavailable;
  return make_error(code, path + ": " + std::to_string(res.status) + " " + message);
}

Result<RegisterResponse> HttpNodeClient::register_node(const RegisterRequest& request) {
  json::object body{{"name", request.name},
                    {"address", request.address},
                    {"resources", model::to_json(request.resources)}};
  if (!request.id.empty()) body["id"] = request.id;
  std::string text = MILL_TRY(post("/v1/agent/register", model::serialize(body)));
  auto o = MILL_TRY(
      model::parse_object(text, {"id", "heartbeat_interval_ms", "subnet", "cluster_network"}));
  RegisterResponse out;
  out.id = MILL_TRY(model::get_string(o, "id", true));
  out.subnet = MILL_TRY(model::get_string(o, "subnet", false));
  out.cluster_network = MILL_TRY(model::get_string(o, "cluster_network", false));
  int64_t ms = MILL_TRY(model::get_int(o, "heartbeat_interval_ms", false));
  if (ms > 0) out.heartbeat_interval = std::chrono::milliseconds(ms);
  return out;
}

Result<void> HttpNodeClient::heartbeat(const std::string& id, const model::Resources& resources) {
  json::object body{{"id", id}, {"resources", model::to_json(resources)}};
  MILL_TRY(post("/v1/agent/heartbeat", model::serialize(body)));
  return {};
}

Result<DesiredAllocations> HttpNodeClient::allocations(const std::string& node, int64_t index,
                                                       std::chrono::milliseconds wait) {
  std::string target = "/v1/agent/allocations?node=" + node + "&index=" + std::to_string(index) +
                       "&wait_ms=" + std::to_string(wait.count());
  std::string text = MILL_TRY(call("GET", target, {}, wait + std::chrono::seconds(10)));
  auto o = MILL_TRY(model::parse_object(
      text, {"index", "allocations", "registries", "pulls", "remove_volumes", "routes"}));
  DesiredAllocations out;
  out.index = MILL_TRY(model::get_int(o, "index", true));
  auto* list = o.if_contains("allocations");
  if (!list || !list->is_array()) {
    return make_error(ErrorCode::kInvalidArgument, "allocations: not an array");
  }
  for (const auto& item : list->as_array()) {
    if (!item.is_object())
      return make_error(ErrorCode::kInvalidArgument, "allocation: not an object");
    const auto& o = item.as_object();
    auto* alloc = o.if_contains("alloc");
    if (!alloc) return make_error(ErrorCode::kInvalidArgument, "allocation: missing 'alloc'");
    DesiredAllocations::Item it;
    it.alloc = MILL_TRY(model::decode_allocation(model::serialize(*alloc)));
    auto status = model::parse_alloc_status(MILL_TRY(model::get_string(o, "status", false)));
    it.reported = status.value_or(model::AllocStatus::kPending);
    out.allocations.push_back(std::move(it));
  }
  if (auto* regs = o.if_contains("registries"); regs && regs->is_object()) {
    for (const auto& [host, v] : regs->as_object()) {
      if (!v.is_object()) continue;
      const auto& r = v.as_object();
      RegistryLogin login;
      login.username = MILL_TRY(model::get_string(r, "username", false));
      login.password = MILL_TRY(model::get_string(r, "password", false));
      if (auto* i = r.if_contains("insecure"); i && i->is_bool()) login.insecure = i->as_bool();
      out.registries[std::string(host)] = std::move(login);
    }
  }
  if (auto* p = o.if_contains("pulls"); p && p->is_object()) {
    model::ImagePulls pulls;
    pulls.deploy = MILL_TRY(model::get_string(p->as_object(), "deploy", true));
    if (auto* images = p->as_object().if_contains("images"); images && images->is_array()) {
      for (const auto& i : images->as_array()) {
        if (i.is_string()) pulls.images.emplace_back(i.as_string());
      }
    }
    out.pulls = std::move(pulls);
  }
  if (auto* rv = o.if_contains("remove_volumes"); rv && rv->is_array()) {
    for (const auto& n : rv->as_array()) {
      if (n.is_string()) out.remove_volumes.emplace_back(n.as_string());
    }
  }
  if (auto* rs = o.if_contains("routes"); rs && rs->is_array()) {
    for (const auto& r : rs->as_array()) {
      out.routes.push_back(MILL_TRY(model::decode_service_route(model::serialize(r))));
    }
  }
  return out;
}

Result<void> HttpNodeClient::report_volumes(const std::string& node,
                                            const std::vector<model::VolumeReport>& reports) {
  json::array list;
  for (const auto& r : reports) {
    json::object o{{"name", r.name}};
    if (!r.error.empty()) o["error"] = r.error;
    list.push_back(std::move(o));
  }
  json::object body{{"node", node}, {"volumes", std::move(list)}};
  MILL_TRY(post("/v1/agent/volumes", model::serialize(body)));
  return {};
}

Result<void> HttpNodeClient::report_pulls(const std::string& node, const std::string& deploy,
                                          const std::vector<model::PullReport>& reports) {
  json::array list;
  for (const auto& r : reports) {
    json::object o{{"image", r.image}};
    if (!r.error.empty()) o["error"] = r.error;
    list.push_back(std::move(o));
  }
  json::object body{{"node", node}, {"deploy", deploy}, {"images", std::move(list)}};
  MILL_TRY(post("/v1/agent/pulls", model::serialize(body)));
  return {};
}

Result<void> HttpNodeClient::report(const std::string& node,
                                    const std::vector<model::AllocState>& states) {
  json::array list;
  for (const auto& s : states) list.push_back(json::parse(model::encode(s)));
  json::object body{{"node", node}, {"allocations", std::move(list)}};
  MILL_TRY(post("/v1/agent/status", model::serialize(body)));
  return {};
}

}  // namespace mill::agent
