// mill status and mill nodes.

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/get_command.h"
#include "cli/table.h"
#include "model/json.h"

namespace mill::cli {

namespace json = boost::json;

namespace {

double num(const json::value& v) {
  if (v.is_double()) return v.as_double();
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  return 0;
}

std::string str(const json::value& v) { return v.is_string() ? std::string(v.as_string()) : ""; }

// "3s ago" from seconds_since_heartbeat; "never" when this server has not heard it.
std::string seen(const json::object& node) {
  const auto* v = node.if_contains("seconds_since_heartbeat");
  if (!v || v->is_null()) return "never";
  double s = num(*v);
  if (s < 120) return std::to_string(static_cast<long>(s)) + "s ago";
  if (s < 7200) return std::to_string(static_cast<long>(s / 60)) + "m ago";
  return std::to_string(static_cast<long>(s / 3600)) + "h ago";
}

void print_nodes(const json::array& nodes) {
  Table t(
      {"ID", "NAME", "ADDRESS", "STATUS", "CPU FREE", "MEMORY FREE", "ALLOCS", "SEEN", "VERSION"});
  for (const auto& v : nodes) {
    const auto& n = v.as_object();
    const auto& cpu = n.at("cpu").as_object();
    const auto& mem = n.at("memory").as_object();
    t.add({str(n.at("id")), str(n.at("name")), str(n.at("address")), str(n.at("status")),
           format_cores(num(cpu.at("available"))) + "/" + format_cores(num(cpu.at("total"))),
           format_bytes(num(mem.at("available"))) + "/" + format_bytes(num(mem.at("total"))),
           std::to_string(static_cast<long>(num(n.at("allocations")))), seen(n),
           n.contains("version") && !str(n.at("version")).empty() ? str(n.at("version")) : "-"});
  }
  t.print(std::cout);
}

}  // namespace

void add_status_commands(CLI::App& app, int& exit_code) {
  add_get_command(
      app, exit_code, "status", "Cluster overview: nodes, services, tasks, resources",
      [] { return std::string("/v1/status"); },
      [](const boost::json::value& v) {
        const auto& o = v.as_object();
        const auto& nodes = o.at("nodes").as_array();
        const auto& u = o.at("utilization").as_object();
        const auto& cpu = u.at("cpu").as_object();
        const auto& mem = u.at("memory").as_object();
        size_t ready = 0;
        for (const auto& n : nodes) ready += str(n.at("status")) == "ready";
        std::cout << "Nodes:    " << ready << " ready of " << nodes.size() << "\n"
                  << "Services: " << o.at("services").as_array().size() << "\n"
                  << "Tasks:    " << o.at("tasks").as_array().size() << "\n"
                  << "CPU:      " << format_cores(num(cpu.at("used"))) << " of "
                  << format_cores(num(cpu.at("total"))) << " cores in use\n"
                  << "Memory:   " << format_bytes(num(mem.at("used"))) << " of "
                  << format_bytes(num(mem.at("total"))) << " in use\n\n";
        print_nodes(nodes);
      });

  add_get_command(
      app, exit_code, "nodes", "List nodes with status and resources",
      [] { return std::string("/v1/nodes"); },
      [](const boost::json::value& v) { print_nodes(v.as_array()); });
}

}  // namespace mill::cli
