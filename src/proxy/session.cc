// The proxy's request loop for one client connection (see session.h): read a request
// header, route it, answer what the proxy answers itself (400, 404, the HTTPS redirect,
// 100 Continue), then forward it (forward.cc), moving to another upstream when that is
// safe.

#include "proxy/session.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl.hpp>

#include "net/http.h"
#include "proxy/rules.h"
#include "proxy/upstream.h"

namespace mill::proxy::detail {

template <class Stream>
awaitable<void> Session<Stream>::run() {
  const ProxyOptions& o = w_.state.options;
  if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
    tcp_of(client_).expires_after(o.header_timeout);
    auto [ec] = co_await client_.async_handshake(asio::ssl::stream_base::server, nothrow);
    if (ec) co_return;
  }
  bool first = true;
  while (true) {
    http::request_parser<http::buffer_body> p;
    p.header_limit(static_cast<uint32_t>(o.max_header_bytes));
    p.body_limit(boost::none);
    // The first request gets the header timeout; between requests the connection may
    // idle for longer, but once a request begins its header must arrive in time.
    tcp_of(client_).expires_after(first && buffer_.size() == 0 ? o.header_timeout : o.idle_timeout);
    first = false;
    request_started_ = std::chrono::steady_clock::now();
    auto [ec, n] = co_await http::async_read_header(client_, buffer_, p, nothrow);
    if (ec) {
      if (ec == http::error::header_limit) {
        co_await reply(431, "request header too large\n", false);
      } else if (ec != http::error::end_of_stream && ec != asio::error::eof &&
                 ec != beast::error::timeout && ec != asio::error::connection_reset &&
                 ec != asio::error::operation_aborted && n > 0) {
        co_await reply(400, "malformed request: " + ec.message() + "\n", false);
      } else if (ec == beast::error::timeout && buffer_.size() > 0) {
        co_await reply(408, "request header timeout\n", false);
      }
      break;
    }
    bool keep = co_await handle(p);
    if (!keep) break;
  }
  boost::system::error_code ignored;
  tcp_of(client_).socket().shutdown(tcp::socket::shutdown_send, ignored);
}

