#include "agent/node_client.h"

#include <boost/json.hpp>

#include "model/json.h"
#include "net/http_client.h"

namespace mill::agent {

namespace json = boost::json;

HttpNodeClient::HttpNodeClient(std::string server_address, std::string join_token)
    : address_(std::move(server_address)), join_token_(std::move(join_token)) {}

Result<std::string> HttpNodeClient::post(const std::string& path, const std::string& body) {
  net::ClientRequest req;
  req.method = "POST";
  req.target = path;
  req.body = body;
  req.content_type = "application/json";
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
  auto o = MILL_TRY(model::parse_object(text, {"id", "heartbeat_interval_ms"}));
  RegisterResponse out;
  out.id = MILL_TRY(model::get_string(o, "id", true));
  int64_t ms = MILL_TRY(model::get_int(o, "heartbeat_interval_ms", false));
  if (ms > 0) out.heartbeat_interval = std::chrono::milliseconds(ms);
  return out;
}

Result<void> HttpNodeClient::heartbeat(const std::string& id, const model::Resources& resources) {
  json::object body{{"id", id}, {"resources", model::to_json(resources)}};
  MILL_TRY(post("/v1/agent/heartbeat", model::serialize(body)));
  return {};
}

}  // namespace mill::agent
