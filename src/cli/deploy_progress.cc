#include "cli/deploy_progress.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <iterator>
#include <optional>

#include "cli/table.h"

namespace mill::cli {

namespace json = boost::json;

namespace {

std::string str(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

std::optional<double> num(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v || !v->is_number()) return std::nullopt;
  return v->to_number<double>();
}

std::string value_text(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_int64()) return std::to_string(v.as_int64());
  if (v.is_uint64()) return std::to_string(v.as_uint64());
  if (v.is_double()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v.as_double());
    return buf;
  }
  if (v.is_bool()) return v.as_bool() ? "true" : "false";
  return json::serialize(v);
}

// The spec sends `event: progress` with a "phase"; a server may also name the event
// after the phase. Either way this is the phase.
std::string phase_of(std::string_view name, const json::object& data) {
  if (name.empty() || name == "progress" || name == "message") return str(data, "phase");
  return std::string(name);
}

// Fields not already said, as "key=value" in parentheses: " (layers=3, bytes=1024)".
std::string other_fields(const json::object& data, std::initializer_list<std::string_view> said) {
  std::string out;
  for (const auto& kv : data) {
    bool skip = kv.key() == "phase" || kv.key() == "deploy";
    for (auto s : said) skip = skip || kv.key() == s;
    if (skip) continue;
    out += (out.empty() ? " (" : ", ") + std::string(kv.key()) + "=" + value_text(kv.value());
  }
  return out.empty() ? out : out + ")";
}

std::string pulling_text(const json::object& data) {
  std::string text = "pulling";
  std::string image = str(data, "image");
  text += image.empty() ? " images" : " " + image;
  if (auto s = str(data, "service"); !s.empty()) text += " for " + s;
  if (auto n = str(data, "node"); !n.empty()) text += " on " + n;
  return text + other_fields(data, {"image", "service", "node"});
}

std::string at_time(double now) {
  std::string t = format_seconds(now);
  return std::string(t.size() < 7 ? 7 - t.size() : 0, ' ') + t + "  ";
}

const char* const kSpinner[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};

}  // namespace

std::string describe_event(std::string_view name, const json::object& data) {
  std::string phase = phase_of(name, data);
  std::string service = str(data, "service");
  std::string alloc = str(data, "alloc");
  std::string who = service.empty() ? "" : service + ": ";
  std::string replica = alloc.empty() ? "replica" : alloc;
  if (phase == "started") {
    std::string id = str(data, "deploy");
    return (id.empty() ? "deploy" : "deploy " + id) + " started";
  }
  if (phase == "pulling") return pulling_text(data);
  if (phase == "scheduled") {
    std::string node = str(data, "node");
    return who + replica + " scheduled" + (node.empty() ? "" : " on " + node);
  }
  if (phase == "starting") return who + replica + " starting";
  if (phase == "healthy") {
    auto elapsed = num(data, "elapsed");
    return who + replica + " healthy" + (elapsed ? " after " + format_seconds(*elapsed) : "");
  }
  if (phase == "stopped") return who + (alloc.empty() ? "old replica" : alloc) + " stopped";
  if (phase == "done") {
    auto elapsed = num(data, "elapsed");
    auto* ok = data.if_contains("success");
    bool success = !ok || !ok->is_bool() || ok->as_bool();
    return std::string(success ? "done" : "finished without success") +
           (elapsed ? " in " + format_seconds(*elapsed) : "");
  }
  if (phase == "failed") {
    std::string reason = str(data, "reason");
    return "FAILED " + who + (reason.empty() ? "(no reason given)" : reason);
  }
  return (phase.empty() ? "event" : phase) + other_fields(data, {});
}

DeployProgress::Service& DeployProgress::service(const std::string& name) {
  for (auto& s : services_) {
    if (s.name == name) return s;
  }
  services_.push_back(Service{name, {}, {}, 0, {}});
  return services_.back();
}

// The replica an event is about: by allocation id when the event names one, else the
// first of the service's replicas still in one of the `from` states; a new row when
// none matches (an event that arrives without its predecessors still shows).
DeployProgress::Replica& DeployProgress::replica(Service& s, const std::string& alloc,
                                                 std::initializer_list<const char*> from,
                                                 double now) {
  for (auto& r : s.replicas) {
    if (!alloc.empty() && r.alloc == alloc) return r;
  }
  if (alloc.empty()) {
    for (auto& r : s.replicas) {
      for (const char* state : from) {
        if (r.state == state) return r;
      }
    }
  }
  s.replicas.push_back(Replica{alloc, "", "scheduled", now, -1});
  return s.replicas.back();
}

