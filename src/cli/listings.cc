#include "cli/listings.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <sstream>

#include "cli/deploy_progress.h"
#include "cli/table.h"

namespace mill::cli {

namespace json = boost::json;

namespace {

const json::object kEmpty;
const json::value kNull;

const json::object& obj(const json::value& v) { return v.is_object() ? v.as_object() : kEmpty; }

const json::value& field(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v ? *v : kNull;
}

const json::array* array_of(const json::value& v) { return v.is_array() ? &v.as_array() : nullptr; }

std::string str(const json::object& o, std::string_view key, std::string fallback = "-") {
  auto* v = o.if_contains(key);
  return v && v->is_string() && !v->as_string().empty() ? std::string(v->as_string()) : fallback;
}

std::optional<double> num(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v || !v->is_number()) return std::nullopt;
  return v->to_number<double>();
}

// Bytes as "1.5G"; a size the server already wrote as text ("10G") stays as it is.
std::string size_text(const json::object& o, std::string_view key) {
  if (auto n = num(o, key)) return format_bytes(*n);
  return str(o, key);
}

std::string age_text(const json::object& o, std::string_view key, SystemTime now) {
  auto t = parse_rfc3339(str(o, key, ""));
  return t ? format_age(*t, now) : "-";
}

// The run time of something with started_at and maybe finished_at (else until now).
std::string duration_text(const json::object& o, SystemTime now) {
  auto started = parse_rfc3339(str(o, "started_at", ""));
  if (!started) return "-";
  auto finished = parse_rfc3339(str(o, "finished_at", ""));
  return format_seconds(std::chrono::duration<double>(finished.value_or(now) - *started).count());
}

// Prints a table indented by `indent` spaces.
void print_indented(const Table& t, const std::string& indent, std::ostream& out) {
  std::ostringstream text;
  t.print(text);
  std::istringstream lines(text.str());
  for (std::string line; std::getline(lines, line);) out << indent << line << "\n";
}

}  // namespace

std::optional<SystemTime> parse_rfc3339(std::string_view text) {
  std::string s(text);
  int y, mo, d, h, mi, sec, used = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
      used != 19) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  auto t = SystemTime(std::chrono::seconds(::timegm(&tm)));
  size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    double scale = 0.1;
    double fraction = 0;
    for (++i; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
      fraction += (s[i] - '0') * scale;
      scale /= 10;
    }
    t += std::chrono::duration_cast<SystemTime::duration>(std::chrono::duration<double>(fraction));
  }
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z') && i + 1 == s.size()) return t;
  int oh, om;
  if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') &&
      std::sscanf(s.c_str() + i + 1, "%2d:%2d", &oh, &om) == 2) {
    auto offset = std::chrono::hours(oh) + std::chrono::minutes(om);
    return s[i] == '+' ? t - offset : t + offset;
  }
  return std::nullopt;
}

