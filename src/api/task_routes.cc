// /v1/tasks (spec: Tasks). Spawning answers once the task runs: the handler records the
// task and returns at once; the answer comes through the response writer when the
// agent reports it running (no I/O thread waits meanwhile).

#include <boost/json.hpp>

#include "api/api.h"
#include "api/responses.h"
#include "common/clock.h"
#include "model/config.h"
#include "model/json.h"
#include "model/limits.h"
#include "model/units.h"

namespace mill::api {

namespace json = boost::json;

namespace {

double seconds_between(SystemTime a, SystemTime b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string task_address(const model::Allocation& a) {
  std::string addr = a.id + ".mill";
  if (a.spec.port) addr += ":" + std::to_string(*a.spec.port);
  return addr;
}

json::object task_json(const server::TaskView& v, SystemTime now) {
  const auto& a = *v.alloc;
  json::object o{{"id", a.id},
                 {"task", a.group.empty() ? json::value(nullptr) : json::value(a.group)},
                 {"image", a.spec.image},
                 {"address", task_address(a)},
                 {"ip", a.ip},
                 {"node", a.node},
                 {"status", model::to_string(v.status())},
                 {"cpu", a.spec.cpu},
                 {"memory", a.spec.memory},
                 {"created_at", format_rfc3339(a.created_at)}};
  if (a.spec.port) o["port"] = *a.spec.port;
  if (a.spec.disk > 0) o["disk"] = a.spec.disk;
  if (a.spec.timeout) o["timeout_seconds"] = static_cast<double>(a.spec.timeout->count()) / 1000;
  if (a.desired == model::DesiredState::kStop && !model::is_terminal(v.status())) {
    o["status"] = "stopping";
  }
  if (const auto& s = v.state) {
    if (!s->message.empty()) o["message"] = s->message;
    if (s->pid > 0 && !model::is_terminal(s->status)) o["pid"] = s->pid;
    if (s->exit_code) o["exit_code"] = *s->exit_code;
    if (s->started_at) {
      o["started_at"] = format_rfc3339(*s->started_at);
      o["elapsed_seconds"] = seconds_between(*s->started_at, s->finished_at.value_or(now));
    }
    if (s->finished_at) o["finished_at"] = format_rfc3339(*s->finished_at);
    o["pull_ms"] = s->pull_duration.count();
    o["start_ms"] = s->start_duration.count();
    // Measured from its start on (the running report carries the first read), so no
    // usage before then rather than zeros.
    if (s->started_at) {
      o["usage"] = json::object{{"cpu_seconds", s->cpu_seconds}, {"memory_bytes", s->memory_bytes}};
    }
  }
  return o;
}

Result<int64_t> memory_field(const json::object& o) {
  auto* v = o.if_contains("memory");
  if (!v) return model::kDefaultMemory;
  auto bytes =
      v->is_string() ? model::parse_size(v->as_string()) : model::get_int(o, "memory", true);
  if (!bytes) return make_error(ErrorCode::kInvalidArgument, "'memory': " + bytes.error().message);
  return bytes;
}

// "1G" or bytes; none: model::kDefaultDisk. At least model::kMinDisk.
Result<int64_t> disk_field(const json::object& o) {
  auto* v = o.if_contains("disk");
  if (!v) return model::kDefaultDisk;
  auto bytes = v->is_string() ? model::parse_size(v->as_string()) : model::get_int(o, "disk", true);
  if (!bytes) return make_error(ErrorCode::kInvalidArgument, "'disk': " + bytes.error().message);
  if (*bytes < model::kMinDisk) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'disk' must be at least " + model::format_size(model::kMinDisk));
  }
  return bytes;
}

Result<std::optional<std::chrono::milliseconds>> timeout_field(const json::object& o) {
  auto* v = o.if_contains("timeout");
  if (!v || v->is_null()) return std::optional<std::chrono::milliseconds>{};
  if (v->is_string()) {
    auto d = model::parse_duration(v->as_string());
    if (!d) return make_error(ErrorCode::kInvalidArgument, "'timeout': " + d.error().message);
    return std::optional(*d);
  }
  double secs = MILL_TRY(model::get_number(o, "timeout", true));
  return std::optional(std::chrono::milliseconds(static_cast<int64_t>(secs * 1000)));
}

Result<std::map<std::string, std::string>> env_field(const json::object& o) {
  std::map<std::string, std::string> env;
  auto* v = o.if_contains("env");
  if (!v) return env;
  if (!v->is_object()) return make_error(ErrorCode::kInvalidArgument, "'env' must be an object");
  // Counted before anything is copied: a body of many small entries is refused cheaply.
  MILL_TRY(model::check_env_count(v->as_object().size()));
  for (const auto& [k, val] : v->as_object()) {
    if (!val.is_string()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "env value of '" + std::string(k) + "' must be a string");
    }
    env.emplace(std::string(k), std::string(val.as_string()));
  }
  MILL_TRY(model::check_env(env));
  return env;
}

Result<server::SpawnRequest> decode_spawn(std::string_view body) {
  // The parsed body lives in a few large blocks, freed whole on return (a megabyte of
  // small env entries would otherwise leave the heap fragmented): what is kept is copied.
  json::monotonic_resource arena;
  auto any = MILL_TRY(model::parse_object(
      body, {"task", "env", "image", "cpu", "memory", "timeout", "port", "command", "init", "disk"},
      &arena));
  server::SpawnRequest req;
  req.spec.env = MILL_TRY(env_field(any));
  if (any.contains("task")) {
    // A template spawn: the template says everything but extra env.
    MILL_TRY(model::parse_object(body, {"task", "env"}));
    req.template_name = MILL_TRY(model::get_string(any, "task", true));
    return req;
  }
  if (!any.contains("image")) {
    return make_error(ErrorCode::kInvalidArgument,
                      "give a template (\"task\": NAME) or an \"image\" to run");
  }
  auto& s = req.spec;
  s.image = MILL_TRY(model::get_string(any, "image", true));
  s.cpu = any.contains("cpu") ? MILL_TRY(model::get_number(any, "cpu", true)) : model::kDefaultCpu;
  s.memory = MILL_TRY(memory_field(any));
  s.disk = MILL_TRY(disk_field(any));
  s.timeout = MILL_TRY(timeout_field(any));
  if (any.contains("port")) s.port = static_cast<int>(MILL_TRY(model::get_int(any, "port", true)));
  if (auto* c = any.if_contains("command")) {
    if (!c->is_array())
      return make_error(ErrorCode::kInvalidArgument, "'command' must be an array");
    MILL_TRY(model::check_command_count(c->as_array().size()));
    for (const auto& part : c->as_array()) {
      if (!part.is_string()) {
        return make_error(ErrorCode::kInvalidArgument, "'command' must be an array of strings");
      }
      s.command.emplace_back(part.as_string());
    }
    MILL_TRY(model::check_command(s.command));
  }
  if (auto* i = any.if_contains("init")) {
    if (!i->is_bool())
      return make_error(ErrorCode::kInvalidArgument, "'init' must be true or false");
    s.init = i->as_bool();
  }
  return req;
}

// Every "${secret:NAME}" the env refers to must exist now, so a typo fails the spawn
// instead of starting a task with an empty value.
Result<void> check_secrets(const ApiContext& ctx, const std::map<std::string, std::string>& env) {
  for (const auto& [k, v] : env) {
    for (const auto& name : MILL_TRY(model::find_secret_references(v))) {
      auto got = ctx.secrets->get(name);
      if (!got && got.error().code == ErrorCode::kNotFound) {
        return make_error(ErrorCode::kInvalidArgument,
                          "env " + k + " refers to secret '" + name + "', which does not exist");
      }
      if (!got) return Unexpected(got.error());
    }
  }
  return {};
}

}  // namespace

