#pragma once

// An HTTP/1.1 server (Boost.Beast over Asio behind this plain interface): keep-alive,
// many concurrent connections, bounded header and body sizes, read timeouts against
// slow clients, graceful stop; optionally HTTPS, with client certificates (mTLS).
//
// Threading: the handler runs on one of the server's I/O threads, once per request,
// concurrently for different connections. It must be thread-safe and should not block
// for long (a store write's fsync is fine).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
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

// HTTPS for every connection: TLS 1.2 or later (1.3 when the client speaks it). All of
// it in memory, PEM; HttpServer::create checks it (kInvalidArgument when a PEM does not
// parse or the key does not match the certificate).
struct TlsServerConfig {
  // The server's certificate, then its intermediates. A client doing the join flow's
  // pin check (fetch_peer_chain_pem) needs the CA too: put it last.
  std::string cert_pem;
  std::string key_pem;  // the certificate's private key, unencrypted
  // CAs a client certificate must chain to: only these, never the system store. When
  // set, the server asks every client for a certificate; one that does not verify fails
  // the handshake, and a verified one's subject CN becomes HttpRequest::peer_identity.
  // A client that sends none is let in without an identity, unless require_client_cert.
  std::string client_ca_pem;
  bool require_client_cert = false;  // needs client_ca_pem
};

struct HttpServerOptions {
  std::string listen = "0.0.0.0:4400";
  size_t max_header_bytes = 16 * 1024;  // beyond: 431
  size_t max_body_bytes = 1024 * 1024;  // beyond: 413
  // One whole request, headers + body; on a new connection, the TLS handshake too.
  std::chrono::milliseconds read_timeout{15000};
  std::chrono::milliseconds idle_timeout{60000};  // keep-alive wait for the next one
  int threads = 2;
  std::optional<TlsServerConfig> tls;  // unset: plain HTTP
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
