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

Unexpected bad(std::string message) {
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

// A time as milliseconds since the epoch; one a SystemTime cannot hold (it counts
// nanoseconds: about 292 years either way) is an error, not an overflow.
Result<SystemTime> get_time(const json::object& o, std::string_view key, bool required) {
  constexpr int64_t kMaxMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(SystemTime::duration::max()).count();
  int64_t ms = MILL_TRY(get_int(o, key, required));
  if (ms > kMaxMs || ms < -kMaxMs) return bad("field '" + std::string(key) + "' is out of range");
  return SystemTime(std::chrono::milliseconds(ms));
}

Result<std::chrono::milliseconds> get_ms(const json::object& o, std::string_view key,
                                         bool required) {
  return std::chrono::milliseconds(MILL_TRY(get_int(o, key, required)));
}

Result<std::map<std::string, std::string>> get_string_map(const json::object& o,
                                                          std::string_view key) {
  std::map<std::string, std::string> out;
  auto* v = o.if_contains(key);
  if (!v) return out;
  if (!v->is_object()) return bad("'" + std::string(key) + "' must be an object of strings");
  for (const auto& [k, val] : v->as_object()) {
    if (!val.is_string()) {
      return bad("'" + std::string(key) + "." + std::string(k) + "' must be a string");
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
    if (!s.health->command.empty()) {
      json::array cmd;
      for (const auto& c : s.health->command) cmd.emplace_back(c);
      o["health"].as_object()["command"] = std::move(cmd);
    }
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
  if (s.disk > 0) o["disk"] = s.disk;
  return o;
}

Result<Route> route_from_json(const json::value& v) {
  const auto& o = *MILL_TRY(as_object(v, "route", {"host", "path", "https_redirect", "tls"}));
  Route r;
  r.host = MILL_TRY(get_string(o, "host", true));
  r.path = MILL_TRY(get_string(o, "path", true));
  r.https_redirect = MILL_TRY(get_bool(o, "https_redirect", false));
  if (auto* t = o.if_contains("tls")) {
    const auto& tls = *MILL_TRY(as_object(*t, "tls", {"cert", "key"}));
    // One MILL_TRY a statement: returning from the second while the first's value sits
    // in a half-built aggregate would leak it (found by the node protocol fuzzer).
    RouteTls pem;
    pem.cert = MILL_TRY(get_string(tls, "cert", true));
    pem.key = MILL_TRY(get_string(tls, "key", true));
    r.tls = std::move(pem);
  }
  return r;
}

Result<HealthCheck> health_from_json(const json::value& v) {
  const auto& o = *MILL_TRY(as_object(
      v, "health", {"path", "command", "interval_ms", "timeout_ms", "deadline_ms", "passes"}));
  HealthCheck h;
  h.path = MILL_TRY(get_string(o, "path", false));
  h.command = MILL_TRY(get_strings(o, "command", false));
  h.interval = MILL_TRY(get_ms(o, "interval_ms", true));
  h.timeout = MILL_TRY(get_ms(o, "timeout_ms", true));
  h.deadline = MILL_TRY(get_ms(o, "deadline_ms", true));
  h.passes = MILL_TRY(get_int32(o, "passes", true));
  if (h.interval.count() <= 0 || h.timeout.count() <= 0 || h.passes < 1 ||
      (!h.command.empty() && (h.command.front().empty() || !h.path.empty()))) {
    return bad("'health' has a bad value");
  }
  return h;
}

Result<AllocVolume> volume_from_json(const json::value& v) {
  const auto& o = *MILL_TRY(as_object(v, "volume", {"name", "size", "path", "read_only"}));
  AllocVolume out;
  out.name = MILL_TRY(get_string(o, "name", true));
  out.size = MILL_TRY(get_int(o, "size", true));
  out.path = MILL_TRY(get_string(o, "path", true));
  out.read_only = MILL_TRY(get_bool(o, "read_only", false));
  return out;
}

Result<AllocSpec> spec_from_json(const json::value& v) {
  const auto& o = *MILL_TRY(as_object(v, "spec",
                                      {"image", "cpu", "memory", "init", "timeout_ms", "port",
                                       "command", "env", "health", "volumes", "route", "disk"}));
  AllocSpec s;
  s.image = MILL_TRY(get_string(o, "image", true));
  s.cpu = MILL_TRY(get_number(o, "cpu", true));
  s.memory = MILL_TRY(get_int(o, "memory", true));
  if (o.contains("timeout_ms")) s.timeout = MILL_TRY(get_ms(o, "timeout_ms", true));
  if (o.contains("port")) s.port = MILL_TRY(get_int32(o, "port", true));
  s.command = MILL_TRY(get_strings(o, "command", false));
  s.env = MILL_TRY(get_string_map(o, "env"));
  if (o.contains("init")) s.init = MILL_TRY(get_bool(o, "init", true));
  if (auto* h = o.if_contains("health")) s.health = MILL_TRY(health_from_json(*h));
  if (auto* r = o.if_contains("route")) s.route = MILL_TRY(route_from_json(*r));
  if (o.contains("disk")) {
    s.disk = MILL_TRY(get_int(o, "disk", true));
    if (s.disk < 0) return bad("'disk' must not be negative");
  }
  for (const auto& item : *MILL_TRY(get_array(o, "volumes", false))) {
    s.volumes.push_back(MILL_TRY(volume_from_json(item)));
  }
  return s;
}

// Decodes a whole document with one of the value-level decoders below.
template <class T>
Result<T> decode_text(std::string_view text, Result<T> (*from_json)(const json::value&)) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return bad("malformed JSON: " + ec.message());
  if (!v.is_object()) return bad("expected a JSON object");
  return from_json(v);
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

json::object to_json(const Allocation& a) {
  return json::object{{"id", a.id},
                      {"kind", a.kind},
                      {"group", a.group},
                      {"node", a.node},
                      {"ip", a.ip},
                      {"spec", spec_json(a.spec)},
                      {"desired", a.desired == DesiredState::kRun ? "run" : "stop"},
                      {"created_at_ms", to_ms(a.created_at)}};
}

Result<Allocation> allocation_from_json(const json::value& v) {
  const auto& o = *MILL_TRY(as_object(
      v, "allocation", {"id", "kind", "group", "node", "ip", "spec", "desired", "created_at_ms"}));
  Allocation a;
  a.id = MILL_TRY(get_string(o, "id", true));
  if (!is_valid_name(a.id)) return bad("invalid allocation id");
  a.kind = MILL_TRY(get_string(o, "kind", true));
  a.group = MILL_TRY(get_string(o, "group", false));
  a.node = MILL_TRY(get_string(o, "node", true));
  a.ip = MILL_TRY(get_string(o, "ip", false));
  auto* spec = o.if_contains("spec");
  if (!spec) return bad("missing field 'spec'");
  a.spec = MILL_TRY(spec_from_json(*spec));
  auto desired = MILL_TRY(get_string(o, "desired", true));
  if (desired != "run" && desired != "stop") return bad("'desired' must be \"run\" or \"stop\"");
  a.desired = desired == "run" ? DesiredState::kRun : DesiredState::kStop;
  a.created_at = MILL_TRY(get_time(o, "created_at_ms", false));
  return a;
}

// Stored records have always been printed by Boost's serializer (argument-dependent
// lookup picked it for a json::object): "cpu":5E-1. Messages that embed these use
// model::serialize instead ("cpu":0.5). Both read back the same.
std::string encode(const Allocation& a) { return json::serialize(to_json(a)); }

Result<Allocation> decode_allocation(std::string_view text) {
  return decode_text(text, &allocation_from_json);
}

json::object to_json(const AllocState& s) {
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
  return o;
}

Result<AllocState> alloc_state_from_json(const json::value& v) {
  const auto& o = *MILL_TRY(
      as_object(v, "allocation state",
                {"id", "status", "message", "pid", "exit_code", "started_at_ms", "finished_at_ms",
                 "pull_ms", "start_ms", "cpu_seconds", "memory_bytes", "restarts", "volume_used"}));
  AllocState s;
  s.id = MILL_TRY(get_string(o, "id", true));
  if (!is_valid_name(s.id)) return bad("invalid allocation id");
  auto status = parse_alloc_status(MILL_TRY(get_string(o, "status", true)));
  if (!status) return bad("unknown allocation status");
  s.status = *status;
  s.message = MILL_TRY(get_string(o, "message", false));
  s.pid = MILL_TRY(get_int32(o, "pid", false));
  if (o.contains("exit_code")) s.exit_code = MILL_TRY(get_int32(o, "exit_code", true));
  if (o.contains("started_at_ms")) s.started_at = MILL_TRY(get_time(o, "started_at_ms", true));
  if (o.contains("finished_at_ms")) s.finished_at = MILL_TRY(get_time(o, "finished_at_ms", true));
  s.pull_duration = MILL_TRY(get_ms(o, "pull_ms", false));
  s.start_duration = MILL_TRY(get_ms(o, "start_ms", false));
  s.cpu_seconds = MILL_TRY(get_number(o, "cpu_seconds", false));
  s.memory_bytes = MILL_TRY(get_int(o, "memory_bytes", false));
  s.restarts = MILL_TRY(get_int32(o, "restarts", false));
  if (auto* used = o.if_contains("volume_used")) {
    if (!used->is_object()) return bad("'volume_used' must be an object of integers");
    for (const auto& [name, bytes] : used->as_object()) {
      if (!bytes.is_int64()) return bad("bad volume_used");
      s.volume_used[std::string(name)] = bytes.as_int64();
    }
  }
  return s;
}

std::string encode(const AllocState& s) { return json::serialize(to_json(s)); }

Result<AllocState> decode_alloc_state(std::string_view text) {
  return decode_text(text, &alloc_state_from_json);
}

json::object to_json(const ServiceRoute& r) {
  json::array ups;
  for (const auto& u : r.upstreams) ups.emplace_back(u);
  return json::object{{"service", r.service}, {"route", route_json(r.route)}, {"upstreams", ups}};
}

Result<ServiceRoute> service_route_from_json(const json::value& v) {
  const auto& o = *MILL_TRY(as_object(v, "service route", {"service", "route", "upstreams"}));
  ServiceRoute r;
  r.service = MILL_TRY(get_string(o, "service", true));
  auto* route = o.if_contains("route");
  if (!route) return bad("missing field 'route'");
  r.route = MILL_TRY(route_from_json(*route));
  r.upstreams = MILL_TRY(get_strings(o, "upstreams", false));
  return r;
}

std::string encode(const ServiceRoute& r) { return json::serialize(to_json(r)); }

Result<ServiceRoute> decode_service_route(std::string_view text) {
  return decode_text(text, &service_route_from_json);
}

}  // namespace mill::model
