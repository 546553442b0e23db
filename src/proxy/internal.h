#pragma once

// The proxy's moving parts, shared by proxy.cc (lifecycle, routes, TLS), upstream.cc
// (choosing and dialing an upstream) and session.h (one client connection). Only this
// module includes it: it pulls in Asio, Beast and OpenSSL.

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/proxy.h"
#include "proxy/route_table.h"

namespace mill::proxy::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

inline int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Upstream {
  std::string address;  // "ip:port"
  tcp::endpoint endpoint;
  std::atomic<int> in_flight{0};
  std::atomic<int64_t> ejected_until{0};  // steady_ns(): skipped until then
};

// Lock-free totals for one route; every worker adds to them.
struct RouteCounters {
  std::string name;
  std::atomic<uint64_t> by_class[6] = {};
  std::vector<std::atomic<uint64_t>> buckets;  // latency_buckets().size() + 1
  std::atomic<uint64_t> sum_ns{0};
  std::atomic<uint64_t> count{0};

  explicit RouteCounters(std::string n);
  void record(int status, std::chrono::nanoseconds latency);
};

struct Route {
  ProxyRoute spec;
  std::vector<std::shared_ptr<Upstream>> upstreams;  // drained ones left out
  std::shared_ptr<RouteCounters> counters;
  mutable std::atomic<size_t> next{0};  // round robin among equally loaded upstreams
};

struct TlsHost {
  std::string host;  // exact or "*.suffix"
  std::shared_ptr<asio::ssl::context> context;
};

// One route table as workers use it; replaced whole, never changed.
struct Snapshot {
  RouteTable table;
  std::vector<std::unique_ptr<Route>> routes;
  std::vector<TlsHost> tls;  // exact hosts first
  std::shared_ptr<RouteCounters> unmatched;

  // The certificate for an SNI name, or null.
  asio::ssl::context* tls_for(std::string_view host) const;
};

struct PooledConnection {
  beast::tcp_stream stream;
  int64_t idle_since = 0;
};

// One event loop and everything only its thread touches.
struct Worker {
  explicit Worker(Proxy::State& s) : state(s) {}
  Proxy::State& state;
  asio::io_context io{1};
  std::optional<tcp::acceptor> http;
  std::optional<tcp::acceptor> https;
  std::thread thread;
  std::unordered_map<std::string, std::vector<std::unique_ptr<PooledConnection>>> idle;
  std::shared_ptr<const Snapshot> snapshot;
  uint64_t version = 0;

  // The current table (refreshed when the proxy's changed). A request holds on to it
  // until it ends: the worker may move on to a newer one meanwhile.
  std::shared_ptr<const Snapshot> current();
  // A pooled connection to `u` that is still open, or null.
  std::unique_ptr<PooledConnection> take_idle(const Upstream& u);
  void give_back(const Upstream& u, std::unique_ptr<PooledConnection> c);
};

}  // namespace mill::proxy::detail

namespace mill::proxy {

struct Proxy::State {
  ProxyOptions options;
  std::vector<std::unique_ptr<detail::Worker>> workers;
  uint16_t http_port = 0;
  std::atomic<uint16_t> https_port{0};
  std::shared_ptr<boost::asio::ssl::context> tls_default;  // SNI picks the real one

  mutable std::mutex mutex;
  std::shared_ptr<const detail::Snapshot> snapshot;
  std::atomic<uint64_t> version{1};
  std::vector<ProxyRoute> routes;                                      // as last set
  std::map<std::string, std::shared_ptr<detail::Upstream>> upstreams;  // by address
  std::map<std::string, std::shared_ptr<detail::RouteCounters>> counters;
  std::map<std::string, std::chrono::steady_clock::time_point> draining;  // until
  // TLS contexts by (certificate, key): a route change (every health change) reuses
  // them rather than parsing the PEMs again.
  std::map<std::pair<std::string, std::string>, std::shared_ptr<boost::asio::ssl::context>>
      tls_contexts;
  std::once_flag stop_once;

  // Builds and publishes a snapshot from `routes` minus `draining`. Under mutex.
  void publish_locked();
  Result<void> listen_https_locked();
};

namespace detail {
// Serves one accepted connection on its worker (session.cc).
void serve_plain(Worker& w, tcp::socket socket);
void serve_tls(Worker& w, tcp::socket socket);
}  // namespace detail

}  // namespace mill::proxy
