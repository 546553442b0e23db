// mill drain NODE: moves everything off a node (services surge-first, tasks until the
// deadline) and shows what is left as it goes, like `mill deploy`; exits 0 once the
// node is drained. --undo makes it eligible again. mill node rm NODE forgets a node
// that runs nothing (drain it first).

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <thread>

#include "cli/client.h"
#include "cli/commands.h"
#include "model/json.h"
#include "net/http.h"

namespace mill::cli {

namespace json = boost::json;

namespace {

struct DrainOptions {
  std::string node;
  std::string deadline;
  bool undo = false;
  bool detach = false;
  bool force = false;
};

// "2 services, 1 task left" from a node's JSON.
std::string left_text(const json::object& node) {
  auto* drain = node.if_contains("drain");
  if (!drain || !drain->is_object()) return "";
  auto count = [&](const char* key) {
    auto* v = drain->as_object().if_contains(key);
    return v && v->is_int64() ? v->as_int64() : 0;
  };
  auto plural = [](int64_t n, const std::string& what) {
    return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
  };
  return plural(count("services"), "service allocation") + ", " + plural(count("tasks"), "task") +
         " left";
}

int run_drain(const DrainOptions& o) {
  auto config = load_client_config();
  const std::string target = "/v1/nodes/" + net::percent_encode(o.node) + "/drain";
  if (o.undo) {
    auto node = call_api_json(config, "DELETE", target);
    if (!node) return fail(node.error().message);
    std::cout << o.node << " takes new allocations again\n";
    return 0;
  }
  json::object request;
  if (!o.deadline.empty()) request["deadline"] = o.deadline;
  if (o.force) request["force"] = true;
  std::string body = request.empty() ? "" : model::serialize(request);
  auto started = call_api_json(config, "POST", target, body);
  if (!started) return fail(started.error().message);
  std::cout << o.node << " is draining: it takes no new allocations\n";
  if (o.detach) return 0;
  std::string last;
  for (;;) {
    auto nodes = call_api_json(config, "GET", "/v1/nodes");
    if (!nodes) return fail(nodes.error().message);
    const json::object* node = nullptr;
    for (const auto& n : nodes->as_array()) {
      if (n.as_object().at("id") == o.node.c_str()) node = &n.as_object();
    }
    if (!node) return fail(o.node + " is gone");
    std::string status(node->at("status").as_string());
    if (status == "drained") {
      std::cout << o.node << " is drained\n";
      return 0;
    }
    if (status == "ready") return fail(o.node + " is no longer draining (mill drain --undo?)");
    std::string now = status + ": " + left_text(*node);
    if (now != last) std::cout << o.node << " " << now << "\n" << std::flush;
    last = now;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace

void add_drain_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<DrainOptions>();
  auto* cmd = app.add_subcommand(
      "drain",
      "Move everything off a node: services surge-first (a replacement healthy elsewhere "
      "before the old one stops), tasks until the deadline; waits until it is drained");
  cmd->add_option("node", opts->node, "The node's id (mill nodes)")->required();
  cmd->add_option("--deadline", opts->deadline, "How long its tasks may still run (default 1h)");
  cmd->add_flag("--undo", opts->undo, "Make the node take new allocations again");
  cmd->add_flag("--detach", opts->detach, "Start the drain and return at once");
  cmd->add_flag("--force", opts->force,
                "Drain even when services cannot all move: what cannot is stopped at the "
                "deadline");
  cmd->callback([opts, &exit_code] { exit_code = run_drain(*opts); });

  auto node_id = std::make_shared<std::string>();
  auto* node = app.add_subcommand("node", "Manage one node");
  node->require_subcommand(1);
  auto* rm = node->add_subcommand(
      "rm", "Remove a node that runs nothing (drain it first); its agent may not rejoin");
  rm->add_option("node", *node_id, "The node's id")->required();
  rm->callback([node_id, &exit_code] {
    auto config = load_client_config();
    auto removed = call_api_json(config, "DELETE", "/v1/nodes/" + net::percent_encode(*node_id));
    if (!removed) {
      exit_code = fail(removed.error().message);
      return;
    }
    std::cout << *node_id << " removed\n";
    exit_code = 0;
  });
}

}  // namespace mill::cli
