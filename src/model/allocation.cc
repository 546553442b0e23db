#include "model/allocation.h"

#include <array>
#include <boost/json.hpp>

#include "model/json.h"
#include "model/names.h"

namespace mill::model {

namespace {

constexpr std::array<std::pair<AllocStatus, std::string_view>, 11> kStatusNames{{
    {AllocStatus::kPending, "pending"},
    {AllocStatus::kPulling, "pulling"},
    {AllocStatus::kStarting, "starting"},
    {AllocStatus::kRunning, "running"},
    {AllocStatus::kHealthy, "healthy"},
    {AllocStatus::kStopping, "stopping"},
    {AllocStatus::kExited, "exited"},
    {AllocStatus::kTimeout, "timeout"},
    {AllocStatus::kKilled, "killed"},
    {AllocStatus::kFailed, "failed"},
    {AllocStatus::kLost, "lost"},
}};

int64_t to_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
SystemTime from_ms(int64_t ms) { return SystemTime(std::chrono::milliseconds(ms)); }

Result<std::vector<std::string>> get_strings(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  auto* v = o.if_contains(key);
  if (!v) return out;
  if (!v->is_array())
    return make_error(ErrorCode::kInvalidArgument,
                      "'" + std::string(key) + "' must be an array of strings");
  for (const auto& item : v->as_array()) {
    if (!item.is_string())
      return make_error(ErrorCode::kInvalidArgument,
                        "'" + std::string(key) + "' must be an array of strings");
    out.emplace_back(item.as_string());
  }
  return out;
}

Result<std::map<std::string, std::string>> get_string_map(const json::object& o,
                                                          std::string_view key) {
  std::map<std::string, std::string> out;
  auto* v = o.if_contains(key);
  if (!v) return out;
  if (!v->is_object())
    return make_error(ErrorCode::kInvalidArgument,
                      "'" + std::string(key) + "' must be an object of strings");
  for (const auto& [k, val] : v->as_object()) {
    if (!val.is_string()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "'" + std::string(key) + "." + std::string(k) + "' must be a string");
    }
    out.emplace(std::string(k), std::string(val.as_string()));
  }
  return out;
}

json::object route_json(const Route& route) {
  json::object r{
      {"host", route.host}, {"path", route.path}, {"https_redirect", route.https_redirect}};
  if (route.tls) r["tls"] = json::object{{"cert", route.tls->cert}, {"key", route.tls->key}};
  return r;
}

json::object spec_json(const AllocSpec& s) {
  json::object o{{"image", s.image}, {"cpu", s.cpu}, {"memory", s.memory}, {"init", s.init}};
  if (s.timeout) o["timeout_ms"] = s.timeout->count();
  if (s.port) o["port"] = *s.port;
  json::array cmd;
  for (const auto& c : s.command) cmd.emplace_back(c);
  o["command"] = std::move(cmd);
  json::object env;
  for (const auto& [k, v] : s.env) env[k] = v;
  o["env"] = std::move(env);
  if (s.health) {
    o["health"] = json::object{{"path", s.health->path},
                               {"interval_ms", s.health->interval.count()},
                               {"timeout_ms", s.health->timeout.count()},
                               {"deadline_ms", s.health->deadline.count()},
                               {"passes", s.health->passes}};
  }
  if (!s.volumes.empty()) {
    json::array vols;
    for (const auto& v : s.volumes) {
      vols.push_back(json::object{
          {"name", v.name}, {"size", v.size}, {"path", v.path}, {"read_only", v.read_only}});
    }
    o["volumes"] = std::move(vols);
  }
  if (s.route) o["route"] = route_json(*s.route);
  return o;
}

Result<Route> route_from_json(const json::value& v) {
  if (!v.is_object()) return make_error(ErrorCode::kInvalidArgument, "'route' must be an object");
  const auto& o = v.as_object();
  Route r;
  r.host = MILL_TRY(get_string(o, "host", true));
  r.path = MILL_TRY(get_string(o, "path", true));
  if (auto* b = o.if_contains("https_redirect"); b && b->is_bool()) r.https_redirect = b->as_bool();
  if (auto* t = o.if_contains("tls")) {
    if (!t->is_object()) return make_error(ErrorCode::kInvalidArgument, "'tls' must be an object");
    r.tls = RouteTls{MILL_TRY(get_string(t->as_object(), "cert", true)),
                     MILL_TRY(get_string(t->as_object(), "key", true))};
  }
  return r;
}

Result<HealthCheck> health_from_json(const json::value& v) {
  if (!v.is_object()) return make_error(ErrorCode::kInvalidArgument, "'health' must be an object");
  const auto& o = v.as_object();
  HealthCheck h;
  h.path = MILL_TRY(get_string(o, "path", false));
  h.interval = std::chrono::milliseconds(MILL_TRY(get_int(o, "interval_ms", true)));
  h.timeout = std::chrono::milliseconds(MILL_TRY(get_int(o, "timeout_ms", true)));
  h.deadline = std::chrono::milliseconds(MILL_TRY(get_int(o, "deadline_ms", true)));
  h.passes = static_cast<int>(MILL_TRY(get_int(o, "passes", true)));
  if (h.interval.count() <= 0 || h.timeout.count() <= 0 || h.passes < 1) {
    return make_error(ErrorCode::kInvalidArgument, "'health' has a bad value");
  }
  return h;
}

Result<AllocSpec> spec_from_json(const json::value& v) {
  if (!v.is_object()) return make_error(ErrorCode::kInvalidArgument, "'spec' must be an object");
  const auto& o = v.as_object();
  AllocSpec s;
  s.image = MILL_TRY(get_string(o, "image", true));
  s.cpu = MILL_TRY(get_number(o, "cpu", true));
  s.memory = MILL_TRY(get_int(o, "memory", true));
  if (o.contains("timeout_ms")) {
    s.timeout = std::chrono::milliseconds(MILL_TRY(get_int(o, "timeout_ms", true)));
  }
  if (o.contains("port")) s.port = static_cast<int>(MILL_TRY(get_int(o, "port", true)));
  s.command = MILL_TRY(get_strings(o, "command"));
  s.env = MILL_TRY(get_string_map(o, "env"));
  if (auto* i = o.if_contains("init"); i && i->is_bool()) s.init = i->as_bool();
  if (auto* h = o.if_contains("health")) s.health = MILL_TRY(health_from_json(*h));
  if (auto* r = o.if_contains("route")) s.route = MILL_TRY(route_from_json(*r));
  if (auto* vols = o.if_contains("volumes")) {
    if (!vols->is_array())
      return make_error(ErrorCode::kInvalidArgument, "'volumes' must be an array");
    for (const auto& item : vols->as_array()) {
      if (!item.is_object())
        return make_error(ErrorCode::kInvalidArgument, "a volume must be an object");
      const auto& vo = item.as_object();
      AllocVolume v;
      v.name = MILL_TRY(get_string(vo, "name", true));
      v.size = MILL_TRY(get_int(vo, "size", true));
      v.path = MILL_TRY(get_string(vo, "path", true));
      if (auto* r = vo.if_contains("read_only"); r && r->is_bool()) v.read_only = r->as_bool();
      s.volumes.push_back(std::move(v));
    }
  }
  return s;
}

}  // namespace

