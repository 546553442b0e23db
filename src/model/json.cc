#include "model/json.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>

namespace mill::model {
namespace {

Unexpected bad(std::string message) {
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

Result<void> check_fields(const json::object& obj, std::initializer_list<std::string_view> allowed,
                          std::string_view where) {
  for (const auto& kv : obj) {
    bool known = false;
    for (auto a : allowed) known = known || kv.key() == a;
    if (known) continue;
    std::string message = "unknown field '" + std::string(kv.key()) + "'";
    if (!where.empty()) message += " in '" + std::string(where) + "'";
    return bad(std::move(message));
  }
  return {};
}

}  // namespace

Result<json::object> parse_object(std::string_view text,
                                  std::initializer_list<std::string_view> allowed) {
  return parse_object(text, allowed, {});
}

Result<json::object> parse_object(std::string_view text,
                                  std::initializer_list<std::string_view> allowed,
                                  json::storage_ptr storage) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, std::move(storage));
  if (ec) return bad("malformed JSON: " + ec.message());
  if (!v.is_object()) return bad("expected a JSON object");
  MILL_TRY(check_fields(v.as_object(), allowed, ""));
  return std::move(v.as_object());
}

Result<const json::object*> as_object(const json::value& v, std::string_view where,
                                      std::initializer_list<std::string_view> allowed) {
  if (!v.is_object()) return bad("'" + std::string(where) + "' must be an object");
  MILL_TRY(check_fields(v.as_object(), allowed, where));
  return &v.as_object();
}

Result<const json::array*> get_array(const json::object& obj, std::string_view key, bool required) {
  static const json::array kEmpty;
  auto* v = obj.if_contains(key);
  if (!v) {
    if (required) return bad("missing field '" + std::string(key) + "'");
    return &kEmpty;
  }
  if (!v->is_array()) return bad("field '" + std::string(key) + "' must be an array");
  return &v->as_array();
}

Result<std::string> get_string(const json::object& obj, std::string_view key, bool required) {
  auto* v = obj.if_contains(key);
  if (!v) {
    if (required) return bad("missing field '" + std::string(key) + "'");
    return std::string();
  }
  if (!v->is_string()) return bad("field '" + std::string(key) + "' must be a string");
  return std::string(v->as_string());
}

Result<double> get_number(const json::object& obj, std::string_view key, bool required) {
  auto* v = obj.if_contains(key);
  if (!v) {
    if (required) return bad("missing field '" + std::string(key) + "'");
    return 0.0;
  }
  // The parser reads a number too large for a double (1e400) as infinity.
  if (v->is_double() && std::isfinite(v->as_double())) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  return bad("field '" + std::string(key) + "' must be a finite number");
}

Result<int64_t> get_int(const json::object& obj, std::string_view key, bool required) {
  auto* v = obj.if_contains(key);
  if (!v) {
    if (required) return bad("missing field '" + std::string(key) + "'");
    return int64_t{0};
  }
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v->as_uint64());
  }
  return bad("field '" + std::string(key) + "' must be an integer");
}

Result<int> get_int32(const json::object& obj, std::string_view key, bool required) {
  int64_t n = MILL_TRY(get_int(obj, key, required));
  if (n < INT32_MIN || n > INT32_MAX)
    return bad("field '" + std::string(key) + "' is out of range");
  return static_cast<int>(n);
}

Result<bool> get_bool(const json::object& obj, std::string_view key, bool required) {
  auto* v = obj.if_contains(key);
  if (!v) {
    if (required) return bad("missing field '" + std::string(key) + "'");
    return false;
  }
  if (!v->is_bool()) return bad("field '" + std::string(key) + "' must be true or false");
  return v->as_bool();
}

Result<std::vector<std::string>> get_strings(const json::object& obj, std::string_view key,
                                             bool required) {
  std::vector<std::string> out;
  auto* v = obj.if_contains(key);
  if (!v) {
    if (required) return bad("missing field '" + std::string(key) + "'");
    return out;
  }
  auto must = [&] { return bad("field '" + std::string(key) + "' must be an array of strings"); };
  if (!v->is_array()) return must();
  for (const auto& item : v->as_array()) {
    if (!item.is_string()) return must();
    out.emplace_back(item.as_string());
  }
  return out;
}

namespace {

void write_value(std::string& out, const json::value& v);

void write_double(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";  // JSON has no NaN or Infinity
    return;
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);  // shortest round-trip: 0.3, 2
  out.append(buf, ec == std::errc() ? end : buf);
}

void write_value(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      break;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      break;
    case json::kind::int64:
      out += std::to_string(v.get_int64());
      break;
    case json::kind::uint64:
      out += std::to_string(v.get_uint64());
      break;
    case json::kind::double_:
      write_double(out, v.get_double());
      break;
    case json::kind::string:
      out += json::serialize(v.get_string());  // Boost's escaping
      break;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ',';
        first = false;
        write_value(out, e);
      }
      out += ']';
      break;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ',';
        first = false;
        out += json::serialize(json::string_view(kv.key()));
        out += ':';
        write_value(out, kv.value());
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string serialize(const json::value& v) {
  std::string out;
  write_value(out, v);
  return out;
}

