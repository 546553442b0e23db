#include "agent/node_services.h"

#include <dirent.h>
#include <sys/stat.h>

#include <boost/json.hpp>

#include "agent/alloc_runner.h"
#include "agent/container_host.h"
#include "agent/log_service.h"
#include "agent/log_uplink.h"
#include "common/files.h"
#include "common/log.h"
#include "image/image_store.h"
#include "image/rootfs.h"
#include "image/unpack.h"
#include "model/config.h"
#include "model/json.h"
#include "network/dns_server.h"
#include "network/node_network.h"
#include "runtime/cgroups.h"
#include "runtime/runc_runtime.h"
#include "volume/scratch_disk.h"
#include "volume/volume_manager.h"

namespace mill::agent {

struct NodeServices::Parts {
  std::unique_ptr<network::NodeNetwork> network;
  std::unique_ptr<network::DnsServer> dns;
  std::unique_ptr<image::ImageStore> images;
  std::unique_ptr<runtime::RuncRuntime> runtime;
  std::unique_ptr<volume::VolumeManager> volumes;
  std::unique_ptr<ContainerHost> containers;
  std::unique_ptr<AllocRunner> runner;
  std::unique_ptr<LogService> logs;
  std::unique_ptr<LogUplink> log_uplink;  // serves `logs` to the control plane
  std::unique_ptr<proxy::Proxy> proxy;
};

namespace {

// Where the node's containers' netns files live: a directory of its own (as Docker's
// /run/docker/netns), so that two nodes on one machine (tests, or a node and `ip
// netns`) never share the mount that /run/netns is, and one's cleanup cannot unmount it
// under the other. `nsenter --net=<dir>/<bridge>-<id>` enters a container's network.
std::string netns_dir(const std::string& bridge) { return "/run/mill/" + bridge + "/netns"; }
// Where the node's containers' bundles live: in memory (runtime::RuntimeOptions), since
// a bundle's config.json holds the process's environment, secrets included.
std::string bundle_dir(const std::string& bridge) { return "/run/mill/" + bridge + "/bundles"; }

std::vector<proxy::ProxyRoute> proxy_routes(const std::vector<model::ServiceRoute>& routes) {
  std::vector<proxy::ProxyRoute> out;
  for (const auto& r : routes) {
    proxy::ProxyRoute p;
    p.name = r.service;
    p.host = r.route.host;
    p.path = r.route.path;
    p.upstreams = r.upstreams;
    if (r.route.tls) {
      p.tls_cert = r.route.tls->cert;
      p.tls_key = r.route.tls->key;
    }
    p.https_redirect = r.route.https_redirect;
    out.push_back(std::move(p));
  }
  return out;
}

// A node whose ingress port is taken (another web server) or not allowed does not
// start: serving on without the proxy would break every route without a word. "" for
// both addresses runs no proxy.
Result<void> start_proxy(const NodeOptions& o, NodeServices::Parts& p) {
  if (o.proxy_http.empty() && o.proxy_https.empty()) return {};
  proxy::ProxyOptions po;
  po.http_listen = o.proxy_http;
  po.https_listen = o.proxy_https;
  po.threads = o.proxy_threads;
  auto px = proxy::Proxy::start(po);
  if (!px) {
    return make_error(px.error().code,
                      "the ingress proxy cannot listen (--proxy-http " + o.proxy_http +
                          ", --proxy-https " + o.proxy_https + "): " + px.error().message +
                          ". Is another web server on that port? Give the proxy another "
                          "address, or \"\" to run none");
  }
  p.proxy = std::move(*px);
  if (p.proxy->http_port() != 0) {
    log::info("agent: ingress proxy on port " + std::to_string(p.proxy->http_port()));
  }
  return {};
}

}  // namespace

NodeServices::NodeServices(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

NodeServices::~NodeServices() { stop(); }

std::vector<proxy::RouteStats> NodeServices::proxy_stats() const {
  return parts_->proxy ? parts_->proxy->stats() : std::vector<proxy::RouteStats>{};
}

void NodeServices::stop() {
  if (parts_->log_uplink) parts_->log_uplink->stop();
  if (parts_->logs) parts_->logs->stop();
  if (parts_->runner) parts_->runner->stop();
  if (parts_->proxy) parts_->proxy->stop();
  if (parts_->dns) parts_->dns->stop();
}

Result<std::unique_ptr<NodeServices>> NodeServices::start(const NodeOptions& o, NodeClient& client,
                                                          const std::string& node_id,
                                                          const model::RegisterResponse& reg,
                                                          const Clock& clock) {
  auto p = std::make_unique<Parts>();
  const std::string& d = o.data_dir;

  // The runtime first: it checks runc and mill-shim, so a node missing either fails
  // before it changes anything on the host (bridge, route, firewall).
  runtime::RuntimeOptions rt;
  rt.runtime_path = o.runtime_path;
  rt.shim_path = o.shim_path;
  rt.state_root = d + "/containers";
  rt.runc_root = d + "/runc";
  rt.bundle_root = bundle_dir(o.bridge);
  p->runtime = MILL_TRY(runtime::RuncRuntime::create(rt));
  // The proxy's ports next, for the same reason: taken ports stop the start before the
  // host is touched.
  MILL_TRY(start_proxy(o, *p));

  network::NetworkOptions net;
  net.bridge = o.bridge;
  net.cluster_cidr = reg.cluster_network;
  net.node_cidr = reg.subnet;
  net.netns_prefix = o.bridge + "-";
  net.netns_dir = netns_dir(o.bridge);
  net.dns_port = o.dns_port;
  net.allow_host_ports = o.allow_host_ports;
  // A start that fails from here on undoes the network it made (bridge, guard route,
  // firewall table, netns dir), as `mill cleanup` would. Not one it found: a restarted
  // agent's containers still serve through it.
  struct stat st {};
  const bool fresh_network = ::stat(("/sys/class/net/" + o.bridge).c_str(), &st) != 0;
  p->network = MILL_TRY(network::NodeNetwork::setup(net));
  struct UndoNetwork {
    std::unique_ptr<Parts>& parts;
    const std::string& data_dir;
    bool armed;
    ~UndoNetwork() {
      if (!armed) return;
      parts.reset();  // its threads and sockets first
      if (auto r = NodeServices::cleanup(data_dir); !r) {
        log::warn("agent: undoing a failed start: " + r.error().message);
      }
    }
  } undo{p, d, fresh_network};
  // What `mill cleanup` needs to undo it, even with the server gone.
  ::mkdir((d + "/agent").c_str(), 0700);
  MILL_TRY(
      write_file_atomic(d + "/agent/network.json",
                        model::serialize(boost::json::object{{"bridge", net.bridge},
                                                             {"cluster_cidr", net.cluster_cidr},
                                                             {"node_cidr", net.node_cidr},
                                                             {"netns_prefix", net.netns_prefix},
                                                             {"netns_dir", net.netns_dir}}),
                        0600));

  image::ImageStoreOptions img;
  img.root = d + "/images";
  img.disk_budget_bytes = o.image_budget_bytes;
  img.tag_ttl = o.image_tag_ttl;
  img.ca_file = o.registry_ca_file;
  img.unpack = [](const image::LayerReader& read, const std::string& dest) -> Result<void> {
    MILL_TRY(image::unpack_layer(read, dest));
    return {};
  };
  // Parts does not move (NodeServices owns it by pointer), so the lookup may keep it.
  Parts* parts = p.get();
  img.credentials =
      [parts](const std::string& registry) -> std::optional<image::RegistryCredentials> {
    if (!parts->containers) return std::nullopt;
    auto login = parts->containers->login_for(registry);
    if (!login) return std::nullopt;
    return image::RegistryCredentials{login->username, login->password, login->insecure};
  };
  p->images = MILL_TRY(image::ImageStore::open(img));

  ContainerHostOptions ch;
  ch.alloc_root = d + "/allocs";
  ch.runtime_state_root = rt.state_root;
  ch.cgroup_parent = "/mill-" + o.bridge;
  ch.init_path = o.init_path;
  ch.spare_disk_size = model::kDefaultDisk;
  ::mkdir(ch.alloc_root.c_str(), 0700);
  // Rootfs mounts stay inside this dir: they neither leak into nor come from other
  // mount namespaces.
  MILL_TRY(image::make_mount_private(ch.alloc_root));
  p->volumes = MILL_TRY(volume::VolumeManager::create(d));
  p->containers =
      std::make_unique<ContainerHost>(ch, *p->images, *p->network, *p->runtime, *p->volumes);

  RunnerOptions ro;
  ro.state_dir = d + "/agent";
  ro.grace = o.grace;
  if (auto* px = p->proxy.get()) {
    ro.on_routes = [px](const std::vector<model::ServiceRoute>& routes) {
      px->set_routes(proxy_routes(routes));
    };
    ro.drain = [px, timeout = o.drain_timeout](const model::Allocation& a) {
      if (a.ip.empty() || !a.spec.port) return;
      px->drain(a.ip + ":" + std::to_string(*a.spec.port), timeout);
    };
  }
  p->runner = std::make_unique<AllocRunner>(ro, *p->containers, client, clock);
  p->logs = std::make_unique<LogService>(*p->containers, *p->runner, node_id);

  auto* runner = p->runner.get();
  auto dns = network::DnsServer::start(
      p->network->bridge_ip() + ":" + std::to_string(o.dns_port),
      [runner](std::string_view name) { return runner->lookup(name); },
      network::system_upstreams());
  if (dns) {
    p->dns = std::move(*dns);
  } else {
    // Containers still run; only names under .mill will not resolve.
    log::warn("agent: no DNS server on the bridge: " + dns.error().message);
  }
  MILL_TRY(p->runner->start(node_id));
  auto* logs = p->logs.get();
  p->log_uplink = std::make_unique<LogUplink>(
      client, node_id, [logs](const model::LogRequest& r, std::shared_ptr<net::ResponseWriter> w) {
        logs->stream(r, std::move(w));
      });
  undo.armed = false;
  return std::unique_ptr<NodeServices>(new NodeServices(std::move(p)));
}

Result<void> NodeServices::cleanup(const std::string& d) {
  auto text = read_file(d + "/agent/network.json");
  if (!text) return {};  // this data dir never ran containers
  auto o = MILL_TRY(model::parse_object(
      *text, {"bridge", "cluster_cidr", "node_cidr", "netns_prefix", "netns_dir"}));
  network::NetworkOptions net;
  net.bridge = MILL_TRY(model::get_string(o, "bridge", true));
  net.cluster_cidr = MILL_TRY(model::get_string(o, "cluster_cidr", true));
  net.node_cidr = MILL_TRY(model::get_string(o, "node_cidr", true));
  net.netns_prefix = MILL_TRY(model::get_string(o, "netns_prefix", true));
  net.netns_dir = MILL_TRY(model::get_string(o, "netns_dir", false));
  if (net.netns_dir.empty()) net.netns_dir = "/run/netns";  // written before it was per node

  runtime::RuntimeOptions rt;
  rt.state_root = d + "/containers";
  rt.runc_root = d + "/runc";
  rt.bundle_root = bundle_dir(net.bridge);
  if (auto runtime = runtime::RuncRuntime::create(rt)) {
    if (auto list = (*runtime)->list()) {
      for (const auto& c : *list) {
        if (c.running) (void)(*runtime)->stop(c.id, std::chrono::milliseconds(0));
        if (auto r = (*runtime)->remove(c.id, runtime::KeepLogs::kNo); !r) {
          log::warn("cleanup: container " + c.id + ": " + r.error().message);
        }
      }
    }
  }
  const std::string allocs = d + "/allocs";
  if (DIR* dir = ::opendir(allocs.c_str())) {
    std::vector<std::string> ids;
    while (auto* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") ids.push_back(name);
    }
    ::closedir(dir);
    for (const auto& id : ids) {
      (void)image::unmount_rootfs(allocs + "/" + id + "/rootfs");
      (void)volume::remove_scratch_disk(allocs + "/" + id);
    }
  }
  (void)image::unmount_rootfs(allocs);
  runtime::release_bundle_root(rt.bundle_root);
  // Volumes are unmounted; their data stays on disk for the next start.
  if (auto volumes = volume::VolumeManager::create(d)) {
    if (auto u = (*volumes)->unmount_all(); !u) {
      log::warn("cleanup: volumes: " + u.error().message);
    }
  }
  // The (now empty) parent of every container's cgroups, in every hierarchy.
  if (auto r = runtime::remove_cgroup("/mill-" + net.bridge); !r) {
    log::warn("cleanup: cgroups of /mill-" + net.bridge + ": " + r.error().message);
  }
  auto network = MILL_TRY(network::NodeNetwork::setup(net));
  MILL_TRY(network->teardown());
  if (net.netns_dir == netns_dir(net.bridge)) {
    ::rmdir(net.netns_dir.c_str());  // ours alone; teardown unmounted it
    ::rmdir(net.netns_dir.substr(0, net.netns_dir.rfind('/')).c_str());
    ::rmdir("/run/mill");  // when no other node's dir is left in it
  }
  ::unlink((d + "/agent/network.json").c_str());
  return {};
}

}  // namespace mill::agent