std::string_view to_string(AllocStatus status) {
  for (const auto& [s, name] : kStatusNames) {
    if (s == status) return name;
  }
  return "unknown";
}

std::optional<AllocStatus> parse_alloc_status(std::string_view text) {
  for (const auto& [s, name] : kStatusNames) {
    if (name == text) return s;
  }
  return std::nullopt;
}

bool is_terminal(AllocStatus status) {
  switch (status) {
    case AllocStatus::kExited:
    case AllocStatus::kTimeout:
    case AllocStatus::kKilled:
    case AllocStatus::kFailed:
    case AllocStatus::kLost:
      return true;
    default:
      return false;
  }
}

std::string encode(const Allocation& a) {
  json::object o{{"id", a.id},
                 {"kind", a.kind},
                 {"group", a.group},
                 {"node", a.node},
                 {"ip", a.ip},
                 {"spec", spec_json(a.spec)},
                 {"desired", a.desired == DesiredState::kRun ? "run" : "stop"},
                 {"created_at_ms", to_ms(a.created_at)}};
  return serialize(o);
}

Result<Allocation> decode_allocation(std::string_view text) {
  auto o = MILL_TRY(parse_object(
      text, {"id", "kind", "group", "node", "ip", "spec", "desired", "created_at_ms"}));
  Allocation a;
  a.id = MILL_TRY(get_string(o, "id", true));
  if (!is_valid_name(a.id)) return make_error(ErrorCode::kInvalidArgument, "invalid allocation id");
  a.kind = MILL_TRY(get_string(o, "kind", true));
  a.group = MILL_TRY(get_string(o, "group", false));
  a.node = MILL_TRY(get_string(o, "node", true));
  a.ip = MILL_TRY(get_string(o, "ip", false));
  auto* spec = o.if_contains("spec");
  if (!spec) return make_error(ErrorCode::kInvalidArgument, "missing field 'spec'");
  a.spec = MILL_TRY(spec_from_json(*spec));
  auto desired = MILL_TRY(get_string(o, "desired", true));
  if (desired != "run" && desired != "stop") {
    return make_error(ErrorCode::kInvalidArgument, "'desired' must be \"run\" or \"stop\"");
  }
  a.desired = desired == "run" ? DesiredState::kRun : DesiredState::kStop;
  a.created_at = from_ms(MILL_TRY(get_int(o, "created_at_ms", false)));
  return a;
}

