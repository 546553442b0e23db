#include "proxy/proxy.h"

#include <openssl/ssl.h>

#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/ssl.hpp>
#include <set>

#include "common/log.h"
#include "net/http.h"
#include "proxy/internal.h"

namespace mill::proxy {

using namespace detail;

const std::vector<double>& latency_buckets() {
  static const std::vector<double> b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return b;
}

namespace detail {

RouteCounters::RouteCounters(std::string n)
    : name(std::move(n)), buckets(latency_buckets().size() + 1) {}

void RouteCounters::record(int status, std::chrono::nanoseconds latency) {
  int cls = status / 100;
  if (cls < 1 || cls > 5) cls = 5;
  by_class[cls].fetch_add(1, std::memory_order_relaxed);
  const auto& bounds = latency_buckets();
  double secs = std::chrono::duration<double>(latency).count();
  size_t i = 0;
  while (i < bounds.size() && secs > bounds[i]) ++i;
  buckets[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns.fetch_add(static_cast<uint64_t>(latency.count()), std::memory_order_relaxed);
  count.fetch_add(1, std::memory_order_relaxed);
}

asio::ssl::context* Snapshot::tls_for(std::string_view host) const {
  for (const auto& t : tls) {
    if (t.host == host) return t.context.get();
  }
  for (const auto& t : tls) {
    if (t.host.starts_with("*.")) {
      std::string_view suffix = std::string_view(t.host).substr(1);
      if (host.size() > suffix.size() && host.ends_with(suffix)) return t.context.get();
    }
  }
  return nullptr;
}

std::shared_ptr<const Snapshot> Worker::current() {
  uint64_t v = state.version.load(std::memory_order_acquire);
  if (v != version || !snapshot) {
    std::lock_guard lock(state.mutex);
    snapshot = state.snapshot;
    version = state.version.load(std::memory_order_relaxed);
  }
  return snapshot;
}

std::unique_ptr<PooledConnection> Worker::take_idle(const Upstream& u) {
  auto it = idle.find(u.address);
  if (it == idle.end()) return nullptr;
  auto& list = it->second;
  while (!list.empty()) {
    auto c = std::move(list.back());
    list.pop_back();
    // An upstream that closed the connection while it sat here has sent its FIN: a
    // peek sees end of stream (or data it should not have sent). Either way, drop it.
    char byte;
    int fd = c->stream.socket().native_handle();
    ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return c;
  }
  return nullptr;
}

void Worker::give_back(const Upstream& u, std::unique_ptr<PooledConnection> c) {
  auto& list = idle[u.address];
  if (list.size() >= state.options.max_idle_per_upstream) return;
  c->idle_since = steady_ns();
  list.push_back(std::move(c));
}

}  // namespace detail

namespace {

Result<tcp::endpoint> parse_endpoint(const std::string& text) {
  net::HostPort hp;
  if (!net::parse_host_port(text, hp)) {
    return make_error(ErrorCode::kInvalidArgument, "invalid listen address \"" + text + "\"");
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(hp.host.empty() ? "0.0.0.0" : hp.host, ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "invalid address \"" + text + "\"");
  return tcp::endpoint(addr, hp.port);
}

// Binds one listening socket per worker on the same port (SO_REUSEPORT spreads the
// connections); with port 0 the first one picks the port the others take.
Result<uint16_t> listen_all(std::vector<std::unique_ptr<Worker>>& workers, const std::string& at,
                            std::optional<tcp::acceptor> Worker::*slot) {
  auto ep = MILL_TRY(parse_endpoint(at));
  for (auto& w : workers) {
    auto& a = (*w).*slot;
    a.emplace(w->io);
    boost::system::error_code ec;
    a->open(ep.protocol(), ec);
    if (!ec) a->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        ec.assign(errno, boost::system::system_category());
      }
    }
    if (!ec) a->bind(ep, ec);
    if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      for (auto& other : workers) ((*other).*slot).reset();
      return make_error(ErrorCode::kUnavailable,
                        "proxy: cannot listen on " + at + ": " + ec.message());
    }
    ep.port(a->local_endpoint().port());
  }
  return ep.port();
}

void accept_loop(Worker& w, tcp::acceptor& a, bool tls) {
  a.async_accept(w.io, [&w, &a, tls](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !a.is_open()) return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      if (tls) {
        serve_tls(w, std::move(socket));
      } else {
        serve_plain(w, std::move(socket));
      }
    }
    accept_loop(w, a, tls);
  });
}

