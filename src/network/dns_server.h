#pragma once

// The node's resolver for containers (DESIGN.md "Nodes and networking"): UDP on the
// bridge address, port 53. Names under `.mill` are answered from a lookup the agent
// provides (tasks now, services later); every other query is forwarded, unchanged,
// to the host's resolvers and the answer relayed back.
//
// Containers cannot reach the host's loopback resolvers (127.0.0.53 and the like), but
// this server runs in the host's namespace and can, so upstreams may be loopback.
// Containers must be given `nameserver <bridge ip>` in their resolv.conf — the
// agent's job when it builds the bundle.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.h"

namespace mill::network {

// Called on the server's thread, so it must be thread-safe and must not block. Gets
// a name in lowercase without the trailing dot ("task-ab12.mill") and returns its
// IPv4 addresses as text; empty means the name does not exist (NXDOMAIN).
using NameLookup = std::function<std::vector<std::string>(std::string_view name)>;

// How the server answers; the defaults suit production.
struct DnsSettings {
  int ttl_seconds = 5;             // for .mill answers: allocations come and go
  int upstream_timeout_ms = 2000;  // per upstream, then the next one; all failed: SERVFAIL
  size_t max_pending = 512;        // forwarded queries in flight; beyond: SERVFAIL
};

class DnsServer {
 public:
  // Binds UDP `listen` ("10.99.1.1:53"; port 0 picks one, see port()) and starts the
  // server thread. `upstreams` are "ADDR" (port 53) or "ADDR:PORT" / "[V6]:PORT"; none
  // means only .mill names resolve (others get SERVFAIL). kInvalidArgument for a bad
  // address, kIo when the bind fails.
  static Result<std::unique_ptr<DnsServer>> start(std::string listen, NameLookup lookup,
                                                  std::vector<std::string> upstreams,
                                                  DnsSettings settings = {});
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Stops the thread and closes the sockets; queries in flight are dropped. Idempotent.
  void stop();
  uint16_t port() const { return port_; }

  struct State;  // shared with the server thread (dns_server.cc)

 private:
  explicit DnsServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// The `nameserver` addresses of a resolv.conf, in order, at most three (the most the
// C library uses). Comments and other options are skipped; loopback addresses are
// kept (see above).
std::vector<std::string> parse_resolv_conf(std::string_view text);
// parse_resolv_conf of /etc/resolv.conf; empty when it cannot be read.
std::vector<std::string> system_upstreams();

}  // namespace mill::network
