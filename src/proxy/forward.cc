// One request's exchange with one upstream (see session.h): the request head and body
// go up piece by piece, interim 1xx answers and the response come back as they arrive,
// and a 101 turns the connection into a byte tunnel.

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "proxy/rules.h"
#include "proxy/session.h"

namespace mill::proxy::detail {

using namespace asio::experimental::awaitable_operators;

template <class Stream>
auto Session<Stream>::exchange(http::request_parser<http::buffer_body>& p, PooledConnection& conn,
                               bool upgrade) -> awaitable<Outcome> {
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
      out.message =
          out.timed_out ? "upstream response timeout" : "upstream response failed: " + ec.message();
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

template <class Stream>
auto Session<Stream>::relay_request_body(http::request_parser<http::buffer_body>& p,
                                         http::request_serializer<http::buffer_body>& sr,
                                         PooledConnection& conn) -> awaitable<Outcome> {
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

template <class Stream>
auto Session<Stream>::tunnel(Response& res, PooledConnection& conn) -> awaitable<Outcome> {
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

template <class Stream>
template <class From, class To>
awaitable<void> Session<Stream>::pipe(From& from, To& to) {
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

// handle() in session.cc calls exchange(): its definition is here, so both sessions
// are instantiated here.
template class Session<beast::tcp_stream>;
template class Session<TlsStream>;

}  // namespace mill::proxy::detail