Result<std::shared_ptr<asio::ssl::context>> make_tls_context(const ProxyRoute& r) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  ctx->use_certificate_chain(asio::buffer(r.tls_cert), ec);
  if (!ec) ctx->use_private_key(asio::buffer(r.tls_key), asio::ssl::context::pem, ec);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      "route " + r.name + ": bad TLS certificate or key: " + ec.message());
  }
  return ctx;
}

int on_server_name(SSL* ssl, int*, void* arg) {
  auto* state = static_cast<Proxy::State*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_NOACK;  // the default context answers
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard lock(state->mutex);
    snap = state->snapshot;
  }
  auto* ctx = snap ? snap->tls_for(normalize_host(name)) : nullptr;
  if (!ctx) return SSL_TLSEXT_ERR_ALERT_FATAL;
  SSL_set_SSL_CTX(ssl, ctx->native_handle());
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

void Proxy::State::publish_locked() {
  auto snap = std::make_shared<Snapshot>();
  auto now = std::chrono::steady_clock::now();
  std::erase_if(draining, [&](const auto& d) { return d.second <= now; });
  std::set<std::string> live;
  std::vector<RouteKey> keys;
  decltype(tls_contexts) used_tls;
  for (const auto& spec : routes) {
    auto r = std::make_unique<Route>();
    r->spec = spec;
    r->spec.upstreams.clear();
    auto& c = counters[spec.name];
    if (!c) c = std::make_shared<RouteCounters>(spec.name);
    r->counters = c;
    for (const auto& address : spec.upstreams) {
      if (draining.contains(address)) continue;
      auto& u = upstreams[address];
      if (!u) {
        tcp::endpoint ep;
        net::HostPort hp;
        boost::system::error_code ec;
        if (!net::parse_host_port(address, hp)) continue;
        auto addr = asio::ip::make_address(hp.host, ec);
        if (ec) continue;
        u = std::make_shared<Upstream>();
        u->address = address;
        u->endpoint = tcp::endpoint(addr, hp.port);
      }
      live.insert(address);
      r->upstreams.push_back(u);
    }
    keys.push_back({normalize_host(spec.host == "*" || spec.host.starts_with("*.")
                                       ? spec.host.substr(spec.host == "*" ? 0 : 2)
                                       : spec.host),
                    spec.path});
    // normalize_host drops the "*." (it is not a host character): put it back.
    if (spec.host == "*") keys.back().host = "*";
    if (spec.host.starts_with("*.")) keys.back().host = "*." + keys.back().host;
    if (!spec.tls_cert.empty() && !spec.tls_key.empty()) {
      auto key = std::make_pair(spec.tls_cert, spec.tls_key);
      auto cached = tls_contexts.find(key);
      std::shared_ptr<asio::ssl::context> ctx;
      if (cached != tls_contexts.end()) {
        ctx = cached->second;
      } else if (auto made = make_tls_context(spec)) {
        ctx = *made;
      } else {
        log::warn(made.error().message);
      }
      if (ctx) {
        used_tls.emplace(key, ctx);
        bool wildcard = spec.host.starts_with("*");
        auto at = wildcard ? snap->tls.end() : snap->tls.begin();
        snap->tls.insert(at, TlsHost{keys.back().host, ctx});
      }
    }
    snap->routes.push_back(std::move(r));
  }
  // Forget upstreams nothing routes to and nothing uses.
  std::erase_if(upstreams, [&](const auto& kv) {
    return !live.contains(kv.first) && !draining.contains(kv.first) &&
           kv.second->in_flight.load() == 0;
  });
  tls_contexts = std::move(used_tls);  // certificates no route names any more are dropped
  snap->table = RouteTable(keys);
  auto& none = counters[""];
  if (!none) none = std::make_shared<RouteCounters>("");
  snap->unmatched = none;
  snapshot = std::move(snap);
  version.fetch_add(1, std::memory_order_release);
}

Result<void> Proxy::State::listen_https_locked() {
  if (https_port.load() != 0 || options.https_listen.empty()) return {};
  tls_default = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX_set_tlsext_servername_callback(tls_default->native_handle(), on_server_name);
  SSL_CTX_set_tlsext_servername_arg(tls_default->native_handle(), this);
  // Without SNI the first certificate answers.
  for (const auto& r : routes) {
    if (r.tls_cert.empty()) continue;
    if (auto ctx = make_tls_context(r)) tls_default = *ctx;
    SSL_CTX_set_tlsext_servername_callback(tls_default->native_handle(), on_server_name);
    SSL_CTX_set_tlsext_servername_arg(tls_default->native_handle(), this);
    break;
  }
  auto port = MILL_TRY(listen_all(workers, options.https_listen, &Worker::https));
  for (auto& w : workers) {
    asio::post(w->io, [wp = w.get()] { accept_loop(*wp, *wp->https, true); });
  }
  https_port = port;
  return {};
}