json::object to_json(const Resources& r) {
  json::object cpu{{"total", r.cpu_total}, {"available", r.cpu_available}};
  json::object mem{{"total", r.memory_total}, {"available", r.memory_available}};
  json::object out{{"cpu", std::move(cpu)}, {"memory", std::move(mem)}};
  if (r.disk_total >= 0) {
    out["disk"] = json::object{{"total", r.disk_total}, {"available", r.disk_available}};
  }
  return out;
}

Result<Resources> resources_from_json(const json::value& v) {
  if (!v.is_object()) return bad("resources must be an object");
  const auto& o = v.as_object();
  MILL_TRY(check_fields(o, {"cpu", "memory", "disk"}, "resources"));
  Resources r;
  for (const char* part : {"cpu", "memory", "disk"}) {
    auto* p = o.if_contains(part);
    if (!p && std::string_view(part) == "disk") continue;  // optional: an agent may not say
    if (!p || !p->is_object()) return bad(std::string("resources.") + part + " must be an object");
    for (const auto& kv : p->as_object()) {
      if (kv.key() != "total" && kv.key() != "available") {
        return bad("unknown field '" + std::string(kv.key()) + "' in resources." + part);
      }
    }
  }
  const auto& cpu = o.at("cpu").as_object();
  const auto& mem = o.at("memory").as_object();
  r.cpu_total = MILL_TRY(get_number(cpu, "total", true));
  r.cpu_available = MILL_TRY(get_number(cpu, "available", true));
  r.memory_total = MILL_TRY(get_int(mem, "total", true));
  r.memory_available = MILL_TRY(get_int(mem, "available", true));
  if (const auto* disk = o.if_contains("disk")) {
    r.disk_total = MILL_TRY(get_int(disk->as_object(), "total", true));
    r.disk_available = MILL_TRY(get_int(disk->as_object(), "available", true));
    if (r.disk_total < 0 || r.disk_available < 0) return bad("resources must not be negative");
  }
  if (r.cpu_total < 0 || r.cpu_available < 0 || r.memory_total < 0 || r.memory_available < 0 ||
      !std::isfinite(r.cpu_total) || !std::isfinite(r.cpu_available)) {
    return bad("resources must not be negative");
  }
  return r;
}

json::object to_json(const Node& node) {
  json::object o;
  o["id"] = node.id;
  o["name"] = node.name;
  o["address"] = node.address;
  o["status"] = to_string(node.status);
  // total and available as the agent reports them (available: measured idle), then the
  // two named figures: used (measured) and allocatable (capacity minus reserved, what
  // placement counts).
  const Resources& r = node.resources;
  o["cpu"] = json::object{{"total", r.cpu_total},
                          {"available", r.cpu_available},
                          {"used", round_cores(used_cpu(node))},
                          {"reserved", round_cores(node.load.cpu)},
                          {"allocatable", round_cores(allocatable_cpu(node))}};
  o["memory"] = json::object{{"total", r.memory_total},
                             {"available", r.memory_available},
                             {"used", used_memory(node)},
                             {"reserved", node.load.memory},
                             {"allocatable", allocatable_memory(node)}};
  // Disk: room for allocations' disks (free plus what they hold, less a reserve), what
  // is free on the data dir's filesystem, what live allocations reserve, and the rest.
  if (r.disk_total >= 0) {
    o["disk"] = json::object{{"total", r.disk_total},
                             {"available", r.disk_available},
                             {"reserved", node.load.disk},
                             {"allocatable", allocatable_disk(node)}};
  }
  o["allocations"] = node.load.allocations;
  o["registered_at"] = format_rfc3339(node.registered_at);
  if (node.last_heartbeat) {
    o["last_heartbeat"] = format_rfc3339(*node.last_heartbeat);
  } else {
    o["last_heartbeat"] = nullptr;
  }
  if (node.since_heartbeat) {
    // Tenths of a second: enough to see a heartbeat is late, no false precision.
    auto tenths = node.since_heartbeat->count() / 100;
    o["seconds_since_heartbeat"] = static_cast<double>(tenths) / 10;
  } else {
    o["seconds_since_heartbeat"] = nullptr;
  }
  o["version"] = node.version;
  if (node.draining) {
    json::object drain{{"services", node.drain_services}, {"tasks", node.drain_tasks}};
    if (node.drain_deadline) drain["deadline"] = format_rfc3339(*node.drain_deadline);
    if (node.drain_force) drain["force"] = true;
    o["drain"] = std::move(drain);
  }
  return o;
}

}  // namespace mill::model
