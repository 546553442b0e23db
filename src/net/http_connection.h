#pragma once

// HttpServer's insides, shared by http_server.cc (listening, accepting, stopping),
// http_connection.cc (one connection's request/response cycle) and async_response.cc
// (answers a handler gives later: long polls and streams). Only net/*.cc include it:
// it pulls in Beast and Asio.

#include <array>
#include <atomic>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "net/http.h"
#include "net/http_server.h"

namespace mill::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class HttpConnection;
class AsyncWriter;

struct HttpServer::State {
  HttpServerOptions options;
  Handler handler;
  AccessLogger logger;
  asio::io_context io;
  // Set when options.tls is: every accepted connection speaks TLS with it.
  std::optional<asio::ssl::context> tls;
  // Keeps run() going while the only live work is an answer a handler will give later
  // (a long poll has no pending socket operation): without it the I/O threads could
  // return while stop() still has connections to close.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  std::mutex connections_mutex;
  std::set<std::weak_ptr<HttpConnection>, std::owner_less<std::weak_ptr<HttpConnection>>>
      connections;
  std::once_flag stop_once;

  void accept();
};

// "127.0.0.1:4400", "[::1]:4400".
std::string endpoint_text(const tcp::endpoint& ep);

// http_server.cc: the server's TLS context from options.tls (kInvalidArgument for a bad
// certificate, key or CA).
Result<void> configure_tls(asio::ssl::context& ctx, const TlsServerConfig& config);

// A connection's byte stream: plain TCP, or TLS over it. It is an Asio
// AsyncReadStream and AsyncWriteStream, so Beast's HTTP reads and writes and all of
// HttpConnection are written once for both; only the handshake knows the difference.
// Timeouts live on the TCP layer (tcp_layer().expires_after), which TLS reads and
// writes go through too.
class ServerStream {
 public:
  using executor_type = beast::tcp_stream::executor_type;
  using Tls = beast::ssl_stream<beast::tcp_stream>;

  explicit ServerStream(tcp::socket socket)
      : stream_(std::in_place_type<beast::tcp_stream>, std::move(socket)) {}
  ServerStream(tcp::socket socket, asio::ssl::context& ctx)
      : stream_(std::in_place_type<Tls>, std::move(socket), ctx) {}

  executor_type get_executor() { return tcp_layer().get_executor(); }
  beast::tcp_stream& tcp_layer() {
    if (auto* t = tls()) return t->next_layer();
    return std::get<beast::tcp_stream>(stream_);
  }
  Tls* tls() { return std::get_if<Tls>(&stream_); }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(beast::error_code, size_t)>(
        [this](auto handler, const Buffers& b) {
          if (auto* t = tls()) return t->async_read_some(b, std::move(handler));
          std::get<beast::tcp_stream>(stream_).async_read_some(b, std::move(handler));
        },
        token, buffers);
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(beast::error_code, size_t)>(
        [this](auto handler, const Buffers& b) {
          if (auto* t = tls()) return t->async_write_some(b, std::move(handler));
          std::get<beast::tcp_stream>(stream_).async_write_some(b, std::move(handler));
        },
        token, buffers);
  }

 private:
  std::variant<beast::tcp_stream, Tls> stream_;
};

// One connection. Reads a request, runs the handler, writes the response, repeats
// while keep-alive holds. All its work runs on its own strand.
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(tcp::socket socket, HttpServer::State& server);

  auto executor() { return stream_.get_executor(); }
  // Closed connections may live on while a producer still holds their writer; stop()
  // does not wait for those.
  bool closed() const { return closed_.load(); }

  void start();
  // Called at stop once no I/O thread runs: closes the socket, whatever state it is in.
  void abort();
  // Called at stop: an idle connection closes now; a busy one after its response. A
  // request whose first bytes have arrived counts as busy: it is in flight, and its
  // sender is owed an answer (the read timeout and the stop grace still bound it).
  void shutdown();

  // The answer given later through an AsyncWriter (async_response.cc). Called on the
  // strand only.
  void finish_async(HttpResponse response);
  void start_stream(int status, const std::string& content_type,
                    const std::vector<Header>& headers);
  void queue_chunk(std::string chunk);
  void end_stream();

 private:
  // http_connection.cc: the TLS handshake, reading, answering, closing.
  void handshake();
  void read();
  void on_read(beast::error_code ec);
  void reject(int status, std::string_view message);
  void send(HttpResponse response, bool keep_alive, std::string method, std::string path,
            std::chrono::steady_clock::time_point started);
  void linger();
  void drain();
  void close();

  // async_response.cc: a handler's answer that comes later.
  void begin_async(std::function<void(std::shared_ptr<ResponseWriter>)> start, bool keep_alive,
                   std::string method, std::string path,
                   std::chrono::steady_clock::time_point started);
  void flush();
  void watch_client();
  void client_left();

  ServerStream stream_;
  HttpServer::State& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string remote_;
  std::string peer_identity_;  // the verified client certificate's CN (TLS)
  // The TLS handshake and the first request must both be done by then.
  std::chrono::steady_clock::time_point first_deadline_;
  bool first_ = true;
  bool busy_ = false;
  bool linger_ = false;
  std::atomic<bool> closed_{false};
  // Async answers (long polls, streams).
  bool async_ = false;
  bool async_keep_alive_ = false;
  std::string async_method_;
  std::string async_path_;
  std::chrono::steady_clock::time_point async_started_;
  std::weak_ptr<AsyncWriter> writer_;
  int stream_status_ = 0;
  std::deque<std::string> out_;
  bool writing_ = false;
  bool stream_ending_ = false;
  bool stream_done_ = false;
  static constexpr size_t kMaxDrainBytes = 16 * 1024 * 1024;
  size_t drained_ = 0;
  std::array<char, 16384> drain_buffer_{};
};

}  // namespace mill::net
