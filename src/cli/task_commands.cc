// mill spawn, mill tasks, mill task, mill kill (spec: Tasks).

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/get_command.h"
#include "cli/table.h"
#include "model/json.h"

namespace mill::cli {

namespace json = boost::json;

namespace {

struct SpawnOptions {
  std::string template_name;
  std::string image;
  std::vector<std::string> env;
  double cpu = 0;
  std::string memory;
  std::string disk;
  std::string timeout;
  int port = 0;
  bool no_init = false;
  std::vector<std::string> command;
  bool as_json = false;
};

std::string str(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

std::string elapsed(const json::object& o) {
  auto* v = o.if_contains("elapsed_seconds");
  if (!v || !v->is_number()) return "-";
  double s = v->to_number<double>();
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600,
                  static_cast<int>(s) / 60 % 60);
  }
  return buf;
}

std::string status_text(const json::object& o) {
  std::string s = str(o, "status");
  if (auto* c = o.if_contains("exit_code"); c && c->is_int64()) {
    s += " (" + std::to_string(c->as_int64()) + ")";
  }
  return s;
}

Result<std::string> spawn_body(const SpawnOptions& opts) {
  json::object body;
  json::object env;
  for (const auto& kv : opts.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return make_error(ErrorCode::kInvalidArgument, "--env takes KEY=VALUE, got '" + kv + "'");
    }
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (!opts.template_name.empty()) {
    if (!opts.image.empty() || opts.cpu > 0 || !opts.memory.empty() || !opts.disk.empty() ||
        !opts.timeout.empty() || opts.port || opts.no_init || !opts.command.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "a template says how to run the task; with TEMPLATE only --env applies");
    }
    body["task"] = opts.template_name;
  } else {
    if (opts.image.empty()) {
      return make_error(ErrorCode::kInvalidArgument, "give a TEMPLATE or --image IMAGE");
    }
    body["image"] = opts.image;
    if (opts.cpu > 0) body["cpu"] = opts.cpu;
    if (!opts.memory.empty()) body["memory"] = opts.memory;
    if (!opts.disk.empty()) body["disk"] = opts.disk;
    if (!opts.timeout.empty()) body["timeout"] = opts.timeout;
    if (opts.port) body["port"] = opts.port;
    if (opts.no_init) body["init"] = false;
    if (!opts.command.empty()) {
      json::array cmd;
      for (const auto& c : opts.command) cmd.emplace_back(c);
      body["command"] = std::move(cmd);
    }
  }
  if (!env.empty()) body["env"] = std::move(env);
  return model::serialize(body);
}

void print_task(const json::object& o) {
  auto line = [](std::string_view k, const std::string& v) {
    if (!v.empty()) std::cout << k << std::string(12 - k.size(), ' ') << v << "\n";
  };
  line("ID", str(o, "id"));
  line("Task", str(o, "task").empty() ? "(inline)" : str(o, "task"));
  line("Image", str(o, "image"));
  line("Status", status_text(o));
  if (!str(o, "message").empty()) line("Message", str(o, "message"));
  line("Node", str(o, "node"));
  line("Address", str(o, "address") + " (" + str(o, "ip") + ")");
  line("Created", str(o, "created_at"));
  line("Started", str(o, "started_at"));
  line("Finished", str(o, "finished_at"));
  line("Elapsed", elapsed(o));
  auto ms = [&](std::string_view k) {
    auto* v = o.if_contains(k);
    return v && v->is_int64() ? std::to_string(v->as_int64()) + " ms" : std::string();
  };
  line("Pull", ms("pull_ms"));
  line("Start", ms("start_ms"));
  if (auto* u = o.if_contains("usage"); u && u->is_object()) {
    const auto& usage = u->as_object();
    char cpu[32];
    std::snprintf(cpu, sizeof cpu, "%.2f s", usage.at("cpu_seconds").to_number<double>());
    line("CPU time", cpu);
    line("Memory", format_bytes(usage.at("memory_bytes").to_number<double>()));
  }
}

}  // namespace

