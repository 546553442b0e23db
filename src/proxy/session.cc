// One client connection of the proxy: reads requests, routes each, forwards it to an
// upstream over a pooled keep-alive connection and relays the response, streaming
// bodies both ways in fixed-size pieces. Runs as a coroutine on its worker's thread.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "net/http.h"
#include "proxy/internal.h"
#include "proxy/rules.h"

namespace mill::proxy::detail {

namespace http = beast::http;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kPiece = 64 * 1024;

using Request = http::request<http::buffer_body>;
using Response = http::response<http::buffer_body>;

template <class Stream>
beast::tcp_stream& tcp_of(Stream& s) {
  return beast::get_lowest_layer(s);
}

// Counts a request against its upstream while it is in flight (drain waits for 0).
class InFlight {
 public:
  explicit InFlight(Upstream& u) : u_(&u) { u_->in_flight.fetch_add(1); }
  ~InFlight() { u_->in_flight.fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  Upstream* u_;
};

// Least requests in flight, not recently failed, not tried for this request; ties go
// round robin.
Upstream* pick(const Route& r, const std::vector<Upstream*>& tried) {
  const size_t n = r.upstreams.size();
  if (n == 0) return nullptr;
  size_t start = r.next.fetch_add(1, std::memory_order_relaxed);
  int64_t now = steady_ns();
  Upstream* best = nullptr;
  Upstream* fallback = nullptr;  // when every untried one is ejected
  for (size_t i = 0; i < n; ++i) {
    Upstream* u = r.upstreams[(start + i) % n].get();
    if (std::find(tried.begin(), tried.end(), u) != tried.end()) continue;
    if (u->ejected_until.load(std::memory_order_relaxed) > now) {
      if (!fallback) fallback = u;
      continue;
    }
    if (!best || u->in_flight.load(std::memory_order_relaxed) <
                     best->in_flight.load(std::memory_order_relaxed)) {
      best = u;
    }
  }
  return best ? best : fallback;
}

template <class Stream>
class Session {
 public:
  Session(Worker& w, Stream stream, bool tls) : w_(w), client_(std::move(stream)), tls_(tls) {
    boost::system::error_code ec;
    auto ep = tcp_of(client_).socket().remote_endpoint(ec);
    if (!ec) client_ip_ = ep.address().to_string();
  }

