// mill server: the control plane (API, store, node registry) plus this machine's agent.

#include <arpa/inet.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <iostream>

#include "agent/agent.h"
#include "agent/machine.h"
#include "agent/node_client.h"
#include "agent/node_services.h"
#include "api/api.h"
#include "api/log_relay.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/local_node.h"
#include "common/files.h"
#include "common/log.h"
#include "config/config_file.h"
#include "metrics/registry.h"
#include "model/units.h"
#include "net/http_server.h"
#include "server/data_dir.h"
#include "server/deploy.h"
#include "server/node_monitor.h"
#include "server/node_registry.h"
#include "server/secrets.h"
#include "server/tasks.h"
#include "store/sqlite_store.h"

namespace mill::cli {
namespace {

constexpr std::string_view kDefaultListen = "0.0.0.0:4400";

struct ServerOptions {
  std::string data_dir = "/var/lib/mill";
  std::string listen;  // empty: the data dir's (mill init --listen), else 0.0.0.0:4400
  bool no_agent = false;
  bool quiet_access_log = false;
  int threads = 2;
  int heartbeat_ms = 2000;
  std::string node_ttl = "10s";
  int read_timeout_ms = 15000;
  int idle_timeout_ms = 60000;
  std::string config_file;  // task templates and registries, until deploy exists
  std::string cluster_network = "10.99.0.0/16";
  std::string task_retention = "1h";
  NodeFlags node;  // this machine's in-process agent
};

// Per node, the two meanings of "free" named apart (as GET /v1/nodes has them):
// available = allocatable, what placement can still give out (capacity minus the
// reservations of live allocations), and used = what the agent measured; read from the
// node registry and the allocation table at every scrape.
void declare_node_metrics(metrics::Registry& registry, server::NodeRegistry& nodes,
                          const server::TaskManager& tasks) {
  registry.declare("mill_node_cpu_available", metrics::Type::kGauge,
                   "CPU cores placement can still give out per node: its cores minus the "
                   "reservations of its live allocations (0 while down or draining).");
  registry.declare("mill_node_memory_available_bytes", metrics::Type::kGauge,
                   "Memory placement can still give out per node in bytes: its memory minus "
                   "the reservations of its live allocations (0 while down or draining).");
  registry.declare("mill_node_cpu_used", metrics::Type::kGauge,
                   "CPU cores busy per node over its agent's last heartbeat interval, "
                   "whatever runs there (0 while down).");
  registry.declare("mill_node_memory_used_bytes", metrics::Type::kGauge,
                   "Memory in use per node in bytes (MemTotal minus MemAvailable) as its "
                   "agent last measured it (0 while down).");
  registry.declare("mill_node_cpu_capacity", metrics::Type::kGauge,
                   "CPU cores per node (online CPUs).");
  registry.declare("mill_node_memory_capacity_bytes", metrics::Type::kGauge,
                   "Memory per node in bytes (MemTotal).");
  registry.declare("mill_node_disk_allocatable_bytes", metrics::Type::kGauge,
                   "Room per node for allocations' disks that placement can still give out.");
  registry.declare("mill_node_disk_capacity_bytes", metrics::Type::kGauge,
                   "Room per node for allocations' disks: free on the data dir's filesystem "
                   "plus what their disks hold, less a reserve.");
  registry.add_collector([&nodes, &tasks](metrics::Registry& r) {
    auto list = nodes.list();
    if (!list) return;
    tasks.add_load(*list);
    for (const auto& n : *list) {
      const metrics::Labels node{{"node", n.id}};
      r.set("mill_node_cpu_available", node, model::round_cores(model::allocatable_cpu(n)));
      r.set("mill_node_memory_available_bytes", node,
            static_cast<double>(model::allocatable_memory(n)));
      r.set("mill_node_cpu_used", node, model::round_cores(model::used_cpu(n)));
      r.set("mill_node_memory_used_bytes", node, static_cast<double>(model::used_memory(n)));
      r.set("mill_node_cpu_capacity", node, n.resources.cpu_total);
      r.set("mill_node_memory_capacity_bytes", node, static_cast<double>(n.resources.memory_total));
      if (n.resources.disk_total >= 0) {
        r.set("mill_node_disk_allocatable_bytes", node,
              static_cast<double>(model::allocatable_disk(n)));
        r.set("mill_node_disk_capacity_bytes", node, static_cast<double>(n.resources.disk_total));
      }
    }
  });
}

// The ingress proxy's totals, read from the node's proxy at every scrape.
void declare_proxy_metrics(metrics::Registry& registry,
                           const std::atomic<agent::NodeServices*>& node) {
  registry.declare("mill_proxy_requests_total", metrics::Type::kCounter,
                   "Requests through this node's ingress proxy, per route (the service) and "
                   "status class; route=\"\" counts requests that matched no route.");
  registry.declare("mill_proxy_latency_seconds", metrics::Type::kHistogram,
                   "Time from a request's first byte to the end of its response, per route.",
                   proxy::latency_buckets());
  registry.add_collector([&node](metrics::Registry& r) {
    auto* n = node.load();
    if (!n) return;
    for (const auto& s : n->proxy_stats()) {
      for (int c = 1; c <= 5; ++c) {
        if (s.by_class[c] == 0) continue;
        r.set_total("mill_proxy_requests_total",
                    {{"route", s.route}, {"code", std::to_string(c) + "xx"}},
                    static_cast<double>(s.by_class[c]));
      }
      if (s.count > 0) {
        r.set_histogram("mill_proxy_latency_seconds", {{"route", s.route}}, s.buckets,
                        s.latency_sum, s.count);
      }
    }
  });
}

// The address our own agent dials: the bound one, with a wildcard host made loopback.
std::string local_dial_address(const net::HttpServer& server) {
  std::string addr = server.address();
  if (addr.starts_with("0.0.0.0:")) return "127.0.0.1:" + addr.substr(8);
  if (addr.starts_with("[::]:")) return "[::1]:" + addr.substr(5);
  return addr;
}

bool is_ip(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

// HTTPS for an API that listens beyond loopback: a certificate this server issues itself
// from the cluster CA at every start, for every address a client may dial, with the CA
// last in the chain (a joining agent checks its pin against it). Client certificates
// are asked for but optional: a joining agent has none yet, and the CLI uses the token.
Result<net::TlsServerConfig> server_tls(const crypto::ClusterCa& ca, const std::string& listen,
                                        const std::string& advertise) {
  crypto::SignRequest request;
  request.common_name = "mill-server";
  request.usage = crypto::CertUsage::kServer;
  auto add_ip = [&](const std::string& ip) {
    auto& ips = request.ip_addresses;
    if (std::find(ips.begin(), ips.end(), ip) == ips.end()) ips.push_back(ip);
  };
  std::string host = address_host(listen);
  if (!host.empty() && host != "0.0.0.0" && host != "::") {
    if (is_ip(host)) {
      add_ip(host);
    } else {
      request.dns_names.push_back(host);
    }
  }
  if (!advertise.empty()) {
    if (is_ip(advertise)) {
      add_ip(advertise);
    } else {
      request.dns_names.push_back(advertise);
    }
  }
  for (const auto& ip : agent::host_addresses()) add_ip(ip);
  add_ip("127.0.0.1");
  add_ip("::1");  // what our own agent dials when the API listens on [::]
  auto key = MILL_TRY(crypto::make_key());
  request.public_key_pem = MILL_TRY(crypto::public_key_pem(key));
  auto cert = MILL_TRY(crypto::sign_certificate(ca, request));
  net::TlsServerConfig tls;
  tls.cert_pem = cert + ca.cert_pem;
  tls.key_pem = key;
  tls.client_ca_pem = ca.cert_pem;
  tls.require_client_cert = false;
  return tls;
}

int run_server(ServerOptions opts) {
  const sigset_t signals = block_stop_signals();

  server::DataDir dir{opts.data_dir};
  auto creds = server::load_data_dir(dir);
  if (!creds) return fail(creds.error().message);
  // Where `mill init` told the CLI the API is: listen there unless told otherwise, and
  // say so when told otherwise (the CLI on this machine would look in the wrong place).
  std::string recorded = trim(read_file(dir.listen_path()).value_or(""));
  if (opts.listen.empty()) {
    opts.listen = recorded.empty() ? std::string(kDefaultListen) : recorded;
  } else if (!recorded.empty() && recorded != opts.listen) {
    log::warn("--listen " + opts.listen + " is not where `mill init` pointed this machine's CLI (" +
              recorded + "): use MILL_ADDR, or `mill init --force --listen " + opts.listen + "`");
  }
  // A data dir from before the cluster CA gets one now.
  auto ca = server::ensure_cluster_ca(dir);
  if (!ca) return fail("the cluster CA: " + ca.error().message);
  auto store = store::SqliteStore::open(dir.state_path());
  if (!store) return fail("cannot open the state store: " + store.error().message);
  auto aead = crypto::Aead::create(creds->secrets_key);
  if (!aead) return fail(aead.error().message);

  auto cluster_network = model::Ipv4Net::parse(opts.cluster_network);
  if (!cluster_network || cluster_network->prefix > 23) {
    return fail("--cluster-network must be an IPv4 network of /23 or larger, like 10.99.0.0/16");
  }
  auto retention = model::parse_duration(opts.task_retention);
  if (!retention) return fail("--task-retention: " + retention.error().message);
  auto node_opts = node_options(opts.node, opts.data_dir);
  if (!node_opts) return fail(node_opts.error().message);
  model::Config config;
  if (!opts.config_file.empty()) {
    auto parsed = config::parse_config_file(opts.config_file);
    if (!parsed.ok()) {
      for (const auto& e : parsed.errors) std::cerr << e.to_string() << "\n";
      return fail("the config has errors");
    }
    config = std::move(*parsed.config);
  }

  SystemClock clock;
  auto heartbeat = std::chrono::milliseconds(opts.heartbeat_ms);
  server::Secrets secrets(**store, std::move(*aead), clock);
  auto ttl = model::parse_duration(opts.node_ttl);
  if (!ttl || *ttl < heartbeat * 2) {
    return fail("--node-ttl must be a duration of at least two heartbeats (--heartbeat-ms)");
  }
  server::NodeRegistry nodes(**store, clock, *ttl);
  metrics::Registry registry;
  std::atomic<agent::NodeServices*> node_for_metrics{nullptr};
  declare_proxy_metrics(registry, node_for_metrics);
  server::TaskOptions task_options;
  task_options.cluster_network = *cluster_network;
  task_options.retention = *retention;
  server::TaskManager tasks(**store, nodes, clock, registry, task_options);
  declare_node_metrics(registry, nodes, tasks);
  tasks.set_config(std::move(config));
  if (auto started = tasks.start(); !started) return fail(started.error().message);
  server::DeployManager deploys(**store, tasks, secrets, clock);
  if (auto started = deploys.start(); !started) return fail(started.error().message);
  // A deployed config's task templates and registries win over --config's.
  if (!deploys.deployed_text().empty()) tasks.set_config(deploys.deployed());

  server::NodeMonitor monitor(nodes, tasks, deploys, clock, {.down_after = *ttl});

  api::ApiContext ctx;
  ctx.node_monitor = &monitor;
  ctx.api_token = creds->api_token;
  ctx.join_token = creds->join_token;
  ctx.ca = *ca;
  ctx.secrets = &secrets;
  ctx.nodes = &nodes;
  ctx.metrics = &registry;
  ctx.clock = &clock;
  ctx.heartbeat_interval = heartbeat;
  ctx.tasks = &tasks;
  ctx.deploys = &deploys;
  // Logs come from the node that keeps them, over the node protocol (also ours).
  api::LogRelay log_relay(clock);
  ctx.logs = &log_relay;
  ctx.cluster_network = *cluster_network;
  api::Api api(ctx);

  net::HttpServerOptions http;
  http.listen = opts.listen;
  http.threads = opts.threads;
  http.read_timeout = std::chrono::milliseconds(opts.read_timeout_ms);
  http.idle_timeout = std::chrono::milliseconds(opts.idle_timeout_ms);
  // Loopback stays plain HTTP (this machine only); anything else is HTTPS.
  const bool tls = !is_loopback_address(opts.listen);
  if (tls) {
    auto config = server_tls(*ca, opts.listen, opts.node.advertise);
    if (!config) return fail("the API's TLS certificate: " + config.error().message);
    http.tls = std::move(*config);
  }
  const std::string scheme = tls ? "https://" : "http://";
  net::AccessLogger access_log;
  if (!opts.quiet_access_log) {
    access_log = [](const net::AccessRecord& r) {
      char us[32];
      std::snprintf(us, sizeof us, "%.3fms", static_cast<double>(r.duration.count()) / 1000.0);
      log::info(std::string(r.method) + " " + std::string(r.path) + " " + std::to_string(r.status) +
                " " + us + " " + std::string(r.remote));
    };
  }
  auto server = net::HttpServer::create(
      http, [&api](const net::HttpRequest& req) { return api.handle(req); }, access_log);
  if (!server) return fail(server.error().message);
  (*server)->start();
  log::info("API listening on " + scheme + (*server)->address() + " (token in " +
            dir.api_token_path() + ")");

  std::unique_ptr<agent::HttpNodeClient> node_client;
  std::unique_ptr<LocalNode> node;
  if (!opts.no_agent) {
    // The in-process agent uses the same node protocol, over HTTP, as a remote one.
    // Over loopback, with the join secret; TLS (trusting the cluster CA) when the API
    // listens beyond loopback.
    agent::NodeTls node_tls;
    if (tls) node_tls.ca_pem = ca->cert_pem;
    node_client = std::make_unique<agent::HttpNodeClient>(scheme + local_dial_address(**server),
                                                          creds->join_token, std::move(node_tls));
    auto started = LocalNode::start(*node_client, *node_opts, dir.node_id_path(), opts.node, clock);
    if (!started) {
      (*server)->stop();
      return fail(started.error().message);
    }
    node = std::move(*started);
    node_for_metrics = node->services();
  }

  // A deploy the previous process left running carries on now that the nodes report.
  deploys.resume();
  // Nodes that go silent (their allocations are lost, services topped up elsewhere),
  // and drains.
  monitor.start();
  wait_for_stop_signal(signals);
  // The API goes first: that also ends the agent's blocking query, so the agent stops
  // at once. Containers keep running under their shims; the next start re-adopts them.
  log_relay.stop();
  (*server)->stop(std::chrono::seconds(10));
  log::info("API closed");
  monitor.stop();
  deploys.stop();
  node_for_metrics = nullptr;
  if (node) node->stop();
  log::info("agent stopped");
  tasks.stop();
  log::info("stopped");
  return 0;
}

}  // namespace

void add_server_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<ServerOptions>();
  auto* cmd = app.add_subcommand("server", "Run the control plane and this machine's agent");
  cmd->add_option("--data-dir", opts->data_dir, "Data directory (made by mill init)")
      ->capture_default_str();
  cmd->add_option("--listen", opts->listen,
                  "API listen address host:port (default: what mill init --listen said, else " +
                      std::string(kDefaultListen) + ")");
  cmd->add_flag("--no-agent", opts->no_agent, "Run the control plane only");
  cmd->add_flag("--quiet", opts->quiet_access_log, "No access log lines");
  cmd->add_option("--threads", opts->threads, "API I/O threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--heartbeat-ms", opts->heartbeat_ms, "Agent heartbeat interval (ms)")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  cmd->add_option("--node-ttl", opts->node_ttl,
                  "A node silent this long is down: its allocations are lost and its service "
                  "replicas are placed on other nodes")
      ->capture_default_str();
  cmd->add_option("--read-timeout-ms", opts->read_timeout_ms,
                  "Time a client has to send a whole request (ms)")
      ->capture_default_str()
      ->check(CLI::Range(100, 3600000));
  cmd->add_option("--idle-timeout-ms", opts->idle_timeout_ms,
                  "Time an idle keep-alive connection is kept open (ms)")
      ->capture_default_str()
      ->check(CLI::Range(100, 3600000));
  cmd->add_option("--config", opts->config_file,
                  "A mill.toml whose [task.NAME] templates and [registry.\"HOST\"] "
                  "credentials this server uses");
  cmd->add_option("--cluster-network", opts->cluster_network,
                  "The cluster network; node N gets its Nth /24")
      ->capture_default_str();
  cmd->add_option("--task-retention", opts->task_retention,
                  "How long ended tasks stay listed, with their logs")
      ->capture_default_str();
  add_node_flags(cmd, opts->node);
  cmd->callback([opts, &exit_code] { exit_code = run_server(*opts); });
}

}  // namespace mill::cli