Proxy::Proxy(std::unique_ptr<State> state) : state_(std::move(state)) {}
Proxy::~Proxy() { stop(); }

Result<std::unique_ptr<Proxy>> Proxy::start(ProxyOptions options) {
  auto s = std::make_unique<State>();
  s->options = std::move(options);
  int threads = std::max(1, s->options.threads);
  for (int i = 0; i < threads; ++i) s->workers.push_back(std::make_unique<Worker>(*s));
  {
    std::lock_guard lock(s->mutex);
    s->publish_locked();
  }
  if (!s->options.http_listen.empty()) {
    s->http_port = MILL_TRY(listen_all(s->workers, s->options.http_listen, &Worker::http));
    for (auto& w : s->workers) accept_loop(*w, *w->http, false);
  }
  for (auto& w : s->workers) {
    w->thread = std::thread([wp = w.get()] {
      auto guard = asio::make_work_guard(wp->io);
      wp->io.run();
    });
  }
  return std::unique_ptr<Proxy>(new Proxy(std::move(s)));
}

void Proxy::set_routes(std::vector<ProxyRoute> routes) {
  std::lock_guard lock(state_->mutex);
  std::set<std::string> present;
  for (const auto& r : routes) present.insert(r.upstreams.begin(), r.upstreams.end());
  // The control plane has seen a drained upstream go: it may come back later (the
  // address of a new allocation).
  std::erase_if(state_->draining, [&](const auto& d) { return !present.contains(d.first); });
  if (routes == state_->routes) return;
  state_->routes = std::move(routes);
  state_->publish_locked();
  bool wants_tls = false;
  for (const auto& r : state_->routes) wants_tls = wants_tls || !r.tls_cert.empty();
  if (wants_tls) {
    if (auto r = state_->listen_https_locked(); !r) log::warn(r.error().message);
  }
}

std::vector<ProxyRoute> Proxy::routes() const {
  std::lock_guard lock(state_->mutex);
  return state_->routes;
}

void Proxy::drain(const std::string& upstream, std::chrono::milliseconds timeout) {
  std::shared_ptr<Upstream> u;
  {
    std::lock_guard lock(state_->mutex);
    state_->draining[upstream] = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    if (auto it = state_->upstreams.find(upstream); it != state_->upstreams.end()) u = it->second;
    state_->publish_locked();
  }
  // Idle pooled connections to it go now: the next request must not pick one up.
  for (auto& w : state_->workers) {
    asio::post(w->io, [wp = w.get(), upstream] { wp->idle.erase(upstream); });
  }
  if (!u) return;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (u->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int Proxy::in_flight(const std::string& upstream) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->upstreams.find(upstream);
  return it == state_->upstreams.end() ? 0 : it->second->in_flight.load();
}

std::vector<RouteStats> Proxy::stats() const {
  std::lock_guard lock(state_->mutex);
  std::vector<RouteStats> out;
  for (const auto& [name, c] : state_->counters) {
    RouteStats s;
    s.route = name;
    for (int i = 0; i < 6; ++i) s.by_class[i] = c->by_class[i].load(std::memory_order_relaxed);
    for (const auto& b : c->buckets) s.buckets.push_back(b.load(std::memory_order_relaxed));
    s.latency_sum = static_cast<double>(c->sum_ns.load(std::memory_order_relaxed)) / 1e9;
    s.count = c->count.load(std::memory_order_relaxed);
    out.push_back(std::move(s));
  }
  return out;
}

uint16_t Proxy::http_port() const { return state_->http_port; }
uint16_t Proxy::https_port() const { return state_->https_port.load(); }

void Proxy::stop() {
  std::call_once(state_->stop_once, [this] {
    for (auto& w : state_->workers) w->io.stop();
    for (auto& w : state_->workers) {
      if (w->thread.joinable()) w->thread.join();
    }
    // Pending connections (and their coroutines) go with the event loops.
    for (auto& w : state_->workers) {
      w->idle.clear();
      w->http.reset();
      w->https.reset();
    }
  });
}

}  // namespace mill::proxy