std::vector<std::string> DeployProgress::apply(const std::string& phase, const json::object& data,
                                               double now) {
  std::string name = str(data, "service");
  std::string alloc = str(data, "alloc");
  if (phase == "started") {
    if (auto id = str(data, "deploy"); !id.empty()) deploy_id_ = id;
  } else if (phase == "pulling") {
    std::string text = pulling_text(data);
    if (name.empty()) {
      pulling_ = text;
    } else {
      service(name).pulling = text;
    }
  } else if (phase == "scheduled" || phase == "starting" || phase == "healthy") {
    pulling_.clear();
    Service& s = service(name);
    s.pulling.clear();
    Replica& r = phase == "scheduled"  ? replica(s, alloc, {}, now)
                 : phase == "starting" ? replica(s, alloc, {"scheduled"}, now)
                                       : replica(s, alloc, {"starting", "scheduled"}, now);
    if (auto node = str(data, "node"); !node.empty()) r.node = node;
    if (phase == "scheduled") r.since = now;
    r.state = phase;
    if (phase == "healthy") r.healthy_after = num(data, "elapsed").value_or(now - r.since);
    if (alloc.empty() && !r.alloc.empty()) {
      // Say which replica it was when an earlier event named it.
      json::object named = data;
      named["alloc"] = r.alloc;
      return {at_time(now) + describe_event(phase, named)};
    }
  } else if (phase == "stopped") {
    Service& s = service(name);
    bool ours = false;
    for (auto& r : s.replicas) {
      if (!alloc.empty() && r.alloc == alloc) {
        r.state = "stopped";
        ours = true;
      }
    }
    if (!ours && alloc.empty()) ++s.stopped_unnamed;
    if (!ours && !alloc.empty()) s.stopped.push_back(alloc);
  } else if (phase == "done") {
    auto* ok = data.if_contains("success");
    bool success = !ok || !ok->is_bool() || ok->as_bool();
    outcome_ = success ? Outcome::kDone : Outcome::kFailed;
    if (!success) reason_ = "the server reported the deploy as unsuccessful";
    elapsed_ = num(data, "elapsed").value_or(-1);
    end_ = now;
  } else if (phase == "failed") {
    outcome_ = Outcome::kFailed;
    failed_service_ = name;
    reason_ = str(data, "reason");
    if (reason_.empty()) reason_ = "(no reason given)";
    end_ = now;
  }
  return {at_time(now) + describe_event(phase, data)};
}

std::vector<std::string> DeployProgress::feed(const net::SseEvent& event, double now) {
  if (outcome_ != Outcome::kRunning) return {};
  json::object data;
  boost::system::error_code ec;
  auto v = json::parse(event.data, ec);
  if (!ec && v.is_object()) data = std::move(v.as_object());
  std::string phase = phase_of(event.event, data);
  if (phase.empty()) return {};
  return apply(phase, data, now);
}

std::vector<std::string> DeployProgress::live_lines(double now, unsigned frame) const {
  std::string glyph = outcome_ == Outcome::kDone     ? "✓"
                      : outcome_ == Outcome::kFailed ? "✗"
                                                     : kSpinner[frame % std::size(kSpinner)];
  double shown = outcome_ == Outcome::kRunning ? now : elapsed_ >= 0 ? elapsed_ : end_;
  std::string header = glyph + " " + title_;
  if (!deploy_id_.empty()) header += " (" + deploy_id_ + ")";
  std::vector<std::string> lines{header + "  " + format_seconds(shown)};
  if (!pulling_.empty()) lines.push_back("  " + pulling_);

  // Replica columns line up across services: alloc, node, state, time.
  size_t widths[3] = {0, 0, 0};
  for (const auto& s : services_) {
    for (const auto& r : s.replicas) {
      widths[0] = std::max(widths[0], (r.alloc.empty() ? std::string("-") : r.alloc).size());
      widths[1] = std::max(widths[1], (r.node.empty() ? std::string("-") : r.node).size());
      widths[2] = std::max(widths[2], r.state.size());
    }
  }
  auto pad = [](const std::string& s, size_t w) {
    return s + std::string(w > s.size() ? w - s.size() : 0, ' ');
  };
  for (const auto& s : services_) {
    size_t healthy = 0;
    size_t placed = 0;
    for (const auto& r : s.replicas) {
      healthy += r.state == "healthy";
      placed += r.state != "stopped";
    }
    std::string line = "  " + s.name;
    if (!s.replicas.empty()) {
      line += "  " + std::to_string(healthy) + "/" + std::to_string(placed) + " healthy";
    }
    size_t old = s.stopped.size() + s.stopped_unnamed;
    if (old > 0) line += ", " + std::to_string(old) + " old stopped";
    if (s.replicas.empty() && !s.pulling.empty()) line += "  " + s.pulling;
    if (outcome_ == Outcome::kFailed && s.name == failed_service_) line += "  FAILED";
    lines.push_back(line);
    for (const auto& r : s.replicas) {
      std::string time;
      if (r.state == "healthy") {
        time = format_seconds(r.healthy_after);
      } else if (r.state != "stopped") {
        time = format_seconds((outcome_ == Outcome::kRunning ? now : end_) - r.since);
      }
      std::string row = "    " + pad(r.alloc.empty() ? "-" : r.alloc, widths[0]) + "  " +
                        pad(r.node.empty() ? "-" : r.node, widths[1]) + "  " +
                        pad(r.state, widths[2]) + "  " + time;
      while (!row.empty() && row.back() == ' ') row.pop_back();
      lines.push_back(row);
    }
  }
  return lines;
}

std::vector<std::string> DeployProgress::summary() const {
  std::string label = title_ + (deploy_id_.empty() ? "" : " (" + deploy_id_ + ")");
  double took = elapsed_ >= 0 ? elapsed_ : end_;
  switch (outcome_) {
    case Outcome::kDone:
      return {label + " done in " + format_seconds(took)};
    case Outcome::kFailed:
      return {label + " FAILED after " + format_seconds(took),
              "  " + (failed_service_.empty() ? "" : failed_service_ + ": ") + reason_};
    case Outcome::kRunning:
      break;
  }
  return {"the connection was lost before " + label +
              " finished; it may still be running on the server.",
          "  check on it with: " + (deploy_id_.empty() ? std::string("mill deploys")
                                                       : "mill deploy --status " + deploy_id_)};
}

int DeployProgress::exit_code() const {
  switch (outcome_) {
    case Outcome::kDone:
      return 0;
    case Outcome::kFailed:
      return 1;
    case Outcome::kRunning:
      break;
  }
  return 3;
}

}  // namespace mill::cli
