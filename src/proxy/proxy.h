#pragma once

// The ingress proxy every node runs (Boost.Beast over Asio behind this plain
// interface): HTTP/1.1 from clients, routed by host and path to the healthy
// allocations of a service over keep-alive connection pools; WebSocket and other
// upgrades tunnelled; TLS terminated with a certificate per host (SNI).
//
// Threading: one event loop per thread (`threads`), each with its own listening socket
// (SO_REUSEPORT) and its own upstream pools, as nginx's workers. Every public method
// may be called from any thread.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace mill::proxy {

struct ProxyRoute {
  std::string name;                    // the metrics label: the service
  std::string host;                    // exact, "*.suffix" or "*"
  std::string path = "/";              // prefix
  std::vector<std::string> upstreams;  // "ip:port" of healthy allocations
  std::string tls_cert;                // PEM chain; with tls_key: served on HTTPS for host
  std::string tls_key;                 // PEM private key
  bool https_redirect = false;         // plain HTTP answers 308 to the https:// URL

  bool operator==(const ProxyRoute&) const = default;
};

struct ProxyOptions {
  std::string http_listen = "0.0.0.0:80";    // empty: no plain HTTP listener
  std::string https_listen = "0.0.0.0:443";  // bound once a route has a certificate
  int threads = 2;
  std::chrono::milliseconds connect_timeout{5000};    // to an upstream
  std::chrono::milliseconds header_timeout{10000};    // a client's request header
  std::chrono::milliseconds idle_timeout{60000};      // no byte either way, in a request or between
  std::chrono::milliseconds request_timeout{300000};  // a client's whole request (header + body)
  std::chrono::milliseconds response_timeout{60000};  // an upstream's response header
  std::chrono::milliseconds tunnel_idle_timeout{std::chrono::hours(1)};  // WebSocket etc.
  size_t max_header_bytes = 32 * 1024;                                   // beyond: 431
  size_t max_idle_per_upstream = 64;  // pooled keep-alive connections, per thread
  // Keep a client's X-Forwarded-For (and append to it) instead of replacing it: only
  // behind another proxy that sets it.
  bool trust_forwarded = false;
  // After a failed connect, an upstream is skipped for this long (passive health).
  std::chrono::milliseconds eject_time{2000};
};

// Totals since start, per route (`route` is the route's name; "" for requests that
// matched no route).
struct RouteStats {
  std::string route;
  uint64_t by_class[6] = {};      // responses by status class: [1]=1xx ... [5]=5xx
  std::vector<uint64_t> buckets;  // latency histogram, per bucket (not cumulative)
  double latency_sum = 0;         // seconds
  uint64_t count = 0;
};
// Upper bounds of the latency buckets, in seconds.
const std::vector<double>& latency_buckets();

class Proxy {
 public:
  static Result<std::unique_ptr<Proxy>> start(ProxyOptions options);
  ~Proxy();

  // Replaces the route table. Upstreams being drained stay out of it.
  void set_routes(std::vector<ProxyRoute> routes);
  std::vector<ProxyRoute> routes() const;

  // Takes `upstream` out of rotation now, then waits until its requests in flight have
  // finished (or `timeout` passed): call before the allocation receives SIGTERM. It
  // stays out until a route table without it has been set (the control plane has seen
  // it go), or for 5 minutes.
  void drain(const std::string& upstream, std::chrono::milliseconds timeout);

  // Requests to `upstream` in flight now.
  int in_flight(const std::string& upstream) const;

  std::vector<RouteStats> stats() const;

  uint16_t http_port() const;   // 0 when not listening
  uint16_t https_port() const;  // 0 until a route has a certificate

  // Stops accepting, closes connections, joins the threads. Idempotent.
  void stop();

  struct State;

 private:
  explicit Proxy(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace mill::proxy
