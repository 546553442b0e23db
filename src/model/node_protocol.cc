#include "model/node_protocol.h"

#include <boost/json.hpp>
#include <charconv>

#include "model/json.h"
#include "model/names.h"

namespace mill::model {

namespace {

constexpr int64_t kMaxHeartbeatMs = 24 * 3600 * 1000;

// Messages go through model::serialize (0.5, not Boost's 5E-1), as they always have; the
// qualified name keeps argument-dependent lookup from picking boost::json::serialize.

Unexpected bad(std::string message) {
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

// One item of the array field `list`: an object with only the `allowed` keys.
Result<const json::object*> item_object(const json::value& v, std::string_view list,
                                        std::initializer_list<std::string_view> allowed) {
  if (!v.is_object()) return bad("'" + std::string(list) + "' items must be objects");
  return as_object(v, list, allowed);
}

Result<Resources> get_resources(const json::object& o) {
  auto* v = o.if_contains("resources");
  if (!v) return bad("missing field 'resources'");
  return resources_from_json(*v);
}

// A query parameter as a whole decimal integer ("" when absent: 0).
Result<int64_t> query_int(std::string_view text, std::string_view name) {
  if (text.empty()) return int64_t{0};
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return bad("query parameter '" + std::string(name) + "' must be an integer");
  }
  return n;
}

// Both reports list their items as {"<key>": ..., "error": ...}, the error only when
// there is one.
template <class Report>
json::array report_items(const std::vector<Report>& reports, const char* key,
                         std::string Report::*field) {
  json::array list;
  for (const auto& r : reports) {
    json::object o{{key, r.*field}};
    if (!r.error.empty()) o["error"] = r.error;
    list.push_back(std::move(o));
  }
  return list;
}

template <class Report>
Result<std::vector<Report>> report_items_from_json(const json::object& o, std::string_view list,
                                                   const char* key, std::string Report::*field) {
  std::vector<Report> out;
  for (const auto& v : *MILL_TRY(get_array(o, list, true))) {
    const auto& item = *MILL_TRY(item_object(v, list, {key, "error"}));
    Report r;
    r.*field = MILL_TRY(get_string(item, key, true));
    r.error = MILL_TRY(get_string(item, "error", false));
    out.push_back(std::move(r));
  }
  return out;
}

json::object desired_item_json(const DesiredAllocations::Item& item) {
  return json::object{{"alloc", to_json(item.alloc)}, {"status", to_string(item.reported)}};
}

Result<DesiredAllocations::Item> desired_item_from_json(const json::value& v) {
  const auto& o = *MILL_TRY(item_object(v, "allocations", {"alloc", "status"}));
  DesiredAllocations::Item item;
  auto* alloc = o.if_contains("alloc");
  if (!alloc) return bad("missing field 'alloc'");
  item.alloc = MILL_TRY(allocation_from_json(*alloc));
  auto status = parse_alloc_status(MILL_TRY(get_string(o, "status", true)));
  if (!status) return bad("unknown allocation status");
  item.reported = *status;
  return item;
}

Result<std::map<std::string, RegistryLogin>> registries_from_json(const json::object& o) {
  std::map<std::string, RegistryLogin> out;
  auto* v = o.if_contains("registries");
  if (!v) return out;
  if (!v->is_object()) return bad("field 'registries' must be an object");
  for (const auto& [host, login] : v->as_object()) {
    std::string where = "registries." + std::string(host);
    const auto& r = *MILL_TRY(as_object(login, where, {"username", "password", "insecure"}));
    RegistryLogin l;
    l.username = MILL_TRY(get_string(r, "username", true));
    l.password = MILL_TRY(get_string(r, "password", true));
    l.insecure = MILL_TRY(get_bool(r, "insecure", true));
    out.emplace(std::string(host), std::move(l));
  }
  return out;
}

Result<ImagePulls> pulls_from_json(const json::value& v) {
  const auto& o = *MILL_TRY(as_object(v, "pulls", {"deploy", "images"}));
  ImagePulls pulls;
  pulls.deploy = MILL_TRY(get_string(o, "deploy", true));
  pulls.images = MILL_TRY(get_strings(o, "images", true));
  return pulls;
}

json::array string_array(const std::vector<std::string>& items) {
  json::array out;
  for (const auto& s : items) out.emplace_back(s);
  return out;
}

}  // namespace

std::string encode(const RegisterRequest& m) {
  json::object o{{"name", m.name}, {"address", m.address}, {"resources", to_json(m.resources)}};
  if (!m.id.empty()) o["id"] = m.id;
  if (!m.version.empty()) o["version"] = m.version;
  return model::serialize(o);
}

Result<RegisterRequest> decode_register_request(std::string_view text) {
  auto o = MILL_TRY(parse_object(text, {"id", "name", "address", "resources", "version"}));
  RegisterRequest m;
  m.id = MILL_TRY(get_string(o, "id", false));
  m.name = MILL_TRY(get_string(o, "name", true));
  m.address = MILL_TRY(get_string(o, "address", true));
  m.resources = MILL_TRY(get_resources(o));
  m.version = MILL_TRY(get_string(o, "version", false));
  if (m.version.size() > 64) return bad("field 'version' is longer than 64 characters");
  return m;
}

std::string encode(const RegisterResponse& m) {
  return model::serialize(json::object{{"id", m.id},
                                       {"heartbeat_interval_ms", m.heartbeat_interval.count()},
                                       {"subnet", m.subnet},
                                       {"cluster_network", m.cluster_network}});
}

Result<RegisterResponse> decode_register_response(std::string_view text) {
  auto o =
      MILL_TRY(parse_object(text, {"id", "heartbeat_interval_ms", "subnet", "cluster_network"}));
  RegisterResponse m;
  m.id = MILL_TRY(get_string(o, "id", true));
  int64_t ms = MILL_TRY(get_int(o, "heartbeat_interval_ms", true));
  if (ms < 1 || ms > kMaxHeartbeatMs) {
    return bad("field 'heartbeat_interval_ms' must be between 1 ms and a day");
  }
  m.heartbeat_interval = std::chrono::milliseconds(ms);
  m.subnet = MILL_TRY(get_string(o, "subnet", true));
  m.cluster_network = MILL_TRY(get_string(o, "cluster_network", true));
  return m;
}

std::string encode(const Heartbeat& m) {
  return model::serialize(json::object{{"id", m.id}, {"resources", to_json(m.resources)}});
}

Result<Heartbeat> decode_heartbeat(std::string_view text) {
  auto o = MILL_TRY(parse_object(text, {"id", "resources"}));
  Heartbeat m;
  m.id = MILL_TRY(get_string(o, "id", true));
  m.resources = MILL_TRY(get_resources(o));
  return m;
}

std::string encode(const AllocationsQuery& m) {
  return "node=" + m.node + "&index=" + std::to_string(m.index) +
         "&wait_ms=" + std::to_string(m.wait.count());
}

Result<AllocationsQuery> decode_allocations_query(std::string_view node, std::string_view index,
                                                  std::string_view wait_ms) {
  if (node.empty()) return bad("missing query parameter 'node'");
  if (!is_valid_name(node)) return bad("query parameter 'node' is not a node id");
  AllocationsQuery m;
  m.node = std::string(node);
  m.index = MILL_TRY(query_int(index, "index"));
  m.wait = std::chrono::milliseconds(MILL_TRY(query_int(wait_ms, "wait_ms")));
  return m;
}

std::string encode(const DesiredAllocations& m) {
  json::array items;
  for (const auto& item : m.allocations) items.push_back(desired_item_json(item));
  json::object registries;
  for (const auto& [host, r] : m.registries) {
    registries[host] =
        json::object{{"username", r.username}, {"password", r.password}, {"insecure", r.insecure}};
  }
  json::object o{
      {"index", m.index}, {"allocations", std::move(items)}, {"registries", std::move(registries)}};
  if (!m.remove_volumes.empty()) o["remove_volumes"] = string_array(m.remove_volumes);
  json::array routes;
  for (const auto& r : m.routes) routes.push_back(to_json(r));
  o["routes"] = std::move(routes);
  if (m.pulls) {
    o["pulls"] =
        json::object{{"deploy", m.pulls->deploy}, {"images", string_array(m.pulls->images)}};
  }
  return model::serialize(o);
}

Result<DesiredAllocations> decode_desired_allocations(std::string_view text) {
  auto o = MILL_TRY(parse_object(
      text, {"index", "allocations", "registries", "pulls", "remove_volumes", "routes"}));
  DesiredAllocations m;
  m.index = MILL_TRY(get_int(o, "index", true));
  for (const auto& v : *MILL_TRY(get_array(o, "allocations", true))) {
    m.allocations.push_back(MILL_TRY(desired_item_from_json(v)));
  }
  m.registries = MILL_TRY(registries_from_json(o));
  if (auto* p = o.if_contains("pulls")) m.pulls = MILL_TRY(pulls_from_json(*p));
  m.remove_volumes = MILL_TRY(get_strings(o, "remove_volumes", false));
  for (const auto& v : *MILL_TRY(get_array(o, "routes", true))) {
    m.routes.push_back(MILL_TRY(service_route_from_json(v)));
  }
  return m;
}

std::string encode(const StatusReport& m) {
  json::array list;
  for (const auto& s : m.allocations) list.push_back(to_json(s));
  return model::serialize(json::object{{"node", m.node}, {"allocations", std::move(list)}});
}

Result<StatusReport> decode_status_report(std::string_view text) {
  auto o = MILL_TRY(parse_object(text, {"node", "allocations"}));
  StatusReport m;
  m.node = MILL_TRY(get_string(o, "node", true));
  for (const auto& v : *MILL_TRY(get_array(o, "allocations", true))) {
    m.allocations.push_back(MILL_TRY(alloc_state_from_json(v)));
  }
  return m;
}

std::string encode(const PullsReport& m) {
  return model::serialize(
      json::object{{"node", m.node},
                   {"deploy", m.deploy},
                   {"images", report_items(m.images, "image", &PullReport::image)}});
}

Result<PullsReport> decode_pulls_report(std::string_view text) {
  auto o = MILL_TRY(parse_object(text, {"node", "deploy", "images"}));
  PullsReport m;
  m.node = MILL_TRY(get_string(o, "node", true));
  m.deploy = MILL_TRY(get_string(o, "deploy", true));
  m.images = MILL_TRY(report_items_from_json(o, "images", "image", &PullReport::image));
  return m;
}

std::string encode(const VolumesReport& m) {
  return model::serialize(json::object{
      {"node", m.node}, {"volumes", report_items(m.volumes, "name", &VolumeReport::name)}});
}

Result<VolumesReport> decode_volumes_report(std::string_view text) {
  auto o = MILL_TRY(parse_object(text, {"node", "volumes"}));
  VolumesReport m;
  m.node = MILL_TRY(get_string(o, "node", true));
  m.volumes = MILL_TRY(report_items_from_json(o, "volumes", "name", &VolumeReport::name));
  return m;
}

namespace {

// A request id or an agent session: lower-case hex, 1 to 64 digits.
bool is_handle(std::string_view s) {
  return !s.empty() && s.size() <= 64 &&
         s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

json::object log_request_json(const LogRequest& r) {
  json::object o{{"id", r.id}, {"follow", r.follow}};
  if (!r.alloc_id.empty()) o["alloc"] = r.alloc_id;
  if (!r.service.empty()) o["service"] = r.service;
  if (r.tail) o["tail"] = *r.tail;
  return o;
}

Result<LogRequest> log_request_from_json(const json::value& v) {
  const auto& o = *MILL_TRY(item_object(v, "logs", {"id", "alloc", "service", "tail", "follow"}));
  LogRequest r;
  r.id = MILL_TRY(get_string(o, "id", true));
  if (!is_handle(r.id)) return bad("'logs' item id must be 1 to 64 lower-case hex digits");
  r.alloc_id = MILL_TRY(get_string(o, "alloc", false));
  r.service = MILL_TRY(get_string(o, "service", false));
  if (r.alloc_id.empty() == r.service.empty()) {
    return bad("a 'logs' item names exactly one of 'alloc' and 'service'");
  }
  if (o.if_contains("tail")) {
    r.tail = MILL_TRY(get_int(o, "tail", true));
    if (*r.tail < 0) return bad("'logs' item tail must not be negative");
  }
  r.follow = MILL_TRY(get_bool(o, "follow", true));
  return r;
}

}  // namespace

std::string encode(const RequestsQuery& m) {
  return "node=" + m.node + "&session=" + m.session + "&wait_ms=" + std::to_string(m.wait.count());
}

Result<RequestsQuery> decode_requests_query(std::string_view node, std::string_view session,
                                            std::string_view wait_ms) {
  if (node.empty()) return bad("missing query parameter 'node'");
  if (!is_valid_name(node)) return bad("query parameter 'node' is not a node id");
  if (!is_handle(session)) {
    return bad("query parameter 'session' must be 1 to 64 lower-case hex digits");
  }
  RequestsQuery m;
  m.node = std::string(node);
  m.session = std::string(session);
  m.wait = std::chrono::milliseconds(MILL_TRY(query_int(wait_ms, "wait_ms")));
  return m;
}

std::string encode(const NodeRequests& m) {
  json::array logs;
  for (const auto& r : m.logs) logs.push_back(log_request_json(r));
  return model::serialize(
      json::object{{"logs", std::move(logs)}, {"cancel", string_array(m.cancel)}});
}

Result<NodeRequests> decode_node_requests(std::string_view text) {
  auto o = MILL_TRY(parse_object(text, {"logs", "cancel"}));
  NodeRequests m;
  for (const auto& v : *MILL_TRY(get_array(o, "logs", true))) {
    m.logs.push_back(MILL_TRY(log_request_from_json(v)));
  }
  m.cancel = MILL_TRY(get_strings(o, "cancel", true));
  return m;
}

std::string encode(const LogChunk& m) {
  json::object o{{"node", m.node}, {"request", m.request}, {"data", m.data}};
  if (m.status != 0) {
    o["status"] = m.status;
    o["content_type"] = m.content_type;
  }
  if (m.whole) o["whole"] = true;
  if (m.end) o["end"] = true;
  return model::serialize(o);
}

Result<LogChunk> decode_log_chunk(std::string_view text) {
  auto o = MILL_TRY(
      parse_object(text, {"node", "request", "status", "content_type", "whole", "data", "end"}));
  LogChunk m;
  m.node = MILL_TRY(get_string(o, "node", true));
  if (!is_valid_name(m.node)) return bad("field 'node' is not a node id");
  m.request = MILL_TRY(get_string(o, "request", true));
  if (!is_handle(m.request)) return bad("field 'request' must be 1 to 64 lower-case hex digits");
  if (o.if_contains("status")) {
    m.status = MILL_TRY(get_int32(o, "status", true));
    if (m.status < 100 || m.status > 599) return bad("field 'status' must be 100 to 599");
    m.content_type = MILL_TRY(get_string(o, "content_type", true));
  } else if (o.if_contains("content_type")) {
    return bad("field 'content_type' comes only with 'status'");
  }
  if (o.if_contains("whole")) {
    m.whole = MILL_TRY(get_bool(o, "whole", true));
    if (!m.whole) return bad("field 'whole' is true or absent");
    if (m.status == 0) return bad("a whole answer has a 'status'");
  }
  m.data = MILL_TRY(get_string(o, "data", true));
  if (o.if_contains("end")) {
    m.end = MILL_TRY(get_bool(o, "end", true));
    if (!m.end) return bad("field 'end' is true or absent");
  }
  return m;
}

std::string encode(const LogChunkAnswer& m) {
  return model::serialize(json::object{{"more", m.more}});
}

Result<LogChunkAnswer> decode_log_chunk_answer(std::string_view text) {
  auto o = MILL_TRY(parse_object(text, {"more"}));
  return LogChunkAnswer{MILL_TRY(get_bool(o, "more", true))};
}

}  // namespace mill::model