  awaitable<void> run() {
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
      tcp_of(client_).expires_after(first && buffer_.size() == 0 ? o.header_timeout
                                                                 : o.idle_timeout);
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

 private:
  // Answers one request; false when the connection must close afterwards.
  awaitable<bool> handle(http::request_parser<http::buffer_body>& p) {
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
    std::string host = normalize_host(target_host.empty() ? std::string_view(req[http::field::host])
                                                          : target_host);
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
      location +=
          std::string(req.target().starts_with("/") ? std::string_view(req.target()) : path);
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
      if (!conn) {
        conn = std::make_unique<PooledConnection>(PooledConnection{beast::tcp_stream(w_.io), 0});
        conn->stream.expires_after(o.connect_timeout);
        auto [ec] = co_await conn->stream.async_connect(u->endpoint, nothrow);
        if (ec) {
          u->ejected_until.store(steady_ns() + std::chrono::nanoseconds(o.eject_time).count(),
                                 std::memory_order_relaxed);
          failure = "cannot connect to " + u->address + ": " + ec.message();
          continue;
        }
        boost::system::error_code ignored;
        conn->stream.socket().set_option(tcp::no_delay(true), ignored);
      }
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
      if (out.kind == Outcome::kUpstreamFailed && out.retryable && is_idempotent(req) &&
          !has_body) {
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
        route.counters->record(out.status ? out.status : 499,
                               std::chrono::steady_clock::now() - t0);
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

  struct Outcome {
    enum Kind { kDone, kRetry, kUpstreamFailed, kClientGone } kind = kDone;
    int status = 0;
    bool client_keep = false;
    bool upstream_reusable = false;
    bool retryable = false;         // failed before any response byte
    bool response_started = false;  // some of the response reached the client
    bool timed_out = false;
    std::string message;
  };

  // Sends the request (header, then body piece by piece) and relays the response.
  awaitable<Outcome> exchange(http::request_parser<http::buffer_body>& p, PooledConnection& conn,
                              bool upgrade) {
    const ProxyOptions& o = w_.state.options;
    Outcome out;
    Request& req = p.get();
    http::request_serializer<http::buffer_body> sr{req};
    conn.stream.expires_after(o.idle_timeout);
    if (p.is_done()) {
      // No body: the head goes out in one write.
      req.body().data = nullptr;
      req.body().size = 0;
      req.body().more = false;
      auto [ec, n] = co_await http::async_write(conn.stream, sr, nothrow);
      if (ec && ec != http::error::need_buffer) {
        out.kind = Outcome::kRetry;
        out.message = "upstream write failed: " + ec.message();
        co_return out;
      }
    } else {
      auto [ec, n] = co_await http::async_write_header(conn.stream, sr, nothrow);
      if (ec) {
        out.kind = Outcome::kRetry;
        out.message = "upstream write failed: " + ec.message();
        co_return out;
      }
      if (auto r = co_await relay_request_body(p, sr, conn); r.kind != Outcome::kDone) co_return r;
    }

    // The response; 1xx interim answers (but 101) are passed on and the real one read.
    beast::flat_buffer& ubuf = upstream_buffer_;
    ubuf.clear();
    std::optional<http::response_parser<http::buffer_body>> rp;
    while (true) {
      rp.emplace();
      rp->header_limit(static_cast<uint32_t>(o.max_header_bytes));
      rp->body_limit(boost::none);
      if (req.method() == http::verb::head) rp->skip(true);
      conn.stream.expires_after(o.response_timeout);
      auto [ec, n] = co_await http::async_read_header(conn.stream, ubuf, *rp, nothrow);
      if (ec) {
        out.kind = Outcome::kUpstreamFailed;
        out.retryable = n == 0 && ubuf.size() == 0;
        out.timed_out = ec == beast::error::timeout;
        out.message = out.timed_out ? "upstream response timeout"
                                    : "upstream response failed: " + ec.message();
        co_return out;
      }
      int code = rp->get().result_int();
      if (code >= 100 && code < 200 && code != 101) {
        http::response<http::empty_body> interim{rp->get().result(), 11};
        for (const auto& f : rp->get()) interim.insert(f.name_string(), f.value());
        tcp_of(client_).expires_after(o.idle_timeout);
        auto [wec, wn] = co_await http::async_write(client_, interim, nothrow);
        if (wec) {
          out.kind = Outcome::kClientGone;
          co_return out;
        }
        continue;
      }
      break;
    }
    Response& res = rp->get();
    out.status = res.result_int();
    if (upgrade && out.status == 101) co_return co_await tunnel(res, conn);

    const bool upstream_keep = res.keep_alive();
    prepare_response(res);
    const bool body_allowed =
        req.method() != http::verb::head && out.status != 204 && out.status != 304;
    bool client_keep = req.keep_alive();
    if (body_allowed && !res.has_content_length() && !res.chunked()) {
      // Close-delimited: chunk it for an HTTP/1.1 client; a 1.0 one gets it the same way.
      if (req.version() >= 11) {
        res.chunked(true);
      } else {
        client_keep = false;
      }
    }
    if (req.version() < 11 && res.chunked()) {
      res.chunked(false);
      client_keep = false;
    }
    res.version(11);
    res.keep_alive(client_keep);
    out.client_keep = client_keep;

    http::response_serializer<http::buffer_body> rs{res};
    if (!rp->is_done() && ubuf.size() == 0) {
      // None of the body is here yet (an SSE stream may wait long for its first
      // event): the head goes first. Otherwise it goes with the first piece, and a
      // small response is one write.
      tcp_of(client_).expires_after(o.idle_timeout);
      auto [ec, n] = co_await http::async_write_header(client_, rs, nothrow);
      if (ec) {
        out.kind = Outcome::kClientGone;
        co_return out;
      }
    }
    out.response_started = true;  // from here on, a failure can only close
    std::vector<char>& piece = piece_buffer();
    while (true) {
      if (!rp->is_done()) {
        res.body().data = piece.data();
        res.body().size = piece.size();
        conn.stream.expires_after(o.idle_timeout);
        auto [ec, n] = co_await http::async_read_some(conn.stream, ubuf, *rp, nothrow);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {
          out.kind = Outcome::kUpstreamFailed;
          out.timed_out = ec == beast::error::timeout;
          out.message = "upstream response body failed: " + ec.message();
          co_return out;
        }
        res.body().size = piece.size() - res.body().size;
        res.body().data = piece.data();
        res.body().more = !rp->is_done();
        // Nothing parsed yet (a chunk header, say): an empty piece would end a chunked
        // body early, so read on.
        if (res.body().size == 0 && res.body().more) continue;
      } else {
        res.body().data = nullptr;
        res.body().size = 0;
        res.body().more = false;
      }
      tcp_of(client_).expires_after(o.idle_timeout);
      auto [ec, n] = co_await http::async_write(client_, rs, nothrow);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        out.kind = Outcome::kClientGone;
        co_return out;
      }
      if (rp->is_done() && rs.is_done()) break;
    }
    out.kind = Outcome::kDone;
    out.upstream_reusable = upstream_keep && ubuf.size() == 0 && rp->is_done();
    co_return out;
  }

  awaitable<Outcome> relay_request_body(http::request_parser<http::buffer_body>& p,
                                        http::request_serializer<http::buffer_body>& sr,
                                        PooledConnection& conn) {
    const ProxyOptions& o = w_.state.options;
    Outcome out;
    Request& req = p.get();
    std::vector<char>& piece = piece_buffer();
    auto deadline = request_started_ + o.request_timeout;
    while (true) {
      if (!p.is_done()) {
        req.body().data = piece.data();
        req.body().size = piece.size();
        auto left = deadline - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) {
          out.kind = Outcome::kClientGone;
          out.status = 408;
          co_return out;
        }
        tcp_of(client_).expires_after(std::min<std::chrono::steady_clock::duration>(
            left, std::chrono::duration_cast<std::chrono::steady_clock::duration>(o.idle_timeout)));
        auto [ec, n] = co_await http::async_read_some(client_, buffer_, p, nothrow);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {
          out.kind = Outcome::kClientGone;
          out.status = ec == beast::error::timeout ? 408 : 400;
          co_return out;
        }
        req.body().size = piece.size() - req.body().size;
        req.body().data = piece.data();
        req.body().more = !p.is_done();
        if (req.body().size == 0 && req.body().more) continue;  // as for responses
      } else {
        req.body().data = nullptr;
        req.body().size = 0;
        req.body().more = false;
      }
      conn.stream.expires_after(o.idle_timeout);
      auto [ec, n] = co_await http::async_write(conn.stream, sr, nothrow);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        out.kind = Outcome::kUpstreamFailed;
        out.message = "upstream write failed: " + ec.message();
        co_return out;
      }
      if (p.is_done() && sr.is_done()) break;
    }
    co_return out;
  }

