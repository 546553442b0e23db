#pragma once

// HttpServer's insides, shared by http_server.cc (listening, accepting, stopping),
// http_connection.cc (one connection's request/response cycle) and async_response.cc
// (answers a handler gives later: long polls and streams). Only net/*.cc include it:
// it pulls in Beast and Asio.

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
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
  // http_connection.cc: reading, answering, closing.
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

  beast::tcp_stream stream_;
  HttpServer::State& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string remote_;
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
