#include "server/deploy_record.h"

#include <boost/json.hpp>

namespace mill::server {

namespace json = boost::json;

namespace {

int64_t to_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

SystemTime from_ms(int64_t ms) { return SystemTime(std::chrono::milliseconds(ms)); }

std::string str(const json::object& o, std::string_view k) {
  auto* f = o.if_contains(k);
  return f && f->is_string() ? std::string(f->as_string()) : std::string();
}

int64_t num(const json::object& o, std::string_view k) {
  auto* f = o.if_contains(k);
  return f && f->is_int64() ? f->as_int64() : 0;
}

bool flag(const json::object& o, std::string_view k) {
  auto* f = o.if_contains(k);
  return f && f->is_bool() && f->as_bool();
}

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

std::vector<std::string> strings(const json::object& o, std::string_view k) {
  std::vector<std::string> out;
  if (auto* a = o.if_contains(k); a && a->is_array()) {
    for (const auto& s : a->as_array()) {
      if (s.is_string()) out.emplace_back(s.as_string());
    }
  }
  return out;
}

json::array tracked(const std::vector<Rollout::Tracked>& list) {
  json::array a;
  for (const auto& t : list) {
    a.push_back(json::object{{"id", t.id},
                             {"since_ms", to_ms(t.since)},
                             {"starting", t.starting},
                             {"healthy", t.healthy},
                             {"stopped", t.stopped},
                             {"silent", t.silent}});
  }
  return a;
}

std::vector<Rollout::Tracked> tracked(const json::object& o, std::string_view k) {
  std::vector<Rollout::Tracked> out;
  if (auto* a = o.if_contains(k); a && a->is_array()) {
    for (const auto& e : a->as_array()) {
      if (!e.is_object()) continue;
      const auto& t = e.as_object();
      out.push_back({str(t, "id"), from_ms(num(t, "since_ms")), flag(t, "starting"),
                     flag(t, "healthy"), flag(t, "stopped"), flag(t, "silent")});
    }
  }
  return out;
}

json::object encode_rollout(const Rollout::State& s) {
  return json::object{{"phase", to_string(s.phase)},
                      {"want", s.limits.want},
                      {"parallel", s.limits.parallel},
                      {"deadline_ms", s.limits.deadline.count()},
                      {"stop_wait_ms", s.limits.stop_wait.count()},
                      {"stop_first", s.limits.stop_first},
                      {"kept", strings(s.kept)},
                      {"old", strings(s.old)},
                      {"fresh", tracked(s.fresh)},
                      {"restored", tracked(s.restored)},
                      {"stopping", tracked(s.stopping)},
                      {"replaced", s.replaced},
                      {"reason", s.reason}};
}

std::optional<Rollout::State> decode_rollout(const json::object& o) {
  auto phase = parse_rollout_phase(str(o, "phase"));
  if (!phase) return std::nullopt;
  Rollout::State s;
  s.phase = *phase;
  s.limits.want = static_cast<int>(num(o, "want"));
  s.limits.parallel = static_cast<int>(num(o, "parallel"));
  s.limits.deadline = std::chrono::milliseconds(num(o, "deadline_ms"));
  s.limits.stop_wait = std::chrono::milliseconds(num(o, "stop_wait_ms"));
  if (const auto* f = o.if_contains("stop_first"); f && f->is_bool()) {
    s.limits.stop_first = f->as_bool();  // absent in records from before it existed
  }
  s.kept = strings(o, "kept");
  s.old = strings(o, "old");
  s.fresh = tracked(o, "fresh");
  s.restored = tracked(o, "restored");
  s.stopping = tracked(o, "stopping");
  s.replaced = static_cast<int>(num(o, "replaced"));
  s.reason = str(o, "reason");
  return s;
}

}  // namespace

std::string encode_record(const DeployRecord& r) {
  json::array events;
  for (const auto& e : r.events) {
    boost::system::error_code ec;
    events.push_back(json::object{{"event", e.event}, {"data", json::parse(e.data, ec)}});
  }
  json::object o{{"id", r.id},
                 {"kind", r.kind},
                 {"status", r.status},
                 {"service", r.service},
                 {"reason", r.reason},
                 {"events", std::move(events)},
                 {"started_at_ms", to_ms(r.started_at)}};
  if (r.finished_at) o["finished_at_ms"] = to_ms(*r.finished_at);
  if (r.status == "running") {
    const auto& p = r.progress;
    json::object progress{{"text", p.text},
                          {"file", p.file},
                          {"restart", p.restart},
                          {"stage", p.stage},
                          {"services", strings(p.services)},
                          {"next", static_cast<int64_t>(p.next)},
                          {"old_alloc", p.old_alloc},
                          {"removed", strings(p.removed)}};
    if (p.rollout) progress["rollout"] = encode_rollout(*p.rollout);
    o["progress"] = std::move(progress);
  }
  return json::serialize(o);
}

std::optional<DeployRecord> decode_record(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  DeployRecord r;
  r.id = str(o, "id");
  r.kind = str(o, "kind");
  r.status = str(o, "status");
  r.service = str(o, "service");
  r.reason = str(o, "reason");
  r.started_at = from_ms(num(o, "started_at_ms"));
  if (auto* t = o.if_contains("finished_at_ms"); t && t->is_int64()) {
    r.finished_at = from_ms(t->as_int64());
  }
  if (auto* es = o.if_contains("events"); es && es->is_array()) {
    for (const auto& e : es->as_array()) {
      if (!e.is_object()) continue;
      const auto& eo = e.as_object();
      auto* name = eo.if_contains("event");
      auto* data = eo.if_contains("data");
      if (!name || !name->is_string() || !data) continue;
      r.events.push_back({std::string(name->as_string()), json::serialize(*data)});
    }
  }
  if (auto* p = o.if_contains("progress"); p && p->is_object()) {
    const auto& po = p->as_object();
    auto& g = r.progress;
    g.text = str(po, "text");
    g.file = str(po, "file");
    g.restart = str(po, "restart");
    g.stage = str(po, "stage");
    g.services = strings(po, "services");
    g.next = static_cast<size_t>(num(po, "next"));
    g.old_alloc = str(po, "old_alloc");
    g.removed = strings(po, "removed");
    if (auto* ro = po.if_contains("rollout"); ro && ro->is_object()) {
      g.rollout = decode_rollout(ro->as_object());
    }
  }
  if (r.id.empty()) return std::nullopt;
  return r;
}

}  // namespace mill::server