std::string encode(const AllocState& s) {
  json::object o{{"id", s.id},
                 {"status", to_string(s.status)},
                 {"message", s.message},
                 {"pid", s.pid},
                 {"pull_ms", s.pull_duration.count()},
                 {"start_ms", s.start_duration.count()},
                 {"cpu_seconds", s.cpu_seconds},
                 {"memory_bytes", s.memory_bytes}};
  if (s.restarts) o["restarts"] = s.restarts;
  if (!s.volume_used.empty()) {
    json::object used;
    for (const auto& [name, bytes] : s.volume_used) used[name] = bytes;
    o["volume_used"] = std::move(used);
  }
  if (s.exit_code) o["exit_code"] = *s.exit_code;
  if (s.started_at) o["started_at_ms"] = to_ms(*s.started_at);
  if (s.finished_at) o["finished_at_ms"] = to_ms(*s.finished_at);
  return serialize(o);
}

Result<AllocState> decode_alloc_state(std::string_view text) {
  auto o = MILL_TRY(parse_object(
      text, {"id", "status", "message", "pid", "exit_code", "started_at_ms", "finished_at_ms",
             "pull_ms", "start_ms", "cpu_seconds", "memory_bytes", "restarts", "volume_used"}));
  AllocState s;
  s.id = MILL_TRY(get_string(o, "id", true));
  if (!is_valid_name(s.id)) return make_error(ErrorCode::kInvalidArgument, "invalid allocation id");
  auto status = parse_alloc_status(MILL_TRY(get_string(o, "status", true)));
  if (!status) return make_error(ErrorCode::kInvalidArgument, "unknown allocation status");
  s.status = *status;
  s.message = MILL_TRY(get_string(o, "message", false));
  s.pid = static_cast<int>(MILL_TRY(get_int(o, "pid", false)));
  if (o.contains("exit_code"))
    s.exit_code = static_cast<int>(MILL_TRY(get_int(o, "exit_code", true)));
  if (o.contains("started_at_ms"))
    s.started_at = from_ms(MILL_TRY(get_int(o, "started_at_ms", true)));
  if (o.contains("finished_at_ms")) {
    s.finished_at = from_ms(MILL_TRY(get_int(o, "finished_at_ms", true)));
  }
  s.pull_duration = std::chrono::milliseconds(MILL_TRY(get_int(o, "pull_ms", false)));
  s.start_duration = std::chrono::milliseconds(MILL_TRY(get_int(o, "start_ms", false)));
  s.cpu_seconds = MILL_TRY(get_number(o, "cpu_seconds", false));
  s.memory_bytes = MILL_TRY(get_int(o, "memory_bytes", false));
  s.restarts = static_cast<int>(MILL_TRY(get_int(o, "restarts", false)));
  if (auto* used = o.if_contains("volume_used"); used && used->is_object()) {
    for (const auto& [name, bytes] : used->as_object()) {
      if (!bytes.is_int64()) return make_error(ErrorCode::kInvalidArgument, "bad volume_used");
      s.volume_used[std::string(name)] = bytes.as_int64();
    }
  }
  return s;
}

std::string encode(const ServiceRoute& r) {
  json::array ups;
  for (const auto& u : r.upstreams) ups.emplace_back(u);
  return serialize(
      json::object{{"service", r.service}, {"route", route_json(r.route)}, {"upstreams", ups}});
}

Result<ServiceRoute> decode_service_route(std::string_view text) {
  auto o = MILL_TRY(parse_object(text, {"service", "route", "upstreams"}));
  ServiceRoute r;
  r.service = MILL_TRY(get_string(o, "service", true));
  auto* route = o.if_contains("route");
  if (!route) return make_error(ErrorCode::kInvalidArgument, "missing field 'route'");
  r.route = MILL_TRY(route_from_json(*route));
  r.upstreams = MILL_TRY(get_strings(o, "upstreams"));
  return r;
}

}  // namespace mill::model