std::string format_age(SystemTime then, SystemTime now) {
  long s = std::chrono::duration_cast<std::chrono::seconds>(now - then).count();
  if (s < 0) s = 0;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

void print_services(const json::value& services, SystemTime now, std::ostream& out) {
  const json::array* list = array_of(services);
  if (!list || list->empty()) {
    out << "no services (run some with `mill deploy FILE`)\n";
    return;
  }
  bool first = true;
  for (const auto& item : *list) {
    const auto& s = obj(item);
    const auto& replicas = obj(field(s, "replicas"));
    auto count = [&](std::string_view k) {
      auto n = num(replicas, k);
      return n ? std::to_string(static_cast<long>(*n)) : std::string("?");
    };
    if (!first) out << "\n";
    first = false;
    Table head({"NAME", "IMAGE", "REPLICAS"});
    head.add({str(s, "name"), str(s, "image"), count("healthy") + "/" + count("desired")});
    head.print(out);

    const json::array* allocs = array_of(field(s, "allocations"));
    if (!allocs || allocs->empty()) continue;
    bool restarts = false;
    for (const auto& a : *allocs) restarts = restarts || obj(a).contains("restarts");
    std::vector<std::string> headers{"ID", "NODE", "STATUS", "ADDRESS", "CPU", "MEMORY", "AGE"};
    if (restarts) headers.push_back("RESTARTS");
    Table t(std::move(headers));
    for (const auto& v : *allocs) {
      const auto& a = obj(v);
      auto cpu = num(a, "cpu");
      auto memory = num(a, "memory");
      std::vector<std::string> row{str(a, "id"),
                                   str(a, "node"),
                                   str(a, "status"),
                                   str(a, "address"),
                                   cpu ? format_cores(*cpu) : "-",
                                   memory ? format_bytes(*memory) : "-",
                                   age_text(a, "started_at", now)};
      if (restarts) {
        auto n = num(a, "restarts");
        row.push_back(n ? std::to_string(static_cast<long>(*n)) : "-");
      }
      t.add(std::move(row));
      if (auto message = str(a, "message", ""); !message.empty()) t.add_note("  ↳ " + message);
    }
    print_indented(t, "  ", out);
  }
}

void print_volumes(const json::value& volumes, std::ostream& out) {
  const json::array* list = array_of(volumes);
  if (!list || list->empty()) {
    out << "no volumes\n";
    return;
  }
  Table t({"NAME", "NODE", "SIZE", "USED", "SERVICE"});
  for (const auto& item : *list) {
    const auto& v = obj(item);
    t.add({str(v, "name"), str(v, "node"), size_text(v, "size"), size_text(v, "used"),
           str(v, "service")});
  }
  t.print(out);
}

void print_deploys(const json::value& deploys, SystemTime now, std::ostream& out) {
  const json::array* list = array_of(deploys);
  if (!list || list->empty()) {
    out << "no deploys yet\n";
    return;
  }
  Table t({"ID", "STARTED", "DURATION", "OUTCOME", "REASON"});
  for (const auto& item : *list) {
    const auto& d = obj(item);
    t.add({str(d, "id"), str(d, "started_at"), duration_text(d, now), str(d, "status"),
           str(d, "reason", "")});
  }
  t.print(out);
}

std::string volume_in_use_text(std::string_view name, std::string_view body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  const auto& doc = ec ? kEmpty : obj(v);
  std::string service = str(doc, "service", "");
  if (service.empty()) {
    std::string error = str(doc, "error", std::string(body));
    return "volume " + std::string(name) + " is in use: " + error +
           "\n  remove the service using it from the config and deploy, then try again.";
  }
  return "volume " + std::string(name) + " is in use by service " + service + "\n  remove " +
         service + " from the config (or its volume mount) and deploy, " + "then try again.";
}

void print_deploy_record(const json::value& record, SystemTime now, std::ostream& out) {
  const auto& d = obj(record);
  auto line = [&](std::string_view k, const std::string& v) {
    if (!v.empty() && v != "-") out << k << std::string(10 - k.size(), ' ') << v << "\n";
  };
  line("ID", str(d, "id"));
  line("Outcome", str(d, "status"));
  line("Reason", str(d, "reason"));
  line("Started", str(d, "started_at"));
  line("Finished", str(d, "finished_at"));
  line("Duration", duration_text(d, now));
  const json::array* events = array_of(field(d, "events"));
  if (!events || events->empty()) return;
  out << "\nEvents:\n";
  for (const auto& item : *events) {
    const auto& e = obj(item);
    // data is the event's JSON object, or that object still as text.
    json::object data;
    if (auto* v = e.if_contains("data"); v && v->is_object()) {
      data = v->as_object();
    } else if (v && v->is_string()) {
      boost::system::error_code ec;
      auto parsed = json::parse(v->as_string(), ec);
      if (!ec && parsed.is_object()) data = std::move(parsed.as_object());
    }
    out << "  " << describe_event(str(e, "event", ""), data) << "\n";
  }
}

}  // namespace mill::cli
