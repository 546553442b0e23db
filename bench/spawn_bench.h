#pragma once

// Shared parts of mill_spawn_bench (bench/spawn_bench.cc): its arguments, the result
// table, and the task API calls the three benchmarks make.

#include <boost/json/object.hpp>
#include <string>
#include <vector>

#include "spawn_support.h"

namespace mill::bench {

struct Args {
  std::string mill, probe, work;
  std::string only = "spawn,pull,memory";
  int runs = 100, pulls = 3, tasks = 50;
  int net_octet = 120;                   // Mill's cluster networks: 10.<net_octet + k>.0.0/16
  std::string bridge_prefix;             // Mill's bridges: <prefix><k>
  std::string runc_netns, runc_ip;       // the runc floor's network namespace
  std::string docker_host, docker_root;  // empty: no docker baseline
  std::string task_memory = "4M";        // memory benchmark's per-task request
  int layers = 5;                        // big image: random layers of layer_mb each
  size_t layer_mb = 20;
};

// One line of the final table: ratio = measured / baseline, PASS when ratio <= limit.
void add_row(std::string what, double measured, double baseline, const std::string& unit,
             double limit, std::string target);

// Server k of this run: its own dir, bridge and /16.
MillServer::Options server_options(const Args& a, int k, const std::string& name);

boost::json::object spawn(const MillServer& s, const std::string& body);  // the 201 body
boost::json::object task(const MillServer& s, const std::string& id);
void kill_task(const MillServer& s, const std::string& id);
std::string field_str(const boost::json::object& o, const char* key);
double field_num(const boost::json::object& o, const char* key);  // -1 when absent
void print_series(const char* name, const std::vector<double>& v);

void spawn_bench(const Args& a, const std::string& image);
void pull_bench(const Args& a, const std::string& image);
void memory_bench(const Args& a, const std::string& image);

}  // namespace mill::bench