template <class Stream>
awaitable<bool> Session<Stream>::handle(http::request_parser<http::buffer_body>& p) {
  const ProxyOptions& o = w_.state.options;
  Request& req = p.get();
  const std::shared_ptr<const Snapshot> held = w_.current();
  const Snapshot& snap = *held;
  auto t0 = request_started_;
  bool client_keep = req.keep_alive();

  if (auto bad = check_request(req); !bad.empty()) {
    snap.unmatched->record(400, std::chrono::steady_clock::now() - t0);
    co_await reply(400, bad + "\n", false);
    co_return false;
  }
  std::string_view target_host;
  std::string_view path = target_path(req.target(), &target_host);
  std::string host =
      normalize_host(target_host.empty() ? std::string_view(req[http::field::host]) : target_host);
  size_t idx = snap.table.match(host, path);
  // Answering without reading the body leaves it in the way of the next request.
  bool body_pending = !p.is_done();
  if (idx == RouteTable::npos) {
    snap.unmatched->record(404, std::chrono::steady_clock::now() - t0);
    co_await reply(404, "no route for " + host + std::string(path) + "\n",
                   client_keep && !body_pending);
    co_return client_keep && !body_pending;
  }
  const Route& route = *snap.routes[idx];
  if (route.spec.https_redirect && !tls_) {
    std::string location = "https://" + host;
    uint16_t port = w_.state.https_port.load();
    if (port != 0 && port != 443) location += ":" + std::to_string(port);
    location += std::string(req.target().starts_with("/") ? std::string_view(req.target()) : path);
    route.counters->record(308, std::chrono::steady_clock::now() - t0);
    co_await reply(308, "", client_keep && !body_pending, location);
    co_return client_keep && !body_pending;
  }

  const bool upgrade = is_upgrade(req);
  const bool has_body = body_pending;
  if (has_body && expects_continue(req)) {
    // As nginx does: answer 100 here, so the client sends its body without waiting
    // on the upstream (which never sees the Expect).
    tcp_of(client_).expires_after(o.idle_timeout);
    auto [ec, n] = co_await asio::async_write(
        client_, asio::buffer(std::string_view("HTTP/1.1 100 Continue\r\n\r\n")), nothrow);
    if (ec) co_return false;
  }
  prepare_request(req, RequestContext{client_ip_, tls_, o.trust_forwarded});

  std::vector<Upstream*> tried;
  const size_t attempts = std::min<size_t>(3, std::max<size_t>(1, route.upstreams.size()));
  int status = 0;
  bool keep = false;
  std::string failure = route.upstreams.empty()
                            ? "no healthy allocation of " + route.spec.name
                            : "cannot reach any allocation of " + route.spec.name;
  int failure_status = 502;
  for (size_t attempt = 0; attempt < attempts; ++attempt) {
    Upstream* u = pick(route, tried);
    if (!u) break;
    tried.push_back(u);
    InFlight counted(*u);
    auto conn = w_.take_idle(*u);
    const bool pooled = conn != nullptr;
    if (!conn) conn = co_await connect_upstream(w_, *u, failure);
    if (!conn) continue;
    Outcome out = co_await exchange(p, *conn, upgrade);
    if (out.kind == Outcome::kRetry) {
      // The request header did not go out: nothing reached the upstream. A pooled
      // connection it had just closed does not count as an attempt.
      failure = out.message;
      if (pooled) {
        --attempt;
        tried.pop_back();
      }
      continue;
    }
    if (out.kind == Outcome::kUpstreamFailed && out.retryable && is_idempotent(req) && !has_body) {
      failure = out.message;
      // A kept-alive connection the upstream closed just as the request went out (its
      // idle timeout racing ours) says nothing about the upstream: try again on a
      // fresh connection, to the same one if it is the only one, without counting.
      if (pooled) {
        --attempt;
        tried.pop_back();
      }
      continue;
    }
    if (out.kind == Outcome::kDone) {
      status = out.status;
      keep = client_keep && out.client_keep;
      if (out.upstream_reusable) w_.give_back(*u, std::move(conn));
      route.counters->record(status, std::chrono::steady_clock::now() - t0);
      co_return keep;
    }
    if (out.kind == Outcome::kClientGone) {
      route.counters->record(out.status ? out.status : 499, std::chrono::steady_clock::now() - t0);
      co_return false;
    }
    // The upstream failed after the request (or part of it) went out: not safe to
    // send again.
    failure = out.message;
    failure_status = out.timed_out ? 504 : 502;
    if (out.response_started) {
      route.counters->record(502, std::chrono::steady_clock::now() - t0);
      co_return false;  // the client has part of a response: only closing tells it
    }
    break;
  }
  route.counters->record(failure_status, std::chrono::steady_clock::now() - t0);
  co_await reply(failure_status, failure + "\n", false);
  co_return false;
}

template <class Stream>
awaitable<void> Session<Stream>::reply(int status, std::string body, bool keep,
                                       std::string location) {
  http::response<http::string_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  if (!location.empty()) res.set(http::field::location, location);
  res.body() = std::move(body);
  res.keep_alive(keep);
  res.prepare_payload();
  tcp_of(client_).expires_after(w_.state.options.idle_timeout);
  co_await http::async_write(client_, res, nothrow);
}

void serve_plain(Worker& w, tcp::socket socket) {
  auto s =
      std::make_shared<Session<beast::tcp_stream>>(w, beast::tcp_stream(std::move(socket)), false);
  asio::co_spawn(
      w.io, [s]() -> awaitable<void> { co_await s->run(); }, asio::detached);
}

void serve_tls(Worker& w, tcp::socket socket) {
  auto* ctx = w.state.tls_default.get();
  if (!ctx) return;
  auto s = std::make_shared<Session<TlsStream>>(
      w, TlsStream(beast::tcp_stream(std::move(socket)), *ctx), true);
  asio::co_spawn(
      w.io, [s]() -> awaitable<void> { co_await s->run(); }, asio::detached);
}

}  // namespace mill::proxy::detail
