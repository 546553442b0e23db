#include "agent/node_client.h"

#include "model/json.h"
#include "model/node_protocol.h"
#include "net/http_client.h"

namespace mill::agent {

HttpNodeClient::HttpNodeClient(std::string server_address, std::string join_token, NodeTls tls)
    : address_(std::move(server_address)),
      join_token_(std::move(join_token)),
      tls_(std::move(tls)) {}

Result<std::string> HttpNodeClient::post(const std::string& path, const std::string& body) {
  return call("POST", path, body, std::chrono::seconds(10));
}

Result<std::string> HttpNodeClient::call(const std::string& method, const std::string& path,
                                         const std::string& body,
                                         std::chrono::milliseconds timeout) {
  auto req = net::json_request(method, path, body, timeout);
  if (!join_token_.empty()) req.headers.push_back({"Authorization", "Bearer " + join_token_});
  req.ca_pem = tls_.ca_pem;
  req.client_cert_pem = tls_.cert_pem;
  req.client_key_pem = tls_.key_pem;
  req.cancel = cancel_;
  auto res = MILL_TRY(net::http_request(address_, req));
  if (res.status == 200) return std::move(res.body);
  std::string message = res.body;
  if (auto o = model::parse_object(res.body, {"error"})) {
    message = model::get_string(*o, "error", false).value_or(res.body);
  }
  ErrorCode code = res.status == 404   ? ErrorCode::kNotFound
                   : res.status == 401 ? ErrorCode::kUnauthenticated
                   : res.status == 403 ? ErrorCode::kPermissionDenied
                   : res.status == 400 ? ErrorCode::kInvalidArgument
                                       : ErrorCode::kUnavailable;
  return make_error(code, path + ": " + std::to_string(res.status) + " " + message);
}

Result<model::RegisterResponse> HttpNodeClient::register_node(
    const model::RegisterRequest& request) {
  std::string text = MILL_TRY(post("/v1/agent/register", model::encode(request)));
  return model::decode_register_response(text);
}

Result<void> HttpNodeClient::heartbeat(const std::string& id, const model::Resources& resources) {
  MILL_TRY(post("/v1/agent/heartbeat", model::encode(model::Heartbeat{id, resources})));
  return {};
}

Result<model::DesiredAllocations> HttpNodeClient::allocations(const std::string& node,
                                                              int64_t index,
                                                              std::chrono::milliseconds wait) {
  std::string target =
      "/v1/agent/allocations?" + model::encode(model::AllocationsQuery{node, index, wait});
  std::string text = MILL_TRY(call("GET", target, {}, wait + std::chrono::seconds(10)));
  return model::decode_desired_allocations(text);
}

Result<void> HttpNodeClient::report(const std::string& node,
                                    const std::vector<model::AllocState>& states) {
  MILL_TRY(post("/v1/agent/status", model::encode(model::StatusReport{node, states})));
  return {};
}

Result<void> HttpNodeClient::report_pulls(const std::string& node, const std::string& deploy,
                                          const std::vector<model::PullReport>& reports) {
  MILL_TRY(post("/v1/agent/pulls", model::encode(model::PullsReport{node, deploy, reports})));
  return {};
}

Result<void> HttpNodeClient::report_volumes(const std::string& node,
                                            const std::vector<model::VolumeReport>& reports) {
  MILL_TRY(post("/v1/agent/volumes", model::encode(model::VolumesReport{node, reports})));
  return {};
}

Result<model::NodeRequests> HttpNodeClient::requests(const model::RequestsQuery& query) {
  std::string text = MILL_TRY(call("GET", "/v1/agent/requests?" + model::encode(query), {},
                                   query.wait + std::chrono::seconds(10)));
  return model::decode_node_requests(text);
}

Result<model::LogChunkAnswer> HttpNodeClient::send_log(const model::LogChunk& chunk) {
  std::string text = MILL_TRY(post("/v1/agent/logs", model::encode(chunk)));
  return model::decode_log_chunk_answer(text);
}

}  // namespace mill::agent
