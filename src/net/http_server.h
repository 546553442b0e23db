#pragma once

// An HTTP/1.1 server (Boost.Beast over Asio behind this plain interface): keep-alive,
// many concurrent connections, bounded header and body sizes, read timeouts against
// slow clients, graceful stop.
//
// Threading: the handler runs on one of the server's I/O threads, once per request,
// concurrently for different connections. It must be thread-safe and should not block
// for long (a store write's fsync is fine).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "net/http.h"

namespace mill::net {

using Handler = std::function<HttpResponse(const HttpRequest&)>;

// Called after each response with what an access log needs; never sees headers or
// bodies, so a token or secret can't reach the log through it.
struct AccessRecord {
  std::string_view method;
  std::string_view path;
  int status = 0;
  std::chrono::microseconds duration{0};
  std::string_view remote;
};
using AccessLogger = std::function<void(const AccessRecord&)>;

struct HttpServerOptions {
  std::string listen = "0.0.0.0:4400";
  size_t max_header_bytes = 16 * 1024;            // beyond: 431
  size_t max_body_bytes = 1024 * 1024;            // beyond: 413
  std::chrono::milliseconds read_timeout{15000};  // one whole request, headers + body
  std::chrono::milliseconds idle_timeout{60000};  // keep-alive wait for the next one
  int threads = 2;
};

class HttpServer {
 public:
  // Binds and listens; the port is taken (so port() is known) before it returns.
  static Result<std::unique_ptr<HttpServer>> create(HttpServerOptions options, Handler handler,
                                                    AccessLogger logger = {});
  ~HttpServer();

  // The bound address, e.g. "127.0.0.1:4400" (the real port when asked for 0).
  std::string address() const;
  uint16_t port() const;

  // Serves on the I/O threads; returns at once.
  void start();
  // Stops accepting, lets in-flight requests finish (up to grace), closes idle
  // connections, joins the threads. Safe to call from any thread, more than once.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

  struct State;  // opaque: defined in http_connection.h (net-internal)

 private:
  explicit HttpServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace mill::net
