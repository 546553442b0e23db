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

// A figure of a node's (or the overview's) "cpu" or "memory" object, formatted; "-"
// when the server did not send it (an older one).
std::string figure(const json::object& o, std::string_view part, std::string_view key) {
  const auto* p = o.if_contains(part);
  const auto* v = p && p->is_object() ? p->as_object().if_contains(key) : nullptr;
  if (!v || !v->is_number()) return "-";
  return part == "cpu" ? format_cores(num(*v)) : format_bytes(num(*v));
}

// Allocatable (capacity minus reservations: what placement can still give out) of the
// total, and used (measured on the machine), never one number called "free".
void print_nodes(const json::array& nodes) {
  Table t({"ID", "NAME", "ADDRESS", "STATUS", "CPU ALLOCATABLE", "CPU USED", "MEM ALLOCATABLE",
           "MEM USED", "DISK ALLOCATABLE", "ALLOCS", "SEEN", "VERSION"});
  for (const auto& v : nodes) {
    const auto& n = v.as_object();
    t.add({str(n.at("id")), str(n.at("name")), str(n.at("address")), str(n.at("status")),
           figure(n, "cpu", "allocatable") + "/" + figure(n, "cpu", "total"),
           figure(n, "cpu", "used"),
           figure(n, "memory", "allocatable") + "/" + figure(n, "memory", "total"),
           figure(n, "memory", "used"),
           n.contains("disk") ? figure(n, "disk", "allocatable") + "/" + figure(n, "disk", "total")
                              : "-",
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
        size_t ready = 0;
        for (const auto& n : nodes) ready += str(n.at("status")) == "ready";
        // Reserved and allocatable are what placement counts; used is measured.
        auto line = [&](std::string_view part, std::string_view unit) {
          return figure(u, part, "allocatable") + " of " + figure(u, part, "total") +
                 std::string(unit) + " allocatable (" + figure(u, part, "reserved") +
                 " reserved), " + figure(u, part, "used") + " used (measured)\n";
        };
        std::cout << "Nodes:    " << ready << " ready of " << nodes.size() << "\n"
                  << "Services: " << o.at("services").as_array().size() << "\n"
                  << "Tasks:    " << o.at("tasks").as_array().size() << "\n"
                  << "CPU:      " << line("cpu", " cores") << "Memory:   " << line("memory", "")
                  << "\n";
        print_nodes(nodes);
      });

  add_get_command(
      app, exit_code, "nodes", "List nodes with status and resources",
      [] { return std::string("/v1/nodes"); },
      [](const boost::json::value& v) { print_nodes(v.as_array()); });
}

}  // namespace mill::cli