  // After a 101: the connection is no longer HTTP; bytes go both ways until one side
  // closes (or the tunnel idles out).
  awaitable<Outcome> tunnel(Response& res, PooledConnection& conn) {
    const ProxyOptions& o = w_.state.options;
    Outcome out;
    out.status = 101;
    prepare_response(res, KeepUpgrade::kYes);
    http::response<http::empty_body> head{res.result(), 11};
    for (const auto& f : res) head.insert(f.name_string(), f.value());
    tcp_of(client_).expires_after(o.idle_timeout);
    auto [ec, n] = co_await http::async_write(client_, head, nothrow);
    if (ec) {
      out.kind = Outcome::kClientGone;
      co_return out;
    }
    // Whatever either side sent early is already in our buffers.
    if (buffer_.size() > 0) {
      conn.stream.expires_after(o.idle_timeout);
      auto [wec, wn] = co_await asio::async_write(conn.stream, buffer_.data(), nothrow);
      if (wec) co_return out;
      buffer_.consume(buffer_.size());
    }
    if (upstream_buffer_.size() > 0) {
      auto [wec, wn] = co_await asio::async_write(client_, upstream_buffer_.data(), nothrow);
      if (wec) co_return out;
      upstream_buffer_.consume(upstream_buffer_.size());
    }
    co_await (pipe(client_, conn.stream) || pipe(conn.stream, client_));
    out.kind = Outcome::kDone;
    out.client_keep = false;
    co_return out;
  }

  template <class From, class To>
  awaitable<void> pipe(From& from, To& to) {
    const auto idle = w_.state.options.tunnel_idle_timeout;
    std::vector<char> buf(16 * 1024);
    while (true) {
      tcp_of(from).expires_after(idle);
      auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), nothrow);
      if (ec) co_return;
      tcp_of(to).expires_after(idle);
      auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.data(), n), nothrow);
      if (wec) co_return;
    }
  }

  awaitable<void> reply(int status, std::string body, bool keep, std::string location = {}) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    if (!location.empty()) res.set(http::field::location, location);
    res.body() = std::move(body);
    res.keep_alive(keep);
    res.prepare_payload();
    tcp_of(client_).expires_after(w_.state.options.idle_timeout);
    co_await http::async_write(client_, res, nothrow);
  }

  std::vector<char>& piece_buffer() {
    if (piece_.empty()) piece_.resize(kPiece);
    return piece_;
  }

  Worker& w_;
  Stream client_;
  bool tls_;
  std::string client_ip_;
  beast::flat_buffer buffer_;           // from the client
  beast::flat_buffer upstream_buffer_;  // from the upstream
  std::vector<char> piece_;             // one body piece on its way through
  std::chrono::steady_clock::time_point request_started_;
};

}  // namespace

void serve_plain(Worker& w, tcp::socket socket) {
  auto s =
      std::make_shared<Session<beast::tcp_stream>>(w, beast::tcp_stream(std::move(socket)), false);
  asio::co_spawn(
      w.io, [s]() -> awaitable<void> { co_await s->run(); }, asio::detached);
}

void serve_tls(Worker& w, tcp::socket socket) {
  auto* ctx = w.state.tls_default.get();
  if (!ctx) return;
  using Tls = beast::ssl_stream<beast::tcp_stream>;
  auto s = std::make_shared<Session<Tls>>(w, Tls(beast::tcp_stream(std::move(socket)), *ctx), true);
  asio::co_spawn(
      w.io, [s]() -> awaitable<void> { co_await s->run(); }, asio::detached);
}

}  // namespace mill::proxy::detail
