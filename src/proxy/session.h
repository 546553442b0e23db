#pragma once

// One client connection of the proxy: reads requests, routes each, forwards it to an
// upstream over a pooled keep-alive connection and relays the response, streaming
// bodies both ways in fixed-size pieces. Runs as a coroutine on its worker's thread.
//
// session.cc: the request loop (TLS handshake, request header, routing, the HTTPS
// redirect, 100-continue, choosing and retrying upstreams, the proxy's own answers).
// forward.cc: one request's exchange with one upstream (the request body up, interim
// and final response back, or a byte tunnel after 101); it instantiates Session for
// both stream types. Only the proxy module includes this header.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "proxy/internal.h"

namespace mill::proxy::detail {

namespace http = beast::http;
using asio::awaitable;

inline constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
inline constexpr size_t kPiece = 64 * 1024;

using Request = http::request<http::buffer_body>;
using Response = http::response<http::buffer_body>;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

template <class Stream>
beast::tcp_stream& tcp_of(Stream& s) {
  return beast::get_lowest_layer(s);
}

// Stream: beast::tcp_stream (plain HTTP) or TlsStream.
template <class Stream>
class Session {
 public:
  Session(Worker& w, Stream stream, bool tls) : w_(w), client_(std::move(stream)), tls_(tls) {
    boost::system::error_code ec;
    auto ep = tcp_of(client_).socket().remote_endpoint(ec);
    if (!ec) client_ip_ = ep.address().to_string();
  }

  awaitable<void> run();

 private:
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

  // session.cc
  // Answers one request; false when the connection must close afterwards.
  awaitable<bool> handle(http::request_parser<http::buffer_body>& p);
  awaitable<void> reply(int status, std::string body, bool keep, std::string location = {});

  // forward.cc
  // Sends the request (header, then body piece by piece) and relays the response.
  awaitable<Outcome> exchange(http::request_parser<http::buffer_body>& p, PooledConnection& conn,
                              bool upgrade);
  awaitable<Outcome> relay_request_body(http::request_parser<http::buffer_body>& p,
                                        http::request_serializer<http::buffer_body>& sr,
                                        PooledConnection& conn);
  // After a 101: the connection is no longer HTTP; bytes go both ways until one side
  // closes (or the tunnel idles out).
  awaitable<Outcome> tunnel(Response& res, PooledConnection& conn);
  template <class From, class To>
  awaitable<void> pipe(From& from, To& to);

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

}  // namespace mill::proxy::detail