void add_task_routes(Router& router, const ApiContext& ctx) {
  router.add("POST", "/v1/tasks/spawn", [&ctx](const net::HttpRequest& req, const Params&) {
    auto request = decode_spawn(req.body);
    if (!request) return error_response(request.error());
    if (auto ok = check_secrets(ctx, request->spec.env); !ok) return error_response(ok.error());
    auto spawned = ctx.tasks->spawn(*request);
    if (!spawned) return error_response(spawned.error());
    std::string id = spawned->alloc->id;
    net::HttpResponse res;
    res.async = [&ctx, id](std::shared_ptr<net::ResponseWriter> writer) {
      auto deadline = std::chrono::steady_clock::now() + ctx.spawn_wait;
      ctx.tasks->when_started(id, deadline, [&ctx, writer](Result<server::TaskView> v) {
        if (!v) return writer->respond(error_response(v.error()));
        if (v->status() == model::AllocStatus::kFailed) {
          std::string why = v->state ? v->state->message : "";
          auto res = error_response(502, "task " + v->alloc->id + " failed to start: " + why);
          return writer->respond(std::move(res));
        }
        // Its record was committed without waiting for the fsync (done meanwhile).
        if (auto durable = ctx.tasks->make_durable(v->alloc->id); !durable) {
          return writer->respond(error_response(durable.error()));
        }
        json::object out{{"id", v->alloc->id},
                         {"address", task_address(*v->alloc)},
                         {"node", v->alloc->node},
                         {"status", model::to_string(v->status())}};
        if (v->state && v->state->exit_code) out["exit_code"] = *v->state->exit_code;
        (void)ctx;
        writer->respond(json_response(201, out));
      });
    };
    return res;
  });

  router.add("GET", "/v1/tasks", [&ctx](const net::HttpRequest& req, const Params&) {
    bool all = req.query_param("all") == "true" || req.query_param("all") == "1";
    json::array out;
    auto now = ctx.clock->now();
    for (const auto& v : ctx.tasks->list(all)) out.push_back(task_json(v, now));
    return json_response(200, out);
  });

  router.add("GET", "/v1/tasks/:id", [&ctx](const net::HttpRequest&, const Params& p) {
    auto v = ctx.tasks->get(p.find("id")->second);
    if (!v) return error_response(v.error());
    if (v->alloc->kind != model::kKindTask)
      return error_response(404, "no task '" + v->alloc->id + "'");
    return json_response(200, task_json(*v, ctx.clock->now()));
  });

  // Stops the task (SIGTERM, grace, SIGKILL) and answers when it has ended.
  router.add("DELETE", "/v1/tasks/:id", [&ctx](const net::HttpRequest&, const Params& p) {
    auto found = ctx.tasks->get(p.find("id")->second);
    if (!found) return error_response(found.error());
    if (found->alloc->kind != model::kKindTask) {
      return error_response(404, "no task '" + found->alloc->id + "' (services stop by deploy)");
    }
    auto v = ctx.tasks->kill(found->alloc->id);
    if (!v) return error_response(v.error());
    std::string id = v->alloc->id;
    net::HttpResponse res;
    res.async = [&ctx, id](std::shared_ptr<net::ResponseWriter> writer) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
      ctx.tasks->when_ended(id, deadline, [&ctx, writer](Result<server::TaskView> v) {
        if (!v) return writer->respond(error_response(v.error()));
        writer->respond(json_response(200, task_json(*v, ctx.clock->now())));
      });
    };
    return res;
  });
}

}  // namespace mill::api