void add_task_commands(CLI::App& app, int& exit_code,
                       const std::optional<std::vector<std::string>>& command) {
  auto spawn = std::make_shared<SpawnOptions>();
  auto trailing = command.value_or(std::vector<std::string>{});
  auto* cmd = app.add_subcommand("spawn", "Start a task from a template or an image");
  cmd->add_option("template", spawn->template_name, "A [task.NAME] template from the config");
  cmd->add_option("--image", spawn->image, "Run this image (instead of a template)");
  cmd->add_option("--env,-e", spawn->env, "KEY=VALUE, repeatable");
  cmd->add_option("--cpu", spawn->cpu, "Cores to reserve (default 0.1)");
  cmd->add_option("--memory", spawn->memory, "Memory limit, e.g. 256M (default 256M)");
  cmd->add_option("--disk", spawn->disk,
                  "Size of its writable layer's own filesystem, e.g. 4G (default 1G)");
  cmd->add_option("--timeout", spawn->timeout, "Stop it after this long running, e.g. 30m");
  cmd->add_option("--port", spawn->port, "The port it listens on (for its address)");
  cmd->add_flag("--no-init", spawn->no_init, "Run the command as PID 1, without mill's init");
  // The help text only: a bare --command (or --) and all after it never reach CLI11.
  cmd->add_option("--command", spawn->command,
                  "The command and its arguments instead of the image's: everything after "
                  "--command (or --)");
  cmd->add_flag("--json", spawn->as_json, "Print the API's JSON");
  cmd->callback([spawn, trailing, &exit_code] {
    spawn->command.insert(spawn->command.end(), trailing.begin(), trailing.end());
    auto body = spawn_body(*spawn);
    if (!body) {
      exit_code = fail(body.error().message);
      return;
    }
    // The answer comes once the task runs, which includes pulling its image.
    auto v = call_api_json(load_client_config(), "POST", "/v1/tasks/spawn", *body,
                           std::chrono::minutes(11));
    if (!v) {
      exit_code = fail(v.error().message);
      return;
    }
    if (spawn->as_json) {
      std::cout << model::serialize(*v) << "\n";
      return;
    }
    const auto& o = v->as_object();
    std::cout << str(o, "id") << " " << status_text(o) << " on " << str(o, "node") << " at "
              << str(o, "address") << "\n";
  });

  auto list_all = std::make_shared<bool>(false);
  auto* tasks = add_get_command(
      app, exit_code, "tasks", "List running tasks",
      [list_all] { return std::string("/v1/tasks") + (*list_all ? "?all=true" : ""); },
      [](const boost::json::value& v) {
        Table t({"ID", "TASK", "IMAGE", "STATUS", "NODE", "ADDRESS", "ELAPSED"});
        for (const auto& item : v.as_array()) {
          const auto& o = item.as_object();
          t.add({str(o, "id"), str(o, "task").empty() ? "-" : str(o, "task"), str(o, "image"),
                 status_text(o), str(o, "node"), str(o, "address"), elapsed(o)});
        }
        t.print(std::cout);
      });
  tasks->add_flag("--all,-a", *list_all, "Include ended tasks still retained");

  auto task_id = std::make_shared<std::string>();
  auto* task = add_get_command(
      app, exit_code, "task", "Show one task", [task_id] { return "/v1/tasks/" + *task_id; },
      [](const boost::json::value& v) { print_task(v.as_object()); });
  task->add_option("id", *task_id, "Task id")->required();

  auto kill_id = std::make_shared<std::string>();
  auto* kill = app.add_subcommand("kill", "Stop a task (SIGTERM, grace period, SIGKILL)");
  kill->add_option("id", *kill_id, "Task id")->required();
  kill->callback([kill_id, &exit_code] {
    auto v = call_api_json(load_client_config(), "DELETE", "/v1/tasks/" + *kill_id, {},
                           std::chrono::minutes(2));
    if (!v) {
      exit_code = fail(v.error().message);
      return;
    }
    std::cout << *kill_id << " " << status_text(v->as_object()) << "\n";
  });
}

}  // namespace mill::cli
